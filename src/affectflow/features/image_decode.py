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
recorded with status ``converted`` and its format and mode. High-bit-depth and float pixels are
rescaled to 8 bits (or ``unsupported`` where their scale is unknown), never clipped; a JPEG whose
end marker is missing but whose scan is complete is decoded (``repaired``).
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
        """The preprocessing an open_clip model was trained with (its ``visual.preprocess_cfg``).

        Raises:
            ValueError: the model resizes in a way the stage does not reproduce (not shortest/squash).
        """
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
    """One image's decode result: pixels or the reason there are none, and what the bytes were."""

    pixels: np.ndarray | None  # (H, W, 3) uint8, None when unreadable
    status: str
    error: str | None = None
    format: str | None = None
    mode: str | None = None
    width: int | None = None
    height: int | None = None


EOI = b"\xff\xd9"  # JPEG end-of-image marker


def _load(data: bytes, pre: Preprocess, draft: bool):
    """Open and fully decode ``data`` (at draft scale for JPEG when ``draft``)."""
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    if draft and img.format == "JPEG":
        th, tw = pre.size
        img.draft(None, (tw, th))  # libjpeg decodes at 1/2, 1/4, 1/8 while both sides stay >= the input
    img.load()
    return img


def _without_end_marker(data: bytes, pre: Preprocess, draft: bool):
    """A JPEG whose scan is complete but whose end-of-image marker is missing, decoded; or None.

    Pillow reports such a file truncated: libjpeg reads ahead for the marker that would end the
    scan. With the marker appended the scan decodes; whether it was complete is checked by
    decoding once more with filler bytes before the marker: a complete scan never reads them (same
    pixels), a cut one decodes them as data (other pixels), and stays ``corrupt``.
    """
    if data.rstrip(b"\x00").endswith(EOI):
        return None
    try:
        img = _load(data + EOI, pre, draft)
        other = _load(data + b"\x55" * 64 + EOI, pre, draft)
    except (OSError, SyntaxError, ValueError):
        return None
    return img if np.array_equal(np.asarray(img), np.asarray(other)) else None


def _to_8bit(img, name: str):
    """High-bit-depth and float pixels rescaled to 8 bits (PIL's ``convert`` clips them instead:
    a 16-bit ramp came out white). Returns ``(image, note)``; raises ValueError where the range
    the values stand for is unknown."""
    from PIL import Image

    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(img).astype(np.int64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ValueError(f"{name}: 32-bit integer pixels outside 0..65535: their scale is unknown")
        return Image.fromarray(((a + 128) // 257).astype(np.uint8), "L"), "16-bit grayscale rescaled to 8 bits"
    if mode == "F":
        a = np.asarray(img, dtype=np.float64)
        if a.size and not (np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1):
            raise ValueError(f"{name}: floating-point pixels outside 0..1: their scale is unknown")
        return Image.fromarray(np.rint(a * 255).astype(np.uint8), "L"), "floating-point pixels rescaled to 8 bits"
    return img, None


def fitted_size(pre: Preprocess, w: int, h: int) -> tuple[int, int]:
    """``(width, height)`` :meth:`Preprocess.fit` resizes a ``w`` x ``h`` image to before cropping."""
    th, tw = pre.size
    if pre.resize_mode == "squash":
        return tw, th
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = min(th, tw), int(min(th, tw) * long / max(short, 1))
    return (new_short, new_long) if w <= h else (new_long, new_short)


def decode(data: bytes, pre: Preprocess, name: str = "image", draft: bool = True,
           max_pixels: int = 50_000_000) -> Decoded:
    """One image's bytes to model-sized RGB pixels, or the reason it has none.

    Args:
        data: the file's bytes.
        pre: the model's input size and resize mode.
        name: the member name, for messages.
        draft: let libjpeg decode JPEG at a reduced scale.
        max_pixels: images with more pixels, or whose resize to the input would need more, are
            ``too_large`` and not decoded.

    Returns:
        :class:`Decoded`: pixels ``(H, W, 3)`` uint8 with ``ok``, ``converted`` (not an 8-bit RGB
        JPEG: converted, rescaled to 8 bits where deeper) or ``repaired`` (a JPEG without its end
        marker whose scan is complete); else no pixels and ``empty``, ``corrupt``,
        ``unsupported`` or ``too_large``.
    """
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
    except MemoryError:
        return Decoded(None, S.TOO_LARGE, f"{name}: out of memory opening {len(data)} bytes")
    fmt, mode, (w, h) = img.format, img.mode, img.size
    meta = dict(format=fmt, mode=mode, width=w, height=h)
    if w * h > max_pixels:
        return Decoded(None, S.TOO_LARGE, f"{name}: {w}x{h} = {w * h} pixels exceeds features.image_embedding.max_pixels "
                                          f"({max_pixels}); not decoded (decompression bomb?)", **meta)
    fw, fh = fitted_size(pre, w, h)
    if fw * fh > max_pixels:
        return Decoded(None, S.TOO_LARGE, f"{name}: {w}x{h} (aspect ratio {max(w, h) / max(min(w, h), 1):.0f}:1) would be "
                                          f"resized to {fw}x{fh} = {fw * fh} pixels before the crop, over max_pixels "
                                          f"({max_pixels}); not decoded", **meta)
    status, note = S.OK if (fmt == "JPEG" and mode == "RGB") else S.CONVERTED, None
    try:
        try:
            img = _load(data, pre, draft)
        except OSError:
            img = _without_end_marker(data, pre, draft) if fmt == "JPEG" else None
            if img is None:
                raise
            status, note = S.REPAIRED, f"{name}: JPEG end-of-image marker missing; the scan is complete and decoded"
        img, deep = _to_8bit(img, name)
        if img.mode != "RGB":
            img = img.convert("RGB")
        pixels = np.asarray(pre.fit(img))
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        return Decoded(None, S.CORRUPT, f"{name}: {type(exc).__name__}: {exc}", **meta)
    except ValueError as exc:
        return Decoded(None, S.UNSUPPORTED if "scale is unknown" in str(exc) else S.CORRUPT,
                       f"{name}: {exc}" if name not in str(exc) else str(exc), **meta)
    except MemoryError:
        return Decoded(None, S.TOO_LARGE, f"{name}: out of memory decoding {w}x{h} {fmt} {mode}", **meta)
    if status == S.OK:
        return Decoded(pixels, S.OK, None, **meta)
    if status == S.CONVERTED:
        note = f"{name}: {fmt} {mode} data " + (f"{deep}, converted to RGB" if deep else "converted to RGB")
    return Decoded(pixels, status, note, **meta)


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

    def read_bytes(self, i: int) -> tuple[bytes, str] | Decoded:
        """Plan row ``i``'s bytes and member name, or a pixel-less :class:`Decoded` with the read fault."""
        m = Member(*(self.members[k][i] for k in MEMBER_COLUMNS))
        try:
            return self.zf.read(m, max_size=self.max_member_bytes), m.name
        except MemberError as exc:
            return Decoded(None, exc.status, f"{self.zf.last_volume.name}: {exc}")
        except MemoryError:  # one item's fault, not the batch's
            return Decoded(None, S.TOO_LARGE, f"{m.name}: out of memory reading {m.uncompressed_size} bytes")

    def read(self, i: int) -> Decoded:
        got = self.read_bytes(i)
        if isinstance(got, Decoded):
            return got
        return decode(got[0], self.pre, got[1], self.draft, self.max_pixels)

    def __getitem__(self, rows) -> dict[str, Any]:
        if not self._configured:
            self._configure()
        rows = [int(r) for r in rows]
        return self.collate(rows, [self.read(i) for i in rows])

    def collate(self, rows: list[int], items: list[Decoded]) -> dict[str, Any]:
        """One batch dict: ``rows`` (int64 plan rows), ``decoded`` (int64 positions in ``rows`` that
        have pixels), ``pixels`` ((len(decoded), H, W, 3) uint8 NHWC), and per row ``status``,
        ``error``, ``format``, ``mode``, ``width``, ``height`` (lists)."""
        import torch

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
    """Batches in plan (archive) order, decoded by ``workers`` processes ahead of the model.

    Args:
        dataset: the images to read.
        batch_size: images per batch (the last may be smaller).
        workers: decode processes; 0 decodes in this process.
        prefetch_factor: batches each worker prepares ahead.
        pin_memory: pin the batches (GPU).

    Returns:
        A DataLoader yielding :meth:`ImageBatches.__getitem__` dicts: ``rows`` and ``decoded``
        (int64 tensors), ``pixels`` ``(decoded, H, W, 3)`` uint8, and per image ``status``,
        ``error``, ``format``, ``mode``, ``width``, ``height`` lists.
    """
    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

    sampler = BatchSampler(SequentialSampler(range(len(dataset))), batch_size, drop_last=False)
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs.update(prefetch_factor=prefetch_factor, persistent_workers=False)
    return DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=workers, pin_memory=pin_memory,
                      collate_fn=None, **kwargs)
