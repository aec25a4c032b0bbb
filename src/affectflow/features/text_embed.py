"""SBERT embedding of each post's caption and merged comments (all-mpnet-base-v2 by default).

One row per post (:func:`tables.text_embeddings`): the caption and the shown comments, joined by a
newline, embedded by the sentence encoder of :mod:`.sbert` (the loader, truncation rule and
forward pass the training stage's text vectors use too), fed by :mod:`text_batches` so that
batches are sorted by token length, padded per batch and prepared while the previous batch runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import polars as pl
import pyarrow as pa

from ..inference.device import dtype_name
from ..io.arrays import embedding_array
from ..io.parquet import provenance
from ..tables import text_embeddings
from .common import read_posts, text_status
from .config import FeaturesConfig
from .sbert import embed_with, load_sbert, sbert_dim, sbert_tokenizer
from .text_batches import TextResults, run_text_stage

log = logging.getLogger(__name__)


def post_text() -> pl.Expr:
    """Caption and merged comments, one text per post (either may be missing)."""
    parts = [pl.col(c).str.strip_chars() for c in ("caption", "comments_text")]
    return pl.concat_str(parts, separator="\n", ignore_nulls=True).alias("text")


def text_embedding_table(res: TextResults, dim: int) -> pa.Table:
    scored = res.scored[0]
    flags = pl.DataFrame({"status": res.posts["status"], "s": scored, "n": res.non_latin[0]})
    status = flags.select(text_status(pl.col("status"), [pl.col("s")], [pl.col("n")])).to_series()
    return pa.table({
        "post_id": res.posts["post_id"].to_arrow(),
        "embedding": embedding_array(res.values[0], scored, dim),
        "truncated": pa.array(res.truncated[0], pa.bool_(), mask=~scored),
        "status": status.to_arrow(),
    })


def text_embeddings_shard(cfg: Mapping[str, Any], posts_path: str | Path, out: str | Path, threads: int | None = None,
                          shard: int | None = None) -> dict[str, Any]:
    """Embed one posts shard into ``out``; returns the run's timings and status counts."""
    fcfg = FeaturesConfig.from_config(cfg)
    tcfg = fcfg.text_embedding
    where = fcfg.placement(threads or tcfg.threads)
    device, dtype = where.device, where.dtype
    st, model_prov = load_sbert(cfg, device, dtype)
    tok = sbert_tokenizer(st, tcfg.max_length)
    max_length, dim = tok.max_length, sbert_dim(st)
    posts = read_posts(posts_path, ["caption", "comments_text"]).with_columns(post_text())
    prov = provenance("instagram_text_embeddings", cfg, shard=shard, source=str(posts_path),
                      model=model_prov | {"max_length": max_length, "dim": dim}, device=str(device),
                      dtype=dtype_name(dtype))
    stats, counts = run_text_stage(posts, ["text"], tok, tcfg,
                                   embed_with(st, device, dtype), lambda res: text_embedding_table(res, dim), out,
                                   text_embeddings(dim), prov, device, "text_embeddings")
    log.info("text embeddings: %d posts -> %s (dim %d); %s", posts.height, out, dim, counts)
    return {"posts": posts.height, "by_status": counts, "dim": dim, "max_length": max_length, **stats.as_dict()}
