"""The workflow's ingestion target runs end to end on the sample with real Snakemake."""

import json

import polars as pl
import yaml
from conftest import run_snakemake


def test_ingest_target_end_to_end(sample_dir, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({
        "results": str(tmp_path / "results"), "logs": str(tmp_path / "logs"),
        "instagram": {"root": str(sample_dir / "instagram"), "shards": 3},
    }))
    run_snakemake(tmp_path, "ingest", configfile=cfg)
    summary = json.loads((tmp_path / "results/instagram/ingest_summary.json").read_text())
    posts = pl.read_parquet(tmp_path / "results/instagram/posts")
    assert posts["post_id"].is_unique().all()
    assert summary["posts"] == posts.height == summary["mapping"]["posts"] + summary["metadata_archive"]["members_not_in_mapping"]
    assert summary["by_status"]["ok"] > 0
