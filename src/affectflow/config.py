"""Configuration: one JSON schema (``workflow/schemas/config.schema.yaml``), typed views on top.

The Snakefile and the CLI both go through :func:`validate`, which checks the merged config and
fills in the schema's defaults, so a rule and a command run by hand see the same settings.
Stages receive only the config sections they use (see :func:`section`), so changing one stage's
settings does not invalidate another stage's outputs.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = REPO_ROOT / "config.yaml"


class ConfigError(ValueError):
    pass


def _validator():
    import jsonschema

    base = jsonschema.Draft7Validator

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from base.VALIDATORS["properties"](validator, properties, instance, schema)

    def finite_number(checker, instance) -> bool:
        # NaN passes every minimum/maximum test (all comparisons are false) and inf is no setting:
        # `max_compression_ratio: .nan` would switch the zip-bomb test off
        return base.TYPE_CHECKER.is_type(instance, "number") and math.isfinite(instance)

    checker = base.TYPE_CHECKER.redefine("number", finite_number)
    cls = jsonschema.validators.extend(base, {"properties": set_defaults}, type_checker=checker)
    if not SCHEMA_PATH.is_file():
        raise ConfigError(f"config schema not found at {SCHEMA_PATH}; install affectflow editable from its repository")
    return cls(yaml.safe_load(SCHEMA_PATH.read_text()))


def validate(cfg: dict) -> dict:
    """Check ``cfg`` against the schema, filling defaults in place; raise ConfigError listing every problem."""
    has_models = "models" in cfg  # a stage's slice without models gets the schema's defaults: not checked against them
    errors = sorted(_validator().iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {'.'.join(map(str, e.absolute_path)) or '<root>'}: "
                 + (f"{e.instance} is not a finite number" if _non_finite(e.instance) else _explain(e)) for e in errors]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines))
    lines = _cross_checks(cfg, has_models)
    if lines:
        raise ConfigError("invalid configuration:\n" + "\n".join(f"  {line}" for line in lines))
    return cfg


def text2_readers(stress: Mapping) -> list[str]:
    """The models of a ``train.stress`` section that read the ``text2`` modality."""
    from .train.config import MODEL_MODALITIES

    return [m for m in stress.get("models", ()) if "text2" in MODEL_MODALITIES["stress"].get(m, ())]


def _cross_checks(cfg: Mapping, has_models: bool) -> list[str]:
    """Facts the schema cannot state: keys that must name each other."""
    out = []
    stress = cfg.get("train", {}).get("stress", {})
    text2 = stress.get("text2_encoder")
    uses = text2_readers(stress)
    if uses and not text2:
        out.append(f"train.stress.models: {uses} need the text2 modality; set train.stress.text2_encoder to a models key")
    if text2 and text2 == stress.get("text_encoder"):
        out.append(f"train.stress.text2_encoder: {text2!r} is already the text modality's encoder "
                   "(train.stress.text_encoder); text2 must be another model")
    if text2 and has_models and text2 not in cfg["models"]:
        out.append(f"train.stress.text2_encoder: {text2!r} is not a key of models (one of "
                   f"{sorted(k for k in cfg['models'] if k != 'dir')})")
    elif text2 and has_models and stress.get("text_encoder") == "text_embedding":
        a, b = cfg["models"].get("text_embedding", {}), cfg["models"][text2]
        if (a.get("id"), a.get("revision", "main")) == (b.get("id"), b.get("revision", "main")):
            out.append(f"models.{text2}: the same model as models.text_embedding ({b.get('id')!r}); "
                       "text2 must be another encoder")
    return out


def _explain(error) -> str:
    """The schema's message, with the nearest known key for a key the schema does not know (a typo)."""
    if error.validator != "additionalProperties" or not isinstance(error.instance, dict):
        return error.message
    import difflib

    known = list(error.schema.get("properties", {}))
    where = ".".join(map(str, error.absolute_path))
    parts = []
    for key in [k for k in error.instance if k not in known]:
        near = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        name = f"{where}.{key}" if where else str(key)
        parts.append(f"unknown key {name!r}" + (f" (did you mean {(where + '.' if where else '') + near[0]!r}?)" if near else
                                               f" (known: {', '.join(known)})"))
    return "; ".join(parts) or error.message


def require_inputs(paths: Mapping[str, str | Path], root: tuple[str, str | Path] | None = None) -> None:
    """Stop with one line naming the config key of the first dataset path that does not exist.

    Args:
        paths: config key (``instagram.mapping``) -> the path it resolves to.
        root: ``(key, folder)`` the paths are relative to (``instagram.root``); a missing root is
            named instead of each file under it.

    Raises:
        FileNotFoundError: naming the key, the path and where to set it.
    """
    if root is not None and not Path(root[1]).is_dir():
        raise FileNotFoundError(f"{root[0]}: dataset folder {root[1]} does not exist "
                                f"(set {root[0]} in your --configfile; see config/cluster.example.yaml)")
    for key, path in paths.items():
        if not Path(path).exists():
            raise FileNotFoundError(f"{key}: {path} does not exist (set {key} in your --configfile)")


def _non_finite(v) -> bool:
    return isinstance(v, float) and not math.isfinite(v)


def merge(base: dict, override: Mapping) -> dict:
    """Nested update, as Snakemake does for extra --configfile files."""
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def load(*configfiles: str | Path, base: str | Path | None = DEFAULT_CONFIG) -> dict:
    """``config.yaml`` merged with each extra file in turn, validated, defaults filled."""
    cfg: dict = {}
    for f in ([base] if base else []) + list(configfiles):
        try:
            data = yaml.safe_load(Path(f).read_text()) or {}
        except yaml.YAMLError as exc:  # PyYAML's own message names "<unicode string>", not the file
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
            raise ConfigError(f"{f}{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{f}: top level must be a mapping")
        merge(cfg, data)
    return validate(cfg)


def stage_params(cfg: Mapping, reads: Sequence[str], models: Sequence[str] = ()) -> dict:
    """The config one stage's job runs with: the one slicer behind every rule's ``params.cfg``.

    A job is given the keys it reads and, when it loads models, ``models.dir`` with those models'
    entries; nothing else, so a change to another stage's settings does not rerun it (Snakemake's
    params are a rerun trigger). Stages store the same slice in their provenance. Which keys and
    models each rule has is declared once, in :data:`affectflow.layout.RULES`.

    Args:
        cfg: the (validated) config.
        reads: dotted keys (``"results"``, ``"features.sentiment"``); ``"*"`` gives the whole config.
            A key absent from ``cfg`` is left out.
        models: ``models.<key>`` entries to include (absent ones are left out).

    Returns:
        A new nested dict (deep copies), e.g. ``{"results": ..., "features": {"sentiment": {...}},
        "models": {"dir": ..., "sentiment": {...}}}``.
    """
    if "*" in reads:
        return copy.deepcopy(dict(cfg))
    out: dict = {}
    for key in reads:
        *parents, leaf = key.split(".")
        src, dst = cfg, out
        for p in parents:
            src = src.get(p, {}) if isinstance(src, Mapping) else {}
            dst = dst.setdefault(p, {})
        if isinstance(src, Mapping) and leaf in src:
            dst[leaf] = copy.deepcopy(src[leaf])
    if models:
        m = cfg.get("models", {})
        out["models"] = {"dir": m.get("dir", "models"), **{k: copy.deepcopy(m[k]) for k in models if k in m}}
    return out


def section(cfg: Mapping, *keys: str) -> dict:
    """The named top-level sections (plus ``results``): :func:`stage_params` of those keys."""
    return stage_params(cfg, ("results", *keys))


def to_json(cfg: Mapping) -> str:
    return json.dumps(cfg, sort_keys=True, separators=(",", ":"))


def from_json(text: str) -> dict:
    cfg = json.loads(text)
    if not isinstance(cfg, dict):
        raise ConfigError("--config-json must be a JSON object")
    return cfg


