"""The workflow's layout: for every rule, where its files go, which jobs it has, what config it reads.

This table is the one place each of these facts is written. The ``.smk`` files take their
``output:``, ``log:``, ``benchmark:`` and ``params: cfg=`` from it (through the helpers of
``workflow/rules/common.smk``), ``affectflow status`` (:mod:`affectflow.ops.run_status`) builds
its registry from it, and stages rebuild their provenance section with :func:`params`, so a path
or a config slice changes here and nowhere else. ``tests/workflow/test_layout.py`` checks the
table against a dry-run of the real workflow.

Patterns are ``str.format`` templates: ``{results}``, ``{logs}``, ``{models[dir]}`` come from the
config, and the rule's wildcards (``{shard}``, ``{seed}``, ``{key}``) stay wildcards in the rules
(:func:`fill` leaves every name it is not given in braces).

Example:
    >>> cfg = {"results": "results", "logs": "logs", "instagram": {"shards": 2}}
    >>> fill(RULES["instagram_ingest"].outputs["shard"], cfg)
    'results/instagram/posts/shard-{shard}.parquet'
    >>> shard_ids(cfg, "instagram")
    ['00000', '00001']
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from .config import stage_params, text2_readers

Wildcards = dict[str, str]

#: Every rule's benchmark lives under this folder, at its log's path (``.tsv`` for ``.log``);
#: ``report_assets`` reads the folder.
BENCHMARKS = "{logs}/benchmarks"

# -- which jobs a rule has ----------------------------------------------------------------------


def shard_ids(cfg: Mapping, dataset: str) -> list[str]:
    """The shard wildcard values of a dataset (``instagram``, ``dreaddit`` or ``cremad``).

    Args:
        cfg: the config (at least ``cfg[dataset]["shards"]``).
        dataset: the top-level section holding ``shards``.

    Returns:
        ``["00000", "00001", ...]``, five digits (the rules' ``shard`` wildcard constraint).
    """
    return [f"{i:05d}" for i in range(int(cfg[dataset]["shards"]))]


def model_keys(cfg: Mapping) -> list[str]:
    """The configured models (``models.<key>`` mappings; ``models.dir`` is not one)."""
    return [k for k, v in cfg.get("models", {}).items() if isinstance(v, dict)]


def synthesis_models(cfg: Mapping) -> list[str]:
    """The models ``synthesize_shard`` loads: the diffusion pipeline, and the safety checker when
    ``dreaddit.synthesis.safety_checker`` is on and ``models.safety_checker`` is configured."""
    keys = ["diffusion"]
    if cfg["dreaddit"]["synthesis"]["safety_checker"] and "safety_checker" in cfg["models"]:
        keys.append("safety_checker")
    return keys


def finetune_enabled(cfg: Mapping) -> bool:
    """``train.stress.finetune.enabled``: whether ``finetune_stress`` runs (one job per seed)."""
    return bool(cfg.get("train", {}).get("stress", {}).get("finetune", {}).get("enabled", True))


def finetune_text_seeds(cfg: Mapping) -> list[str]:
    """The ``seed`` wildcard values of ``finetune_text``: ``train.stress.finetune_text.seeds``
    (``train.seeds`` when null); none unless ``train.stress.finetune_text.enabled``."""
    ft = cfg.get("train", {}).get("stress", {}).get("finetune_text", {})
    if not ft.get("enabled", False):
        return []
    seeds = ft.get("seeds")
    return [str(s) for s in seeds] if seeds is not None else train_seeds(cfg)


def finetune_text_model(cfg: Mapping) -> list[str]:
    """The ``models.<key>`` that ``finetune_text`` fine-tunes (``train.stress.finetune_text.model``)."""
    return [cfg.get("train", {}).get("stress", {}).get("finetune_text", {}).get("model", "text_embedding")]


def train_seeds(cfg: Mapping) -> list[str]:
    """``train.seeds`` as the ``seed`` wildcard values."""
    return [str(s) for s in cfg.get("train", {}).get("seeds", [0, 1, 2])]


def caption_embeddings_used(cfg: Mapping) -> bool:
    """Whether the engagement models read captions alone (``train.engagement.text_features:
    caption``), so ``engagement_caption_embeddings`` runs per Instagram shard."""
    return cfg.get("train", {}).get("engagement", {}).get("text_features", "caption") == "caption"


def stress_text_used(cfg: Mapping) -> bool:
    """Whether the stress heads read ``models.text_embedding`` vectors (``train.stress.text_encoder``),
    so ``stress_text_embeddings`` runs."""
    return cfg.get("train", {}).get("stress", {}).get("text_encoder") == "text_embedding"


def stress_text2_model(cfg: Mapping) -> list[str]:
    """The ``models.<key>`` of the stress heads' second sentence encoder (``train.stress.text2_encoder``:
    modality ``text2``), as a list: empty when unset or when no model in ``train.stress.models``
    reads ``text2`` (then nothing is encoded for it)."""
    stress = cfg.get("train", {}).get("stress", {})
    key = stress.get("text2_encoder")
    return [key] if key and text2_readers(stress) else []


def speech_used(cfg: Mapping) -> bool:
    """``cremad.audio.speech``: whether ``cremad_speech`` runs (models.speech per CREMA-D shard)."""
    return bool(cfg.get("cremad", {}).get("audio", {}).get("speech", False))


def once(cfg: Mapping) -> list[Wildcards]:
    return [{}]


def _instagram_shards(cfg: Mapping) -> list[Wildcards]:
    return [{"shard": s} for s in shard_ids(cfg, "instagram")]


def _dreaddit_shards(cfg: Mapping) -> list[Wildcards]:
    return [{"shard": s} for s in shard_ids(cfg, "dreaddit")]


def _cremad_shards(cfg: Mapping) -> list[Wildcards]:
    return [{"shard": s} for s in shard_ids(cfg, "cremad")]


def _speech_shards(cfg: Mapping) -> list[Wildcards]:
    return _cremad_shards(cfg) if speech_used(cfg) else []


def _models(cfg: Mapping) -> list[Wildcards]:
    return [{"key": k} for k in model_keys(cfg)]


def _seeds(cfg: Mapping) -> list[Wildcards]:
    return [{"seed": s} for s in train_seeds(cfg)] if finetune_enabled(cfg) else []


def _text_seeds(cfg: Mapping) -> list[Wildcards]:
    return [{"seed": s} for s in finetune_text_seeds(cfg)]


def _caption_shards(cfg: Mapping) -> list[Wildcards]:
    return _instagram_shards(cfg) if caption_embeddings_used(cfg) else []


def _stress_text(cfg: Mapping) -> list[Wildcards]:
    return [{}] if stress_text_used(cfg) else []


def _stress_text2(cfg: Mapping) -> list[Wildcards]:
    return [{}] if stress_text2_model(cfg) else []


# -- the table ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleLayout:
    """One rule's files and config.

    Attributes:
        rule: the rule's name in ``workflow/rules/*.smk``.
        stage: the stage it belongs to (``affectflow status`` reports and resumes stages).
        outputs: output name -> pattern, in the rule's order.
        log: the log pattern; the benchmark is :attr:`benchmark`.
        directories: names of outputs that are folders (``directory()`` in the rule).
        paths: other paths the job is given (``params``), name -> pattern.
        reads: the config keys the job reads, dotted (``"features.sentiment"``); ``"*"`` is all.
        models: the ``models.<key>`` entries it loads (a wildcard such as ``{key}`` is filled from
            the job's wildcards), or a function of the config giving them.
        jobs: the wildcard values of each of its jobs, from the config.
    """

    rule: str
    stage: str
    outputs: Mapping[str, str]
    log: str
    directories: frozenset[str] = frozenset()
    paths: Mapping[str, str] = field(default_factory=dict)
    reads: tuple[str, ...] = ()
    models: tuple[str, ...] | Callable[[Mapping], Sequence[str]] = ()
    jobs: Callable[[Mapping], list[Wildcards]] = once

    @property
    def benchmark(self) -> str:
        """The benchmark pattern: the log's path under :data:`BENCHMARKS`, ``.tsv``."""
        rel = self.log.removeprefix("{logs}/")
        return f"{BENCHMARKS}/{rel.removesuffix('.log')}.tsv"

    def model_keys(self, cfg: Mapping, wildcards: Mapping[str, str] | None = None) -> list[str]:
        """The models this rule loads under ``cfg`` (for one job: ``wildcards``)."""
        keys = self.models(cfg) if callable(self.models) else self.models
        return [fill(k, {}, wildcards) for k in keys]


_FEATURE = ("results", "features.device", "features.precision")
_IG = "{results}/instagram"
_DD = "{results}/dreaddit"
_ENG = "{results}/models/engagement"
_STRESS = "{results}/models/stress"
_REPORT = "{results}/report"
_CM = "{results}/cremad"


def _r(rule: str, stage: str, outputs: Mapping[str, str], log: str, **kw: Any) -> RuleLayout:
    return RuleLayout(rule, stage, dict(outputs), "{logs}/" + log, **kw)


_TABLE: tuple[RuleLayout, ...] = (
    # models.smk
    _r("fetch_model", "models", {"stamp": "{models[dir]}/.fetched/{key}.json"}, "models/fetch_{key}.log",
       models=("{key}",), jobs=_models),
    # ingest.smk
    _r("instagram_plan", "ingest",
       {"posts": f"{_IG}/plan/posts.parquet", "images": f"{_IG}/plan/images.parquet",
        "summary": f"{_IG}/plan/plan.json"},
       "instagram/plan.log", reads=("results", "instagram")),
    _r("instagram_ingest", "ingest", {"shard": f"{_IG}/posts/shard-{{shard}}.parquet"},
       "instagram/ingest/shard-{shard}.log", reads=("results", "instagram"), jobs=_instagram_shards),
    _r("instagram_ingest_summary", "ingest", {"summary": f"{_IG}/ingest_summary.json"}, "instagram/ingest_summary.log"),
    # dreaddit.smk
    _r("dreaddit_posts", "dreaddit",
       {"posts": f"{_DD}/posts/posts.parquet", "summary": f"{_DD}/posts_summary.json"}, "dreaddit/posts.log",
       reads=("results", "dreaddit.shards", "dreaddit.train", "dreaddit.test", "dreaddit.split")),
    _r("synthesize_shard", "dreaddit", {"shard": f"{_DD}/synth/shard-{{shard}}.parquet"},
       "dreaddit/synthesize/shard-{shard}.log", paths={"images": f"{_DD}/images"},
       reads=("results", "dreaddit.shards", "dreaddit.synthesis"), models=synthesis_models, jobs=_dreaddit_shards),
    _r("dreaddit_clip", "dreaddit", {"shard": f"{_DD}/clip/shard-{{shard}}.parquet"},
       "dreaddit/clip/shard-{shard}.log",
       reads=("results", "dreaddit.shards", "dreaddit.clip"), models=("clip",), jobs=_dreaddit_shards),
    _r("dreaddit_summary", "dreaddit", {"summary": f"{_DD}/summary.json"}, "dreaddit/summary.log"),
    # cremad.smk
    _r("cremad_clips", "cremad", {"clips": f"{_CM}/clips/clips.parquet", "summary": f"{_CM}/clips_summary.json"},
       "cremad/clips.log",
       reads=("results", "cremad.root", "cremad.audio_dir", "cremad.video_dir", "cremad.video_extensions",
              "cremad.demographics", "cremad.sentences", "cremad.votes", "cremad.shards", "cremad.min_duration_s",
              "cremad.silence_dbfs", "cremad.split")),
    _r("cremad_egemaps", "cremad", {"shard": f"{_CM}/egemaps/shard-{{shard}}.parquet"},
       "cremad/egemaps/shard-{shard}.log", reads=("results", "cremad.shards", "cremad.audio"), jobs=_cremad_shards),
    _r("cremad_speech", "cremad", {"shard": f"{_CM}/speech/shard-{{shard}}.parquet"},
       "cremad/speech/shard-{shard}.log", reads=("results", "cremad.shards", "cremad.audio"), models=("speech",),
       jobs=_speech_shards),
    _r("cremad_video", "cremad", {"shard": f"{_CM}/video/shard-{{shard}}.parquet"},
       "cremad/video/shard-{shard}.log", reads=("results", "cremad.shards", "cremad.video"), models=("clip",),
       jobs=_cremad_shards),
    _r("cremad_text", "cremad", {"text": f"{_CM}/text/text.parquet"}, "cremad/text.log",
       reads=("results", "cremad.text"), models=("text_embedding",)),
    _r("cremad_train", "cremad",
       {"metrics": f"{_CM}/model/metrics.json", "predictions": f"{_CM}/model/predictions.parquet",
        "plot": f"{_CM}/model/confusion.png"},
       "cremad/train.log", paths={"out": f"{_CM}/model"}, reads=("results", "cremad.train", "cremad.split")),
    # features.smk
    _r("sentiment", "features", {"shard": f"{_IG}/sentiment/shard-{{shard}}.parquet"},
       "instagram/sentiment/shard-{shard}.log",
       reads=(*_FEATURE, "features.sentiment"), models=("sentiment",), jobs=_instagram_shards),
    _r("text_embeddings", "features", {"shard": f"{_IG}/text_embeddings/shard-{{shard}}.parquet"},
       "instagram/text_embeddings/shard-{shard}.log",
       reads=(*_FEATURE, "features.text_embedding"), models=("text_embedding",), jobs=_instagram_shards),
    _r("image_embeddings", "features",
       {"images": f"{_IG}/image_embeddings/shard-{{shard}}.parquet",
        "pooled": f"{_IG}/image_pooled/shard-{{shard}}.parquet"},
       "instagram/image_embeddings/shard-{shard}.log",
       reads=(*_FEATURE, "features.image_embedding", "instagram"), models=("clip",), jobs=_instagram_shards),
    _r("features_summary", "features", {"summary": f"{_IG}/features_summary.json"}, "instagram/features_summary.log"),
    # train.smk
    _r("engagement_caption_embeddings", "train", {"shard": f"{_ENG}/caption_embeddings/shard-{{shard}}.parquet"},
       "train/caption_embeddings/shard-{shard}.log",
       reads=("results", "train.device"), models=("text_embedding",), jobs=_caption_shards),
    _r("engagement_dataset", "train",
       {"train": f"{_ENG}/data/train", "val": f"{_ENG}/data/val", "test": f"{_ENG}/data/test",
        "summary": f"{_ENG}/data/dataset.json"},
       "train/engagement_dataset.log", directories=frozenset({"train", "val", "test"}),
       paths={"out": f"{_ENG}/data"}, reads=("results", "train")),
    _r("engagement_sweep", "train",
       {"selection": f"{_ENG}/sweep/selection.json", "trials": f"{_ENG}/sweep/trials.parquet"},
       "train/engagement_sweep.log", paths={"out": f"{_ENG}/sweep"}, reads=("results", "train")),
    _r("train_engagement", "train",
       {"metrics": f"{_ENG}/metrics.json", "plot": f"{_ENG}/pred_vs_actual.png",
        "predictions": f"{_ENG}/predictions.parquet", "checkpoints": f"{_ENG}/checkpoints"},
       "train/train_engagement.log", directories=frozenset({"checkpoints"}), paths={"out": _ENG},
       reads=("results", "train", "models")),  # models: the encoders the metrics name, the demo notice
    _r("stress_text_embeddings", "train", {"embeddings": f"{_STRESS}/text_embeddings.parquet"},
       "train/stress_text_embeddings.log", reads=("results", "train.device"), models=("text_embedding",),
       jobs=_stress_text),
    _r("stress_text2_embeddings", "train", {"embeddings": f"{_STRESS}/text2_embeddings.parquet"},
       "train/stress_text2_embeddings.log", reads=("results", "train.device", "train.stress.text2_encoder"),
       models=stress_text2_model,
       jobs=_stress_text2),
    _r("stress_dataset", "train",
       {"train": f"{_STRESS}/data/train", "val": f"{_STRESS}/data/val", "test": f"{_STRESS}/data/test",
        "summary": f"{_STRESS}/data/dataset.json"},
       "train/stress_dataset.log", directories=frozenset({"train", "val", "test"}),
       paths={"out": f"{_STRESS}/data"}, reads=("results", "train")),
    _r("stress_sweep", "train",
       {"selection": f"{_STRESS}/sweep/selection.json", "trials": f"{_STRESS}/sweep/trials.parquet"},
       "train/stress_sweep.log", paths={"out": f"{_STRESS}/sweep"}, reads=("results", "train")),
    _r("finetune_stress", "train",
       {"result": f"{_STRESS}/finetune/seed-{{seed}}/result.json",
        "val": f"{_STRESS}/finetune/seed-{{seed}}/val_predictions.parquet",
        "predictions": f"{_STRESS}/finetune/seed-{{seed}}/test_predictions.parquet",
        "model": f"{_STRESS}/finetune/seed-{{seed}}/model.safetensors"},
       "train/finetune_stress/seed-{seed}.log", paths={"out": f"{_STRESS}/finetune/seed-{{seed}}"},
       reads=("results", "train"), models=("clip",), jobs=_seeds),
    _r("finetune_text", "train",
       {"result": f"{_STRESS}/finetune_text/seed-{{seed}}/result.json",
        "val": f"{_STRESS}/finetune_text/seed-{{seed}}/val_predictions.parquet",
        "predictions": f"{_STRESS}/finetune_text/seed-{{seed}}/test_predictions.parquet",
        "model": f"{_STRESS}/finetune_text/seed-{{seed}}/model.safetensors"},
       "train/finetune_text/seed-{seed}.log", paths={"out": f"{_STRESS}/finetune_text/seed-{{seed}}"},
       reads=("results", "train"), models=finetune_text_model, jobs=_text_seeds),
    _r("train_stress", "train",
       {"metrics": f"{_STRESS}/metrics.json", "plot": f"{_STRESS}/confusion_matrix.png",
        "predictions": f"{_STRESS}/predictions.parquet", "checkpoints": f"{_STRESS}/checkpoints"},
       "train/train_stress.log", directories=frozenset({"checkpoints"}), paths={"out": _STRESS},
       reads=("results", "train", "models")),  # models: the encoders the metrics name, the demo notice
    # report.smk
    _r("report_assets", "report",
       {"engagement": f"{_REPORT}/engagement_metrics.html", "stress": f"{_REPORT}/stress_metrics.html",
        "ingest": f"{_REPORT}/ingest_summary.html", "cremad": f"{_REPORT}/cremad_metrics.html",
        "rules": f"{_REPORT}/rule_benchmarks.html",
        "rules_png": f"{_REPORT}/rule_runtime.png", "bench": f"{_REPORT}/benchmark_figures.html",
        "overview": f"{_REPORT}/overview.html"},
       "report/report_assets.log", paths={"bench_dir": BENCHMARKS}),
    _r("report", "report", {"html": "{results}/report.html"}, "report/report.log", reads=("*",)),
)

#: rule name -> its layout, in workflow order (stage by stage, each stage's final rule last).
RULES: dict[str, RuleLayout] = {r.rule: r for r in _TABLE}

#: stage -> the target rule that runs it, in the order ``affectflow status`` reports them.
STAGE_TARGETS: dict[str, str] = {"models": "fetch_models", "ingest": "ingest", "dreaddit": "dreaddit",
                                 "cremad": "cremad", "features": "features", "train": "train", "report": "report"}


# -- reading the table ------------------------------------------------------------------------------


class _KeepMissing(dict):
    def __missing__(self, key: str) -> "_Placeholder":
        return _Placeholder(key)


class _Placeholder(str):
    """An unknown name: formats back to ``{name}`` (a wildcard the rule keeps)."""

    def __new__(cls, name: str) -> "_Placeholder":
        return super().__new__(cls, "{" + name + "}")

    def __format__(self, spec: str) -> str:
        return str(self)


def fill(pattern: str, cfg: Mapping, wildcards: Mapping[str, str] | None = None) -> str:
    """A pattern with the config's values (and the given wildcards) in; other names stay ``{name}``.

    Args:
        pattern: a layout pattern (``{results}/instagram/posts/shard-{shard}.parquet``).
        cfg: the config (``results``, ``logs``, ``models.dir`` are read).
        wildcards: wildcard values; names not given are left as Snakemake wildcards.

    Returns:
        The path (or, with wildcards left, the rule's pattern).
    """
    names = [n for _, n, _, _ in string.Formatter().parse(pattern) if n]
    values = _KeepMissing({k: v for k, v in cfg.items() if any(n.split("[")[0] == k for n in names)})
    values.update(wildcards or {})
    return pattern.format_map(values)


def outputs(rule: str, cfg: Mapping, wildcards: Mapping[str, str] | None = None) -> dict[str, str]:
    """A rule's outputs, name -> path (wildcards left in unless given)."""
    return {k: fill(v, cfg, wildcards) for k, v in RULES[rule].outputs.items()}


def log(rule: str, cfg: Mapping, wildcards: Mapping[str, str] | None = None) -> str:
    return fill(RULES[rule].log, cfg, wildcards)


def benchmark(rule: str, cfg: Mapping, wildcards: Mapping[str, str] | None = None) -> str:
    return fill(RULES[rule].benchmark, cfg, wildcards)


def path(rule: str, name: str, cfg: Mapping, wildcards: Mapping[str, str] | None = None) -> str:
    """One of a rule's other paths (:attr:`RuleLayout.paths`), e.g. ``synthesize_shard``'s ``images``."""
    return fill(RULES[rule].paths[name], cfg, wildcards)


def params(rule: str, cfg: Mapping, wildcards: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The config one rule's job runs with (its ``params.cfg``, and its stages' provenance).

    The one rule for what a job is given: the keys it :attr:`reads <RuleLayout.reads>`, and, when
    it loads models, ``models.dir`` with those models' entries (see
    :func:`affectflow.config.stage_params`). A change to anything else does not rerun the job.

    Args:
        rule: a rule of :data:`RULES`.
        cfg: the validated config.
        wildcards: the job's wildcards, for a rule whose models are one (``fetch_model``'s ``{key}``).

    Returns:
        A new nested dict (a deep copy).
    """
    r = RULES[rule]
    return stage_params(cfg, r.reads, r.model_keys(cfg, wildcards))


def jobs(rule: str, cfg: Mapping) -> list[Wildcards]:
    """The wildcard values of each job of ``rule`` under ``cfg`` (``[{}]`` for a rule run once)."""
    return RULES[rule].jobs(cfg)
