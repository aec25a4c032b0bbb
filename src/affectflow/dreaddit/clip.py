"""CLIP text and image embeddings of every Dreaddit post, one shard per job.

The model is ``models.clip`` loaded by :func:`models.load_clip` (the one the Instagram image stage
uses, so both branches live in one embedding space). Each post gets the embedding of its text and
of its synthesized image, both L2-normalised.

Texts longer than CLIP's window (77 tokens with start and end, so 75 of text; the median Dreaddit
segment has ~95) follow ``dreaddit.clip.long_text``:

* ``window_mean`` (default): the text's tokens are cut into consecutive 75-token windows, each
  window is encoded as its own sequence (start + tokens + end), and the window embeddings are
  averaged with weights proportional to their token counts, then re-normalised. Nothing is
  dropped: in Dreaddit the stress cue is often in the closing sentences, which head truncation
  would cut from most posts. Each window is an in-distribution CLIP input, and the mean of
  normalised embeddings stays in the same space (cosine-comparable to the image embedding).
* ``truncate``: open_clip's own rule, the first 75 tokens with the end token kept;
  ``text_truncated`` flags the posts that lost tokens.

``text_tokens`` and ``text_windows`` record what happened to every post.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from .. import status as S
from ..inference.device import place
from ..inference.runner import run
from ..io.arrays import embedding_array
from ..io.parquet import ParquetWriter, provenance
from ..layout import params as rule_params
from ..models import ClipModel, clip_dim, load_clip
from ..tables import dreaddit_clip
from .config import DreadditConfig, validated
from .posts import read_dreaddit_shard

log = logging.getLogger(__name__)


def require_bpe_tokenizer(tokenizer) -> None:
    """The windowing below needs open_clip's BPE tokenizer (token ids, start/end ids, context)."""
    for attr in ("encode", "sot_token_id", "eot_token_id", "context_length"):
        if not hasattr(tokenizer, attr):
            raise TypeError(f"long_text needs a BPE tokenizer with {attr} (open_clip SimpleTokenizer); "
                            f"got {type(tokenizer).__name__}")


def text_windows(tokenizer, text: str, mode: str) -> tuple[list[list[int]], int]:
    """Token windows (without start/end) for one text, and its total token count.

    Args:
        tokenizer: open_clip's BPE tokenizer (``encode``, ``context_length``).
        text: the post's text.
        mode: ``window_mean`` (consecutive windows of ``context_length - 2`` tokens) or
            ``truncate`` (the first window only).

    Returns:
        ``(windows, n_tokens)``: token-id lists of at most ``context_length - 2`` ids each, and
        the text's token count before any cut.
    """
    ids = tokenizer.encode(text)
    width = tokenizer.context_length - 2
    if mode == "truncate" or len(ids) <= width:
        return [ids[:width]], len(ids)
    return [ids[i : i + width] for i in range(0, len(ids), width)], len(ids)


def window_tensor(tokenizer, windows: list[list[int]]):
    """Rows of ``[start] + window + [end]``, zero-padded to the context length (open_clip's layout).

    Returns:
        A ``(len(windows), context_length)`` int64 tensor.
    """
    import torch

    out = torch.zeros(len(windows), tokenizer.context_length, dtype=torch.long)
    for i, w in enumerate(windows):
        row = [tokenizer.sot_token_id, *w, tokenizer.eot_token_id]
        out[i, : len(row)] = torch.tensor(row)
    return out


@dataclass
class Batch:
    """One batch of posts as the reader prepared it: text windows, decoded images, bookkeeping."""

    post_ids: list[str]
    statuses: list[str]
    tokens: Any  # LongTensor [windows, context] or None
    owner: list[int]  # window -> row in batch
    weights: list[int]  # window -> its token count
    n_tokens: list[int | None]
    n_windows: list[int | None]
    truncated: list[bool | None]
    pixels: Any  # FloatTensor [images, 3, H, W] or None
    image_rows: list[int]  # image -> row in batch
    errors: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.post_ids)


class Reader:
    """Batches of posts: text windows tokenised, images decoded and preprocessed in threads, the
    next batch's images already decoding while the current one is on the device."""

    def __init__(self, rows: list[tuple], tokenizer, preprocess, mode: str, batch_size: int, workers: int):
        require_bpe_tokenizer(tokenizer)
        self.rows, self.tok, self.pre, self.mode = rows, tokenizer, preprocess, mode
        self.batch_size = batch_size
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")

    def _load(self, path: str):
        from PIL import Image

        try:
            with Image.open(path) as im:
                return self.pre(im.convert("RGB")), None
        except (OSError, ValueError, SyntaxError) as exc:
            return None, f"{path}: {exc}"

    def __iter__(self):
        import torch

        chunks = [self.rows[i : i + self.batch_size] for i in range(0, len(self.rows), self.batch_size)]
        futures = [None] * len(chunks)

        def submit(k):
            if k < len(chunks) and futures[k] is None:
                futures[k] = [self.pool.submit(self._load, r[3]) if r[3] else None for r in chunks[k]]

        try:
            for k, chunk in enumerate(chunks):
                submit(k)
                submit(k + 1)
                b = Batch([r[0] for r in chunk], [r[2] for r in chunk], None, [], [], [], [], [], None, [])
                windows = []
                for i, (_, text, _status, _path) in enumerate(chunk):
                    n = ws = None
                    if text is not None:
                        ws, n = text_windows(self.tok, text, self.mode)
                        windows += ws
                        b.owner += [i] * len(ws)
                        b.weights += [max(len(w), 1) for w in ws]
                    b.n_tokens.append(n)
                    b.n_windows.append(None if ws is None else len(ws))
                    b.truncated.append(None if n is None else self.mode == "truncate" and n > self.tok.context_length - 2)
                b.tokens = window_tensor(self.tok, windows) if windows else None
                pix = []
                for i, fut in enumerate(futures[k]):
                    if fut is None:
                        continue
                    tensor, err = fut.result()
                    if tensor is None:
                        b.errors[i] = err
                    else:
                        pix.append(tensor)
                        b.image_rows.append(i)
                b.pixels = torch.stack(pix) if pix else None
                futures[k] = None
                yield b
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


class Encoder:
    """The mapper: windows -> weighted mean text embedding per post; images -> image embeddings."""

    def __init__(self, net, device, dtype):
        self.net, self.device, self.dtype = net, device, dtype

    def __call__(self, b: Batch):
        import torch
        import torch.nn.functional as F

        text = image = None
        with torch.inference_mode():
            if b.tokens is not None:
                w = F.normalize(self.net.encode_text(b.tokens.to(self.device)).float(), dim=-1)
                owner = torch.tensor(b.owner, device=w.device)
                weight = torch.tensor(b.weights, dtype=w.dtype, device=w.device)[:, None]
                text = torch.zeros(len(b), w.shape[1], device=w.device).index_add_(0, owner, w * weight)
                text = F.normalize(text, dim=-1).cpu().numpy()
            if b.pixels is not None:
                image = self.net.encode_image(b.pixels.to(self.device, self.dtype, non_blocking=True))
                image = F.normalize(image.float(), dim=-1).cpu().numpy()
        return text, image


class TableWriter:
    """The writer: one Parquet row per post, statuses settled from the synth index and the decode."""

    def __init__(self, writer: ParquetWriter, dim: int, synth: dict[str, str]):
        self.writer, self.dim, self.synth = writer, dim, synth
        self.counts: dict[str, int] = {}

    def write(self, b: Batch, output) -> None:
        """Append the batch's rows: embeddings (``(n, dim)`` float32, null where absent), token and
        window counts, and each post's status (the post's, the synthesis', ``image_unreadable`` or ok)."""
        text, image = output
        has_text = np.array([n is not None for n in b.n_tokens], bool)
        has_image = np.zeros(len(b), bool)
        has_image[b.image_rows] = True
        images = np.zeros((len(b), self.dim), np.float32)
        if image is not None:
            images[b.image_rows] = image
        statuses = []
        for i, pid in enumerate(b.post_ids):
            post_status = b.statuses[i]
            synth_status = self.synth[pid]
            if not has_text[i]:
                status = post_status if post_status not in S.DREADDIT_HAS_TEXT else S.TEXT_MISSING
            elif synth_status != S.OK:
                status = synth_status
            elif i in b.errors:
                status = S.IMAGE_UNREADABLE
                log.warning("%s: %s", pid, b.errors[i])
            else:
                status = S.OK
            statuses.append(status)
            self.counts[status] = self.counts.get(status, 0) + 1
        self.writer.write(pa.table({
            "post_id": b.post_ids,
            "text_embedding": embedding_array(text, has_text, self.dim),
            "image_embedding": embedding_array(images, has_image, self.dim),
            "text_tokens": b.n_tokens, "text_windows": b.n_windows, "text_truncated": b.truncated,
            "status": statuses,
        }))


def shard_rows(posts: str | Path, synth: str | Path, shard: int, shards: int):
    """The shard's posts joined to its synthesis index: what the reader reads.

    Args:
        posts: the Dreaddit posts table.
        synth: the shard's synthesis index (:data:`tables.DREADDIT_SYNTH`).
        shard: the shard number.
        shards: ``dreaddit.shards``.

    Returns:
        ``(rows, synth_status)``: a polars frame ``post_id``, ``text`` (null where the post has no
        usable text), ``status`` (the post's), ``image_path`` (null where no image was made), in post
        order; and post_id -> the synthesis status.

    Raises:
        RuntimeError: the index holds other posts than the shard (a stale index).
    """
    import polars as pl

    rows = read_dreaddit_shard(posts, shard, shards, ["post_id", "text", "status"])
    index = pl.read_parquet(synth, columns=["post_id", "image_path", "status"])
    if rows["post_id"].to_list() != index["post_id"].to_list():
        raise RuntimeError(f"{synth} does not hold shard {shard} of {posts} (post ids differ): it is stale; "
                           "rerun synthesize for this shard")
    text_ok = pl.col("status").is_in(list(S.DREADDIT_HAS_TEXT))
    rows = rows.with_columns(pl.when(text_ok).then(pl.col("text")).alias("text"),
                             pl.when(index["status"] == S.OK).then(index["image_path"]).alias("image_path"))
    return rows.select("post_id", "text", "status", "image_path"), dict(index.select("post_id", "status").iter_rows())


def clip_shard(cfg: Mapping, posts: str | Path, synth: str | Path, shard: int, out: str | Path,
               threads: int | None = None) -> dict[str, Any]:
    """Stage ``dreaddit_clip``: CLIP text and image embeddings of one shard's posts.

    Reader (:class:`Reader`: text windows and decoded images), mapper (:class:`Encoder`) and
    writer (:class:`TableWriter`) built from the config, driven by :func:`inference.runner.run`.

    Args:
        cfg: config with ``results``, ``dreaddit`` (``shards``, ``clip``) and ``models.clip``;
            defaults filled by the schema.
        posts: the Dreaddit posts table.
        synth: the shard's synthesis index.
        shard: the shard number.
        out: the output Parquet file (:func:`tables.dreaddit_clip`), one row per post in post order;
            ``text_embedding`` and ``image_embedding`` ``dim`` float32, L2-normalised, null when absent.
        threads: torch threads (the job's cores); None leaves torch's default.

    Returns:
        ``{"posts", "by_status", "dim", "timing"}`` (``timing``: :meth:`RunStats.as_dict`).

    Raises:
        RuntimeError: the synthesis index is stale (other posts than the shard).
        ModelMissing: ``models.clip`` is not on disk.
        DeviceMissing: ``dreaddit.clip.device`` names CUDA and no GPU is visible.
        TypeError: the model's tokenizer is not open_clip's BPE tokenizer.
    """
    cfg = validated(cfg)
    dd = DreadditConfig.from_config(cfg)
    cc = dd.clip
    where = place(cc.device, cc.precision, threads=threads, what="dreaddit.clip.device")
    device, dtype = where.device, where.dtype
    rows, synth_status = shard_rows(posts, synth, shard, dd.shards)
    net, preprocess, tokenizer, model_prov = load_clip(cfg, ClipModel.from_config(cfg), device=device, dtype=dtype)
    dim = clip_dim(net)
    section = rule_params("dreaddit_clip", cfg)
    prov = provenance("dreaddit_clip", section, shard=shard, model={**model_prov, "device": str(device), "dtype": where.dtype_name},
                      posts=str(posts), synth=str(synth))

    reader = Reader(list(rows.iter_rows()), tokenizer, preprocess, cc.long_text, cc.batch_size, cc.workers)
    mapper = Encoder(net, device, dtype)
    with ParquetWriter(out, dreaddit_clip(dim), prov) as pw:
        writer = TableWriter(pw, dim, synth_status)
        stats = run(reader, mapper, writer, name=f"dreaddit_clip shard {shard}", total=rows.height, unit="posts")
    summary = {"posts": rows.height, "by_status": writer.counts, "dim": dim, "timing": stats.as_dict()}
    log.info("shard %d done: %s", shard, json.dumps(summary))
    return summary
