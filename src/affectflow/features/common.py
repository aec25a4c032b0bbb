"""What the three Instagram feature stages share: the posts they read, text cleaning, row statuses, the summary.

Each stage (:mod:`sentiment`, :mod:`text_embed`, :mod:`image_embed`) turns one posts shard into one
feature table with exactly one row per post (per mapped image for the image table), so every
output joins back to the posts table on ``post_id``. A post that was not parsed passes through
with its own status and null features; a feature's own faults get a feature status
(:mod:`affectflow.status`), never a placeholder value.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import polars as pl

from .. import status as S

log = logging.getLogger(__name__)




















# -- posts ----------------------------------------------------------------------------------------
def read_posts_shard(path: str | Path, columns: list[str]) -> pl.DataFrame:
    """The posts shard's columns a stage needs (``post_id`` and ``status`` always)."""
    cols = list(dict.fromkeys(["post_id", "status", *columns]))
    return pl.read_parquet(path, columns=cols)


def parsed(status: pl.Expr | None = None) -> pl.Expr:
    """True for posts whose fields were parsed (features run on them)."""
    return (status if status is not None else pl.col("status")).is_in(sorted(S.PARSED))


def clean_text(col: pl.Expr) -> pl.Expr:
    """Stripped text, null when empty or whitespace only."""
    t = col.str.strip_chars()
    return pl.when(t.str.len_chars() > 0).then(t).otherwise(None)


def mostly_non_latin(col: pl.Expr) -> pl.Expr:
    """True when under half of the text's letters are Latin script (null for no letters).

    A script test, not language identification: Spanish passes, Japanese does not. It flags the
    texts an English model cannot read, which is what the status is for.
    """
    letters = col.str.count_matches(r"\p{L}")
    latin = col.str.count_matches(r"\p{Latin}")
    return pl.when(letters > 0).then(latin * 2 < letters).otherwise(None)


def text_status(post_status: pl.Expr, scored: list[pl.Expr], non_latin: list[pl.Expr]) -> pl.Expr:
    """Row status of a text feature: the post's own when not parsed, else ``no_text`` when no
    text was scored, ``non_latin`` when a scored text is mostly non-Latin, else ``ok``.

    Args:
        post_status: the post's status.
        scored: per text column, whether its text was scored (bool).
        non_latin: per text column, whether its text is mostly non-Latin (bool, null: no letters).

    Returns:
        A string expression (:mod:`affectflow.status` vocabulary).
    """
    any_scored = pl.any_horizontal(scored)
    any_non_latin = pl.any_horizontal([s & n.fill_null(False) for s, n in zip(scored, non_latin)])
    return (pl.when(~parsed(post_status)).then(post_status)
            .when(~any_scored).then(pl.lit(S.NO_TEXT))
            .when(any_non_latin).then(pl.lit(S.NON_LATIN))
            .otherwise(pl.lit(S.OK)))


# -- summary --------------------------------------------------------------------------------------
FEATURE_TABLES = ("sentiment", "text_embeddings", "image_embeddings", "image_pooled")


def summarize(posts: list[str | Path], tables: Mapping[str, list[str | Path]], out: str | Path) -> dict[str, Any]:
    """``features_summary.json``: rows and status counts per feature table, and the join checks:
    one row per post in each per-post table, no feature row without its post. Fails (after writing
    the summary) when a check does not hold, naming the table.

    Args:
        posts: every posts shard.
        tables: table name (:data:`FEATURE_TABLES`) -> its shards.
        out: the summary JSON to write.

    Returns:
        ``{"posts", "tables", "problems"}``; per table ``rows``, ``by_status``, ``with_features``,
        ``rows_without_post`` (and for the per-post tables ``duplicate_post_ids``, ``posts_without_row``).

    Raises:
        RuntimeError: a table does not join one to one with the posts.
    """
    from ..io.parquet import write_json

    post_ids = pl.scan_parquet([str(p) for p in posts]).select("post_id", "status").collect()
    summary: dict[str, Any] = {"posts": post_ids.height, "tables": {}}
    problems = []
    for name, files in tables.items():
        value = "caption_sentiment" if name == "sentiment" else "embedding"
        df = pl.scan_parquet([str(f) for f in files]).select("post_id", "status", pl.col(value).is_not_null().alias("has")).collect()
        rec: dict[str, Any] = {
            "rows": df.height,
            "by_status": dict(df.group_by("status").len().sort("status").iter_rows()),
            "with_features": int(df["has"].sum()),
            "rows_without_post": df.join(post_ids, on="post_id", how="anti").height,
        }
        if rec["rows_without_post"]:
            problems.append(f"{name}: {rec['rows_without_post']} rows name no post")
        if name != "image_embeddings":  # the per-post tables: exactly one row per post
            rec["duplicate_post_ids"] = df.height - df["post_id"].n_unique()
            rec["posts_without_row"] = post_ids.join(df, on="post_id", how="anti").height
            if rec["duplicate_post_ids"] or rec["posts_without_row"]:
                problems.append(f"{name}: {rec['duplicate_post_ids']} duplicate post_ids, "
                                f"{rec['posts_without_row']} posts without a row")
        summary["tables"][name] = rec
    summary["problems"] = problems
    write_json(out, summary)
    if problems:
        raise RuntimeError("feature tables do not join one to one with the posts: " + "; ".join(problems))
    return summary
