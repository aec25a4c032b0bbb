"""Typed view of the ``features`` config section (each rule passes its slice: ``affectflow.layout.params``)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)


class TextStageConfig:
    """Settings of a text model stage (sentiment, text embeddings)."""

    threads: int
    batch_size: int  # texts per batch at most
    max_tokens: int  # padded tokens per batch at most: long texts make smaller batches
    max_length: int | None  # tokens per text; None: the model's own limit
    window: int  # posts tokenised and sorted by length together (bounds memory)

    @classmethod
    def from_section(cls, sec: Mapping[str, Any]) -> "TextStageConfig":
        """From a complete ``features.sentiment`` or ``features.text_embedding`` section."""
        return cls(threads=int(sec["threads"]), batch_size=int(sec["batch_size"]), max_tokens=int(sec["max_tokens"]),
                   max_length=None if sec.get("max_length") is None else int(sec["max_length"]),
                   window=int(sec["window"]))


@dataclass(frozen=True)


class ImageStageConfig:
    """Settings of the CLIP image stage: batching, decoding workers, decode limits."""

    threads: int
    batch_size: int
    workers: int | str  # DataLoader decode processes, or "auto" (from the job's threads)
    prefetch_factor: int
    draft: bool  # decode JPEGs at a reduced scale when the model's input is smaller (PIL draft)
    max_pixels: int  # an image whose header declares more pixels is refused (decompression bomb)
    pin_memory: bool
    decode: str = "auto"  # where JPEGs are decoded: cpu (PIL in the workers) | gpu (nvJPEG) | auto (gpu on CUDA)

    @classmethod
    def from_section(cls, sec: Mapping[str, Any]) -> "ImageStageConfig":
        """From a complete ``features.image_embedding`` section."""
        return cls(threads=int(sec["threads"]), batch_size=int(sec["batch_size"]), workers=sec["workers"],
                   prefetch_factor=int(sec["prefetch_factor"]), draft=bool(sec["draft"]),
                   max_pixels=int(sec["max_pixels"]), pin_memory=bool(sec["pin_memory"]), decode=str(sec["decode"]))

    def n_workers(self, threads: int, device_type: str) -> int:
        """Decode processes: what config says, else all but one of the job's cores on a GPU (the
        GPU does the maths, the cores decode) and a quarter of them on CPU (where the cores do both)."""
        if self.workers != "auto":
            return int(self.workers)
        return max(threads - 1, 0) if device_type == "cuda" else max(threads // 4, 1 if threads > 1 else 0)


@dataclass(frozen=True)


class FeaturesConfig:
    """The ``features`` section: device and precision shared by the three stages, and each stage's settings."""

    device: str  # auto | cpu | cuda | cuda:N
    precision: str  # auto | fp32 | fp16 | bf16
    sentiment: TextStageConfig
    text_embedding: TextStageConfig
    image_embedding: ImageStageConfig

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "FeaturesConfig":
        """From the ``features`` section; a rule passes only its own stage's part, so the schema
        fills the rest with defaults (and checks what is there).

        Raises:
            ConfigError: the section does not match the schema.
        """
        from ..config import validate

        f = validate({"features": copy.deepcopy(dict(cfg.get("features") or {}))})["features"]
        return cls(device=str(f["device"]), precision=str(f["precision"]),
                   sentiment=TextStageConfig.from_section(f["sentiment"]),
                   text_embedding=TextStageConfig.from_section(f["text_embedding"]),
                   image_embedding=ImageStageConfig.from_section(f["image_embedding"]))

    def placement(self, threads: int):
        """Device, dtype and threads of a feature job (:func:`inference.device.place`): bf16/fp16 on
        a GPU, bf16 on CPUs with native bf16 units, fp32 elsewhere; TF32 on CUDA.

        Args:
            threads: the job's cores.

        Returns:
            An :class:`~affectflow.inference.device.Placement`.

        Raises:
            DeviceMissing: ``features.device`` names CUDA and no GPU is visible.
        """
        from ..inference.device import place

        return place(self.device, self.precision, threads=threads, cpu_half="native", cuda_fast=True,
                       what="features.device")

