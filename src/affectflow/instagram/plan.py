"""Plan the Instagram ingestion: which posts exist, where their bytes are, which shard reads them.

One pass over the small things (the two central directories, the mapping file, the influencer
list) decides everything the shard jobs need, so each shard job reads only its own rows of the
plan and its own stretch of the archive. All joins are polars; no per-row Python.

Outputs (under ``{results}/instagram/plan/``):

* ``posts.parquet`` (:data:`tables.PLAN_POSTS`): one row per post that the archive or the mapping
  names, with its shard, the JSON member's location, category and followers, and its images;
* ``images.parquet`` (:data:`tables.PLAN_IMAGES`): one row per mapped image present in the image
  archive, with its location, for the image stages;
* ``plan.json``: counts (duplicates, malformed rows, orphans ...), volume checks, and the
  volumes each shard needs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from .. import status as S
from ..io.multizip import MultiVolumeZip, member_layout
from ..io.parquet import ParquetWriter, provenance, read_partition, write_json
from ..io.tsv import check_header, examples, read_fields
from ..tables import PLAN_IMAGES, PLAN_POSTS
from .config import InstagramConfig

log = logging.getLogger(__name__)

MAPPING_FIELDS = ["username", "json_file", "images_raw"]
MAPPING_HEADER = ["influencer_name", "JSON_PostMetadata_file_name", "Image_file_name"]
INFLUENCER_FIELDS = ["username", "category", "followers", "followees", "posts"]
INFLUENCER_HEADER = ["Username", "Category", "#Followers", "#Followees", "#Posts"]
CATEGORY_ALIASES = {"fasion": "fashion"}  # the real influencers.txt misspells some rows
_QUOTED = r"""(?:'[^'\\]*'|"[^"\\]*")"""
LIST_LITERAL = rf"""^\[\s*(?:{_QUOTED}\s*(?:,\s*{_QUOTED}\s*)*,?\s*)?\]$"""
UNSAFE = r"""(^[/\\])|(^[A-Za-z]:)|\\|(^|/)\.\.(/|$)|\x00"""
# The compression-ratio test applies to members over 64 KiB. Below, a member's ratio is bounded by
# its size anyway (deflate needs a few bytes of stream per 1032 inflated, and the headers), and many
# such members cannot add up: the ingest job flushes a row group at instagram.row_group_bytes.
RATIO_FLOOR = 1 << 16


def _post_id(user: pl.Expr, file: pl.Expr) -> pl.Expr:
    """``<username>-<file stem>``: the archive member's base name without its extension."""
    return pl.concat_str([user, pl.lit("-"), file.str.replace(r"\.[^.]*$", "")])


def read_mapping(path: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The mapping file, deduplicated, with its image lists parsed (never ``eval``'d).

    Returns one row per post key (``post_id, username, json_file, images, mapping_malformed,
    mapping_error``) and the counts for the summary. Duplicates are dropped with masks before
    the derived columns are built, so the 10M-row file is held about once.
    """
    check_header(path, MAPPING_HEADER, lambda f: len(f) >= 2 and (f[1].strip().endswith(".info") or f[-1].strip().startswith("[")))
    df = read_fields(path, MAPPING_FIELDS)
    rows = df.height
    # more than 3 fields: a tab inside a name, so which field is the user and which the file is
    # unknown; the row names no post (its JSON, if archived, is `unmapped`)
    keyable = pl.col("fields").is_between(2, 3) & (pl.col("username").fill_null("") != "") & (pl.col("json_file").fill_null("") != "")
    unkeyable = df.filter(~keyable).select("line")
    df = df.filter(keyable & pl.struct("username", "json_file", "images_raw").is_first_distinct())
    duplicates = rows - unkeyable.height - df.height
    df = df.with_columns(_post_id(pl.col("username"), pl.col("json_file")).alias("post_id"))
    before = df.height
    df = df.filter(pl.col("post_id").is_first_distinct())
    conflicts = before - df.height
    bad_list = ~pl.col("images_raw").fill_null("").str.contains(LIST_LITERAL)
    df = df.select(
        "post_id", "username", "json_file",
        pl.when(pl.col("not_utf8"))
        .then(pl.format("{}:{}: not valid UTF-8 (names and image list not trusted)", pl.lit(str(path)), pl.col("line")))
        .when(pl.col("fields") != 3)
        .then(pl.format("{}:{}: expected 3 tab-separated fields, found {}", pl.lit(str(path)), pl.col("line"), pl.col("fields")))
        .when(bad_list)
        .then(pl.format("{}:{}: image list is not a list literal of quoted names", pl.lit(str(path)), pl.col("line")))
        .otherwise(None)
        .alias("mapping_error"),
        pl.col("images_raw")
        .str.extract_all(_QUOTED)
        .list.eval(pl.element().str.slice(1, pl.element().str.len_chars() - 2))
        .alias("images"),
    ).with_columns(
        pl.col("mapping_error").is_not_null().alias("mapping_malformed"),
        pl.when(pl.col("mapping_error").is_null()).then(pl.col("images")).otherwise(pl.lit([], dtype=pl.List(pl.String))).alias("images"),
    )
    malformed = df.filter(pl.col("mapping_malformed"))
    counts = {
        "file": str(path),
        "rows": rows,
        "duplicate_rows": duplicates,
        "conflicting_rows": conflicts,
        "unkeyable_rows": unkeyable.height,
        "malformed_rows": malformed.height,
        "posts": df.height,
        "malformed_examples": examples(unkeyable, path, "row names no influencer and JSON file (or has a tab inside a name)")
        + malformed["mapping_error"].head(20).to_list(),
    }
    return df.select("post_id", "username", "json_file", "images", "mapping_malformed", "mapping_error"), counts


def read_influencers(path: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    """``username, category, followers`` from ``influencers.txt`` (skips its ``====`` rule)."""
    check_header(path, INFLUENCER_HEADER, lambda f: len(f) >= 3 and f[2].strip().replace(",", "").isdigit())
    df = read_fields(path, INFLUENCER_FIELDS, skip_prefix="=")
    df = df.with_columns(
        pl.col("followers").str.replace_all(",", "").cast(pl.Int64, strict=False),
        pl.col("category").str.to_lowercase().alias("category_raw"),
    ).with_columns(pl.col("category_raw").replace(CATEGORY_ALIASES).alias("category"))
    bad = df.filter((pl.col("fields") != 5) | pl.col("followers").is_null() | pl.col("not_utf8"))
    good = df.join(bad.select("line"), on="line", how="anti")
    distinct = good.unique(["username", "category", "followers"], keep="first", maintain_order=True)
    duplicates = good.height - distinct.height
    good = distinct.unique("username", keep="first", maintain_order=True)
    conflicts = distinct.height - good.height
    counts = {
        "file": str(path),
        "rows": df.height,
        "influencers": good.height,
        "malformed_rows": bad.height,
        "duplicate_rows": duplicates,  # the same influencer row again: dropped
        "conflicting_rows": conflicts,  # the same username with another category or follower count: the first row wins
        "malformed_examples": examples(bad, path, "expected 5 tab-separated UTF-8 fields with a numeric #Followers"),
        "categories_corrected": dict(good.filter(pl.col("category") != pl.col("category_raw"))
                                     .group_by("category_raw").len().iter_rows()),
    }
    return good.select("username", "category", "followers"), counts


def read_directory(zf: MultiVolumeZip) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Central-directory entries (files only) with ``username``, ``file`` (the base name split at
    its first ``-``) and the name faults ``unsafe`` and ``bad_name``."""
    df = pl.from_arrow(zf.central_directory())
    zf.close()  # unmap the volumes: the directory (~100 bytes an entry) is copied out
    n = df.height
    df = df.filter(~pl.col("name").str.ends_with("/"))
    parts = pl.col("name").str.replace(r"^.*/", "").str.splitn("-", 2)
    df = df.with_columns(
        parts.struct.field("field_0").alias("username"),
        parts.struct.field("field_1").alias("file"),
        pl.col("name").str.contains(UNSAFE).alias("unsafe"),
    ).with_columns(
        ((pl.col("file").fill_null("") == "") | (pl.col("username") == "")).alias("bad_name"),
    )
    counts = {"entries": n, "directories": n - df.height, "files": df.height,
              "unsafe_names": int(df["unsafe"].sum()), "bad_names": int((df["bad_name"] & ~df["unsafe"]).sum())}
    return df, counts


def _volume_report(zf: MultiVolumeZip, directory: pl.DataFrame, counts: dict[str, Any]) -> tuple[dict[int, str], list[dict]]:
    """Volume problems and sizes; adds the directory entries that are stray or overlap to ``counts``
    (each such member is still read through its own header: its own row says whether it could be)."""
    located = directory.select("name", "disk", "offset", "compressed_size").to_arrow()
    problems = zf.check_volumes(located)
    sizes = zf.volume_sizes()
    lay = member_layout(located, sizes)
    names = directory["name"]
    for key in ("stray", "overlap"):
        hit = pl.Series(lay[key])
        counts[f"{key}_entries"] = int(hit.sum())
        counts[f"{key}_examples"] = names.filter(hit).head(20).to_list()
    vols = [{"disk": d, "path": str(p), "bytes": sizes[d], "problem": problems.get(d)} for d, p in enumerate(zf.volumes)]
    for d, why in problems.items():
        log.error("volume %s: %s", zf.volumes[d], why)
    return problems, vols


def _volumes_per_shard(df: pl.DataFrame, zf: MultiVolumeZip) -> dict[int, list[str]]:
    """Each shard's volumes: from its first member's disk to the disk where its last member ends."""
    spans = (
        df.filter(pl.col("disk").is_not_null())
        .group_by("shard")
        .agg(pl.col("disk").min().alias("lo"), pl.col("disk").max().alias("hi"))
        .sort("shard")
    )
    last = len(zf.volumes) - 1
    # a member may spill into the next volume, so include one more (capped at the last)
    return {int(s): [zf.volumes[d].name for d in range(lo, min(hi + 1, last) + 1)]
            for s, lo, hi in spans.iter_rows()}


def plan(cfg: dict, posts_out: str | Path, images_out: str | Path, summary_out: str | Path) -> dict[str, Any]:
    """Stage ``instagram_plan``: build the ingestion plan (see the module docstring).

    Args:
        cfg: config with the ``instagram`` section (mapping, influencers, both archives, shards, limits).
        posts_out: the plan's posts table (:data:`tables.PLAN_POSTS`), one row group per shard.
        images_out: the plan's images table (:data:`tables.PLAN_IMAGES`), archive order, one row group per shard.
        summary_out: the plan summary (JSON).

    Returns:
        The summary: ``posts``, ``shards``, ``plan_status`` (counts; ``parse`` for posts to parse),
        ``mapping``, ``influencers``, ``metadata_archive``, ``image_archive``, ``shard_volumes``,
        ``volume_problems``, ``shards_affected``.

    Raises:
        OSError: an input file or a first volume is missing or unreadable.
        ValueError: an archive's central directory cannot be found or parsed.
    """
    ig = InstagramConfig.from_config(cfg)
    ig.require_inputs()
    mapping, mapping_counts = read_mapping(ig.mapping)
    influencers, infl_counts = read_influencers(ig.influencers)

    meta_zip = MultiVolumeZip(ig.metadata_zip)
    members, meta_counts = read_directory(meta_zip)
    meta_problems, meta_vols = _volume_report(meta_zip, members, meta_counts)

    too_large = (pl.col("uncompressed_size") > ig.max_member_bytes) | (
        (pl.col("uncompressed_size") > RATIO_FLOOR)
        & (pl.col("uncompressed_size") > pl.col("compressed_size") * ig.max_compression_ratio)
    )
    members = members.with_columns(
        pl.when(pl.col("unsafe") | pl.col("bad_name"))
        .then(pl.concat_str([pl.lit("member:"), pl.col("name")]))
        .otherwise(_post_id(pl.col("username"), pl.col("file")))
        .alias("post_id"),
        pl.when(pl.col("unsafe")).then(pl.lit(S.UNSAFE_NAME))
        .when(pl.col("bad_name")).then(pl.lit(S.BAD_NAME))
        .when(too_large).then(pl.lit(S.TOO_LARGE))
        .otherwise(None).alias("plan_status"),
        pl.when(pl.col("unsafe")).then(pl.format("member name {} would escape an output folder; refused", pl.col("name")))
        .when(pl.col("bad_name")).then(pl.format("member name {} is not <username>-<file name>", pl.col("name")))
        .when(too_large).then(pl.format(
            "member {} declares {} bytes ({} compressed): past the limits (max_member_bytes {}, ratio {}); not read",
            pl.col("name"), pl.col("uncompressed_size"), pl.col("compressed_size"),
            pl.lit(ig.max_member_bytes), pl.lit(ig.max_compression_ratio)))
        .otherwise(None).alias("plan_error"),
    ).drop("unsafe", "bad_name")
    before = members.height
    members = members.filter(pl.col("post_id").is_first_distinct())
    meta_counts["duplicate_members"] = before - members.height
    meta_counts["too_large"] = int((members["plan_status"] == S.TOO_LARGE).sum())

    posts = members.rename({"name": "member", "file": "member_file"}).join(
        mapping.with_columns(pl.lit(True).alias("in_mapping")), on="post_id", how="full", coalesce=True, suffix="_map"
    )
    del members, mapping  # the plan holds each big table about once: free what is merged
    posts = posts.select(
        pl.exclude("username_map", "username", "member_file", "json_file", "in_mapping", "images", "mapping_error",
                   "mapping_malformed", "plan_status", "plan_error"),
        pl.coalesce("username_map", "username").alias("username"),
        pl.coalesce("json_file", "member_file").alias("json_file"),
        pl.col("in_mapping").fill_null(False),
        pl.col("images").fill_null(pl.lit([], dtype=pl.List(pl.String))),
        # a malformed mapping row whose JSON is present: parsed, but its images are unknown
        pl.when(pl.col("plan_status").is_not_null()).then("plan_status")
        .when(pl.col("member").is_null()).then(pl.lit(S.JSON_MISSING))
        .when(pl.col("mapping_malformed").fill_null(False)).then(pl.lit(S.MAPPING_MALFORMED))
        .otherwise(None).alias("plan_status"),
        pl.when(pl.col("plan_error").is_not_null()).then("plan_error")
        .when(pl.col("member").is_null())
        .then(pl.format("{} names this post, but {} has no member for it", pl.lit(str(ig.mapping)), pl.lit(meta_zip.last_volume.name)))
        .otherwise(pl.col("mapping_error")).alias("plan_error"),
    )

    # images: every mapped image, present in the image archive or not (joined on user and file name)
    img_zip = MultiVolumeZip(ig.images_zip)
    img_dir, img_counts = read_directory(img_zip)
    img_problems, img_vols = _volume_report(img_zip, img_dir, img_counts)
    img_dir = (img_dir.filter(~pl.col("unsafe") & ~pl.col("bad_name")).drop("unsafe", "bad_name")
               .filter(pl.struct("username", "file").is_first_distinct()))
    archived = img_dir.height
    wanted = (
        posts.select("post_id", "username", pl.col("images").alias("file"))
        .explode("file")
        .filter(pl.col("file").is_not_null())
        .with_columns((pl.col("file").cum_count().over("post_id") - 1).cast(pl.Int16).alias("image_index"))
        .join(img_dir, on=["username", "file"], how="left")
    )
    del img_dir
    per_post = wanted.group_by("post_id").agg(
        pl.col("file").filter(pl.col("name").is_not_null()).alias("image_files"),
        pl.col("file").filter(pl.col("name").is_null()).alias("missing_images"),
    )
    images_mapped = wanted.height
    present = wanted.filter(pl.col("name").is_not_null()).rename({"file": "image_file"}).drop("username")
    del wanted
    referenced = present.select("name").n_unique()
    empty = pl.lit([], dtype=pl.List(pl.String))
    posts = (posts.drop("images").join(per_post, on="post_id", how="left").join(influencers, on="username", how="left")
             .with_columns(pl.col("image_files").fill_null(empty), pl.col("missing_images").fill_null(empty)))
    del per_post

    # shards: archive order first (sequential reads, few volumes per shard), then JSON-less posts
    n = posts.height
    posts = posts.sort(["disk", "offset", "post_id"], nulls_last=True).with_columns(
        (pl.int_range(pl.len(), dtype=pl.Int64) * ig.shards // max(n, 1)).cast(pl.Int32).alias("shard")
    )
    shard_volumes = _volumes_per_shard(posts, meta_zip)
    images = (
        present.join(posts.select("post_id", "shard"), on="post_id")
        .rename({"name": "member"})
        .sort(["shard", "disk", "offset"])
    )
    del present

    prov = provenance("instagram_plan", cfg, sources=[str(p) for p in meta_zip.volumes + img_zip.volumes])
    _write_by_shard(posts_out, posts, PLAN_POSTS, prov, ig.shards)
    _write_by_shard(images_out, images, PLAN_IMAGES, prov | {"table": "instagram_plan_images"}, ig.shards)

    affected = lambda problems, vols: {  # noqa: E731
        vols[d].name: sorted(s for s, names in shard_volumes.items() if vols[d].name in names) for d in problems
    }
    summary = {
        "posts": n,
        "shards": ig.shards,
        "plan_status": dict(posts.group_by("plan_status").len().sort("plan_status", nulls_last=True).iter_rows()),
        "mapping": mapping_counts,
        "influencers": infl_counts | {"posts_without_influencer_row": int(posts["category"].is_null().sum())},
        "metadata_archive": meta_counts | {"volumes": meta_vols, "members_not_in_mapping": int((~posts["in_mapping"] & posts["member"].is_not_null()).sum())},
        "image_archive": img_counts | {
            "volumes": img_vols,
            "images_mapped": images_mapped,
            "images_present": images.height,
            "images_missing": images_mapped - images.height,
            "orphan_images": archived - referenced,
        },
        "shard_volumes": {str(k): v for k, v in shard_volumes.items()},
        "volume_problems": {
            "metadata": {meta_zip.volumes[d].name: why for d, why in meta_problems.items()},
            "images": {img_zip.volumes[d].name: why for d, why in img_problems.items()},
        },
        "shards_affected": affected(meta_problems, meta_zip.volumes),
    }
    summary["plan_status"] = {("parse" if k is None else k): v for k, v in summary["plan_status"].items()}
    if "results" in cfg:  # shard files of a plan with more shards would be read beside this one's
        from ..ops.results_folder import prune_foreign_shards

        summary["removed_foreign_shards"] = prune_foreign_shards(cfg)
        if summary["removed_foreign_shards"]:
            log.info("removed %d shard files outside this plan of %d shards", len(summary["removed_foreign_shards"]), ig.shards)
    write_json(summary_out, summary)
    meta_zip.close()
    img_zip.close()
    log.info("planned %d posts in %d shards; %s", n, ig.shards, summary["plan_status"])
    return summary


def _write_by_shard(path, df: pl.DataFrame, schema: pa.Schema, prov: dict, shards: int) -> None:
    """One row group per shard (``df`` is sorted by shard), so a shard job reads only its own rows.
    Converted to Arrow a shard at a time, so the write adds one shard's worth of memory."""
    import numpy as np

    df = df.select(schema.names)
    keys = df["shard"].to_numpy()
    bounds = np.searchsorted(keys, np.arange(shards + 1))
    with ParquetWriter(path, schema, prov) as w:
        for s in range(shards):
            lo, hi = int(bounds[s]), int(bounds[s + 1])
            if hi > lo:
                w.write(df.slice(lo, hi - lo).to_arrow())


def read_plan_shard(path: str | Path, shard: int, columns: list[str] | None = None) -> pa.Table:
    """The plan rows of one shard: only that shard's row group is read (see ``io.parquet.read_partition``)."""
    return read_partition(path, "shard", shard, columns)
