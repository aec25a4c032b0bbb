"""The engagement dataset: posts + sentiment + text and pooled image embeddings -> split folders.

Target (``engagement`` score), per post::

    y = log1p(likes + w * comments) - log1p(followers)        (w = train.engagement.comment_weight)

- log: likes and comments span six orders of magnitude and are heavy-tailed; in log space an error
  means the same *relative* miss for a small and a large account, and a few viral posts do not
  dominate the squared loss.
- ``- log1p(followers)``: raw counts scale with the audience, so a model of raw counts mostly
  learns account size (which the influencer split makes unlearnable from the post anyway). The
  difference is a log engagement *rate*, the quantity marketers compare across accounts.
- ``w = 2``: a comment costs the viewer more than a like and is ~30x rarer; weighting it keeps it
  from vanishing in the sum. Set ``per_follower: false`` to model log1p(likes + w*comments).

Features: the caption's sentence embedding (``text``; by default the caption alone, see
:mod:`.text_features`), the pooled CLIP embedding of the post's readable images (``image``), and
``metadata`` (below). Comment text, comment sentiment and comment counts are deliberately *not*
features: they exist only because of the engagement being predicted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from .. import status as S
from ..io.parquet import write_json
from .arrays import SPLITS, DataError, Modality, SplitWriter, embedding_dim, split_provenance, vectors
from .config import TrainConfig
from .splits import assign_groups, check_disjoint

log = logging.getLogger(__name__)

CATEGORIES = ("fashion", "beauty", "food", "travel", "fitness", "pet", "family", "interior", "other")
POST_COLUMNS = ["post_id", "username", "category", "followers", "likes", "comments", "status", "caption_length",
                "hashtags", "tagged_users", "is_video", "typename", "is_verified", "sponsored", "location",
                "aspect_ratio", "image_files", "timestamp"]

# name -> polars expression over the joined posts+sentiment frame. Order is the column order.
_TWO_PI = 2 * np.pi
METADATA_FEATURES: dict[str, pl.Expr] = {
    "log_followers": pl.col("followers").cast(pl.Float64).log1p().fill_null(0.0),
    "caption_sentiment": pl.when(pl.col("caption_sentiment") == "POSITIVE").then(pl.col("caption_score"))
    .when(pl.col("caption_sentiment") == "NEGATIVE").then(-pl.col("caption_score")).otherwise(0.0),
    "caption_sentiment_missing": pl.col("caption_sentiment").is_null(),
    "log_caption_length": pl.col("caption_length").cast(pl.Float64).fill_null(0).log1p(),
    "log_hashtags": pl.col("hashtags").list.len().fill_null(0).cast(pl.Float64).log1p(),
    "log_tagged_users": pl.col("tagged_users").cast(pl.Float64).fill_null(0).log1p(),
    "is_video": pl.col("is_video").fill_null(False),
    "is_sidecar": pl.col("typename") == "GraphSidecar",
    "is_verified": pl.col("is_verified").fill_null(False),
    "sponsored": pl.col("sponsored").fill_null(False),
    "has_location": pl.col("location").is_not_null(),
    "aspect_ratio": pl.col("aspect_ratio").cast(pl.Float64).fill_null(1.0),
    "log_images": pl.col("image_files").list.len().fill_null(0).cast(pl.Float64).log1p(),
    "hour_sin": (pl.col("timestamp").dt.hour().cast(pl.Float64) * _TWO_PI / 24).sin().fill_null(0.0),
    "hour_cos": (pl.col("timestamp").dt.hour().cast(pl.Float64) * _TWO_PI / 24).cos().fill_null(0.0),
    "weekday_sin": (pl.col("timestamp").dt.weekday().cast(pl.Float64) * _TWO_PI / 7).sin().fill_null(0.0),
    "weekday_cos": (pl.col("timestamp").dt.weekday().cast(pl.Float64) * _TWO_PI / 7).cos().fill_null(0.0),
    **{f"category_{c}": pl.col("category") == c for c in CATEGORIES},
}


@dataclass(frozen=True)
class ShardInputs:
    posts: Path
    sentiment: Path
    text: Path
    image: Path


def target_expr(comment_weight: float, per_follower: bool) -> pl.Expr:
    raw = (pl.col("likes").cast(pl.Float64) + comment_weight * pl.col("comments").cast(pl.Float64)).log1p()
    return raw - pl.col("followers").cast(pl.Float64).log1p() if per_follower else raw


def _eligible(posts: pl.DataFrame, per_follower: bool) -> tuple[pl.DataFrame, dict[str, int]]:
    """Posts with a target, and counts of those left out by reason."""
    parsed = pl.col("status").is_in(sorted(S.PARSED))
    has_target = pl.col("likes").is_not_null() & pl.col("comments").is_not_null()
    has_followers = pl.col("followers").is_not_null() if per_follower else pl.lit(True)
    reason = (pl.when(~parsed).then(pl.lit("not_parsed")).when(~has_target).then(pl.lit("no_target"))
              .when(~has_followers).then(pl.lit("no_followers")).otherwise(None))
    posts = posts.with_columns(reason.alias("_excluded"))
    counts = posts.filter(pl.col("_excluded").is_not_null())["_excluded"].value_counts()
    excluded = dict(zip(counts["_excluded"].to_list(), counts["count"].to_list()))
    return posts.filter(pl.col("_excluded").is_null()).drop("_excluded"), excluded


PASS1_COLUMNS = ["post_id", "username", "status", "likes", "comments", "followers"]  # target and group only


def _read_instagram_posts(path: Path, columns: list[str] = POST_COLUMNS) -> pl.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: posts shard not found")
    posts = pl.read_parquet(path, columns=columns)
    if posts["post_id"].null_count():
        raise DataError(f"{path}: {posts['post_id'].null_count()} post(s) without post_id")
    return posts


def _embedding_rows(path: Path, post_ids: pl.Series, label: str) -> tuple[np.ndarray, np.ndarray, int]:
    """The embedding of each post in ``post_ids`` order (zeros + mask False where absent or null)."""
    if not path.is_file():
        raise DataError(f"{path}: {label} shard not found")
    t = pq.read_table(path, columns=["post_id", "embedding"])
    x, valid = vectors(t["embedding"], str(path), t["post_id"])
    ids = pl.Series("post_id", t["post_id"].combine_chunks())
    if ids.is_duplicated().any():
        raise DataError(f"{path}: duplicate post_id values, e.g. {ids.filter(ids.is_duplicated()).head(3).to_list()}")
    pos = (pl.DataFrame({"post_id": post_ids}).join(
        pl.DataFrame({"post_id": ids, "_j": np.arange(len(ids))}), on="post_id", how="left", maintain_order="left"))["_j"]
    absent = int(pos.null_count())
    j = pos.fill_null(-1).to_numpy()
    out = np.where((j >= 0)[:, None], x[np.maximum(j, 0)], 0.0).astype(np.float32)
    mask = (j >= 0) & valid[np.maximum(j, 0)]
    return out, mask, absent


def build(cfg: Mapping[str, Any], shards: Sequence[ShardInputs], out_dir: str | Path,
          summary_path: str | Path) -> dict[str, Any]:
    """Write ``out_dir/{train,val,test}`` and the summary; return the summary."""
    t0 = time.perf_counter()
    tc = TrainConfig.from_config(cfg)
    out_dir = Path(out_dir)
    if not shards:
        raise DataError("no shards given")

    # pass 1: which posts have a target, and who their influencers are (a few columns only)
    groups: dict[str, int] = {}
    excluded: dict[str, int] = {}
    total = 0
    for sh in shards:
        posts, ex = _eligible(_read_instagram_posts(sh.posts, PASS1_COLUMNS), tc.target.per_follower)
        total += posts.height + sum(ex.values())
        for k, v in ex.items():
            excluded[k] = excluded.get(k, 0) + v
        for g, c in posts.group_by("username").len().iter_rows():
            groups[g] = groups.get(g, 0) + c
    if not groups:
        raise DataError(f"none of the {total} posts in {len(shards)} shard(s) has an engagement target "
                        f"(left out: {excluded})")
    assignment = assign_groups(groups, tc.split.val, tc.split.test, tc.split.seed)
    split_of = dict(assignment.iter_rows())
    counts = {s: 0 for s in SPLITS}
    for g, c in groups.items():
        counts[split_of[g]] += c
    for s in SPLITS:
        if counts[s] == 0:
            raise DataError(f"the {s} split is empty")

    dims = {"text": embedding_dim(shards[0].text, "embedding"), "image": embedding_dim(shards[0].image, "embedding")}
    modalities = [Modality("text", dims["text"], "float16"), Modality("image", dims["image"], "float16"),
                  Modality("metadata", len(METADATA_FEATURES), "float32")]
    prov = split_provenance("engagement", {"train": cfg.get("train", {})},
                            sources=[str(s.posts) for s in shards][:8], n_shards=len(shards))
    writers = {s: SplitWriter(out_dir / s, s, counts[s], modalities, "float32", "engagement", prov) for s in SPLITS}

    # pass 2: join each shard's features, in posts order, and append its rows to their split
    absent = {"sentiment": 0, "text": 0, "image": 0}
    target = target_expr(tc.target.comment_weight, tc.target.per_follower)
    for sh in shards:
        posts, _ = _eligible(_read_instagram_posts(sh.posts), tc.target.per_follower)
        if posts.height == 0:
            continue
        sent = pl.read_parquet(sh.sentiment, columns=["post_id", "caption_sentiment", "caption_score"])
        if sent["post_id"].is_duplicated().any():
            raise DataError(f"{sh.sentiment}: duplicate post_id values")
        frame = posts.join(sent, on="post_id", how="left", maintain_order="left")
        absent["sentiment"] += frame.height - posts.join(sent, on="post_id", how="semi").height
        frame = frame.with_columns(target.alias("_y"), pl.col("username").replace_strict(split_of).alias("_split"))
        bad = frame.filter(~pl.col("_y").is_finite() | (pl.col("likes") < 0) | (pl.col("comments") < 0)
                           | (pl.col("followers") < 0).fill_null(False))
        if bad.height:
            raise DataError(f"{sh.posts}: {bad.height} post(s) with a negative count or a non-finite engagement "
                            f"target (a hidden count ingested as a value? re-ingest): post_id {bad['post_id'].head(10).to_list()}")
        meta = frame.select(**{k: e.cast(pl.Float32) for k, e in METADATA_FEATURES.items()}).to_numpy()
        if not np.isfinite(meta).all():
            raise DataError(f"{sh.posts}: non-finite metadata features")
        xt, mt, at = _embedding_rows(sh.text, frame["post_id"], "text_embeddings")
        xi, mi, ai = _embedding_rows(sh.image, frame["post_id"], "image_pooled")
        absent["text"] += at
        absent["image"] += ai
        split_col = frame["_split"].to_numpy()
        for s in SPLITS:
            sel = np.flatnonzero(split_col == s)
            if not len(sel):
                continue
            sub = frame[sel]
            rows = sub.select("post_id", pl.lit(s).alias("split"), pl.col("username").alias("group"),
                              "category", pl.col("_y").alias("target")).to_arrow()
            writers[s].write({"text": xt[sel], "image": xi[sel], "metadata": meta[sel]},
                             {"text": mt[sel], "image": mi[sel], "metadata": np.ones(len(sel), bool)},
                             sub["_y"].to_numpy(), rows)
    metas = {s: w.close({"feature_names": {"metadata": list(METADATA_FEATURES)}}) for s, w in writers.items()}

    rows = pl.concat([pl.read_parquet(out_dir / s / "rows.parquet", columns=["post_id", "group", "split"]) for s in SPLITS])
    check_disjoint(rows, "group")
    if rows["post_id"].is_duplicated().any():
        raise DataError("a post_id appears twice across the split folders")
    summary = {
        "task": "engagement",
        "target": {"formula": "log1p(likes + w*comments)" + (" - log1p(followers)" if tc.target.per_follower else ""),
                   "comment_weight": tc.target.comment_weight, "per_follower": tc.target.per_follower},
        "text_features": {"source": tc.target.text_features,
                          "note": "caption alone" if tc.target.text_features == "caption" else
                          "the features stage's caption + shown comments: comments follow from the engagement "
                          "being predicted, so the text modality leaks the target"},
        "split": {"by": "influencer", "val": tc.split.val, "test": tc.split.test, "seed": tc.split.seed,
                  "groups": {s: int((assignment["split"] == s).sum()) for s in SPLITS}},
        "posts_seen": total, "rows": {s: metas[s]["rows"] for s in SPLITS}, "excluded": excluded,
        "feature_rows_absent": absent,
        "modalities": {s: metas[s]["modalities"] for s in SPLITS},
        "digests": {s: metas[s]["digest"] for s in SPLITS},
        "feature_names": {"metadata": list(METADATA_FEATURES)},
        "seconds": round(time.perf_counter() - t0, 3),
    }
    write_json(summary_path, summary)
    log.info("engagement dataset: %s rows (train/val/test), %s excluded, %.1fs", summary["rows"], excluded, summary["seconds"])
    return summary
