"""SBERT embedding of each post's caption and merged comments (all-mpnet-base-v2 by default).

One row per post (:func:`tables.text_embeddings`): the caption and the shown comments, joined by a
newline, embedded by the configured SentenceTransformer through its own module stack (transformer,
pooling, normalisation ...), fed by :mod:`.text_batches` instead of ``encode`` so that batches are
sorted by token length, padded per batch and prepared while the previous batch runs. The vector is
re-normalised in float32 (L2 = 1) whatever precision the model ran in.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import polars as pl
import pyarrow as pa

from ..inference.device import autocast, dtype_name, prepare_model, setup_torch, to_device
from ..io.arrays import embedding_array
from ..io.parquet import provenance
from ..models import HFModel, check_tokenizer_complete, provenance_of, resolve
from ..tables import text_embeddings
from .common import read_posts_shard, text_status
from .config import FeaturesConfig
from .text_batches import TextResults, TextTokenizer, run_text_stage

log = logging.getLogger(__name__)


def post_text() -> pl.Expr:
    """Caption and merged comments, one text per post (either may be missing)."""
    parts = [pl.col(c).str.strip_chars() for c in ("caption", "comments_text")]
    return pl.concat_str(parts, separator="\n", ignore_nulls=True).alias("text")


def load_sbert(cfg: Mapping[str, Any], device, dtype):
    """``(SentenceTransformer, provenance)`` of ``models.text_embedding``, from disk only."""
    from sentence_transformers import SentenceTransformer

    model = HFModel.from_config(cfg, "text_embedding")
    path = resolve(cfg, model)
    st = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    check_tokenizer_complete(st.tokenizer, "models.text_embedding")
    st = prepare_model(st, device, dtype)
    return st, provenance_of(cfg, model, path, device=str(device), dtype=dtype_name(dtype))


def embed_with(st, device, dtype):
    """Batch of token tensors -> L2-normalised float32 embeddings (numpy)."""
    import torch

    def infer(feats: dict) -> np.ndarray:
        inputs = {k: to_device(v, device) for k, v in feats.items()}
        with torch.inference_mode(), autocast(device, dtype):
            emb = st(inputs)["sentence_embedding"]
        return torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy()

    return infer


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
    device, dtype = setup_torch(fcfg, threads or tcfg.threads)
    st, model_prov = load_sbert(cfg, device, dtype)
    max_length = min(tcfg.max_length or st.max_seq_length, st.max_seq_length)
    dim = int((getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension)())
    posts = read_posts_shard(posts_path, ["caption", "comments_text"]).with_columns(post_text())
    prov = provenance("instagram_text_embeddings", cfg, shard=shard, source=str(posts_path),
                      model=model_prov | {"max_length": max_length, "dim": dim}, device=str(device),
                      dtype=dtype_name(dtype))
    stats, counts = run_text_stage(posts, ["text"], TextTokenizer(st.tokenizer, max_length), tcfg,
                                   embed_with(st, device, dtype), lambda res: text_embedding_table(res, dim), out,
                                   text_embeddings(dim), prov, device, "text_embeddings")
    log.info("text embeddings: %d posts -> %s (dim %d); %s", posts.height, out, dim, counts)
    return {"posts": posts.height, "by_status": counts, "dim": dim, "max_length": max_length, **stats.as_dict()}
