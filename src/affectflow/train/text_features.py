"""Sentence-encoder text features the training stage makes itself (``models.text_embedding``).

Two uses, one encoder:

- **Engagement captions** (``train.engagement.text_features: caption``, the default). The feature
  stage's text embedding covers the caption *and the shown comments*; comments exist because of
  the engagement being predicted (their number and text grow with it), so a model reading them
  learns the target from its own consequence. Caption-only vectors, one file per posts shard.
- **Dreaddit texts** (``train.stress.text_encoder: text_embedding``). CLIP's text tower sees 77
  tokens; a sentence encoder is trained for sentence similarity and reads 256-512. The image
  features stay CLIP's, so the fused model pairs this vector with the synthesized image's.

Output: ``tables.text_embeddings(dim)`` (``post_id``, ``embedding`` L2-normalised, ``truncated``,
``status``), one row per post, a null vector where there is no text.
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


def load_encoder(cfg: Mapping[str, Any], device: str = "cpu"):
    """The SentenceTransformer of ``models.text_embedding``, offline, and its provenance."""
    from sentence_transformers import SentenceTransformer

    from ..models import HFModel, provenance_of, resolve

    model = HFModel.from_config(cfg, "text_embedding")
    path = resolve(cfg, model)
    return SentenceTransformer(str(path), device=device), provenance_of(cfg, model, path)


def encode_texts(encoder, texts: list[str], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised embeddings in input order (``encode`` batches by length itself) and whether
    each text was longer than the encoder's window."""
    out = encoder.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                         show_progress_bar=False).astype(np.float32)
    ids = encoder.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    truncated = np.array([len(i) > encoder.max_seq_length for i in ids])
    return out, truncated


def write_embeddings(cfg: Mapping[str, Any], frame: pl.DataFrame, out: str | Path, table: str,
                     threads: int | None = None, batch_size: int = 64, encoder=None) -> dict[str, Any]:
    """Encode ``frame``'s ``text`` (null or blank: no vector) and write one row per ``post_id``.

    ``frame`` may carry ``status``: rows whose status is not ok keep it; the others get ok, or
    ``text_missing`` without text.
    """
    from ..inference.device import place

    t0 = time.perf_counter()
    has_text = (frame["text"].fill_null("").str.strip_chars().str.len_chars() > 0).to_numpy()
    device = place(cfg.get("train", {}).get("device", "auto"), "fp32", threads=threads, what="train.device").device
    if encoder is None:
        encoder, prov = load_encoder(cfg, str(device))
    else:
        prov = {"preloaded": True}
    dim = (getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension)()
    x = np.zeros((frame.height, dim), np.float32)
    trunc = np.zeros(frame.height, bool)
    idx = np.flatnonzero(has_text)
    t1 = time.perf_counter()
    if len(idx):
        x[idx], trunc[idx] = encode_texts(encoder, frame["text"].gather(idx).to_list(), batch_size)
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
             batch_size: int = 64) -> dict[str, Any]:
    """Every Dreaddit post's text (the stress heads' text features)."""
    posts = pl.concat([pl.read_parquet(f, columns=["post_id", "text"]) for f in parquet_files(posts_path)])
    return write_embeddings(cfg, posts, out, "dreaddit_text_embeddings", threads, batch_size)


def captions(cfg: Mapping[str, Any], posts_path: str | Path, out: str | Path, threads: int | None = None,
             batch_size: int = 64) -> dict[str, Any]:
    """One posts shard's captions alone (the engagement models' text features); every post keeps a
    row, unparsed posts with their status and no vector."""
    posts = pl.read_parquet(posts_path, columns=["post_id", "caption", "status"])
    parsed = pl.col("status").is_in(sorted(S.PARSED))
    frame = posts.select("post_id", pl.when(parsed).then(pl.col("caption")).alias("text"),
                         pl.when(parsed).then(pl.lit(S.OK)).otherwise(pl.col("status")).alias("status"))
    return write_embeddings(cfg, frame, out, "instagram_caption_embeddings", threads, batch_size)
