"""Fixtures shared by the Dreaddit tests: tiny random models (built once) and a small config."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def dd_models(tmp_path_factory) -> Path:
    """Tiny diffusion pipeline and open_clip model, a safety checker that flags nothing and one
    that flags every image, all built offline through the real classes."""
    from affectflow.ops.tiny_models import build_all, build_safety_checker

    out = tmp_path_factory.mktemp("dd-models")
    build_all(out, ["diffusion", "clip", "safety_checker"])
    build_safety_checker(out / "safety_flag_all", threshold=-1.0)
    return out


def dd_config(tmp_path: Path, sample_dir: Path, models: Path, shards: int = 12, **synthesis) -> dict:
    return {
        "results": str(tmp_path / "results"),
        "logs": str(tmp_path / "logs"),
        "models": {"dir": str(tmp_path / "store"), "diffusion": {"id": str(models / "diffusion")},
                   "clip": {"arch": "ViT-B-32", "pretrained": str(models / "clip")}},
        "dreaddit": {"train": str(sample_dir / "dreaddit" / "dreaddit-train.csv"),
                     "test": str(sample_dir / "dreaddit" / "dreaddit-test.csv"), "shards": shards,
                     "synthesis": {"width": 64, "height": 64, "steps": 2, "batch_size": 4, **synthesis},
                     "clip": {"batch_size": 8, "workers": 2}},
    }


def posts_path(cfg: dict) -> Path:
    """Build (once per config) the posts table the shard stages read."""
    from affectflow.dreaddit.posts import build_posts

    out = Path(cfg["results"]) / "dreaddit" / "posts" / "posts.parquet"
    if not out.is_file():
        build_posts(cfg, out, out.parent.parent / "posts_summary.json")
    return out
