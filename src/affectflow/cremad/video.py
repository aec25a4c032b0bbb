"""Video features of one shard of clips: frames decoded in place, CLIP image tower, pooled over time.

Frames are decoded by PyAV (FFmpeg inside the wheel; FLV as published, MP4 and anything else
FFmpeg reads) in threads, straight from the file into memory: no frame is written to disk. From
each clip a frame is kept every ``1 / fps`` seconds of presentation time (the first decoded frame
at or after each tick), at most ``max_frames`` (evenly spread when there are more). Each frame is
cropped to a centred square of ``crop_fraction`` of its shorter side (CREMA-D shows one face,
centred) and goes through ``models.clip``'s own preprocessing and image tower (the model the
Instagram and Dreaddit image stages use). Per clip: the mean of the L2-normalised frame
embeddings and their per-dimension standard deviation over time (how much the face moves).

A file that fails to decode gets ``unreadable`` (with the decoder's message); one that decodes to
no frame gets ``too_short``; clips the clips stage already marked keep their status.
"""

from __future__ import annotations

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
from ..tables import cremad_video
from .clips import read_shard
from .config import CremadConfig, validated

log = logging.getLogger(__name__)


def sample_frames(path: str, fps: float, max_frames: int, crop_fraction: float = 1.0) -> list:
    """PIL RGB frames of one video, one per ``1/fps`` s of presentation time, centre-cropped.

    Args:
        path: the video file (any container and codec FFmpeg decodes).
        fps: frames kept per second; max_frames: at most this many, evenly spread.
        crop_fraction: side of the centred square crop, as a fraction of the frame's shorter side.

    Returns:
        A list of ``PIL.Image`` (RGB), possibly empty.

    Raises:
        av.error.FFmpegError (or a subclass) when the file does not decode.
    """
    import av

    step = 1.0 / fps
    kept = []
    with av.open(path) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate) if stream.average_rate else 25.0
        tick = 0.0
        for i, frame in enumerate(c.decode(stream)):
            t = frame.time if frame.time is not None else i / rate
            if t + 1e-6 >= tick:
                kept.append(frame.to_image())
                tick += step * max(1, int((t + 1e-6 - tick) // step) + 1)
    if len(kept) > max_frames:
        kept = [kept[int(j)] for j in np.linspace(0, len(kept) - 1, max_frames).round()]
    return [center_crop(im, crop_fraction) for im in kept]


def center_crop(im, fraction: float):
    """The centred square of side ``fraction`` x the shorter side (PIL in, PIL out)."""
    w, h = im.size
    side = max(1, int(round(min(w, h) * fraction)))
    left, top = (w - side) // 2, (h - side) // 2
    return im.crop((left, top, left + side, top + side))


@dataclass
class Batch:
    clip_ids: list[str]
    statuses: list[str]
    errors: list[str | None]
    owner: list[int] = field(default_factory=list)  # frame -> row in batch
    pixels: Any = None  # FloatTensor [frames, 3, S, S] or None

    def __len__(self) -> int:
        return len(self.clip_ids)


class Reader:
    """Batches of clips whose sampled frames add up to about ``batch_size``; clips decode in threads,
    the next clips already decoding while the current batch is on the device."""

    def __init__(self, rows: list[tuple], preprocess, vc, workers: int):
        self.rows, self.pre, self.vc = rows, preprocess, vc
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
        self.ahead = max(2 * workers, 4)

    def _load(self, path: str):
        try:
            frames = sample_frames(path, self.vc.fps, self.vc.max_frames, self.vc.crop_fraction)
        except Exception as exc:  # av.error.InvalidDataError and kin: the file does not decode
            return None, f"{path}: {type(exc).__name__}: {exc}"
        if not frames:
            return None, f"{path}: no frame decoded"
        import torch

        return torch.stack([self.pre(f) for f in frames]), None

    def __iter__(self):
        import torch

        futures: dict[int, Any] = {}

        def submit(k):
            if k < len(self.rows) and k not in futures and self.rows[k][1] == S.OK:
                futures[k] = self.pool.submit(self._load, self.rows[k][2])

        try:
            b, pix = Batch([], [], []), []
            for k, (clip_id, status, _path) in enumerate(self.rows):
                for j in range(k, k + self.ahead):
                    submit(j)
                err = None
                if status == S.OK:
                    tensor, err = futures.pop(k).result()
                    if tensor is None:
                        status = S.TOO_SHORT if err.endswith("no frame decoded") else S.UNREADABLE
                    else:
                        pix.append(tensor)
                        b.owner += [len(b)] * len(tensor)
                b.clip_ids.append(clip_id)
                b.statuses.append(status)
                b.errors.append(err)
                if len(b.owner) >= self.vc.batch_size:
                    b.pixels = torch.cat(pix) if pix else None
                    yield b
                    b, pix = Batch([], [], []), []
            if len(b):
                b.pixels = torch.cat(pix) if pix else None
                yield b
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


def frame_encoder(net, device, dtype):
    """The mapper: a batch's frames -> L2-normalised CLIP image embeddings (float32 [frames, dim]), or None."""
    import torch
    import torch.nn.functional as F

    def encode(b: Batch):
        if b.pixels is None:
            return None
        with torch.inference_mode():
            e = net.encode_image(b.pixels.to(device, dtype, non_blocking=True))
            return F.normalize(e.float(), dim=-1).cpu().numpy()

    return encode


class TableWriter:
    """Pools each clip's frame embeddings (mean, temporal std) and writes one row per clip."""

    def __init__(self, writer: ParquetWriter, dim: int, errors: list[str | None]):
        self.writer, self.dim = writer, dim
        self.upstream_errors = errors
        self.counts: dict[str, int] = {}
        self.frames = 0
        self.row = 0

    def write(self, b: Batch, emb) -> None:
        n = len(b)
        mean = np.zeros((n, self.dim), np.float32)
        std = np.zeros((n, self.dim), np.float32)
        n_frames = np.zeros(n, np.int16)
        if emb is not None:
            owner = np.asarray(b.owner)
            for i in np.unique(owner):
                e = emb[owner == i]
                mean[i], std[i], n_frames[i] = e.mean(0), e.std(0), len(e)
            self.frames += len(emb)
        valid = n_frames > 0
        errors = [e if e is not None else (self.upstream_errors[self.row + i] if b.statuses[i] != S.OK else None)
                  for i, e in enumerate(b.errors)]
        self.row += n
        for s in b.statuses:
            self.counts[s] = self.counts.get(s, 0) + 1
        for i, e in enumerate(b.errors):
            if e:
                log.warning("%s: %s", b.clip_ids[i], e)
        self.writer.write(pa.table({
            "clip_id": b.clip_ids, "embedding_mean": embedding_array(mean, valid, self.dim),
            "embedding_std": embedding_array(std, valid, self.dim), "n_frames": pa.array(n_frames, pa.int16()),
            "status": pa.array(b.statuses, pa.string()), "error": pa.array(errors, pa.string())}))


def video_shard(cfg: Mapping, clips: str | Path, shard: int, out: str | Path, threads: int | None = None) -> dict[str, Any]:
    """Stage ``cremad_video``: pooled CLIP frame embeddings of one shard's clips (``tables.cremad_video``).

    Returns:
        ``{clips, by_status, frames, dim, timing}`` (timing: the runner's read / inference / write split).
    """
    cfg = validated(cfg)
    cc = CremadConfig.from_config(cfg)
    vc = cc.video
    where = place(vc.device, vc.precision, threads=threads, cuda_fast=True, what="cremad.video.device")
    device, dtype = where.device, where.dtype
    rows = read_shard(clips, shard, ["clip_id", "video_status", "video_path", "video_error"])
    net, preprocess, _tok, model_prov = load_clip(cfg, ClipModel.from_config(cfg), device=device, dtype=dtype)
    dim = clip_dim(net)
    prov = provenance("cremad_video", rule_params("cremad_video", cfg), shard=shard, clips=str(clips),
                      model={**model_prov, "device": str(device), "dtype": str(dtype)})
    reader = Reader(list(rows.select("clip_id", "video_status", "video_path").iter_rows()), preprocess, vc, vc.workers)
    with ParquetWriter(out, cremad_video(dim), prov) as pw:
        writer = TableWriter(pw, dim, rows["video_error"].to_list())
        stats = run(reader, frame_encoder(net, device, dtype), writer, name=f"cremad_video shard {shard}")
    summary = {"clips": rows.height, "by_status": writer.counts, "frames": writer.frames, "dim": dim,
               "timing": stats.as_dict()}
    log.info("cremad_video shard %d: %s", shard, summary)
    return summary
