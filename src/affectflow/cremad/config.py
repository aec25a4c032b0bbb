"""Typed view of the ``cremad`` config section (workflow/rules/cremad.smk)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..dreaddit.config import validated

__all__ = ["CremadConfig", "AudioConfig", "VideoConfig", "TrainConfig", "validated"]


@dataclass(frozen=True)
class AudioConfig:
    workers: int
    speech: bool
    speech_batch_size: int
    speech_max_seconds: float
    device: str
    precision: str


@dataclass(frozen=True)
class VideoConfig:
    fps: float
    max_frames: int
    crop: str
    crop_fraction: float
    batch_size: int
    workers: int
    device: str
    precision: str


@dataclass(frozen=True)
class TrainConfig:
    seeds: tuple[int, ...]
    models: tuple[str, ...]
    hidden: int
    dropout: float
    lr: float
    weight_decay: float
    batch_size: int
    patience: int
    modality_dropout: float
    select_metric: str
    unimodal_epochs: int
    fusion_epochs: int
    end_to_end_epochs: int
    end_to_end_lr_scale: float
    stress_emotions: tuple[str, ...]
    bootstrap_resamples: int
    bootstrap_level: float
    bootstrap_seed: int

    @classmethod
    def from_dict(cls, t: Mapping) -> "TrainConfig":
        s, b = t["schedule"], t["bootstrap"]
        return cls(seeds=tuple(t["seeds"]), models=tuple(t["models"]), hidden=int(t["hidden"]),
                   dropout=float(t["dropout"]), lr=float(t["lr"]), weight_decay=float(t["weight_decay"]),
                   batch_size=int(t["batch_size"]), patience=int(t["patience"]),
                   modality_dropout=float(t["modality_dropout"]), select_metric=t["select_metric"],
                   unimodal_epochs=int(s["unimodal_epochs"]), fusion_epochs=int(s["fusion_epochs"]),
                   end_to_end_epochs=int(s["end_to_end_epochs"]), end_to_end_lr_scale=float(s["end_to_end_lr_scale"]),
                   stress_emotions=tuple(t["stress_emotions"]), bootstrap_resamples=int(b["resamples"]),
                   bootstrap_level=float(b["level"]), bootstrap_seed=int(b["seed"]))


@dataclass(frozen=True)
class CremadConfig:
    root: Path
    audio_dir: Path
    video_dir: Path
    video_extensions: tuple[str, ...]
    demographics: Path
    sentences: Path
    votes: Path
    shards: int
    min_duration_s: float
    silence_dbfs: float
    split_val: float
    split_test: float
    split_seed: int
    audio: AudioConfig
    video: VideoConfig
    text_batch_size: int
    train: TrainConfig
    results: Path

    @classmethod
    def from_config(cls, cfg: Mapping) -> "CremadConfig":
        """From a validated config (or a stage's sections with defaults filled)."""
        c = cfg["cremad"]
        root = Path(c["root"])
        return cls(root=root, audio_dir=root / c["audio_dir"], video_dir=root / c["video_dir"],
                   video_extensions=tuple(e.lstrip(".").lower() for e in c["video_extensions"]),
                   demographics=root / c["demographics"], sentences=root / c["sentences"], votes=root / c["votes"],
                   shards=int(c["shards"]), min_duration_s=float(c["min_duration_s"]),
                   silence_dbfs=float(c["silence_dbfs"]), split_val=float(c["split"]["val"]),
                   split_test=float(c["split"]["test"]), split_seed=int(c["split"]["seed"]),
                   audio=AudioConfig(**c["audio"]), video=VideoConfig(**c["video"]),
                   text_batch_size=int(c["text"]["batch_size"]), train=TrainConfig.from_dict(c["train"]),
                   results=Path(cfg.get("results", "results")))
