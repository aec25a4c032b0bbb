"""Sentiment of each post's caption and of its merged comments (DistilBERT SST-2 by default).

One row per post of the shard (:data:`tables.SENTIMENT`). The model is loaded from disk only
(:func:`models.resolve` fails fast, naming the fetch command, when it is absent). Texts go through
:mod:`.text_batches` (length-sorted batches, truncation recorded); the label is the model's own
``id2label`` name and the score the softmax probability of that label.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import polars as pl
import pyarrow as pa

from ..inference.device import autocast, dtype_name, prepare_model, setup_torch, to_device
from ..io.parquet import provenance
from ..models import HFModel, check_tokenizer_complete, provenance_of, resolve
from ..tables import SENTIMENT
from .common import read_posts_shard, text_status
from .config import FeaturesConfig
from .text_batches import TextResults, TextTokenizer, run_text_stage

log = logging.getLogger(__name__)

TEXT_COLUMNS = ("caption", "comments_text")
HUGE = 1_000_000  # transformers' "no limit" model_max_length is ~1e30


def model_max_length(tokenizer, config, wanted: int | None) -> int:
    """The tokens a text may have: the smallest of config, tokenizer and position table."""
    limits = [wanted or HUGE, getattr(config, "max_position_embeddings", HUGE) or HUGE]
    if (tokenizer.model_max_length or HUGE) < HUGE:
        limits.append(int(tokenizer.model_max_length))
    return int(min(limits))


def load_classifier(cfg: Mapping[str, Any], device, dtype):
    """``(model, tokenizer, provenance)`` of ``models.sentiment``, from disk only."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = HFModel.from_config(cfg, "sentiment")
    path = resolve(cfg, model)
    tok = AutoTokenizer.from_pretrained(str(path))
    check_tokenizer_complete(tok, "models.sentiment")
    net = prepare_model(AutoModelForSequenceClassification.from_pretrained(str(path)), device, dtype)
    return net, tok, provenance_of(cfg, model, path, device=str(device), dtype=dtype_name(dtype))


def classify(net, device, dtype):
    """Batch of token tensors -> softmax probabilities (float32 numpy)."""
    import torch

    accepted = set(inspect.signature(net.forward).parameters)

    def infer(feats: dict) -> np.ndarray:
        inputs = {k: to_device(v, device) for k, v in feats.items() if k in accepted}
        with torch.inference_mode(), autocast(device, dtype):
            logits = net(**inputs).logits
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    return infer


def sentiment_table(res: TextResults, labels: np.ndarray) -> pa.Table:
    cols: dict[str, Any] = {"post_id": res.posts["post_id"].to_arrow()}
    for prefix, c in (("caption", 0), ("comment", 1)):
        scored = res.scored[c]
        probs = res.values[c]
        if probs is None:
            idx, score = np.zeros(len(scored), np.int64), np.zeros(len(scored), np.float32)
        else:
            idx, score = probs.argmax(axis=1), probs.max(axis=1).astype(np.float32)
        cols[f"{prefix}_sentiment"] = pa.array(labels[idx], pa.string(), mask=~scored)
        cols[f"{prefix}_score"] = pa.array(score, pa.float32(), mask=~scored)
        cols[f"{prefix}_truncated"] = pa.array(res.truncated[c], pa.bool_(), mask=~scored)
    flags = pl.DataFrame({"status": res.posts["status"], "s0": res.scored[0], "s1": res.scored[1],
                          "n0": res.non_latin[0], "n1": res.non_latin[1]})
    status = flags.select(text_status(pl.col("status"), [pl.col("s0"), pl.col("s1")], [pl.col("n0"), pl.col("n1")]))
    cols["status"] = status.to_series().to_arrow()
    return pa.table(cols)


def sentiment_shard(cfg: Mapping[str, Any], posts_path: str | Path, out: str | Path, threads: int | None = None,
                    shard: int | None = None) -> dict[str, Any]:
    """Score one posts shard into ``out``; returns the run's timings and status counts."""
    fcfg = FeaturesConfig.from_config(cfg)
    scfg = fcfg.sentiment
    device, dtype = setup_torch(fcfg, threads or scfg.threads)
    net, tok, model_prov = load_classifier(cfg, device, dtype)
    max_length = model_max_length(tok, net.config, scfg.max_length)
    labels = np.asarray([net.config.id2label[i] for i in range(net.config.num_labels)], dtype=object)
    posts = read_posts_shard(posts_path, list(TEXT_COLUMNS))
    prov = provenance("instagram_sentiment", cfg, shard=shard, source=str(posts_path),
                      model=model_prov | {"max_length": max_length}, device=str(device), dtype=dtype_name(dtype))
    stats, counts = run_text_stage(posts, TEXT_COLUMNS, TextTokenizer(tok, max_length), scfg,
                                   classify(net, device, dtype), lambda res: sentiment_table(res, labels), out,
                                   SENTIMENT, prov, device, "sentiment")
    log.info("sentiment: %d posts -> %s; %s", posts.height, out, counts)
    return {"posts": posts.height, "by_status": counts, "max_length": max_length, **stats.as_dict()}
