"""The stress dataset: Dreaddit posts (with their train/val/test split) + CLIP features -> split folders.

The split comes from the Dreaddit stage (``split`` column: the official test file is ``test``, and
``val`` is carved from the official train file). This stage checks it rather than trusting it:
every split present and disjoint by ``post_id``, labels 0/1 and never null; texts shared between
the training side and test (Dreaddit has three) are counted in the summary.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from ..parquet_io import parquet_files, write_json
from .arrays import SPLITS, DataError, Modality, SplitWriter, embedding_dim, split_provenance, vectors

log = logging.getLogger(__name__)


def _read_posts(path: Path) -> pl.DataFrame:
    files = parquet_files(path)
    if not files or not files[0].exists():
        raise DataError(f"{path}: Dreaddit posts table not found; run the dreaddit_posts rule")
    posts = pl.concat([pl.read_parquet(f, columns=["post_id", "split", "text", "label", "subreddit"]) for f in files])
    for col in ("post_id", "split", "label"):
        if posts[col].null_count():
            raise DataError(f"{path}: {posts[col].null_count()} row(s) with a null {col}, e.g. "
                            f"{posts.filter(pl.col(col).is_null())['post_id'].head(3).to_list()}")
    if posts["post_id"].is_duplicated().any():
        raise DataError(f"{path}: duplicate post_id values, e.g. "
                        f"{posts.filter(pl.col('post_id').is_duplicated())['post_id'].head(3).to_list()}")
    bad = posts.filter(~pl.col("split").is_in(SPLITS))
    if bad.height:
        raise DataError(f"{path}: split values other than train/val/test: {bad['split'].unique().to_list()[:5]}")
    bad = posts.filter(~pl.col("label").is_in([0, 1]))
    if bad.height:
        raise DataError(f"{path}: labels other than 0/1: {bad['label'].unique().to_list()[:5]}")
    return posts


def _read_clip(paths: Sequence[Path]) -> tuple[pl.DataFrame, dict[str, np.ndarray], dict[str, np.ndarray], dict[str, int]]:
    ids, xs, ms = [], {"text": [], "image": []}, {"text": [], "image": []}
    dims = {"text": embedding_dim(paths[0], "text_embedding"), "image": embedding_dim(paths[0], "image_embedding")}
    for p in paths:
        t = pq.read_table(p, columns=["post_id", "text_embedding", "image_embedding"])
        for m in ("text", "image"):
            x, valid = vectors(t[f"{m}_embedding"], str(p), t["post_id"])
            if x.shape[1] != dims[m]:
                raise DataError(f"{p}: {m} embeddings are {x.shape[1]}-d, {paths[0]} has {dims[m]}-d")
            xs[m].append(x)
            ms[m].append(valid)
        ids.append(pl.Series("post_id", t["post_id"].combine_chunks()))
    frame = pl.DataFrame({"post_id": pl.concat(ids)}).with_row_index("_j")
    if frame["post_id"].is_duplicated().any():
        raise DataError(f"duplicate post_id values across the CLIP shards, e.g. "
                        f"{frame.filter(pl.col('post_id').is_duplicated())['post_id'].head(3).to_list()}")
    return frame, {m: np.concatenate(v) for m, v in xs.items()}, {m: np.concatenate(v) for m, v in ms.items()}, dims


def build(cfg: Mapping[str, Any], posts_path: str | Path, clip_paths: Sequence[str | Path], out_dir: str | Path,
          summary_path: str | Path) -> dict[str, Any]:
    """Write ``out_dir/{train,val,test}`` and the summary; return the summary.

    Dreaddit is small (3.5k posts) by nature, so the CLIP features are read whole.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    clip_paths = [Path(p) for p in clip_paths]
    if not clip_paths:
        raise DataError("no CLIP shards given")
    posts = _read_posts(Path(posts_path))
    clip, x, mask, dims = _read_clip(clip_paths)
    joined = posts.join(clip, on="post_id", how="left", maintain_order="left")
    no_features = joined.filter(pl.col("_j").is_null())
    joined = joined.filter(pl.col("_j").is_not_null())
    counts = {s: int((joined["split"] == s).sum()) for s in SPLITS}
    for s in SPLITS:
        if counts[s] == 0:
            hint = " (the Dreaddit stage carves val from train)" if s == "val" else ""
            raise DataError(f"the {s} split is empty{hint}")
    # texts on both sides of the train/test line (the official files share three)
    norm = pl.col("text").fill_null("").str.strip_chars().str.to_lowercase()
    keyed = joined.with_columns(norm.alias("_t"), (pl.col("split") == "test").alias("_test"))
    shared = keyed.group_by("_t").agg(pl.col("_test").any().alias("a"), (~pl.col("_test")).any().alias("b"))
    text_overlap = int(shared.filter(pl.col("a") & pl.col("b")).height)

    modalities = [Modality("text", dims["text"], "float16"), Modality("image", dims["image"], "float16")]
    prov = split_provenance("stress", {"train": cfg.get("train", {})}, sources=[str(posts_path)])
    metas = {}
    for s in SPLITS:
        sub = joined.filter(pl.col("split") == s)
        j = sub["_j"].to_numpy()
        w = SplitWriter(out_dir / s, s, sub.height, modalities, "int64", "stress", prov)
        rows = sub.select("post_id", "split", pl.col("subreddit").alias("group"), pl.col("subreddit").alias("category"),
                          pl.col("label").cast(pl.Float32).alias("target")).to_arrow()
        w.write({m: x[m][j] for m in x}, {m: mask[m][j] for m in mask}, sub["label"].to_numpy(), rows)
        metas[s] = w.close()
    summary = {
        "task": "stress",
        "split": {"by": "the Dreaddit stage's split column (val carved from the official train file)"},
        "posts_seen": posts.height, "rows": {s: metas[s]["rows"] for s in SPLITS},
        "excluded": {"no_features": no_features.height} if no_features.height else {},
        "label_rate": {s: float(joined.filter(pl.col("split") == s)["label"].mean()) for s in SPLITS},
        "text_overlap_train_test": text_overlap,
        "modalities": {s: metas[s]["modalities"] for s in SPLITS},
        "digests": {s: metas[s]["digest"] for s in SPLITS},
        "seconds": round(time.perf_counter() - t0, 3),
    }
    write_json(summary_path, summary)
    log.info("stress dataset: %s rows, %d without features", summary["rows"], no_features.height)
    return summary
