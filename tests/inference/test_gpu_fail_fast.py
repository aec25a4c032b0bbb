"""GPU rules fail fast: a job promised a GPU that torch cannot see stops at once with the reason."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from affectflow.inference import device as D

REPO = Path(__file__).resolve().parents[2]
SLURM_GPU_JOB = {"SLURM_JOB_ID": "77", "SLURM_JOB_GPUS": "0", "SLURM_GPUS_ON_NODE": "1", "CUDA_VISIBLE_DEVICES": "0"}


def test_what_counts_as_a_promised_gpu():
    assert D.gpu_promised("auto", {}) is None  # a laptop, or a CPU job: auto means the CPU
    assert D.gpu_promised("cpu", SLURM_GPU_JOB) is None  # the CPU on purpose
    assert "SLURM_JOB_GPUS=0" in D.gpu_promised("auto", SLURM_GPU_JOB)
    assert "CUDA_VISIBLE_DEVICES=1" in D.gpu_promised("auto", {"SLURM_JOB_ID": "5", "CUDA_VISIBLE_DEVICES": "1"})
    assert D.gpu_promised("auto", {"CUDA_VISIBLE_DEVICES": "0"}) is None  # outside SLURM: not a promise
    assert D.gpu_promised("auto", {"SLURM_JOB_ID": "5", "CUDA_VISIBLE_DEVICES": ""}) is None  # SLURM gave none
    assert "cuda:1" in D.gpu_promised("cuda:1", {})


def test_a_gpu_less_job_stops_with_the_reason(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # e.g. a driver older than the wheels' CUDA
    monkeypatch.setattr(D, "nvidia_driver", lambda: "driver 470.57.02 (supports CUDA up to 11.4)")
    with pytest.raises(D.GPUUnavailable) as err:
        D.require_visible_gpu("auto", "features.device", SLURM_GPU_JOB)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("features.device=auto: the job was given a GPU")
    assert f"torch {torch.__version__}" in msg and "driver 470.57.02" in msg and "CUDA_VISIBLE_DEVICES=0" in msg
    assert (f"built for CUDA {torch.version.cuda}" in msg) if torch.version.cuda else "CPU-only build" in msg
    assert "set features.device: cpu" in msg
    D.require_visible_gpu("cpu", "features.device", SLURM_GPU_JOB)  # the CPU on purpose: no error
    D.require_visible_gpu("auto", "features.device", {})  # no GPU promised: CPU, no error
    with pytest.raises(D.GPUUnavailable, match="the config asks for device cuda"):
        D.require_visible_gpu("cuda", "train.device", {})


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: a GPU-less job cannot be simulated")
def test_a_gpu_rule_command_in_a_gpu_less_slurm_job_fails_in_seconds(tmp_path):
    """The real stage command, in the environment SLURM gives a GPU job, on a node where torch
    sees no GPU: it stops before loading any model or data, with one line."""
    env = {**os.environ, **SLURM_GPU_JOB, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    cfg = '{"results": "r", "features": {"device": "auto", "precision": "auto", "sentiment": {"threads": 1}}}'
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "affectflow", "sentiment", "--config-json", cfg, "--posts",
                           str(tmp_path / "absent.parquet"), "--shard", "0", "--out", str(tmp_path / "o.parquet")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "GPUUnavailable: features.device=auto: the job was given a GPU" in last, proc.stderr[-3000:]
    assert "CUDA_VISIBLE_DEVICES=0" in last and elapsed < 60
    assert not (tmp_path / "o.parquet").exists()
