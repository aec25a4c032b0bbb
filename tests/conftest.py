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
    from affectflow.sample import make_sample

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
