"""JPEG decoding on the GPU for the image stage: workers only read bytes, nvJPEG decodes.

On a GPU node the CPU decode bounds the CLIP stage (~170 reduced-size decodes/s per core on the
machines measured; 16 cores feed ViT-B/32 ~2,700 images/s while the GPU idles). With
``features.image_embedding.decode: gpu`` (or ``auto`` on a CUDA device):

* DataLoader workers read each member's bytes from the volumes and look at its header only
  (PIL's lazy ``Image.open``: format, mode, size). A complete RGB JPEG within ``max_pixels`` is
  sent to the device as bytes; everything else (PNG data, CMYK, grayscale, truncated files, too
  large, unreadable) is decoded in the worker by the CPU decoder
  (:func:`image_decode.decode`), exactly as with ``decode: cpu``, so the statuses are today's.
* The main process decodes the batch's JPEG bytes with
  ``torchvision.io.decode_jpeg(list, device=...)`` (batched nvJPEG on CUDA). If the batch call
  fails, each image is decoded alone; an image the device decoder rejects falls back to the CPU
  decoder, which gives its pixels or its status.
* Resize and centre crop run as torch ops on the decoded uint8 tensors, matching open_clip's
  inference transform (``Resize(shortest side, bicubic, antialias)`` + ``CenterCrop``, PIL's
  rounding to uint8 after the resize); :func:`fit_tensors` runs on CPU tensors too, which is how
  the tests check it against the PIL path.

The device path decodes at full size (nvJPEG has no reduced-scale decode like PIL's ``draft``);
its pixels are compared with the CPU path's ``draft=False`` pixels.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np

from .. import status as S
from .image_decode import EOI, Decoded, ImageBatches, Preprocess, decode, fitted_size

DECODE_MODES = ("cpu", "gpu", "auto")
_TORCH_INTERPOLATION = {"bicubic": "BICUBIC", "bilinear": "BILINEAR", "nearest": "NEAREST"}
# torchvision 0.29 marks its image codecs deprecated in favour of torchcodec; decode_jpeg still works
# (batched nvJPEG on CUDA), so the warning is noise in every job log until the move to torchcodec.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                        category=DeprecationWarning)


def resolve_decode(mode: str, device):
    """Where JPEGs are decoded: ``None`` for the CPU decoder in the workers, else the torch device.

    Args:
        mode: ``features.image_embedding.decode``: ``cpu``, ``gpu`` or ``auto`` (``gpu`` when the
            stage runs on a CUDA device).
        device: the stage's ``torch.device``.

    Returns:
        ``None`` (CPU decoding) or the CUDA ``torch.device`` nvJPEG decodes on.

    Raises:
        ValueError: ``gpu`` requested while the stage runs on a CPU, or an unknown mode.
    """
    if mode not in DECODE_MODES:
        raise ValueError(f"features.image_embedding.decode: {mode!r} is not one of {DECODE_MODES}")
    if mode == "cpu" or (mode == "auto" and device.type != "cuda"):
        return None
    if device.type != "cuda":
        raise ValueError(f"features.image_embedding.decode: gpu needs the stage on a CUDA device (features.device "
                         f"resolved to {device}); use cpu or auto")
    return device


def device_candidate(data: bytes, pre: Preprocess, max_pixels: int) -> Decoded | None:
    """Header-only look at one image: a pixel-less ``ok`` :class:`Decoded` with its facts when the
    device decoder should take it, else ``None`` (the CPU decoder decides: conversion, repair,
    status, error).

    The device takes a complete 8-bit RGB JPEG whose size, and size once resized to the model's
    input (:func:`image_decode.fitted_size`), stay within ``max_pixels``. A JPEG whose bytes do not
    end with the end-of-image marker (cut, or its marker lost) goes to the CPU decoder, which tells
    a cut file (``corrupt``) from a complete scan (``repaired``); nvJPEG may not.
    """
    from PIL import Image

    if not data or not data.rstrip(b"\x00").endswith(EOI):
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, mode, (w, h) = img.format, img.mode, img.size
    except Exception:  # noqa: BLE001  (whatever PIL makes of it, the CPU decoder labels it)
        return None
    if fmt != "JPEG" or mode != "RGB" or w * h > max_pixels:
        return None
    fw, fh = fitted_size(pre, w, h)
    if fw * fh > max_pixels:
        return None
    return Decoded(None, S.OK, None, format=fmt, mode=mode, width=w, height=h)


class ByteBatches(ImageBatches):
    """:class:`image_decode.ImageBatches` for device decoding: a batch carries the bytes of its
    device-decodable JPEGs instead of their pixels.

    Extra keys of a batch: ``jpeg_at`` (int64 positions in ``rows`` whose bytes travel),
    ``jpeg_bytes`` (uint8, those members' bytes end to end: one tensor, so one shared-memory
    handle per batch) and ``jpeg_offsets`` (int64, ``len(jpeg_at) + 1`` cut points), ``jpeg_name``
    (member names, for fallback errors). Their rows already hold status ``ok`` and the header
    facts; ``decoded``/``pixels`` cover only what the worker's CPU decoder produced.
    """

    def __getitem__(self, rows) -> dict[str, Any]:
        import torch

        if not self._configured:
            self._configure()
        rows = [int(r) for r in rows]
        items: list[Decoded] = []
        at, chunks, names = [], [], []
        for k, i in enumerate(rows):
            got = self.read_bytes(i)
            if isinstance(got, Decoded):
                items.append(got)
                continue
            data, name = got
            cand = device_candidate(data, self.pre, self.max_pixels)
            if cand is None:
                items.append(decode(data, self.pre, name, self.draft, self.max_pixels))
                continue
            items.append(cand)
            at.append(k)
            chunks.append(data)
            names.append(name)
        batch = self.collate(rows, items)
        offsets = np.zeros(len(chunks) + 1, np.int64)
        offsets[1:] = np.cumsum([len(c) for c in chunks])
        batch.update(jpeg_at=torch.as_tensor(at, dtype=torch.int64),
                     jpeg_bytes=torch.frombuffer(bytearray(b"".join(chunks)) or bytearray(1), dtype=torch.uint8),
                     jpeg_offsets=torch.from_numpy(offsets), jpeg_name=names)
        return batch


def fit_tensors(images: list, pre: Preprocess, chunk: int = 64):
    """Decoded images to model-sized pixels with torch ops, the way open_clip's transform does.

    Args:
        images: ``(3, H_i, W_i)`` uint8 tensors, all on one device (sizes may differ).
        pre: the model's :class:`image_decode.Preprocess` (size, resize mode, interpolation).
        chunk: images resized together at most (images of one size are stacked; bounds memory).

    Returns:
        ``(N, 3, H, W)`` float32 on the images' device, values 0..255 rounded to integers as PIL's
        uint8 resize leaves them (not yet normalised).

    Raises:
        ValueError: an interpolation torch has no kernel for (lanczos).
    """
    import torch
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    if pre.interpolation not in _TORCH_INTERPOLATION:
        raise ValueError(f"decode on the device: interpolation {pre.interpolation!r} has no torch kernel "
                         f"({sorted(_TORCH_INTERPOLATION)}); use decode: cpu")
    interp = InterpolationMode[_TORCH_INTERPOLATION[pre.interpolation]]
    th, tw = pre.size
    device = images[0].device if images else torch.device("cpu")
    out = torch.empty((len(images), 3, th, tw), dtype=torch.float32, device=device)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for k, img in enumerate(images):
        by_shape.setdefault(tuple(img.shape[-2:]), []).append(k)
    for (h, w), idx in by_shape.items():
        nw, nh = fitted_size(pre, w, h)  # as torchvision's Resize: shortest side to the input size (or squash)
        top, left = int(round((nh - th) / 2.0)), int(round((nw - tw) / 2.0))
        for s in range(0, len(idx), chunk):
            part = idx[s:s + chunk]
            x = torch.stack([images[k] for k in part]).float()
            if nw != w:  # PIL resizes in two passes, horizontal then vertical, rounding to uint8 after each
                x = F.resize(x, [h, nw], interpolation=interp, antialias=True).round_().clamp_(0, 255)
            if nh != h:
                x = F.resize(x, [nh, nw], interpolation=interp, antialias=True).round_().clamp_(0, 255)
            out[part] = x[:, :, top:top + th, left:left + tw]
    return out


class DeviceDecoder:
    """Decodes a :class:`ByteBatches` batch's JPEG bytes on ``device`` and returns the batch's
    model-sized pixels; updates the batch in place for images it had to hand to the CPU decoder.

    Call with a batch; returns ``(len(batch["decoded"]), 3, H, W)`` float32 on ``device`` (0..255,
    not normalised), in the order of ``batch["decoded"]``, which it rewrites to include the
    device-decoded rows. ``fallbacks`` counts images the device decoder rejected.
    """

    def __init__(self, pre: Preprocess, device, draft: bool = True, max_pixels: int = 50_000_000):
        self.pre, self.device, self.draft, self.max_pixels = pre, device, draft, max_pixels
        self.fallbacks = 0
        fit_tensors([], pre)  # fail at start-up, not on the first batch, for an unsupported interpolation

    def _decode(self, datas: list) -> list:
        """Device tensors, ``None`` where the device decoder refused the image."""
        from torchvision.io import ImageReadMode, decode_jpeg

        if not datas:
            return []
        try:
            return list(decode_jpeg(datas, mode=ImageReadMode.RGB, device=self.device))
        except RuntimeError:  # one bad image fails the batched call: decode one by one
            out = []
            for d in datas:
                try:
                    out.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=self.device))
                except RuntimeError:
                    out.append(None)
            return out

    def __call__(self, batch: dict[str, Any]):
        import torch

        from ..inference.device import to_device

        at = batch["jpeg_at"].tolist()
        buf, off = batch["jpeg_bytes"], batch["jpeg_offsets"].tolist()
        datas = [buf[off[j]:off[j + 1]] for j in range(len(at))]
        images = self._decode(datas)
        dev_pos, dev_imgs, cpu_extra = [], [], []
        for j, img in enumerate(images):
            if img is not None:
                dev_pos.append(at[j])
                dev_imgs.append(img)
                continue
            self.fallbacks += 1
            d = decode(bytes(datas[j].cpu().numpy()), self.pre, batch["jpeg_name"][j], self.draft, self.max_pixels)
            k = at[j]
            for key in ("status", "error", "format", "mode", "width", "height"):
                batch[key][k] = getattr(d, key)
            if d.pixels is not None:
                cpu_extra.append((k, d.pixels))
        th, tw = self.pre.size
        cpu_pos = batch["decoded"].tolist() + [k for k, _ in cpu_extra]
        host = batch["pixels"]
        if cpu_extra:
            host = torch.cat([host, torch.from_numpy(np.stack([p for _, p in cpu_extra]))])
        parts = [to_device(host, self.device).permute(0, 3, 1, 2).float()] if len(cpu_pos) else []
        if dev_imgs:
            parts.append(fit_tensors(dev_imgs, self.pre))
        pos = cpu_pos + dev_pos
        order = sorted(range(len(pos)), key=pos.__getitem__)
        batch["decoded"] = torch.as_tensor([pos[i] for i in order], dtype=torch.int64)
        if not parts:
            return torch.zeros((0, 3, th, tw), dtype=torch.float32, device=self.device)
        x = torch.cat(parts) if len(parts) > 1 else parts[0]
        return x[torch.as_tensor(order, device=x.device)] if order != list(range(len(order))) else x
