"""CREMA-D models: the planted signal is learned from audio, video and their fusion, split by actor,
while the text-only control stays at chance; metrics, intervals, crowd labels and predictions."""

import json

import numpy as np
import polars as pl
import pytest
from cremad_support import cremad_config, cremad_models, cremad_run  # noqa: F401  (fixtures)

from affectflow.cremad.sample import EMOTIONS
from affectflow.cremad.train import train_all
from affectflow.train.evaluation import group_bootstrap_multiclass, multiclass_metrics

CHANCE = 1 / len(EMOTIONS)


@pytest.fixture(scope="module")
def trained(cremad_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("cremad_model")
    feats = {m: cremad_run[m] for m in ("audio", "video", "text")}
    metrics = train_all(cremad_run["cfg"], cremad_run["clips"], feats, out, threads=1)
    return metrics, out, cremad_run


def _uar(metrics, model):
    return metrics["models"][model]["test"]["emotion"]["uar"]["mean"]


def test_audio_video_and_fusion_learn_the_planted_emotion(trained):
    metrics, _, _ = trained
    for model in ("audio", "video", "fusion"):
        assert _uar(metrics, model) > 0.5, (model, _uar(metrics, model))  # chance is 1/6
        assert metrics["models"][model]["test"]["emotion"]["accuracy"]["mean"] > 0.5
    assert metrics["models"]["audio"]["test"]["stress"]["uar"]["mean"] > 0.7


def test_text_control_stays_at_chance(trained):
    metrics, _, _ = trained
    assert _uar(metrics, "text") < CHANCE + 0.15
    assert metrics["models"]["text"]["test"]["stress"]["uar"]["mean"] < 0.65


def test_split_by_actor_and_every_clip_accounted(trained):
    metrics, _, run = trained
    actors = {s: set(v["actors"]) for s, v in metrics["split"].items()}
    assert not (actors["train"] & actors["val"] or actors["train"] & actors["test"] or actors["val"] & actors["test"])
    clips = pl.read_parquet(run["clips"])
    assert sum(v["clips"] for v in metrics["split"].values()) + sum(metrics["excluded"].values()) == clips.height
    assert metrics["excluded"] == {"bad_name": 1}
    # clips with a faulty modality are trained and scored with that modality missing, not dropped
    present = metrics["modality_present"]
    assert sum(present[s]["audio"] for s in present) < sum(v["clips"] for v in metrics["split"].values())


def test_metrics_intervals_confusion_and_perceived_labels(trained):
    metrics, out, _ = trained
    n_test = metrics["split"]["test"]["clips"]
    for model, r in metrics["models"].items():
        e = r["test"]["emotion"]
        for m in ("accuracy", "f1_macro", "uar"):
            lo, hi = e[m]["ci"]
            assert lo <= e[m]["mean"] <= hi, (model, m)
        assert np.asarray(e["confusion_mean"]).shape == (6, 6) and np.asarray(e["confusion_mean"]).sum() == n_test
        for q in ("voice", "face", "av"):
            p = r["test"]["perceived"][q]
            assert p["n"] + p["ties_or_unrated"] == n_test
            assert 0 <= p["crowd_matches_intended"] <= 1
    assert metrics["stress_emotions"] == ["ANG", "FEA"]
    assert (out / "confusion.png").stat().st_size > 1000
    r = metrics["models"]["fusion"]
    assert set(r["attention"]["mean"]) == {"audio", "video", "text"}
    assert abs(sum(r["attention"]["mean"].values()) - 1) < 1e-3
    assert {"stage2", "stage3"} <= set(r["training"][0])


def test_predictions_table(trained):
    metrics, out, _ = trained
    p = pl.read_parquet(out / "predictions.parquet")
    n = metrics["split"]["val"]["clips"] + metrics["split"]["test"]["clips"]
    assert p.height == n * len(metrics["models"]) * len(metrics["seeds"])
    probs = np.stack(p["probabilities"].to_list())
    assert np.allclose(probs.sum(1), 1, atol=1e-4)
    assert (p.filter(pl.col("model") == "fusion")["attention"].list.len() == 3).all()
    assert p.filter(pl.col("model") != "fusion")["attention"].is_null().all()
    test_audio = p.filter((pl.col("model") == "audio") & (pl.col("split") == "test"))
    acc = (test_audio["emotion"] == test_audio["predicted"]).mean()
    assert acc == pytest.approx(metrics["models"]["audio"]["test"]["emotion"]["accuracy"]["mean"])


def test_training_is_reproducible(trained, tmp_path):
    metrics, out, run = trained
    cfg = json.loads(json.dumps(run["cfg"]))
    cfg["cremad"]["train"]["models"] = ["audio"]
    again = train_all(cfg, run["clips"], {"audio": run["audio"]}, tmp_path, threads=1)
    assert again["models"]["audio"]["test"]["emotion"] == metrics["models"]["audio"]["test"]["emotion"]


def test_multiclass_metrics_match_definitions():
    y = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 2, 0, 0])
    m = multiclass_metrics(y, p, 3)
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["uar"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)  # mean per-class recall
    f1 = [2 * 1 / (2 + 3), 2 * 2 / (2 + 3), 2 * 2 / (4 + 2)]
    assert m["f1_macro"] == pytest.approx(np.mean(f1))


def test_group_bootstrap_resamples_actors_not_rows():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(4), 50)
    y = rng.integers(0, 3, 200)
    perfect_for_two = np.where(groups < 2, y, (y + 1) % 3)  # two actors always right, two always wrong
    ci = group_bootstrap_multiclass(y, perfect_for_two[None], groups, 3, 2000, 0.95, 0)
    # resampling 4 actors: accuracy 0, 0.25, ..., 1 are all reachable; row resampling would sit near 0.5
    assert ci["accuracy"][0] <= 0.25 and ci["accuracy"][1] >= 0.75


def test_report_section(trained, tmp_path):
    from affectflow.report import build_assets

    metrics, out, _ = trained
    (tmp_path / "m.json").write_text(json.dumps(metrics))
    build_assets(None, None, None, tmp_path / "nobench", [], {"cremad": tmp_path / "c.html"}, cremad=tmp_path / "m.json")
    page = (tmp_path / "c.html").read_text()
    for text in ("fusion", "text", "control", "audio-only", "crowd = intended", "attention", "UAR"):
        assert text in page, text
