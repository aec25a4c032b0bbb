"""Sentence-encoder text features the training stage makes itself (``models.text_embedding``).

Two uses, one encoder:

- **Engagement captions** (``train.engagement.text_features: caption``, the default). The feature
  stage's text embedding covers the caption *and the shown comments*; comments exist because of
  the engagement being predicted (their number and text grow with it), so a model reading them
  learns the target from its own consequence. Caption-only vectors, one file per posts shard.
- **Dreaddit texts** (``train.stress.text_encoder: text_embedding``). CLIP's text tower sees 77
  tokens; a sentence encoder is trained for sentence similarity and reads 256-512. The image
  features stay CLIP's, so the fused model pairs this vector with the synthesized image's.

The encoder is the features stage's own (:mod:`affectflow.features.sbert`): the same loader,
truncation rule (``max_seq_length`` tokens with start and end) and forward pass, so a caption
embeds alike in both stages. The training stage runs it in fp32 on ``train.device``.

Output: ``tables.text_embeddings(dim)`` (``post_id``, ``embedding`` L2-normalised, ``truncated``,
``status``), one row per post, a null vector where there is no text (null or blank).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import polars as pl
import pyarrow as pa

from .. import status as S
from .. import tables
from ..io.arrays import embedding_array
from ..io.parquet import parquet_files, provenance, write_table

log = logging.getLogger(__name__)


def write_embeddings(cfg: Mapping[str, Any], frame: pl.DataFrame, out: str | Path, table: str,
                     threads: int | None = None, batch_size: int = 64, encoder=None,
                     model_key: str = "text_embedding") -> dict[str, Any]:
    """Encode ``frame``'s ``text`` and write one row per ``post_id`` to ``out``.

    Args:
        cfg: config with ``models.text_embedding`` (and ``train.device``, default auto).
        frame: ``post_id``, ``text`` (null or blank: no vector) and optionally ``status``: rows whose
            status is not ok keep it; the others get ok, or ``text_missing`` without text.
        out: the Parquet file (``tables.text_embeddings(dim)``), written atomically.
        table: the table's name in the provenance.
        threads: torch threads (the job's cores); None leaves torch's default.
        batch_size: texts per batch.
        encoder: a SentenceTransformer already loaded (on ``train.device``, fp32), else loaded here.
        model_key: the ``models`` key of the sentence encoder (``text_embedding``).

    Returns:
        ``{"rows", "encoded", "truncated", "dim", "texts_per_s", "seconds"}``.

    Raises:
        ModelMissing: ``models.text_embedding`` is not on disk.
        DeviceMissing: ``train.device`` is cuda and no GPU is visible.
    """
    from ..features.sbert import encode_texts, load_sbert, sbert_dim
    from ..inference.device import place

    t0 = time.perf_counter()
    text = frame["text"].str.strip_chars()
    has_text = (text.fill_null("").str.len_chars() > 0).to_numpy()
    where = place(cfg.get("train", {}).get("device", "auto"), "fp32", threads=threads, what="train.device")
    device = where.device
    if encoder is None:
        encoder, prov = load_sbert(cfg, device, where.dtype, model_key)
    else:
        prov = {"preloaded": True}
    dim = sbert_dim(encoder)
    x = np.zeros((frame.height, dim), np.float32)
    trunc = np.zeros(frame.height, bool)
    idx = np.flatnonzero(has_text)
    t1 = time.perf_counter()
    if len(idx):
        x[idx], trunc[idx] = encode_texts(encoder, text.gather(idx).to_list(), device, where.dtype, batch_size,
                                          name=table)
    enc_s = time.perf_counter() - t1
    status = np.where(has_text, S.OK, S.TEXT_MISSING).astype(object)
    if "status" in frame.columns:
        upstream = frame["status"].fill_null(S.OK).to_numpy()
        status = np.where(upstream == S.OK, status, upstream)
    emb = embedding_array(x, has_text, dim)
    write_table(out, pa.table({
        "post_id": frame["post_id"].to_arrow(), "embedding": emb, "truncated": pa.array(trunc),
        "status": pa.array(status.tolist(), pa.string())}), tables.text_embeddings(dim),
        provenance(table, None, model=prov, device=str(device)))
    res = {"rows": frame.height, "encoded": int(len(idx)), "truncated": int(trunc.sum()), "dim": dim,
           "texts_per_s": round(len(idx) / enc_s, 1) if enc_s > 0 else None, "seconds": round(time.perf_counter() - t0, 2)}
    log.info("%s: %s", table, res)
    return res


def dreaddit(cfg: Mapping[str, Any], posts_path: str | Path, out: str | Path, threads: int | None = None,
             batch_size: int = 64, model_key: str = "text_embedding") -> dict[str, Any]:
    """Every Dreaddit post's text (the stress heads' text features); see :func:`write_embeddings`.

    Args:
        cfg: config with ``models.text_embedding`` (and ``train.device``).
        posts_path: the Dreaddit posts table (a file or a folder of Parquet files; ``post_id``, ``text``).
        out: the output Parquet file.
        threads: torch threads.
        batch_size: texts per batch.
        model_key: the ``models`` key of the encoder: ``text_embedding`` (modality ``text``) or
            ``train.stress.text2_encoder``'s (modality ``text2``).

    Returns:
        :func:`write_embeddings`'s counts.
    """
    posts = pl.concat([pl.read_parquet(f, columns=["post_id", "text"]) for f in parquet_files(posts_path)])
    return write_embeddings(cfg, posts, out, "dreaddit_text_embeddings", threads, batch_size, model_key=model_key)


def captions(cfg: Mapping[str, Any], posts_path: str | Path, out: str | Path, threads: int | None = None,
             batch_size: int = 64) -> dict[str, Any]:
    """One posts shard's captions alone (the engagement models' text features); see :func:`write_embeddings`.

    Every post keeps a row; posts that were not parsed keep their status and get no vector.

    Args:
        cfg: config with ``models.text_embedding`` (and ``train.device``).
        posts_path: an Instagram posts shard (``post_id``, ``caption``, ``status``).
        out: the output Parquet file.
        threads: torch threads.
        batch_size: texts per batch.

    Returns:
        :func:`write_embeddings`'s counts.
    """
    posts = pl.read_parquet(posts_path, columns=["post_id", "caption", "status"])
    parsed = pl.col("status").is_in(sorted(S.PARSED))
    frame = posts.select("post_id", pl.when(parsed).then(pl.col("caption")).alias("text"),
                         pl.when(parsed).then(pl.lit(S.OK)).otherwise(pl.col("status")).alias("status"))
    return write_embeddings(cfg, frame, out, "instagram_caption_embeddings", threads, batch_size)
