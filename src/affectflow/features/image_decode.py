"""Image bytes from the archive to model-sized uint8 pixels, in DataLoader workers, faults labelled.

Each worker reads its batch's members straight from the split archive (every worker reopens its
own handles: :class:`affectflow.io.multizip.MultiVolumeZip` pickles without them), decodes and resizes. The
expensive part of a 1080x1350 JPEG is the full-size decode; when the model's input is 224 px,
PIL's ``draft`` lets libjpeg decode at 1/4 scale (270x338) directly, several times faster, and
the resize from there matches the full-size path closely (antialiased bicubic either way).

Workers hand back uint8 pixels (a quarter of the float32 bytes to pin and copy); scaling and
normalisation happen on the device. Nothing is ever replaced by a placeholder: an image that is
missing, empty, corrupt or a decompression bomb gets its status and a null embedding; one that
decodes but is not an RGB JPEG (PNG data, CMYK, grayscale) is converted to RGB, embedded, and
recorded with status ``converted`` and its format and mode.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .. import status as S
from ..io.multizip import Member, MemberError, MultiVolumeZip
from ..tables import MEMBER_COLUMNS

_RESAMPLE = {"bicubic": 3, "bilinear": 2, "nearest": 0, "lanczos": 1}  # PIL.Image.Resampling values


@dataclass(frozen=True)
class Preprocess:
    """What the model expects: input size, how to fit an image to it, and the normalisation."""

    size: tuple[int, int]  # (height, width)
    resize_mode: str = "shortest"  # shortest side to size then centre crop | squash
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

    @classmethod
    def from_open_clip(cls, net) -> "Preprocess":
        pc: Mapping[str, Any] = getattr(net.visual, "preprocess_cfg", {}) or {}
        size = pc.get("size", getattr(net.visual, "image_size", 224))
        size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        mode = pc.get("resize_mode", "shortest")
        if mode not in ("shortest", "squash"):
            raise ValueError(f"open_clip resize_mode {mode!r} is not supported by the image stage (shortest, squash)")
        return cls(size=size, resize_mode=mode, interpolation=pc.get("interpolation", "bicubic"),
                   mean=tuple(pc.get("mean", cls.mean)), std=tuple(pc.get("std", cls.std)))

    def fit(self, img):
        """Resize and crop a PIL image to ``size`` the way torchvision's Resize + CenterCrop do."""
        th, tw = self.size
        w, h = img.size
        resample = _RESAMPLE.get(self.interpolation, 3)
        if self.resize_mode == "squash":
            return img.resize((tw, th), resample)
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = min(th, tw), int(min(th, tw) * long / short)
        nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), resample)
        top, left = int(round((nh - th) / 2.0)), int(round((nw - tw) / 2.0))
        if top or left or (nw, nh) != (tw, th):
            img = img.crop((left, top, left + tw, top + th))
        return img


@dataclass
class Decoded:
    pixels: np.ndarray | None  # (H, W, 3) uint8, None when unreadable
    status: str
    error: str | None = None
    format: str | None = None
    mode: str | None = None
    width: int | None = None
    height: int | None = None


def decode(data: bytes, pre: Preprocess, name: str = "image", draft: bool = True,
           max_pixels: int = 50_000_000) -> Decoded:
    """One image's bytes to model-sized RGB pixels, or the reason it has none."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        return Decoded(None, S.EMPTY, f"{name}: zero bytes")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        return Decoded(None, S.CORRUPT, f"{name}: not an image PIL can identify ({len(data)} bytes, starts {data[:4].hex()})")
    except Image.DecompressionBombError as exc:
        return Decoded(None, S.TOO_LARGE, f"{name}: {exc}")
    except (OSError, SyntaxError, ValueError) as exc:
        return Decoded(None, S.CORRUPT, f"{name}: {exc}")
    fmt, mode, (w, h) = img.format, img.mode, img.size
    meta = dict(format=fmt, mode=mode, width=w, height=h)
    if w * h > max_pixels:
        return Decoded(None, S.TOO_LARGE, f"{name}: {w}x{h} = {w * h} pixels exceeds features.image_embedding.max_pixels "
                                          f"({max_pixels}); not decoded (decompression bomb?)", **meta)
    try:
        if draft and fmt == "JPEG":
            th, tw = pre.size
            img.draft(None, (tw, th))  # libjpeg decodes at 1/2, 1/4, 1/8 while both sides stay >= the input
        img.load()
        if img.mode != "RGB":
            img = img.convert("RGB")
        pixels = np.asarray(pre.fit(img))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return Decoded(None, S.CORRUPT, f"{name}: {type(exc).__name__}: {exc}", **meta)
    if fmt == "JPEG" and mode == "RGB":
        return Decoded(pixels, S.OK, None, **meta)
    return Decoded(pixels, S.CONVERTED, f"{name}: {fmt} {mode} data converted to RGB", **meta)


class ImageBatches:
    """A map-style dataset whose items are whole batches: ``ds[[i, j, ...]]`` reads and decodes
    those plan rows. Used with ``DataLoader(batch_size=None, sampler=BatchSampler(...))`` so each
    worker decodes a batch and returns it stacked, which keeps inter-process traffic to one
    message per batch."""

    def __init__(self, archive: MultiVolumeZip, members: Mapping[str, Any], pre: Preprocess, draft: bool = True,
                 max_pixels: int = 50_000_000, max_member_bytes: int | None = None):
        self.zf = archive
        self.members = {k: list(members[k]) for k in MEMBER_COLUMNS}
        self.pre = pre
        self.draft = draft
        self.max_pixels = max_pixels
        self.max_member_bytes = max_member_bytes
        self._configured = False

    def __len__(self) -> int:
        return len(self.members["member"])

    def _configure(self) -> None:
        from PIL import Image

        # our own max_pixels check governs; PIL's bomb guard must not fire first, nor warn
        Image.MAX_IMAGE_PIXELS = max(self.max_pixels, Image.MAX_IMAGE_PIXELS or 0)
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        self._configured = True

    def read(self, i: int) -> Decoded:
        m = Member(*(self.members[k][i] for k in MEMBER_COLUMNS))
        try:
            data = self.zf.read(m, max_size=self.max_member_bytes)
        except MemberError as exc:
            return Decoded(None, exc.status, f"{self.zf.last_volume.name}: {exc}")
        return decode(data, self.pre, m.name, self.draft, self.max_pixels)

    def __getitem__(self, rows) -> dict[str, Any]:
        import torch

        if not self._configured:
            self._configure()
        rows = [int(r) for r in rows]
        items = [self.read(i) for i in rows]
        good = [k for k, d in enumerate(items) if d.pixels is not None]
        th, tw = self.pre.size
        pixels = np.empty((len(good), th, tw, 3), dtype=np.uint8)
        for j, k in enumerate(good):
            pixels[j] = items[k].pixels
        return {
            "rows": torch.as_tensor(rows, dtype=torch.int64),
            "decoded": torch.as_tensor(good, dtype=torch.int64),
            "pixels": torch.from_numpy(pixels),  # NHWC uint8; scaled and normalised on the device
            "status": [d.status for d in items],
            "error": [d.error for d in items],
            "format": [d.format for d in items],
            "mode": [d.mode for d in items],
            "width": [d.width for d in items],
            "height": [d.height for d in items],
        }


def loader(dataset: ImageBatches, batch_size: int, workers: int, prefetch_factor: int, pin_memory: bool):
    """Batches in plan (archive) order, decoded by ``workers`` processes ahead of the model."""
    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

    sampler = BatchSampler(SequentialSampler(range(len(dataset))), batch_size, drop_last=False)
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs.update(prefetch_factor=prefetch_factor, persistent_workers=False)
    return DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=workers, pin_memory=pin_memory,
                      collate_fn=None, **kwargs)
