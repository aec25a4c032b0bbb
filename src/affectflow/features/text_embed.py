"""SBERT embedding of each post's caption and merged comments (all-mpnet-base-v2 by default).

One row per post (:func:`tables.text_embeddings`): the caption and the shown comments, joined by a
newline, embedded by the sentence encoder of :mod:`.sbert` (the loader, truncation rule and
forward pass the training stage's text vectors use too), fed by :mod:`.text_batches` so that
batches are sorted by token length, padded per batch and prepared while the previous batch runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import polars as pl
import pyarrow as pa

from ..inference.runner import run
from ..io.arrays import embedding_array
from ..io.parquet import ParquetWriter, provenance
from ..tables import text_embeddings
from .common import read_posts_shard, text_status
from .config import FeaturesConfig
from .sbert import embed_with, load_sbert, sbert_dim, sbert_tokenizer
from .text_batches import TextResults, TextTableWriter, count_texts, text_mapper, text_reader

log = logging.getLogger(__name__)


def post_text() -> pl.Expr:
    """Caption and merged comments, one text per post: each stripped, joined by a newline
    (either may be missing; null when both are)."""
    parts = [pl.col(c).str.strip_chars() for c in ("caption", "comments_text")]
    return pl.concat_str(parts, separator="\n", ignore_nulls=True).alias("text")


def text_embedding_table(res: TextResults, dim: int) -> pa.Table:
    """One window's rows of :func:`tables.text_embeddings`, one per post.

    Args:
        res: the window's results (one text column: the post's text).
        dim: the embedding width.

    Returns:
        ``post_id``, ``embedding`` (``dim`` float32, L2-normalised; null where the text was not
        scored), ``truncated`` (null likewise), ``status`` (:func:`common.text_status`).
    """
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
    """Stage ``text_embeddings``: embed one posts shard's caption + merged comments into ``out``.

    Reader (:func:`text_batches.text_reader` of :func:`post_text`), mapper
    (:func:`sbert.embed_with`) and writer (:class:`text_batches.TextTableWriter` of
    :func:`text_embedding_table` rows) built from the config, driven by :func:`inference.runner.run`.

    Args:
        cfg: config with ``features`` (device, precision, ``text_embedding``) and ``models.text_embedding``.
        posts_path: the posts shard (``post_id``, ``status``, ``caption``, ``comments_text``).
        out: the output Parquet file (:func:`tables.text_embeddings`), one row per post in post order.
        threads: the job's cores (default ``features.text_embedding.threads``).
        shard: the shard number, for provenance.

    Returns:
        ``{"posts", "by_status", "dim", "max_length"}`` and the run's timings (:meth:`RunStats.as_dict`).

    Raises:
        ModelMissing: ``models.text_embedding`` is not on disk.
        DeviceMissing: ``features.device`` names CUDA and no GPU is visible.
    """
    fcfg = FeaturesConfig.from_config(cfg)
    tcfg = fcfg.text_embedding
    where = fcfg.placement(threads or tcfg.threads)
    st, model_prov = load_sbert(cfg, where.device, where.dtype)
    tok = sbert_tokenizer(st, tcfg.max_length)
    dim = sbert_dim(st)
    posts = read_posts_shard(posts_path, ["caption", "comments_text"]).with_columns(post_text())
    prov = provenance("instagram_text_embeddings", cfg, shard=shard, source=str(posts_path),
                      model=model_prov | {"max_length": tok.max_length, "dim": dim}, device=str(where.device),
                      dtype=where.dtype_name)

    reader = text_reader(posts, ["text"], tok, tcfg, pin=where.cuda)
    mapper = text_mapper(embed_with(st, where.device, where.dtype))
    with ParquetWriter(out, text_embeddings(dim), prov) as pw:
        writer = TextTableWriter(pw, 1, lambda res: text_embedding_table(res, dim))
        stats = run(reader, mapper, writer, name="text_embeddings" if shard is None else f"text_embeddings shard {shard}", log_every=20,
                    total=count_texts(posts, ["text"]), unit="texts")
    log.info("text embeddings: %d posts -> %s (dim %d); %s", posts.height, out, dim, writer.counts)
    return {"posts": posts.height, "by_status": writer.counts, "dim": dim, "max_length": tok.max_length,
            **stats.as_dict()}
