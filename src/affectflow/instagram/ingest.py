"""Ingest one shard: read its post JSON members from the split archive, parse, write Parquet.

The plan (see :mod:`.plan`) has already decided which posts belong to the shard and
where each member's bytes are, in archive order, so the job is a sequential pass over a stretch
of the volumes. Every planned post yields exactly one row, with ``status`` ``ok`` or the fault.
Rows are processed and written in row groups of ``row_group_rows``, so memory does not grow with
shard size. Per post, only the member read is a Python call; parsing and column building are
Arrow operations over the whole row group (see :func:`post_parse.parse_posts`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import status as S
from ..io import arrays as A
from ..io.multizip import MemberError, MultiVolumeZip, VolumeError
from ..io.parquet import ParquetWriter, parquet_files, provenance, read_columns, read_partition, write_json
from ..tables import MEMBER_COLUMNS, POSTS
from .config import InstagramConfig
from .post_parse import PARSED_FIELDS, parse_posts

log = logging.getLogger(__name__)

_CARRIED = ["post_id", "username", "json_file", "category", "followers", "image_files", "missing_images", "shard"]
_PLAN_COLUMNS = [*_CARRIED, *MEMBER_COLUMNS, "in_mapping", "plan_status", "plan_error"]


class ShardVolumeError(RuntimeError):
    """The shard needs a volume that is missing or truncated."""


def check_shard_volumes(plan_summary: dict, shard: int, zf: MultiVolumeZip, plan_posts: str | Path) -> None:
    """Fail before reading anything when a volume this shard needs is missing or truncated.

    The plan's verdict on each volume is taken as long as the volume still has the size the plan
    saw. A volume that changed since (replaced after a failed run, or damaged after planning) is
    checked again here against every member location in the plan, so replacing a bad volume and
    rerunning reruns only the shards that failed, without planning again.
    """
    seen = {Path(v["path"]).name: v for v in plan_summary["metadata_archive"]["volumes"]}
    needed = plan_summary.get("shard_volumes", {}).get(str(shard), [])
    problems: dict[str, str] = {}
    changed = []
    for name in needed:
        disk = seen[name]["disk"]
        path = zf.volumes[disk]
        size = path.stat().st_size if path.exists() else None
        if size is None:
            problems[name] = "missing"
        elif seen[name]["problem"] is not None or size != seen[name]["bytes"]:
            changed.append(disk)
    if changed and not problems:
        locations = read_columns(plan_posts, ["member", "disk", "offset", "compressed_size"])
        directory = locations.filter(pc.is_valid(locations["member"])).rename_columns(["name", "disk", "offset", "compressed_size"])
        now = zf.check_volumes(directory)
        problems = {zf.volumes[d].name: why for d, why in now.items() if zf.volumes[d].name in needed}
        log.info("volumes %s changed since the plan; checked again: %s", [zf.volumes[d].name for d in changed], problems or "intact")
    if problems:
        users = {v: sorted(int(s) for s, names in plan_summary.get("shard_volumes", {}).items() if v in names) for v in problems}
        parts = [f"volume {zf.volumes[seen[v]['disk']]} is {why} (shards that need it: {users[v]})" for v, why in problems.items()]
        # one line: operators (and `affectflow status`) read the last log line
        remedy = (" Copy the missing volume beside the others (every volume of the set in one folder, named"
                  f" {zf.volumes[0].name} … {zf.last_volume.name}), then rerun: only these shards run again."
                  if "missing" in problems.values() else " Replace the volume, then rerun: only these shards run again.")
        raise ShardVolumeError(f"shard {shard} cannot be ingested: " + "; ".join(parts) + "." + remedy)


class PlanMismatch(RuntimeError):
    """The plan a job reads was made for another config (shard count)."""


def check_plan(summary: dict, ig: InstagramConfig, where: str | Path, shard: int | None = None) -> None:
    """Refuse a plan made for another shard count than the config's (another checkout writing the
    same results folder, or a plan not rerun), or a shard number outside it.

    Raises:
        PlanMismatch: naming the plan file and both counts.
    """
    if summary.get("shards") != ig.shards:
        raise PlanMismatch(f"{where} was made for {summary.get('shards')} shards, but the config says {ig.shards}: "
                           "rerun the plan (snakemake does when the config changes); is another checkout writing "
                           "this results folder?")
    if shard is not None and not 0 <= shard < ig.shards:
        raise PlanMismatch(f"shard {shard} is not in the plan {where} ({ig.shards} shards)")


def ingest_shard(cfg: dict, plan_posts: str | Path, plan_summary: str | Path, shard: int, out: str | Path) -> dict[str, int]:
    """Stage ``instagram_ingest``: parse shard ``shard`` of the plan into ``out``.

    Args:
        cfg: config with the ``instagram`` section.
        plan_posts: the plan's posts table.
        plan_summary: the plan summary (its verdict on each volume).
        shard: the shard number.
        out: the posts shard (:data:`tables.POSTS`), one row per planned post in plan order; a
            post that cannot be read or parsed keeps a row with its status and error.

    Returns:
        Status counts (status -> posts).

    Raises:
        ShardVolumeError: a volume the shard needs is missing or truncated (checked before reading).
    """
    ig = InstagramConfig.from_config(cfg)
    summary = json.loads(Path(plan_summary).read_text())
    check_plan(summary, ig, plan_summary, shard)
    zf = MultiVolumeZip(ig.metadata_zip)
    check_shard_volumes(summary, shard, zf, plan_posts)
    plan = read_partition(plan_posts, "shard", shard, _PLAN_COLUMNS)
    prov = provenance("instagram_posts", cfg, shard=shard, sources=[str(p) for p in zf.volumes])
    counts: dict[str, int] = {}
    timing = {"read": 0.0, "parse": 0.0, "write": 0.0}
    t0 = time.perf_counter()
    from ..ops.progress import progress

    bounds = row_group_bounds(plan, ig.row_group_rows, ig.row_group_bytes)
    with zf, ParquetWriter(out, POSTS, prov, row_group_size=ig.row_group_rows) as writer, \
            progress(plan.num_rows, f"ingest shard {shard}", "posts") as bar:
        for start, stop in zip(bounds[:-1], bounds[1:]):
            table = ingest_rows(zf, plan.slice(start, stop - start), ig, shard, timing)
            t = time.perf_counter()
            writer.write(table)
            timing["write"] += time.perf_counter() - t
            for vc in table["status"].value_counts().to_pylist():
                counts[vc["values"]] = counts.get(vc["values"], 0) + vc["counts"]
            bar.update(table.num_rows)  # one line per row group at most, no more often than the interval
    elapsed = time.perf_counter() - t0
    log.info("shard %d: %d posts in %.2fs (%.0f posts/s; read %.2fs, parse %.2fs, write %.2fs) %s", shard, plan.num_rows,
             elapsed, plan.num_rows / max(elapsed, 1e-9), timing["read"], timing["parse"], timing["write"], counts)
    return counts


def row_group_bounds(plan: pa.Table, max_rows: int, max_bytes: int) -> list[int]:
    """Where the shard's row groups start and end: at most ``max_rows`` posts, and at most
    ``max_bytes`` of declared inflated JSON (members the plan already refused count nothing), so
    the members held at once are bounded whatever the archive holds. A single member over the
    budget gets a row group of its own (its size is bounded by ``max_member_bytes``).

    Returns:
        ``[0, b1, ..., num_rows]``.
    """
    n = plan.num_rows
    # plain Python/numpy: a Python value handed to pyarrow.compute would import pandas in the job
    sizes = np.asarray([s or 0 for s in plan["uncompressed_size"].to_pylist()], np.int64)
    refused = np.asarray([st is not None and st != S.MAPPING_MALFORMED for st in plan["plan_status"].to_pylist()], bool)
    cum = np.concatenate([[0], np.cumsum(np.where(refused, 0, sizes))]).astype(np.int64)
    bounds = [0]
    while bounds[-1] < n:
        lo = bounds[-1]
        by_bytes = int(np.searchsorted(cum, cum[lo] + max_bytes, side="right")) - 1
        bounds.append(min(lo + max_rows, max(by_bytes, lo + 1), n))
    return bounds


def ingest_rows(zf: MultiVolumeZip, plan: pa.Table, ig: InstagramConfig, shard: int, timing: dict[str, float]) -> pa.Table:
    """Plan rows -> POSTS rows: read the members (the only per-post Python), parse in bulk, assemble."""
    t = time.perf_counter()
    n = plan.num_rows
    status, error = plan["plan_status"].to_pylist(), plan["plan_error"].to_pylist()
    location = [plan[c].to_pylist() for c in MEMBER_COLUMNS]
    raws: list[bytes] = []
    read_idx: list[int] = []
    read, limit, archive = zf.read_at, ig.max_member_bytes, ig.metadata_zip.name
    for i, loc in enumerate(zip(*location)):
        if status[i] is not None and status[i] != S.MAPPING_MALFORMED:
            continue  # known from the plan: missing JSON, unsafe name, too large (never inflated)
        try:
            raws.append(read(*loc, limit))
            read_idx.append(i)
        except MemberError as exc:
            status[i], error[i] = exc.status, f"{archive}: {exc}"
        except MemoryError:  # one member's fault: the row group is bounded, so this member is huge
            status[i], error[i] = S.TOO_LARGE, f"{archive}: {loc[0]}: out of memory inflating {loc[4]} bytes"
        except VolumeError as exc:
            raise ShardVolumeError(f"shard {shard}: {exc}") from exc
    t1 = time.perf_counter()
    parsed, failures = parse_posts(raws)
    members = location[0]
    for j, st, msg in failures:
        i = read_idx[j]
        status[i], error[i] = st, f"{members[i]}: {msg}"
    in_mapping = plan["in_mapping"].to_pylist()
    for i in read_idx:
        if status[i] is None:
            if in_mapping[i]:
                status[i] = S.OK
            else:
                status[i], error[i] = S.UNMAPPED, f"{members[i]} has no row in the mapping file"
    where = np.full(n, -1, np.int64)
    where[read_idx] = np.arange(len(read_idx))
    parsed = A.take_or_null(parsed, where)
    cols = {k: plan[k] for k in _CARRIED}
    cols.update({k: parsed[k] for k in PARSED_FIELDS})
    cols["status"], cols["error"] = A.strings(status), A.strings(error)
    table = pa.table({f.name: cols[f.name] for f in POSTS}).cast(POSTS)
    timing["read"] += t1 - t
    timing["parse"] += time.perf_counter() - t1
    return table


def volumes_as_read(plan: dict, shard_files: list[Path]) -> dict[str, Any]:
    """The plan's metadata-archive record with each volume's verdict as the shards found it.

    A volume the plan saw damaged that every shard needing it has since read (each shard checks a
    changed volume again before reading, :func:`check_shard_volumes`, and fails otherwise) was
    replaced: its ``problem`` is cleared, the plan's verdict kept as ``problem_at_plan``.
    """
    import copy

    archive = copy.deepcopy(plan["metadata_archive"])
    done = {int(Path(f).stem.split("-")[1]) for f in shard_files if Path(f).stem.startswith("shard-")}
    for vol in archive.get("volumes", []):
        if not vol.get("problem"):
            continue
        name = Path(vol["path"]).name
        users = [int(s) for s, names in plan.get("shard_volumes", {}).items() if name in names]
        if users and all(u in done for u in users):
            vol["problem_at_plan"], vol["problem"] = vol["problem"], None
            vol["rechecked"] = f"intact when shards {users} read it (replaced after the plan)"
    return archive


def summarize(plan_summary: str | Path, shards: list[str | Path], out: str | Path) -> dict[str, Any]:
    """``ingest_summary.json``: status counts over all shards plus the plan's counts.

    Args:
        plan_summary: the plan summary (JSON).
        shards: the posts shards (files or folders).
        out: the summary JSON to write.

    Returns:
        The summary: ``posts``, ``by_status``, ``duplicate_post_ids``, ``images_present``,
        ``missing_images``, ``posts_with_missing_images``, ``by_category``,
        ``duplicate_mapping_rows``, ``mapping``, ``influencers``, ``metadata_archive``,
        ``image_archive``, ``volumes_read``, ``shards``.

    Raises:
        RuntimeError: the shards hold another number of posts than the plan (after nothing is written).
    """
    import polars as pl

    from ..ops.results_folder import check_folder

    plan = json.loads(Path(plan_summary).read_text())
    files = [f for s in shards for f in parquet_files(s)]
    if len(files) != plan["shards"]:
        raise RuntimeError(f"{plan_summary} plans {plan['shards']} shards, but {len(files)} shard files were given")
    for folder in {Path(f).parent for f in files}:
        check_folder(folder, sorted(folder.glob("shard-*.parquet")))
    posts = pl.scan_parquet(files).select("status", "image_files", "missing_images", "category", "post_id",
                                          "likes_hidden", "comments_hidden").collect()
    by_status = dict(posts.group_by("status").len().sort("status").iter_rows())
    duplicates = posts.height - posts["post_id"].n_unique()
    summary = {
        "posts": posts.height,
        "by_status": by_status,
        "duplicate_post_ids": duplicates,
        "likes_hidden": int(posts["likes_hidden"].sum()),  # negative like counts in the dump: likes is null
        "comments_hidden": int(posts["comments_hidden"].sum()),
        "images_present": int(posts["image_files"].list.len().sum()),
        "missing_images": int(posts["missing_images"].list.len().sum()),
        "posts_with_missing_images": int((posts["missing_images"].list.len() > 0).sum()),
        "by_category": dict(posts.group_by("category").len().sort("category", nulls_last=True).iter_rows()),
        "duplicate_mapping_rows": plan["mapping"]["duplicate_rows"],
        "mapping": plan["mapping"],
        "influencers": plan["influencers"],
        "metadata_archive": volumes_as_read(plan, files),
        "image_archive": plan["image_archive"],
        "volumes_read": [v["path"] for v in plan["metadata_archive"]["volumes"]],
        "shards": len(files),
    }
    summary["by_category"] = {("unknown" if k is None else k): v for k, v in summary["by_category"].items()}
    if plan["posts"] != posts.height:
        raise RuntimeError(f"the plan has {plan['posts']} posts but the shards hold {posts.height}: a shard is stale or foreign")
    write_json(out, summary)
    return summary
