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

from .. import status as S
from ..io.parquet import parquet_files, write_json
from .arrays import SPLITS, DataError, Modality, SplitWriter, embedding_dim, split_provenance, vectors
from .config import TrainConfig, modalities_of

log = logging.getLogger(__name__)


# Rows the Dreaddit stage keeps but marks as unusable for training (their label or text is not trusted).
UNTRAINABLE = frozenset({S.ROW_MALFORMED, S.TEXT_MISSING, S.LABEL_INVALID})


def read_labelled_posts(path: Path) -> tuple[pl.DataFrame, dict[str, int]]:
    """The posts with a trusted label and text, and counts of the others by status."""
    files = parquet_files(path)
    if not files or not files[0].exists():
        raise DataError(f"{path}: Dreaddit posts table not found; run the dreaddit_posts rule")
    names = pq.read_schema(files[0]).names
    cols = ["post_id", "split", "text", "label", "subreddit"] + (["status"] if "status" in names else [])
    posts = pl.concat([pl.read_parquet(f, columns=cols) for f in files])
    if "status" not in posts.columns:
        posts = posts.with_columns(pl.lit(None, pl.String).alias("status"))
    for col in ("post_id", "split"):
        if posts[col].null_count():
            raise DataError(f"{path}: {posts[col].null_count()} row(s) with a null {col}")
    if posts["post_id"].is_duplicated().any():
        raise DataError(f"{path}: duplicate post_id values, e.g. "
                        f"{posts.filter(pl.col('post_id').is_duplicated())['post_id'].head(3).to_list()}")
    bad = posts.filter(~pl.col("split").is_in(SPLITS))
    if bad.height:
        raise DataError(f"{path}: split values other than train/val/test: {bad['split'].unique().to_list()[:5]}")
    marked = pl.col("status").is_in(sorted(UNTRAINABLE)).fill_null(False)
    excluded = posts.filter(marked)
    posts = posts.filter(~marked)
    if posts["label"].null_count():
        raise DataError(f"{path}: {posts['label'].null_count()} row(s) with a null label and no fault status, e.g. "
                        f"{posts.filter(pl.col('label').is_null())['post_id'].head(3).to_list()}")
    bad = posts.filter(~pl.col("label").is_in([0, 1]))
    if bad.height:
        raise DataError(f"{path}: labels other than 0/1: {bad['label'].unique().to_list()[:5]}")
    counts = excluded["status"].value_counts()
    return posts, dict(zip(counts["status"].to_list(), counts["count"].to_list()))


def _read_vectors(paths: Sequence[Path], column: str) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """``post_id`` + row index, vectors and validity of ``column`` over ``paths`` (Dreaddit is small)."""
    dim = embedding_dim(paths[0], column)
    ids, xs, ms = [], [], []
    for p in paths:
        t = pq.read_table(p, columns=["post_id", column])
        x, valid = vectors(t[column], str(p), t["post_id"])
        if x.shape[1] != dim:
            raise DataError(f"{p}: {column} is {x.shape[1]}-d, {paths[0]} has {dim}-d")
        xs.append(x)
        ms.append(valid)
        ids.append(pl.Series("post_id", t["post_id"].combine_chunks()))
    frame = pl.DataFrame({"post_id": pl.concat(ids)}).with_row_index("_j")
    if frame["post_id"].is_duplicated().any():
        raise DataError(f"duplicate post_id values in {column} of {paths[0].parent}, e.g. "
                        f"{frame.filter(pl.col('post_id').is_duplicated())['post_id'].head(3).to_list()}")
    return frame, np.concatenate(xs), np.concatenate(ms)


def _with_post_groups(posts: pl.DataFrame, path: Path) -> pl.DataFrame:
    """``_group``: the Reddit post of each row (several sentence ranges share one); the row's own
    ``post_id`` where the table has none."""
    names = pq.read_schema(parquet_files(path)[0]).names
    if "reddit_post_id" not in names:
        return posts.with_columns(pl.col("post_id").alias("_group"))
    ids = pl.concat([pl.read_parquet(f, columns=["post_id", "reddit_post_id"]) for f in parquet_files(path)])
    posts = posts.join(ids, on="post_id", how="left", maintain_order="left")
    return posts.with_columns(pl.coalesce("reddit_post_id", "post_id").alias("_group")).drop("reddit_post_id")


def _lexical(path: Path, joined: pl.DataFrame, tc: TrainConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """The lexical modality's matrix for ``joined``'s rows (in order) and its summary."""
    from .lexical import lexical_columns, lexical_matrix

    files = parquet_files(path)
    cols = lexical_columns(pq.read_schema(files[0]).names, tc.lexical)
    feats = pl.concat([pl.read_parquet(f, columns=["post_id", *cols]) for f in files])
    frame = joined.select("post_id", "subreddit", "split").join(feats, on="post_id", how="left", maintain_order="left")
    return lexical_matrix(frame, cols, (frame["split"] == "train").to_numpy(), tc.lexical.subreddit)


def build(cfg: Mapping[str, Any], posts_path: str | Path, clip_paths: Sequence[str | Path], out_dir: str | Path,
          summary_path: str | Path, text_path: str | Path | None = None,
          text2_path: str | Path | None = None) -> dict[str, Any]:
    """Write ``out_dir/{train,val,test}`` and the summary; return the summary.

    Text features come from the CLIP table's ``text_embedding``, or from ``text_path`` (a
    ``tables.text_embeddings`` file: ``train.stress.text_encoder: text_embedding``); ``text2_path``
    (the same table from the encoder ``train.stress.text2_encoder`` names) makes the modality
    ``text2``; with ``train.stress.lexical.enabled`` Dreaddit's own columns make the modality ``lexical``
    (:mod:`.lexical`, standardised on train). A row's ``group`` is its Reddit post (the
    bootstrap's unit), its ``category`` the subreddit. Dreaddit is small (3.5k posts) by nature,
    so the features are read whole.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    clip_paths = [Path(p) for p in clip_paths]
    if not clip_paths:
        raise DataError("no CLIP shards given")
    posts, excluded = read_labelled_posts(Path(posts_path))
    tc = TrainConfig.from_config(cfg)
    tc_text2 = cfg.get("train", {}).get("stress", {}).get("text2_encoder")
    need = sorted({m for name in tc.stress.models for m in modalities_of("stress", name)} & {"text2"})
    if need and not text2_path:
        raise DataError("the stress models need the text2 modality: pass the text2 embeddings "
                        "(train.stress.text2_encoder, rule stress_text2_embeddings)")
    posts = _with_post_groups(posts, Path(posts_path))
    sources = {"image": _read_vectors(clip_paths, "image_embedding"),
               "text": _read_vectors([Path(text_path)], "embedding") if text_path else _read_vectors(clip_paths, "text_embedding")}
    if text2_path:
        sources["text2"] = _read_vectors([Path(text2_path)], "embedding")
    joined = posts
    for m, (frame, _, _) in sources.items():
        joined = joined.join(frame.rename({"_j": f"_j_{m}"}), on="post_id", how="left", maintain_order="left")
    no_features = joined.filter(pl.col("_j_text").is_null() & pl.col("_j_image").is_null())
    if no_features.height:
        excluded["no_features"] = no_features.height
    joined = joined.filter(pl.col("_j_text").is_not_null() | pl.col("_j_image").is_not_null())
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

    modalities = [Modality(m, sources[m][1].shape[1], "float16") for m in sources]
    lexical_info = None
    if tc.lexical.enabled:
        lex_x, lexical_info = _lexical(Path(posts_path), joined, tc)
        modalities.append(Modality("lexical", lex_x.shape[1], "float32"))
    prov = split_provenance("stress", {"train": cfg.get("train", {})}, sources=[str(posts_path)],
                            text_features=str(text_path) if text_path else "clip",
                            text2_features=str(text2_path) if text2_path else None)
    metas = {}
    for s in SPLITS:
        sub = joined.filter(pl.col("split") == s)
        x, mask = {}, {}
        for m, (_, xm, vm) in sources.items():
            j = sub[f"_j_{m}"]
            present = j.is_not_null().to_numpy()
            jj = j.fill_null(0).to_numpy()
            x[m] = np.where(present[:, None], xm[jj], 0.0)
            mask[m] = present & vm[jj]
        if lexical_info is not None:
            sel = (joined["split"] == s).to_numpy()
            x["lexical"], mask["lexical"] = lex_x[sel], np.ones(int(sel.sum()), bool)
        w = SplitWriter(out_dir / s, s, sub.height, modalities, "int64", "stress", prov)
        rows = sub.select("post_id", "split", pl.col("_group").alias("group"), pl.col("subreddit").alias("category"),
                          pl.col("label").cast(pl.Float32).alias("target")).to_arrow()
        w.write(x, mask, sub["label"].to_numpy(), rows)
        metas[s] = w.close()
    summary = {
        "task": "stress",
        "split": {"by": "the Dreaddit stage's split column (val carved from the official train file)"},
        "posts_seen": posts.height + sum(v for k, v in excluded.items() if k != "no_features"),
        "rows": {s: metas[s]["rows"] for s in SPLITS}, "excluded": excluded,
        "text_features": "text_embedding" if text_path else "clip",
        "text2_features": tc_text2 if text2_path else None,
        "group": "reddit_post_id: the Reddit post a row's sentence range comes from (the bootstrap unit)",
        "lexical": lexical_info,
        "label_rate": {s: float(joined.filter(pl.col("split") == s)["label"].mean()) for s in SPLITS},
        "text_overlap_train_test": text_overlap,
        "modalities": {s: metas[s]["modalities"] for s in SPLITS},
        "digests": {s: metas[s]["digest"] for s in SPLITS},
        "seconds": round(time.perf_counter() - t0, 3),
    }
    write_json(summary_path, summary)
    log.info("stress dataset: %s rows, left out %s", summary["rows"], excluded)
    return summary
