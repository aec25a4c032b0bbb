"""Ingest one shard: read its post JSON members from the split archive, parse, write Parquet.

The plan (see :mod:`instagram_plan`) has already decided which posts belong to the shard and
where each member's bytes are, in archive order, so the job is a sequential pass over a stretch
of the volumes. Every planned post yields exactly one row, with ``status`` ``ok`` or the fault.
Rows are written in row groups of ``row_group_rows``, so memory does not grow with shard size.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from . import status as S
from .config import InstagramConfig
from .instagram_plan import read_shard
from .multizip import Member, MemberError, MultiVolumeZip, VolumeError
from .parquet_io import ParquetWriter, parquet_files, provenance, write_json
from .post_parse import PARSED_FIELDS, PostError, load_post, parse_post
from .tables import POSTS

log = logging.getLogger(__name__)

_PLAN_COLUMNS = ["post_id", "shard", "username", "json_file", "member", "disk", "offset", "compressed_size",
                 "uncompressed_size", "method", "crc", "flags", "category", "followers", "in_mapping",
                 "image_files", "missing_images", "plan_status", "plan_error"]
_CARRIED = ["post_id", "username", "json_file", "category", "followers", "image_files", "missing_images", "shard"]


class ShardVolumeError(RuntimeError):
    """The shard needs a volume that is missing or truncated."""


def check_shard_volumes(plan_summary: dict, shard: int) -> None:
    """Fail before reading anything when a volume this shard needs is missing or truncated."""
    problems = plan_summary.get("volume_problems", {}).get("metadata", {})
    needed = plan_summary.get("shard_volumes", {}).get(str(shard), [])
    bad = [v for v in needed if v in problems]
    if bad:
        affected = plan_summary.get("shards_affected", {})
        lines = [f"volume {v} is {problems[v]}; shards that need it: {affected.get(v, [shard])}" for v in bad]
        raise ShardVolumeError(f"shard {shard} cannot be ingested:\n  " + "\n  ".join(lines)
                               + "\nReplace the volume, then rerun: only these shards run again.")


def ingest_shard(cfg: dict, plan_posts: str | Path, plan_summary: str | Path, shard: int, out: str | Path) -> dict[str, int]:
    """Parse shard ``shard`` of the plan into ``out`` (a :data:`tables.POSTS` file). Returns status counts."""
    ig = InstagramConfig.from_config(cfg)
    summary = json.loads(Path(plan_summary).read_text())
    check_shard_volumes(summary, shard)
    plan = read_shard(plan_posts, shard, _PLAN_COLUMNS)
    zf = MultiVolumeZip(ig.metadata_zip)
    prov = provenance("instagram_posts", cfg, shard=shard, sources=[str(p) for p in zf.volumes])
    counts: dict[str, int] = {}
    t_read = t_parse = 0.0
    t0 = time.perf_counter()
    with zf, ParquetWriter(out, POSTS, prov, row_group_size=ig.row_group_rows) as writer:
        for start in range(0, plan.num_rows, ig.row_group_rows):
            chunk = plan.slice(start, ig.row_group_rows).to_pydict()
            cols: dict[str, list] = {k: chunk[k] for k in _CARRIED}
            cols.update({k: [] for k in (*PARSED_FIELDS, "status", "error")})
            parsed_cols = [cols[k] for k in PARSED_FIELDS]
            for i in range(len(chunk["post_id"])):
                status, error, row = chunk["plan_status"][i], chunk["plan_error"][i], None
                if status in (None, S.MAPPING_MALFORMED):
                    r0 = time.perf_counter()
                    try:
                        raw = zf.read(Member(chunk["member"][i], chunk["disk"][i], chunk["offset"][i],
                                             chunk["compressed_size"][i], chunk["uncompressed_size"][i],
                                             chunk["method"][i], chunk["crc"][i], chunk["flags"][i]),
                                      max_size=ig.max_member_bytes)
                        r1 = time.perf_counter()
                        t_read += r1 - r0
                        row = parse_post(load_post(raw))
                        t_parse += time.perf_counter() - r1
                        if status is None:
                            status = S.OK if chunk["in_mapping"][i] else S.UNMAPPED
                            error = None if status == S.OK else f"{chunk['member'][i]} has no row in the mapping file"
                    except (MemberError, PostError) as exc:
                        status, error, row = exc.status, f"{ig.metadata_zip.name}: {exc}", None
                        if isinstance(exc, PostError):
                            error = f"{chunk['member'][i]}: {exc}"
                    except VolumeError as exc:
                        raise ShardVolumeError(f"shard {shard}: {exc}") from exc
                if row is None:
                    for col in parsed_cols:
                        col.append(None)
                else:
                    for col, key in zip(parsed_cols, PARSED_FIELDS):
                        col.append(row[key])
                cols["status"].append(status)
                cols["error"].append(error)
                counts[status] = counts.get(status, 0) + 1
            writer.write(_to_table(cols))
    elapsed = time.perf_counter() - t0
    log.info("shard %d: %d posts in %.2fs (read %.2fs, parse %.2fs) %s", shard, plan.num_rows, elapsed, t_read, t_parse, counts)
    return counts


def _to_table(cols: dict[str, list]) -> pa.Table:
    arrays = {}
    for field in POSTS:
        vals = cols[field.name]
        if field.name == "timestamp":
            arrays[field.name] = pa.array(vals, pa.int64()).cast(pa.timestamp("s", tz="UTC")).cast(field.type)
        else:
            arrays[field.name] = pa.array(vals, field.type)
    return pa.table(arrays, schema=POSTS)


def summarize(plan_summary: str | Path, shards: list[str | Path], out: str | Path) -> dict[str, Any]:
    """``ingest_summary.json``: status counts over all shards plus the plan's counts."""
    import polars as pl

    plan = json.loads(Path(plan_summary).read_text())
    files = [f for s in shards for f in parquet_files(s)]
    posts = pl.scan_parquet(files).select("status", "image_files", "missing_images", "category", "post_id").collect()
    by_status = dict(posts.group_by("status").len().sort("status").iter_rows())
    duplicates = posts.height - posts["post_id"].n_unique()
    summary = {
        "posts": posts.height,
        "by_status": by_status,
        "duplicate_post_ids": duplicates,
        "images_present": int(posts["image_files"].list.len().sum()),
        "missing_images": int(posts["missing_images"].list.len().sum()),
        "posts_with_missing_images": int((posts["missing_images"].list.len() > 0).sum()),
        "by_category": dict(posts.group_by("category").len().sort("category", nulls_last=True).iter_rows()),
        "duplicate_mapping_rows": plan["mapping"]["duplicate_rows"],
        "mapping": plan["mapping"],
        "influencers": plan["influencers"],
        "metadata_archive": plan["metadata_archive"],
        "image_archive": plan["image_archive"],
        "volumes_read": [v["path"] for v in plan["metadata_archive"]["volumes"]],
        "shards": len(files),
    }
    summary["by_category"] = {("unknown" if k is None else k): v for k, v in summary["by_category"].items()}
    if plan["posts"] != posts.height:
        raise RuntimeError(f"the plan has {plan['posts']} posts but the shards hold {posts.height}: a shard is stale or foreign")
    write_json(out, summary)
    return summary
