"""Dreaddit: read the two official CSVs by column name, keep every row, carve a validation split.

The files have quirks (see ``shared/docs/datasets.md``): the test file puts ``id`` first, its
timestamps are floats, ``sentence_range`` is spelt ``(a, b)`` and ``[a, b]``, texts hold quotes,
commas and newlines. Rows are read with the ``csv`` module, which follows RFC 4180 quoting and
tells each record's line number, so a malformed record is reported as ``file:line`` rather than
failing the whole read (polars' reader either fails or silently truncates ragged rows); the
3.5k rows then go through vectorised polars casts.

Nothing is dropped: a row that does not fit gets a ``status`` (vocabulary in :mod:`status`) and an
``error`` naming file and line, and is counted in the summary. A header that lacks ``id``, ``text``
or ``label`` fails the stage with an error naming the file, since no row could then be trusted.

The validation split is carved from train, stratified by label and grouped: sentence ranges of the
same Reddit post, and rows with the same text (cross-posts), stay on the same side, so validation
scores are not inflated by near-copies of training rows. Group order comes from a keyed hash of the
group, not from the file order, so the split is a function of (rows, seed, fraction) alone.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
import sys
from pathlib import Path
from typing import Any, Mapping

import polars as pl

from .. import status as S
from ..io.parquet import provenance, write_json, write_table
from ..layout import params as rule_params
from ..tables import COLUMNS, DREADDIT_POSTS, FEATURES, INT_FEATURES
from .config import DreadditConfig, validated

log = logging.getLogger(__name__)

REQUIRED = ("id", "text", "label")
MAX_LISTED_FAULTS = 200  # rows listed by file:line in the summary (all are counted)
_RANGE = re.compile(r"^\s*[\(\[]\s*(-?\d+)\s*,\s*(-?\d+)\s*[\)\]]\s*$")


# -- configuration ---------------------------------------------------------------------------------










# -- reading ---------------------------------------------------------------------------------------
class DreadditFormatError(ValueError):
    """A file cannot be read as Dreaddit at all (missing required columns, not a CSV)."""


_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that did not decode, as surrogateescape keeps them


def _read_records(path: Path) -> tuple[list[str], list[list[str]], list[int], list[str | None]]:
    """Header, records padded/cut to the header's width, each record's first line, and a
    fault per record (None when it has the header's field count and is valid UTF-8)."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    records: list[list[str]] = []
    lines: list[int] = []
    faults: list[str | None] = []
    # surrogateescape: a byte that is not UTF-8 fails its record (below), not the whole file
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        reader = csv.reader(fh, strict=True)  # a stray quote raises instead of swallowing later records
        try:
            header = [h.encode("utf-8", "surrogateescape").decode("utf-8", "replace").strip() for h in next(reader)]
        except StopIteration:
            raise DreadditFormatError(f"{path}: empty file (no header)") from None
        except csv.Error as exc:
            raise DreadditFormatError(f"{path}: header is not CSV: {exc}") from None
        width = len(header)
        last = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # an unbalanced quote: the records after it cannot be delimited
                raise DreadditFormatError(f"{path}:{last + 1}: {exc}") from None
            start, last = last + 1, reader.line_num
            if not row:  # a blank line between records
                continue
            fault = None
            if any(_NOT_UTF8.search(f) for f in row):
                fault = f"{path}:{start}: not valid UTF-8"
                row = [f.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for f in row]
            if len(row) != width:
                fault = fault or f"{path}:{start}: {len(row)} fields, header has {width}"
                row = (row + [""] * width)[:width]
            records.append(row)
            lines.append(start)
            faults.append(fault)
    return header, records, lines, faults


def read_file(path: str | Path, official_split: str) -> tuple[pl.DataFrame, dict[str, Any]]:
    """One official file as a frame of typed columns plus per-row faults (no post_id yet).

    Args:
        path: a Dreaddit CSV (``dreaddit-train.csv`` or ``dreaddit-test.csv``).
        official_split: ``train`` or ``test``.

    Returns:
        ``(frame, info)``: one row per CSV record; ``info`` keys ``path``, ``rows``,
        ``missing_columns``, ``extra_columns``.

    Raises:
        DreadditFormatError: a required column is missing or a column name repeats.
        OSError: the file cannot be read.
    """
    path = Path(path)
    header, records, lines, faults = _read_records(path)
    missing_required = [c for c in REQUIRED if c not in header]
    if missing_required:
        raise DreadditFormatError(f"{path}: required column(s) {missing_required} missing; header is {header[:12]}...")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DreadditFormatError(f"{path}: duplicated column name(s) {dupes}")
    if not records:  # a cut download: the split, the synthesis and the training would all be empty
        raise DreadditFormatError(f"{path}: no records after the header (a truncated or wrong file?)")
    known = set(COLUMNS)
    info = {"path": str(path), "rows": len(records), "missing_columns": [c for c in COLUMNS if c not in header],
            "extra_columns": [c for c in header if c not in known]}
    raw = pl.DataFrame({h: [r[i] for r in records] for i, h in enumerate(header) if h in known},
                       schema={h: pl.String for h in header if h in known})
    for c in COLUMNS:
        if c not in raw.columns:
            raw = raw.with_columns(pl.lit(None, pl.String).alias(c))
    # blank fields are missing; the text is kept exactly as written (its blankness is judged later)
    raw = raw.with_columns(pl.col(pl.String).exclude("text").str.strip_chars().replace("", None))

    num = lambda c: pl.col(c).cast(pl.Float64, strict=False)  # noqa: E731
    rng = pl.col("sentence_range").str.extract_groups(_RANGE.pattern)
    df = raw.select(
        pl.col("id").alias("id_raw"),
        num("id").alias("id_num"),
        pl.col("text"),
        num("label").alias("label_num"),
        pl.col("label").alias("label_raw"),
        pl.col("subreddit"),
        pl.col("post_id").alias("reddit_post_id"),
        pl.col("sentence_range"),
        rng.struct.field("1").cast(pl.Int32).alias("sentence_start"),
        rng.struct.field("2").cast(pl.Int32).alias("sentence_end"),
        *[num(c).round(0).cast(pl.Int64).alias(c) if c in INT_FEATURES else num(c).alias(c) for c in FEATURES],
    )
    # a feature is invalid when it was present in the header but its value did not parse
    present = [c for c in FEATURES if c in header]
    bad_feature = [pl.when(pl.col(c).is_null()).then(pl.lit(c)) for c in present]
    if "sentence_range" in header:
        bad_feature.append(pl.when(pl.col("sentence_start").is_null()).then(pl.lit("sentence_range")))
    df = df.with_columns(
        pl.Series("source_line", lines, pl.Int32),
        pl.Series("row_fault", faults, pl.String),
        (pl.concat_list(bad_feature).list.drop_nulls() if bad_feature else pl.lit([], pl.List(pl.String))).alias("bad_features"),
        pl.lit(official_split).alias("official_split"),
        pl.lit(str(path)).alias("source_file"),
    )
    return df, info


def _assign_ids_and_status(df: pl.DataFrame) -> pl.DataFrame:
    """post_id and the first fault per row (order: see :data:`status.DREADDIT_STATUSES`)."""
    loc = pl.col("source_file") + pl.lit(":") + pl.col("source_line").cast(pl.String)
    id_ok = pl.col("id_num").is_not_null() & (pl.col("id_num") == pl.col("id_num").round(0)) & pl.col("row_fault").is_null()
    df = df.with_columns(pl.when(id_ok).then(pl.col("id_num").cast(pl.Int64)).alias("dreaddit_id"))
    df = df.with_columns(
        (pl.col("dreaddit_id").is_not_null() & pl.col("dreaddit_id").is_first_distinct().not_()).alias("_dup_id"))
    fallback = pl.format("dreaddit-{}-line{}", pl.col("official_split"), pl.col("source_line"))
    label_ok = pl.col("label_num").is_in([0.0, 1.0])
    text_ok = pl.col("text").str.strip_chars().str.len_chars() > 0
    status = (
        pl.when(pl.col("row_fault").is_not_null()).then(pl.lit(S.ROW_MALFORMED))
        .when(pl.col("dreaddit_id").is_null()).then(pl.lit(S.ID_INVALID))
        .when(pl.col("_dup_id")).then(pl.lit(S.DUPLICATE_ID))
        .when(~text_ok.fill_null(False)).then(pl.lit(S.TEXT_MISSING))
        .when(~label_ok.fill_null(False)).then(pl.lit(S.LABEL_INVALID))
        .when(pl.col("bad_features").list.len() > 0).then(pl.lit(S.FEATURE_INVALID))
        .otherwise(pl.lit(S.OK))
    )
    errors = pl.concat_list([  # a malformed record's other "faults" are artefacts of shifted fields
        pl.when(pl.col("dreaddit_id").is_null())
        .then(pl.format("{}: id {} is not an integer", loc, pl.col("id_raw").fill_null("(empty)"))),
        pl.when(pl.col("_dup_id")).then(pl.format("{}: id {} already used by an earlier row", loc, pl.col("dreaddit_id"))),
        pl.when(~text_ok.fill_null(False)).then(pl.format("{}: text is empty", loc)),
        pl.when(~label_ok.fill_null(False)).then(pl.format("{}: label {} is not 0 or 1", loc, pl.col("label_raw").fill_null("(empty)"))),
        pl.when(pl.col("bad_features").list.len() > 0)
        .then(pl.format("{}: unparsable {}", loc, pl.col("bad_features").list.join(", "))),
    ]).list.drop_nulls()
    malformed = pl.col("row_fault").is_not_null()
    return df.with_columns(
        pl.when(pl.col("dreaddit_id").is_not_null() & ~pl.col("_dup_id"))
        .then(pl.format("dreaddit-{}", pl.col("dreaddit_id"))).otherwise(fallback).alias("post_id"),
        status.alias("status"),
        pl.when(malformed).then(pl.col("row_fault"))
        .when(errors.list.len() > 0).then(errors.list.join("; ")).alias("error"),
        # a record whose fields are shifted is not trusted field by field
        pl.when(~malformed & label_ok.fill_null(False)).then(pl.col("label_num").cast(pl.Int8)).alias("label"),
        pl.when(~malformed & text_ok.fill_null(False)).then(pl.col("text")).alias("text"),
    )


# -- the validation split --------------------------------------------------------------------------
def stable_hash(*parts: Any) -> int:
    """A 63-bit hash that is the same in every process (Python's ``hash()`` is salted per process).

    Returns:
        The first 8 bytes of ``sha256`` of the parts' strings (joined by U+001F), as a non-negative int.
    """
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def _groups(df: pl.DataFrame, by_post: bool) -> list[int]:
    """Connected components over 'same Reddit post' and 'same text' (union-find; 3k rows)."""
    parent = list(range(df.height))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    keys = [df["text"].str.strip_chars()]
    if by_post:
        keys.append(df["reddit_post_id"])
    for key in keys:
        first: dict[str, int] = {}
        for i, k in enumerate(key.to_list()):
            if k is None:
                continue
            j = first.setdefault(k, i)
            if j != i:
                parent[find(i)] = find(j)
    return [find(i) for i in range(df.height)]


def assign_split(df: pl.DataFrame, val_fraction: float, seed: int, group_by_post: bool = True) -> pl.Series:
    """train/val/test per row: val is a seeded, label-stratified, grouped sample of labelled train rows.

    Each group (a Reddit post's sentence ranges and any rows sharing a text) takes its majority
    label as stratum; within a stratum groups are ordered by ``stable_hash(seed, group)`` and taken
    until the stratum's validation share reaches ``val_fraction`` of its rows.

    Args:
        df: the posts (``post_id``, ``official_split``, ``label``, ``text``, ``reddit_post_id``).
        val_fraction: the share of labelled train rows that go to val.
        seed: the split's seed.
        group_by_post: keep a Reddit post's segments together.

    Returns:
        A ``split`` string Series, one value per row: ``train``, ``val`` or ``test``.
    """
    split = df["official_split"].to_list()
    train_idx = [i for i, (s, y) in enumerate(zip(split, df["label"].to_list())) if s == "train" and y is not None]
    if not train_idx or val_fraction <= 0:
        return pl.Series("split", split, pl.String)
    sub = df[train_idx]
    root = _groups(sub, group_by_post)
    members: dict[int, list[int]] = {}
    for pos, r in enumerate(root):
        members.setdefault(r, []).append(pos)
    labels = sub["label"].to_list()
    post_ids = sub["post_id"].to_list()
    strata: dict[int, list[tuple[int, list[int]]]] = {0: [], 1: []}
    for r, rows in members.items():
        majority = int(sum(labels[p] for p in rows) * 2 >= len(rows))
        key = min(post_ids[p] for p in rows)
        strata[majority].append((stable_hash("split", seed, key), rows))
    for groups in strata.values():
        target = round(val_fraction * sum(len(rows) for _, rows in groups))
        taken = 0
        for _, rows in sorted(groups):
            if taken >= target:
                break
            for p in rows:
                split[train_idx[p]] = "val"
            taken += len(rows)
    return pl.Series("split", split, pl.String)


# -- the posts table -------------------------------------------------------------------------------
def read_dreaddit_csvs(cfg: Mapping) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Both files -> the posts frame (DREADDIT_POSTS columns) and the summary of what was read."""
    dd = DreadditConfig.from_config(cfg)
    from ..config import require_inputs

    require_inputs({"dreaddit.train": dd.train, "dreaddit.test": dd.test})
    parts, files = [], {}
    for name, path in (("train", dd.train), ("test", dd.test)):
        part, info = read_file(path, name)
        parts.append(part)
        files[name] = info
    df = _assign_ids_and_status(pl.concat(parts, how="vertical"))
    text_key = pl.col("text").str.strip_chars()
    df = df.with_columns(
        (text_key.is_not_null() & (pl.col("official_split").n_unique().over(text_key) > 1)).fill_null(False)
        .alias("in_both_files"),
        (text_key.is_not_null() & (pl.len().over(text_key) > 1)).fill_null(False).alias("duplicate_text"),
    )
    df = df.with_columns(assign_split(df, dd.split.val_fraction, dd.split.seed, dd.split.group_by_post))
    if not df["post_id"].is_unique().all():
        raise RuntimeError("post_id is not unique: " + ", ".join(df.filter(pl.col("post_id").is_duplicated())["post_id"].unique().to_list()[:5]))
    posts = df.select(DREADDIT_POSTS.names)
    return posts, _summary(df, files)


def _counts(s: pl.DataFrame, *by: str) -> dict:
    rows = s.group_by(list(by)).len().sort(list(by), nulls_last=True).iter_rows()
    if len(by) == 1:
        return {("null" if k is None else str(k)): v for k, v in rows}
    out: dict = {}
    for *keys, n in rows:
        d = out
        for k in keys[:-1]:
            d = d.setdefault("null" if k is None else str(k), {})
        d["null" if keys[-1] is None else str(keys[-1])] = n
    return out


def _summary(df: pl.DataFrame, files: dict) -> dict[str, Any]:
    faults = df.filter(pl.col("status") != S.OK).sort("official_split", "source_line")
    return {
        "rows": df.height,
        "files": files,
        "by_status": _counts(df, "status"),
        "by_split": _counts(df, "split"),
        "labels_by_split": _counts(df, "split", "label"),
        "faults": faults.height,
        "fault_rows": faults.head(MAX_LISTED_FAULTS).select("post_id", "status", "error").to_dicts(),
        "in_both_files": int(df["in_both_files"].sum()),
        "duplicate_text_rows": int(df["duplicate_text"].sum()),
        "confidence_zero": int((df["confidence"] == 0).sum()),
        "sentence_range_spellings": {
            "parentheses": int(df["sentence_range"].str.starts_with("(").sum()),
            "brackets": int(df["sentence_range"].str.starts_with("[").sum())},
    }


def build_posts(cfg: Mapping, out: str | Path, summary_out: str | Path) -> dict[str, Any]:
    """Stage ``dreaddit_posts``: write ``posts.parquet`` and the read summary; return the summary.

    Args:
        cfg: config with ``dreaddit`` (``train``, ``test``, ``split``); defaults filled by the schema.
        out: the posts table (:data:`tables.DREADDIT_POSTS`), one row per CSV record.
        summary_out: the read summary (JSON).

    Returns:
        The summary: ``rows``, ``files``, ``by_status``, ``by_split``, ``labels_by_split``, ``faults``,
        ``fault_rows``, ``in_both_files``, ``duplicate_text_rows``, ``confidence_zero``,
        ``sentence_range_spellings``.

    Raises:
        DreadditFormatError: a file lacks a required column or repeats one.
        RuntimeError: post ids are not unique.
    """
    cfg = validated(cfg)
    dd = DreadditConfig.from_config(cfg)
    posts, summary = read_dreaddit_csvs(cfg)
    section = rule_params("dreaddit_posts", cfg)
    write_table(out, posts.to_arrow(), DREADDIT_POSTS, provenance("dreaddit_posts", section, sources=[str(dd.train), str(dd.test)],
                                                       source_sha256={str(p): _sha256(p) for p in (dd.train, dd.test)}))
    write_json(summary_out, summary)
    log.info("dreaddit posts: %d rows, by status %s, by split %s", summary["rows"], summary["by_status"], summary["by_split"])
    return summary


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- shards ----------------------------------------------------------------------------------------
def shard_bounds(n_rows: int, shard: int, shards: int) -> tuple[int, int]:
    """Contiguous, balanced slices of the posts table: shard ``k`` of ``n`` holds rows [k*N/n, (k+1)*N/n).

    Returns:
        ``(first row, end row)`` of the shard (end exclusive).

    Raises:
        ValueError: ``shard`` is not in ``0 .. shards - 1``.
    """
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} outside 0..{shards - 1}")
    return shard * n_rows // shards, (shard + 1) * n_rows // shards


def read_dreaddit_shard(posts: str | Path, shard: int, shards: int, columns: list[str]) -> pl.DataFrame:
    """The rows of one shard, in posts-table order, with only ``columns``."""
    import pyarrow.parquet as pq

    n = pq.ParquetFile(posts).metadata.num_rows
    lo, hi = shard_bounds(n, shard, shards)
    return pl.read_parquet(posts, columns=columns).slice(lo, hi - lo)


# -- the branch summary ----------------------------------------------------------------------------
def summarize(posts: str | Path, posts_summary: str | Path, synth: list[str | Path], clip: list[str | Path],
              out: str | Path) -> dict[str, Any]:
    """``summary.json``: what was read, what was synthesized and embedded, and whether the three
    tables join one-to-one on ``post_id`` (the check fails the rule when they do not).

    Args:
        posts: the posts table.
        posts_summary: :func:`build_posts`'s summary JSON.
        synth: every shard's synthesis index.
        clip: every shard's CLIP table.
        out: the summary JSON to write.

    Returns:
        ``{"posts", "synth", "clip", "join"}``: the read summary, status counts and image counts of
        synthesis, status and window counts of CLIP, and per table ``rows``, ``missing``,
        ``extra``, ``duplicates`` post ids.

    Raises:
        RuntimeError: a table does not join one-to-one with the posts (after writing the summary).
    """
    import json

    from ..io.parquet import read_provenance

    ids = pl.read_parquet(posts, columns=["post_id"])["post_id"]
    syn = pl.concat([pl.read_parquet(f, columns=["post_id", "status", "prompt_truncated"]) for f in synth])
    emb = pl.concat([pl.read_parquet(f, columns=["post_id", "status", "text_windows", "text_truncated"]) for f in clip])
    runs = [(read_provenance(f) or {}).get("summary", {}) for f in synth]
    join = {}
    for name, table in (("synth", syn), ("clip", emb)):
        other = table["post_id"]
        join[name] = {"rows": other.len(), "missing": ids.filter(~ids.is_in(other.implode())).head(20).to_list(),
                      "extra": other.filter(~other.is_in(ids.implode())).head(20).to_list(),
                      "duplicates": other.len() - other.n_unique()}
    summary = {
        "posts": json.loads(Path(posts_summary).read_text()),
        "synth": {"rows": syn.height, "by_status": _counts(syn, "status"),
                  "prompts_truncated": int(syn["prompt_truncated"].sum()),
                  "images_kept": sum(r.get("kept", 0) for r in runs), "images_made": sum(r.get("made", 0) for r in runs)},
        "clip": {"rows": emb.height, "by_status": _counts(emb, "status"),
                 "texts_over_one_window": int((emb["text_windows"] > 1).sum()),
                 "texts_truncated": int(emb["text_truncated"].sum())},
        "join": {"posts": ids.len(), **join},
    }
    write_json(out, summary)
    bad = {k: v for k, v in join.items() if v["missing"] or v["extra"] or v["duplicates"] or v["rows"] != ids.len()}
    if bad:
        raise RuntimeError(f"the Dreaddit tables do not join one-to-one on post_id: {bad} (summary written to {out})")
    return summary
