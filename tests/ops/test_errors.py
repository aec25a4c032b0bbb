"""Errors an operator meets in the first hour, each as one line naming what to change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from affectflow import config as C
from affectflow import models as M
from affectflow.ops import run_status as R

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "affectflow", *args], capture_output=True, text=True, cwd=cwd,
                          env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})


def test_a_config_typo_names_the_nearest_key():
    with pytest.raises(C.ConfigError) as err:
        C.validate({"reslts": "r", "instagram": {"shardz": 3}, "features": {"sentiment": {"batch_sise": 8}}})
    text = str(err.value)
    assert "unknown key 'reslts' (did you mean 'results'?)" in text
    assert "unknown key 'instagram.shardz' (did you mean 'instagram.shards'?)" in text
    assert "(did you mean 'features.sentiment.batch_size'?)" in text


def test_a_missing_dataset_names_its_config_key(tmp_path):
    cfgfile = tmp_path / "my.yaml"
    cfgfile.write_text(yaml.safe_dump({"results": str(tmp_path / "r"), "instagram": {"root": str(tmp_path / "nope")}}))
    proc = _cli("instagram-plan", "--configfile", str(cfgfile), "--posts", str(tmp_path / "p.parquet"),
                "--images", str(tmp_path / "i.parquet"), "--summary", str(tmp_path / "s.json"))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "instagram.root: dataset folder" in lines[0] and str(tmp_path / "nope") in lines[0]
    (tmp_path / "nope").mkdir()
    with pytest.raises(FileNotFoundError, match=r"^instagram.metadata_zip: .*posts_info.zip does not exist"):
        from affectflow.instagram.config import InstagramConfig

        InstagramConfig.from_config(C.load(cfgfile)).require_inputs()
    cfg = C.validate({"dreaddit": {"train": str(tmp_path / "t.csv"), "test": str(tmp_path / "t.csv")}})
    from affectflow.dreaddit.posts import read_dreaddit_csvs

    with pytest.raises(FileNotFoundError, match=r"^dreaddit.train: "):
        read_dreaddit_csvs(cfg)


def test_a_failed_hub_fetch_names_the_model_key(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub refuses at once, as it would without internet
    cfg = {"models": {"dir": str(tmp_path), "sentiment": {"id": "no-such-org/no-such-model", "revision": "main"}}}
    with pytest.raises(M.FetchFailed, match=r"^models\.sentiment: fetching no-such-org/no-such-model@main failed"):
        M.fetch(cfg)


def test_a_missing_slurm_plugin_is_one_line(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "snakemake_executor_plugin_slurm" else real(name, *a))
    line = R.slurm_plugin_problem("profiles/slurm")
    assert line and "\n" not in line and "pip install" in line and "snakemake-executor-plugin-slurm" in line
    assert R.slurm_plugin_problem("profiles/local") is None


def test_status_errors_are_one_line_unless_verbose(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("instagram: {shardz: 3}\n")
    proc = _cli("status", "--configfile", str(bad), "--directory", str(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "did you mean 'instagram.shards'" in proc.stderr
    verbose = _cli("status", "-v", "--configfile", str(bad), "--directory", str(tmp_path))
    assert verbose.returncode == 1 and "Traceback (most recent call last)" in verbose.stderr
