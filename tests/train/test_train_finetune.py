"""CLIP fine-tuning on CPU with a tiny random CLIP: epoch chosen on val, test touched last, once."""

import json

import polars as pl
import pytest

from affectflow.ops import tiny_models
from affectflow.train import finetune as FT
from affectflow.train import synthetic as SY
from affectflow.train.stress_data import UNTRAINABLE


@pytest.fixture(scope="module")
def setup(sample_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    results = root / "results"
    SY.dreaddit_features(results, sample_dir / "dreaddit", shards=2)
    SY.dreaddit_images(results, size=64, shards=2)
    clip = tiny_models.build_clip(root / "clip")
    cfg = {"results": str(results), "models": {"dir": str(root), "clip": {"arch": "ViT-B-32", "pretrained": str(clip)}},
           "train": {"stress": {"finetune": {"epochs": 2, "batch_size": 16}}}}
    return cfg, results


def test_finetune_selects_on_val_and_scores_test_last(setup, tmp_path, monkeypatch):
    cfg, results = setup
    seen = []
    real = FT._loader

    def spy(frame, *a, **kw):
        seen.append(sorted(set(frame["split"])))
        return real(frame, *a, **kw)

    monkeypatch.setattr(FT, "_loader", spy)
    synth = sorted((results / "dreaddit/synth").glob("*.parquet"))
    r = FT.finetune(cfg, 0, results / "dreaddit/posts/posts.parquet", synth, tmp_path / "seed-0", threads=1)
    assert seen == [["train"], ["val"], ["test"]]  # the test rows are loaded once, after the last epoch
    assert r["selected_on"] == "val" and 1 <= r["best_epoch"] <= 2 and len(r["history"]) == 2
    assert r["images_missing"] > 0  # blocked images ride along with the missing-image vector
    posts = pl.read_parquet(results / "dreaddit/posts/posts.parquet")
    preds = pl.read_parquet(tmp_path / "seed-0/test_predictions.parquet")
    trusted = posts.filter((pl.col("split") == "test") & ~pl.col("status").is_in(sorted(UNTRAINABLE)))
    assert set(preds["post_id"]) == set(trusted["post_id"])  # every trusted test post, nothing else
    assert preds["prediction"].is_between(0, 1).all()
    assert json.loads((tmp_path / "seed-0/result.json").read_text())["clip"]["digest"]
    assert (tmp_path / "seed-0/model.safetensors").stat().st_size > 10_000


def test_finetune_without_clip_weights_names_the_fetch(setup, tmp_path):
    cfg, results = setup
    bad = {**cfg, "models": {"dir": str(tmp_path), "clip": {"arch": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"}}}
    synth = sorted((results / "dreaddit/synth").glob("*.parquet"))
    with pytest.raises(Exception, match="fetch_models"):
        FT.finetune(bad, 0, results / "dreaddit/posts/posts.parquet", synth, tmp_path / "x")
