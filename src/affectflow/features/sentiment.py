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

from ..inference.device import autocast, dtype_name, prepare_model, to_device
from ..inference.runner import run
from ..io.parquet import ParquetWriter, provenance
from ..models import HFModel, check_tokenizer_complete, provenance_of, resolve
from ..tables import SENTIMENT
from .common import read_posts_shard, text_status
from .config import FeaturesConfig
from .text_batches import TextResults, TextTableWriter, TextTokenizer, count_texts, text_mapper, text_reader

log = logging.getLogger(__name__)

TEXT_COLUMNS = ("caption", "comments_text")
HUGE = 1_000_000  # transformers' "no limit" model_max_length is ~1e30


def model_max_length(tokenizer, config, wanted: int | None) -> int:
    """The tokens a text may have, start and end tokens included: the smallest of config,
    tokenizer and position table.

    Args:
        tokenizer: the model's tokenizer (``model_max_length``; transformers' "no limit" ~1e30 ignored).
        config: the model's config (``max_position_embeddings``).
        wanted: ``features.sentiment.max_length``, or None.

    Returns:
        The limit in tokens (512 for DistilBERT SST-2 by default).
    """
    limits = [wanted or HUGE, getattr(config, "max_position_embeddings", HUGE) or HUGE]
    if (tokenizer.model_max_length or HUGE) < HUGE:
        limits.append(int(tokenizer.model_max_length))
    return int(min(limits))


def load_classifier(cfg: Mapping[str, Any], device, dtype):
    """The sequence classifier of ``models.sentiment``, from disk only, ready for inference.

    Args:
        cfg: config with ``models.sentiment`` (and ``models.dir`` for hub ids).
        device: the ``torch.device`` it runs on.
        dtype: the ``torch.dtype`` it runs in.

    Returns:
        ``(model, tokenizer, provenance)``; provenance keys ``key``, ``id``, ``revision``,
        ``path``, ``digest``, ``device``, ``dtype``.

    Raises:
        ModelMissing: the model is not on disk, or its tokenizer is near-empty.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = HFModel.from_config(cfg, "sentiment")
    path = resolve(cfg, model)
    tok = AutoTokenizer.from_pretrained(str(path))
    check_tokenizer_complete(tok, "models.sentiment")
    net = prepare_model(AutoModelForSequenceClassification.from_pretrained(str(path)), device, dtype)
    return net, tok, provenance_of(cfg, model, path, device=str(device), dtype=dtype_name(dtype))


def classify(net, device, dtype):
    """The mapper: a padded batch of token tensors -> class probabilities.

    Args:
        net: the classifier (:func:`load_classifier`); inputs it does not accept are dropped.
        device: its ``torch.device``.
        dtype: its ``torch.dtype`` (autocast when half).

    Returns:
        A function from ``{"input_ids", "attention_mask", ...}`` (``(n, tokens)`` int64) to a
        ``(n, num_labels)`` float32 numpy array of softmax probabilities (rows sum to 1).
    """
    import torch

    accepted = set(inspect.signature(net.forward).parameters)

    def infer(feats: dict) -> np.ndarray:
        inputs = {k: to_device(v, device) for k, v in feats.items() if k in accepted}
        with torch.inference_mode(), autocast(device, dtype):
            logits = net(**inputs).logits
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    return infer


def sentiment_table(res: TextResults, labels: np.ndarray) -> pa.Table:
    """One window's rows of :data:`tables.SENTIMENT`, one per post.

    Args:
        res: the window's results; column 0 the captions', column 1 the comments' probabilities.
        labels: ``(num_labels,)`` the model's ``id2label`` names.

    Returns:
        ``post_id``; per text (``caption``, ``comment``) the label of the highest probability
        (``*_sentiment``), that probability (``*_score``, float32 in [0, 1]) and ``*_truncated``,
        all null where the text was not scored; ``status`` (:func:`common.text_status`).
    """
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
    """Stage ``sentiment``: score one posts shard's captions and merged comments into ``out``.

    Reader (:func:`text_batches.text_reader`), mapper (:func:`classify`) and writer
    (:class:`text_batches.TextTableWriter` of :func:`sentiment_table` rows) built from the config,
    driven by :func:`inference.runner.run`.

    Args:
        cfg: config with ``features`` (device, precision, ``sentiment``) and ``models.sentiment``.
        posts_path: the posts shard (``post_id``, ``status``, ``caption``, ``comments_text``).
        out: the output Parquet file (:data:`tables.SENTIMENT`), one row per post in post order.
        threads: the job's cores (default ``features.sentiment.threads``).
        shard: the shard number, for provenance.

    Returns:
        ``{"posts", "by_status", "max_length"}`` and the run's timings (:meth:`RunStats.as_dict`).

    Raises:
        ModelMissing: ``models.sentiment`` is not on disk.
        DeviceMissing: ``features.device`` names CUDA and no GPU is visible.
    """
    fcfg = FeaturesConfig.from_config(cfg)
    scfg = fcfg.sentiment
    where = fcfg.placement(threads or scfg.threads)
    net, hf_tok, model_prov = load_classifier(cfg, where.device, where.dtype)
    tok = TextTokenizer(hf_tok, model_max_length(hf_tok, net.config, scfg.max_length))
    labels = np.asarray([net.config.id2label[i] for i in range(net.config.num_labels)], dtype=object)
    posts = read_posts_shard(posts_path, list(TEXT_COLUMNS))
    prov = provenance("instagram_sentiment", cfg, shard=shard, source=str(posts_path),
                      model=model_prov | {"max_length": tok.max_length}, device=str(where.device),
                      dtype=where.dtype_name)

    reader = text_reader(posts, TEXT_COLUMNS, tok, scfg, pin=where.cuda)
    mapper = text_mapper(classify(net, where.device, where.dtype))
    with ParquetWriter(out, SENTIMENT, prov) as pw:
        writer = TextTableWriter(pw, len(TEXT_COLUMNS), lambda res: sentiment_table(res, labels))
        stats = run(reader, mapper, writer, name="sentiment" if shard is None else f"sentiment shard {shard}", log_every=20,
                    total=count_texts(posts, TEXT_COLUMNS), unit="texts")
    log.info("sentiment: %d posts -> %s; %s", posts.height, out, writer.counts)
    return {"posts": posts.height, "by_status": writer.counts, "max_length": tok.max_length, **stats.as_dict()}
