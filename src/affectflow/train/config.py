"""Typed views of the ``train`` config section (see workflow/schemas/config.schema.yaml)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Mapping


# Which modalities each model kind reads: the one table (heads, dataset checks, config checks, layout).
MODEL_MODALITIES = {
    "engagement": {"text": ("text",), "image": ("image",), "metadata": ("metadata",),
                   "fusion": ("text", "image", "metadata")},
    "stress": {"text": ("text",), "image": ("image",), "fusion": ("text", "image"), "lexical": ("lexical",),
               "text_lexical": ("text", "lexical"), "text2": ("text2",), "text_text2": ("text", "text2"),
               "text2_lexical": ("text2", "lexical"), "text_text2_lexical": ("text", "text2", "lexical")},
}


def modalities_of(task: str, model: str) -> tuple[str, ...]:
    """The modalities a model kind reads (``text_text2_lexical`` -> text, text2, lexical); ValueError if unknown."""
    try:
        return MODEL_MODALITIES[task][model]
    except KeyError:
        raise ValueError(f"unknown model {model!r} for task {task!r}: one of {sorted(MODEL_MODALITIES.get(task, {}))}") from None


@dataclass(frozen=True)
class SweepConfig:
    executor: str = "auto"
    trials_per_job: int = 8
    max_parallel_jobs: int = 2
    cpus_per_job: int = 1
    mem_gb: float = 8
    gpus_per_job: int = 0
    timeout_min: int = 120
    slurm_partition: str | None = None
    slurm_account: str | None = None
    slurm_additional: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping) -> "SweepConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def resolved(self, snakemake_executor: str | None = None) -> "SweepConfig":
        """``auto`` made concrete: SLURM arrays when Snakemake itself runs on SLURM, else local."""
        if self.executor != "auto":
            return self
        import dataclasses

        return dataclasses.replace(self, executor="slurm" if snakemake_executor == "slurm" else "local")


@dataclass(frozen=True)


class HeadConfig:
    """How the heads on frozen features train: the grid, the epochs budget, the selection metric."""

    task: str  # "engagement" (regression) | "stress" (classification)
    models: tuple[str, ...]
    grid: Mapping[str, tuple]
    epochs: int
    patience: int
    batch_size: int
    modality_dropout: float
    select_metric: str

    @property
    def kind(self) -> str:
        return "regression" if self.task == "engagement" else "classification"

    def grid_points(self) -> list[dict[str, Any]]:
        """Every combination of the grid's values, in a stable order."""
        keys = sorted(self.grid)
        return [dict(zip(keys, vals)) for vals in itertools.product(*(self.grid[k] for k in keys))]

    @classmethod
    def from_dict(cls, task: str, d: Mapping) -> "HeadConfig":
        return cls(task=task, models=tuple(d["models"]), grid={k: tuple(v) for k, v in d["grid"].items()},
                   epochs=int(d["epochs"]), patience=int(d["patience"]), batch_size=int(d["batch_size"]),
                   modality_dropout=float(d["modality_dropout"]), select_metric=d["select_metric"])


@dataclass(frozen=True)


class EngagementTarget:
    comment_weight: float = 2.0
    per_follower: bool = True
    text_features: str = "caption"  # caption | features (caption + comments: leaks the target)


@dataclass(frozen=True)


class SplitFractions:
    val: float = 0.15
    test: float = 0.15
    seed: int = 0


@dataclass(frozen=True)


class FinetuneConfig:
    enabled: bool
    epochs: int
    lr: float
    head_lr: float
    weight_decay: float
    batch_size: int
    workers: int
    precision: str

    @classmethod
    def from_dict(cls, d: Mapping) -> "FinetuneConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class FinetuneTextConfig:
    """``train.stress.finetune_text``: full fine-tuning of the encoder ``models.<model>``."""

    enabled: bool
    model: str
    epochs: int
    lr: float
    head_lr: float
    weight_decay: float
    batch_size: int
    max_length: int
    warmup: float
    precision: str
    seeds: tuple[int, ...] | None

    @classmethod
    def from_dict(cls, d: Mapping) -> "FinetuneTextConfig":
        kw = {k: d[k] for k in cls.__dataclass_fields__}
        kw["seeds"] = tuple(kw["seeds"]) if kw["seeds"] is not None else None
        return cls(**kw)


@dataclass(frozen=True)
class LexicalConfig:
    """``train.stress.lexical``: Dreaddit's own text-derived columns as the ``lexical`` modality."""

    enabled: bool
    prefixes: tuple[str, ...]
    subreddit: bool
    social: bool


@dataclass(frozen=True)
class EnsembleConfig:
    """``train.stress.ensemble``: an average of probabilities, members/weights/threshold chosen on val."""

    enabled: bool
    max_members: int
    weights: tuple[float, ...]
    threshold: bool


@dataclass(frozen=True)
class TrainConfig:
    seeds: tuple[int, ...]
    device: str
    bootstrap_resamples: int
    bootstrap_level: float
    bootstrap_seed: int
    sweep: SweepConfig
    engagement: HeadConfig
    target: EngagementTarget
    split: SplitFractions
    stress: HeadConfig
    finetune: FinetuneConfig
    finetune_text: FinetuneTextConfig
    lexical: LexicalConfig
    ensemble: EnsembleConfig
    bootstrap_unit: str = "group"

    def head(self, task: str) -> HeadConfig:
        if task not in ("engagement", "stress"):
            raise ValueError(f"unknown task {task!r}: engagement or stress")
        return self.engagement if task == "engagement" else self.stress

    @classmethod
    def from_config(cls, cfg: Mapping) -> "TrainConfig":
        """From the whole (validated) config or a stage's section dict; defaults filled by validation."""
        import copy

        from .. import config as C

        t = C.validate({"train": copy.deepcopy(dict(cfg.get("train", {})))})["train"]
        e, s, b = t["engagement"], t["stress"], t["bootstrap"]
        return cls(
            seeds=tuple(t["seeds"]), device=t["device"],
            bootstrap_resamples=int(b["resamples"]), bootstrap_level=float(b["level"]), bootstrap_seed=int(b["seed"]),
            sweep=SweepConfig.from_dict(t["sweep"]),
            engagement=HeadConfig.from_dict("engagement", e),
            target=EngagementTarget(comment_weight=float(e["comment_weight"]), per_follower=bool(e["per_follower"]),
                                    text_features=e["text_features"]),
            split=SplitFractions(**e["split"]),
            stress=HeadConfig.from_dict("stress", s),
            finetune=FinetuneConfig.from_dict(s["finetune"]),
            finetune_text=FinetuneTextConfig.from_dict(s["finetune_text"]),
            lexical=LexicalConfig(enabled=bool(s["lexical"]["enabled"]), prefixes=tuple(s["lexical"]["prefixes"]),
                                  subreddit=bool(s["lexical"]["subreddit"]), social=bool(s["lexical"]["social"])),
            ensemble=EnsembleConfig(enabled=bool(s["ensemble"]["enabled"]), max_members=int(s["ensemble"]["max_members"]),
                                    weights=tuple(float(w) for w in s["ensemble"]["weights"]),
                                    threshold=bool(s["ensemble"]["threshold"])),
            bootstrap_unit=b["unit"],
        )
