"""The training and report targets end to end with real Snakemake on the sample.

Every stage runs for real with tiny models (DistilBERT, CLIP, diffusion) and the real MiniLM.
"""

import json

import polars as pl
import pytest
from conftest import run_snakemake, whole_dag_config

from affectflow.train.arrays import open_split


@pytest.fixture(scope="module")
def run(sample_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wf")
    results = tmp / "results"
    # executor auto: local here; two grid points for stress (a linear and an MLP head), so selection
    # has a choice; the real MiniLM fine-tuned for one short epoch, one seed (rule finetune_text); a
    # second sentence encoder (a tiny random MPNet, all-mpnet-base-v2's class) as the text2 modality
    from affectflow.ops import tiny_models

    mpnet = tiny_models.build_sbert(tmp / "tiny_mpnet")
    cfg = whole_dag_config(tmp, sample_dir, {"models": {"text_embedding_2": {"id": str(mpnet)}},
                                             "train": {"stress": {
        "models": ["text", "image", "fusion", "lexical", "text_lexical", "text_text2_lexical"],
        "text2_encoder": "text_embedding_2", "grid": {"lr": [0.003], "hidden": [0, 32]},
        "finetune_text": {"enabled": True, "seeds": [0], "epochs": 1, "batch_size": 16, "max_length": 48}}}})
    proc = run_snakemake(tmp, configfile=cfg)  # rule all
    return tmp, results, cfg, proc


@pytest.mark.slow
def test_all_targets_write_both_metrics_and_the_report(run):
    tmp, results, cfg, _ = run
    eng = json.loads((results / "models/engagement/metrics.json").read_text())
    stress = json.loads((results / "models/stress/metrics.json").read_text())
    for m in (eng, stress):
        assert m["selected_on"] == "val" and m["test_scoring"]["once_per_model"]
        assert m["seeds"] == [0, 1, 2]
    assert set(eng["models"]) == {"text", "image", "metadata", "fusion"}
    assert set(stress["models"]) == {"text", "image", "fusion", "lexical", "text_lexical", "text_text2_lexical",
                                     "clip_finetune", "text_embedding_finetune", "ensemble"}
    assert stress["models"]["text_text2_lexical"]["modalities"] == ["text", "text2", "lexical"]
    t2 = pl.read_parquet(results / "models/stress/text2_embeddings.parquet")
    t1 = pl.read_parquet(results / "models/stress/text_embeddings.parquet")
    assert len(t2["embedding"].drop_nulls()[0]) == 32 and (t2["status"] == "ok").sum() > 0.9 * t2.height
    assert t2.select("post_id", "status").equals(t1.select("post_id", "status"))  # same rows, same faults
    assert t2.filter(pl.col("status") == "ok")["embedding"].null_count() == 0
    assert open_split(results / "models/stress/data/test").modalities["text2"].dim == 32
    assert len(stress["models"]["clip_finetune"]["test"]["f1_weighted"]["per_seed"]) == 3
    assert stress["models"]["text_embedding_finetune"]["seeds"] == [0]
    e = stress["ensemble"]
    assert e["selected_on"] == "val" and e["select_metric"] == "f1" == stress["headline"]["metric"]
    assert set(e["members"]) <= set(stress["models"]) - {"ensemble"} and 0 < e["threshold"] < 1
    assert stress["bootstrap"]["unit"] == "Reddit post" and eng["bootstrap"]["unit"] == "influencer"
    assert "confidence" not in stress["dataset"]["lexical"]["columns"]
    assert "leakage_check" in stress and stress["anchors"]["bert_base_f1"]["value"] == 0.807
    posts = pl.read_parquet(results / "dreaddit/posts/posts.parquet")
    # every Dreaddit row is trained/scored or counted as left out (by its status)
    assert sum(stress["data"]["rows"].values()) + sum(stress["data"]["excluded"].values()) == posts.height
    assert json.loads((results / "models/stress/data/dataset.json").read_text())["text_features"] == "text_embedding"
    html = (results / "report.html").read_text()
    for name in ("engagement_metrics.html", "stress_metrics.html", "ingest_summary.html", "pred_vs_actual.png",
                 "confusion_matrix.png", "rule_benchmarks.html"):
        assert name in html
    assert (results / "report/rule_runtime.png").stat().st_size > 1000
    assert any((results / "models/stress/sweep/submitit").iterdir())  # the sweep went through submitit


@pytest.mark.slow
def test_test_influencers_never_trained_on(run):
    _, results, _, _ = run
    data = results / "models/engagement/data"
    groups = {s: set(open_split(data / s).rows()["group"]) for s in ("train", "val", "test")}
    assert not groups["train"] & groups["test"] and not groups["train"] & groups["val"] and not groups["val"] & groups["test"]
    preds = pl.read_parquet(results / "models/engagement/predictions.parquet")
    posts = pl.read_parquet(results / "instagram/posts")
    joined = preds.join(posts.select("post_id", "username"), on="post_id", how="left")
    assert joined["username"].null_count() == 0
    assert set(joined["username"]) == groups["test"]


@pytest.mark.slow
def test_rerun_is_a_no_op_and_report_command_works(run):
    tmp, results, cfg, _ = run
    again = run_snakemake(tmp, "-n", configfile=cfg)
    assert "Nothing to be done" in again.stdout + again.stderr
    out = tmp / "again.html"
    run_snakemake(tmp, "--report", str(out), configfile=cfg)
    assert out.stat().st_size > 100_000
