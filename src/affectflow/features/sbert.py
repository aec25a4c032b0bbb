"""The sentence encoder (``models.text_embedding``, SBERT): one loader, one truncation rule, one forward pass.

Both users go through here: the features stage's caption + comments vector
(:mod:`.text_embed`, windows of a posts shard through :mod:`.text_batches`) and the training
stage's caption-only and Dreaddit vectors (:mod:`affectflow.train.text_features`, a list of texts
through :func:`encode_texts`). So a text gets the same vector, and the same ``truncated`` flag,
whichever stage embeds it:

* **Loading**: :func:`load_sbert` reads the configured SentenceTransformer from disk only
  (:func:`models.resolve`), refuses a near-empty tokenizer, puts it on the device in the stage's
  dtype.
* **Truncation**: a text is cut to :func:`sbert_max_length` tokens *including* the model's start and end
  tokens (the smaller of the configured limit and the model's ``max_seq_length``, as
  SentenceTransformer's own ``encode`` cuts), and flagged ``truncated`` when it lost tokens
  (:class:`text_batches.TextTokenizer`, which also cuts absurdly long texts by characters first).
* **Batches**: tokenised once, sorted by token length, padded per batch
  (:func:`text_batches.length_batches`), so padding costs little.
* **Forward**: the model's own module stack (transformer, pooling, normalisation ...) under
  autocast; the vector is re-normalised in float32 (L2 = 1) whatever precision the model ran in.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..inference.device import autocast, dtype_name, prepare_model, to_device
from ..inference.runner import run
from ..models import HFModel, check_tokenizer_complete, provenance_of, resolve
from .text_batches import TextTokenizer, length_batches, pad_batch

log = logging.getLogger(__name__)


def load_sbert(cfg: Mapping[str, Any], device, dtype, key: str = "text_embedding"):
    """The SentenceTransformer of ``models.<key>`` (``models.text_embedding``), from disk only, ready for inference.

    Args:
        cfg: config with ``models.text_embedding`` (and ``models.dir`` for hub ids).
        device: the ``torch.device`` it runs on.
        dtype: the ``torch.dtype`` it runs in (weights cast when half).
        key: the ``models`` key (``text_embedding``; the stress heads' second encoder has its own).

    Returns:
        ``(model, provenance)``: the SentenceTransformer in eval mode, and the provenance record
        (``key``, ``id``, ``revision``, ``path``, ``digest``, ``device``, ``dtype``).

    Raises:
        ModelMissing: the model is not on disk, or its tokenizer is near-empty.
    """
    from sentence_transformers import SentenceTransformer

    model = HFModel.from_config(cfg, key)
    path = resolve(cfg, model)
    st = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    check_tokenizer_complete(st.tokenizer, f"models.{key}")
    st = prepare_model(st, device, dtype)
    return st, provenance_of(cfg, model, path, device=str(device), dtype=dtype_name(dtype))


def sbert_dim(st) -> int:
    """Width of the model's sentence embedding (384 for all-MiniLM-L6-v2, 768 for all-mpnet-base-v2)."""
    return int((getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension)())


def sbert_max_length(st, wanted: int | None = None) -> int:
    """Tokens per text, start and end tokens included: ``wanted``, capped at the model's ``max_seq_length``.

    Args:
        st: the SentenceTransformer.
        wanted: the configured limit (``features.text_embedding.max_length``), or None for the model's own.

    Returns:
        The limit in tokens.
    """
    return int(min(wanted or st.max_seq_length, st.max_seq_length))


def sbert_tokenizer(st, wanted: int | None = None) -> TextTokenizer:
    """The model's tokenizer, truncating at :func:`sbert_max_length` and flagging what it cut.

    Raises:
        TypeError: the model's tokenizer is not a fast tokenizer.
    """
    return TextTokenizer(st.tokenizer, sbert_max_length(st, wanted))


def embed_with(st, device, dtype) -> Callable[[dict], np.ndarray]:
    """The mapper: a padded batch of token tensors -> its sentence embeddings.

    Args:
        st: the SentenceTransformer, as :func:`load_sbert` returns it.
        device: its ``torch.device``.
        dtype: its ``torch.dtype`` (autocast when half).

    Returns:
        A function from ``{"input_ids", "attention_mask"[, "token_type_ids"]}`` (``(n, tokens)``
        int64 CPU tensors) to a ``(n, dim)`` float32 numpy array, each row L2-normalised.
    """
    import torch

    def infer(feats: dict) -> np.ndarray:
        inputs = {k: to_device(v, device) for k, v in feats.items()}
        with torch.inference_mode(), autocast(device, dtype):
            emb = st(inputs)["sentence_embedding"]
        return torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy()

    return infer


class _Rows:
    """Writer of :func:`encode_texts`: each batch's vectors into its rows of one array."""

    def __init__(self, n: int, dim: int):
        self.out = np.zeros((n, dim), np.float32)

    def write(self, batch: tuple[np.ndarray, dict], emb: np.ndarray) -> None:
        self.out[batch[0]] = emb


def encode_texts(st, texts: Sequence[str], device, dtype, batch_size: int = 64, max_tokens: int | None = None,
                 wanted_length: int | None = None, name: str = "sbert") -> tuple[np.ndarray, np.ndarray]:
    """Embed a list of texts in input order through the length-sorted batches and :func:`embed_with`.

    Args:
        st: the SentenceTransformer (:func:`load_sbert`).
        texts: the texts; callers drop null and blank ones first (they get no vector).
        device: the model's ``torch.device``.
        dtype: the model's ``torch.dtype``.
        batch_size: texts per batch at most.
        max_tokens: padded tokens per batch at most; None: ``batch_size`` full-length texts.
        wanted_length: tokens per text (:func:`sbert_max_length`); None: the model's limit.
        name: the run's name in the log.

    Returns:
        ``(embeddings, truncated)``: ``(len(texts), dim)`` float32, rows L2-normalised, and a
        ``(len(texts),)`` bool array, True where a text was longer than the limit and was cut.
    """
    tok = sbert_tokenizer(st, wanted_length)
    dim = sbert_dim(st)
    if not len(texts):
        return np.zeros((0, dim), np.float32), np.zeros(0, bool)
    ids, lengths, truncated = tok.encode(list(texts))
    pin = device.type == "cuda"
    batches = ((index, pad_batch(ids, index, tok, pin))
               for index in length_batches(lengths, batch_size, max_tokens or batch_size * tok.max_length))
    infer = embed_with(st, device, dtype)
    rows = _Rows(len(texts), dim)
    run(batches, lambda b: infer(b[1]), rows, size=lambda b: len(b[0]), name=name, log_every=20)
    return rows.out, truncated
