"""Typed view of the ``dreaddit`` config section (workflow/rules/dreaddit.smk)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping


def validated(cfg: Mapping) -> dict:
    """A copy of a stage's config sections with the schema's defaults filled (rules pass only the
    sections a stage reads, so keys left out are the defaults)."""
    from .. import config as C

    return C.validate(copy.deepcopy(dict(cfg)))


@dataclass(frozen=True)


class SplitConfig:
    """``dreaddit.split``: the validation share of labelled train rows, its seed, grouping by Reddit post."""

    val_fraction: float
    seed: int
    group_by_post: bool


@dataclass(frozen=True)


class SynthesisConfig:
    """``dreaddit.synthesis``: prompt template, diffusion sampling, device/precision, batching, PNG writing."""

    template: str
    negative_prompt: str | None
    max_prompt_tokens: int | None
    steps: int
    guidance: float
    width: int
    height: int
    batch_size: int
    seed: int
    device: str
    precision: str
    safety_checker: bool
    attention_slicing: str
    compile: bool
    png_compress_level: int
    writers: int


@dataclass(frozen=True)


class ClipConfig:
    """``dreaddit.clip``: the long-text rule, batching, decode workers, device/precision."""

    long_text: str  # window_mean | truncate
    batch_size: int
    workers: int
    device: str
    precision: str


@dataclass(frozen=True)


class DreadditConfig:
    """The ``dreaddit`` section (with ``results``), typed."""

    train: Path
    test: Path
    shards: int
    split: SplitConfig
    synthesis: SynthesisConfig
    clip: ClipConfig
    results: Path

    @classmethod
    def from_config(cls, cfg: Mapping) -> "DreadditConfig":
        """From a config whose ``dreaddit`` section is complete (see :func:`validated`).

        Raises:
            KeyError: a key of the section is missing; TypeError: an unknown key.
        """
        d = cfg["dreaddit"]
        return cls(train=Path(d["train"]), test=Path(d["test"]), shards=int(d["shards"]),
                   split=SplitConfig(**d["split"]), synthesis=SynthesisConfig(**d["synthesis"]),
                   clip=ClipConfig(**d["clip"]), results=Path(cfg.get("results", "results")))

    @property
    def images_dir(self) -> Path:
        """Where synthesis keeps the images (``synthesize_shard``'s ``images`` path in the layout)."""
        from ..layout import path

        return Path(path("synthesize_shard", "images", {"results": str(self.results)}))
