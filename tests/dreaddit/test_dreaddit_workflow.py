"""The Dreaddit branch end to end with real Snakemake: targets, the join, resume by shard."""

import json

import duckdb
import pytest
import yaml
from conftest import run_snakemake
from dreaddit_support import dd_config, dd_models  # noqa: F401  (fixture)


@pytest.mark.slow
def test_synthesize_then_dreaddit_join_and_resume(sample_dir, tmp_path, dd_models):
    cfg = dd_config(tmp_path, sample_dir, dd_models, shards=2)
    cfg["dreaddit"]["synthesis"]["batch_size"] = 16
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(cfg))
    dd = tmp_path / "results" / "dreaddit"

    run_snakemake(tmp_path, "synthesize", configfile=configfile)
    assert sorted(p.name for p in (dd / "synth").iterdir()) == ["shard-00000.parquet", "shard-00001.parquet"]
    assert not (dd / "clip").exists()  # the synthesize target stops at the images

    run_snakemake(tmp_path, "dreaddit", configfile=configfile)
    summary = json.loads((dd / "summary.json").read_text())
    posts = summary["join"]["posts"]
    assert summary["join"]["synth"]["rows"] == summary["join"]["clip"]["rows"] == posts == summary["posts"]["rows"]
    joined = duckdb.sql(f"""
        SELECT p.status AS post_status, s.status AS synth_status, c.status AS clip_status,
               c.image_embedding IS NOT NULL AS has_image, s.image_path IS NOT NULL AS has_path
        FROM '{dd}/posts/*.parquet' p
        JOIN '{dd}/synth/*.parquet' s USING (post_id)
        JOIN '{dd}/clip/*.parquet' c USING (post_id)""").pl()
    assert joined.height == posts
    assert (joined["has_image"] == joined["has_path"]).all()
    assert summary["synth"]["by_status"] == summary["clip"]["by_status"]
    assert summary["synth"]["images_made"] == summary["synth"]["by_status"]["ok"]

    proc = run_snakemake(tmp_path, "dreaddit", "--dry-run", configfile=configfile)
    assert "Nothing to be done" in proc.stdout + proc.stderr

    # a lost shard index reruns that shard alone (the `synthesize` target asks for every index; a
    # missing intermediate alone does not make Snakemake redo a newer summary), keeping its images
    made_before = summary["synth"]["images_made"]
    (dd / "synth" / "shard-00001.parquet").unlink()
    kept_mtime = (dd / "synth" / "shard-00000.parquet").stat().st_mtime_ns
    run_snakemake(tmp_path, "synthesize", configfile=configfile)
    run_snakemake(tmp_path, "dreaddit", configfile=configfile)
    after = json.loads((dd / "summary.json").read_text())
    assert (dd / "synth" / "shard-00000.parquet").stat().st_mtime_ns == kept_mtime
    shard1_ok = duckdb.sql(f"SELECT count(*) FROM '{dd}/synth/shard-00001.parquet' WHERE status = 'ok'").fetchall()[0][0]
    assert after["synth"]["images_kept"] == shard1_ok > 0
    assert after["synth"]["images_made"] == made_before - shard1_ok
