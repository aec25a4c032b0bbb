"""Trainer, sweep and final scoring on split folders with planted signal (no GPU, seconds)."""

import json
import os
import shutil

import numpy as np
import polars as pl
import pytest
import torch

from affectflow.train import arrays, final, sweep, synthetic, trainer
from affectflow.train.arrays import DataError, open_split
from affectflow.train.config import TrainConfig

FAST = {"train": {"seeds": [0, 1, 2], "sweep": {"executor": "debug"},
                  "engagement": {"epochs": 15, "patience": 4, "batch_size": 64, "grid": {"lr": [0.003, 0.0003], "hidden": [32]}},
                  "stress": {"epochs": 15, "patience": 4, "batch_size": 64, "grid": {"lr": [0.003, 0.0003], "hidden": [32]}},
                  "bootstrap": {"resamples": 200}}}


def _folders(tmp_path_factory, task):
    out = tmp_path_factory.mktemp(task)
    synthetic.split_folders(out / "data", task, {"train": 300, "val": 100, "test": 120})
    (out / "data/dataset.json").write_text(json.dumps({"digests": {"test": open_split(out / "data/test").digest}}))
    return out


@pytest.fixture(scope="module")
def stress_data(tmp_path_factory):
    return _folders(tmp_path_factory, "stress")


@pytest.fixture(scope="module")
def eng_data(tmp_path_factory):
    return _folders(tmp_path_factory, "engagement")


def fit(task, root, model="fusion", seed=0, cfg=FAST, **kw):
    tc = TrainConfig.from_config(cfg)
    head = tc.head(task)
    return trainer.fit(head, model, head.grid_points()[0], seed, open_split(root / "data/train"),
                       open_split(root / "data/val"), threads=1, **kw)


def test_training_is_reproducible_by_seed(stress_data):
    a, b, c = fit("stress", stress_data, seed=3), fit("stress", stress_data, seed=3), fit("stress", stress_data, seed=4)
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.val_metrics == b.val_metrics and a.best_epoch == b.best_epoch
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_models_learn_the_planted_signal_and_image_only_does_not(stress_data, eng_data):
    text = fit("stress", stress_data, "text")
    image = fit("stress", stress_data, "image")  # the planted image carries no label
    assert text.val_metrics["f1_weighted"] > 0.85
    assert image.val_metrics["f1_weighted"] < 0.7
    reg = fit("engagement", eng_data, "fusion")
    assert reg.val_metrics["spearman"] > 0.6
    assert reg.val_metrics["rmse"] < np.std(np.asarray(open_split(eng_data / "data/val").y))


def test_fit_refuses_the_test_split(stress_data):
    tc = TrainConfig.from_config(FAST)
    with pytest.raises(DataError, match="train and val"):
        trainer.fit(tc.stress, "text", tc.stress.grid_points()[0], 0, open_split(stress_data / "data/train"),
                    open_split(stress_data / "data/test"))


@pytest.mark.parametrize("array, value, model, error", [
    ("y.npy", 1.5, "text", "target is constant"),
    ("mask_image.npy", False, "image", "'image' is missing for all 50 train rows"),
])
def test_untrainable_train_split_is_a_clear_error(tmp_path, array, value, model, error):
    folders = synthetic.split_folders(tmp_path, "engagement", {"train": 50, "val": 20})
    a = np.load(folders["train"] / array, mmap_mode="r+")
    a[:] = value
    a.flush()
    tc = TrainConfig.from_config(FAST)
    with pytest.raises(DataError, match=error):
        trainer.fit(tc.engagement, model, tc.engagement.grid_points()[0], 0, open_split(folders["train"]), open_split(folders["val"]))


def test_empty_split_is_a_clear_error(tmp_path):
    folders = synthetic.split_folders(tmp_path, "stress", {"train": 50, "val": 0})
    tc = TrainConfig.from_config(FAST)
    with pytest.raises(DataError, match="val split is empty"):
        trainer.fit(tc.stress, "text", tc.stress.grid_points()[0], 0, open_split(folders["train"]), open_split(folders["val"]))


def test_checkpoint_round_trip(stress_data, tmp_path):
    r = fit("stress", stress_data, "fusion")
    path = trainer.save_checkpoint(tmp_path / "m.safetensors", r.model, {
        "task": "stress", "model": "fusion", "params": {"hidden": 32, "dropout": 0.1, "lr": 0.003, "weight_decay": 1e-4},
        "dims": {"text": 32, "image": 32}, "seed": 0, "data_digests": {"train": "x"}})
    model, meta = trainer.load_checkpoint(path)
    val = open_split(stress_data / "data/val")
    assert np.allclose(trainer.predict(model, val, "cpu")[0], trainer.predict(r.model, val, "cpu")[0])
    assert meta["seed"] == 0 and meta["data_digests"] == {"train": "x"} and "package_version" in meta


# -- selection never reads the test split ------------------------------------------------------------
def run_sweep(root, task, cfg=FAST):
    return sweep.run_sweep(cfg, task, root / "data/train", root / "data/val", root / "sweep")


def test_sweep_never_opens_the_test_split_and_selects_on_val(stress_data):
    arrays.ACCESS_LOG.clear()
    sel = run_sweep(stress_data, "stress")
    assert {s for s, _ in arrays.ACCESS_LOG} == {"train", "val"}
    assert sel["selected_on"] == "val"
    trials = pl.read_parquet(stress_data / "sweep/trials.parquet")
    assert trials.height == 3 * 2 * 3  # models x grid points x seeds
    for model, chosen in sel["models"].items():
        by_point = trials.filter(pl.col("model") == model).group_by("params").agg(pl.col("val_score").mean())
        assert chosen["val_mean"] == pytest.approx(by_point["val_score"].max())  # best mean val F1 wins
        assert sorted(t["seed"] for t in chosen["trials"]) == [0, 1, 2]


def test_selection_is_blind_to_test_labels(stress_data, tmp_path):
    """Scramble the test split's labels and features: the sweep and its choices do not change."""
    root = tmp_path / "copy"
    shutil.copytree(stress_data / "data", root / "data")
    for name in ("y.npy", "x_text.npy"):
        a = np.load(root / "data/test" / name, mmap_mode="r+")
        a[:] = np.random.default_rng(0).permutation(np.asarray(a))
        a.flush()
    a = run_sweep(stress_data, "stress")
    b = run_sweep(root, "stress")
    assert {m: (v["params"], v["val_mean"]) for m, v in a["models"].items()} == \
           {m: (v["params"], v["val_mean"]) for m, v in b["models"].items()}


def test_sweep_resumes_finished_trials(stress_data):
    run_sweep(stress_data, "stress")
    again = run_sweep(stress_data, "stress")
    assert again["trials_run_now"] == 0
    changed = json.loads(json.dumps(FAST))
    changed["train"]["stress"]["patience"] = 3  # a setting that changes outcomes makes new trials
    assert run_sweep(stress_data, "stress", changed)["trials_run_now"] == 18


def test_growing_the_grid_keeps_finished_trials(stress_data):
    run_sweep(stress_data, "stress")
    more = json.loads(json.dumps(FAST))
    more["train"]["stress"]["grid"]["lr"] = [0.003, 0.0003, 0.001]
    assert run_sweep(stress_data, "stress", more)["trials_run_now"] == 3 * 3  # only the new grid point, per model and seed


@pytest.mark.parametrize("executor", ["debug", "local"])
def test_launch_reports_every_failed_task_after_the_others_finish(tmp_path, executor):
    import math

    from affectflow.train.config import SweepConfig

    cfg = SweepConfig(executor=executor, max_parallel_jobs=2, timeout_min=5)
    assert sweep.launch(math.sqrt, [4.0, 9.0], cfg, tmp_path) == [2.0, 3.0]
    with pytest.raises(RuntimeError, match=r"1 of 3 sweep task\(s\) failed:\n  task .*ValueError"):
        sweep.launch(math.sqrt, [4.0, -1.0, 9.0], cfg, tmp_path)


def test_slurm_executor_takes_the_configured_resources(tmp_path, monkeypatch):
    """What a sweep asks SLURM for (the submission itself is covered by the SLURM tests)."""
    from affectflow.train.config import SweepConfig

    # submitit refuses to build a SLURM executor unless `srun` is on PATH: give it one that is never run,
    # so this test does not depend on whether the SLURM tests installed the real one first.
    fake = tmp_path / "bin" / "srun"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")

    cfg = SweepConfig(executor="slurm", max_parallel_jobs=7, cpus_per_job=3, mem_gb=12, gpus_per_job=1, timeout_min=90,
                      slurm_partition="gpu", slurm_account="lab", slurm_additional={"qos": "normal"})
    p = sweep.make_executor(cfg, tmp_path, "affectflow-stress-sweep")._executor.parameters
    assert (p["partition"], p["account"], p["array_parallelism"], p["cpus_per_task"], p["gpus_per_node"], p["time"]) == \
        ("gpu", "lab", 7, 3, 1, 90)
    assert p["mem"] == "12GB" and p["additional_parameters"] == {"qos": "normal"} and p["job_name"] == "affectflow-stress-sweep"
    assert SweepConfig(executor="auto").resolved("slurm").executor == "slurm"
    assert SweepConfig(executor="auto").resolved("local").executor == "local"


def test_final_scores_test_once_per_model_and_seed(stress_data):
    run_sweep(stress_data, "stress")
    arrays.ACCESS_LOG.clear()
    m = final.score_final(FAST, "stress", stress_data / "sweep/selection.json", stress_data / "data/test",
                          stress_data / "data/dataset.json", stress_data)
    assert [s for s, _ in arrays.ACCESS_LOG] == ["test"]  # opened once
    assert m["selected_on"] == "val" and m["test_scoring"]["once_per_model"]
    assert sorted(m["test_scoring"]["scored"]) == sorted(f"{k}/seed{s}" for k in ("text", "image", "fusion") for s in (0, 1, 2))
    text = m["models"]["text"]["test"]
    assert text["f1_weighted"]["ci"][0] <= text["f1_weighted"]["mean"] <= text["f1_weighted"]["ci"][1]
    assert len(text["f1_weighted"]["per_seed"]) == 3
    assert text["f1_weighted"]["mean"] > m["baselines"]["majority"]["f1_weighted"]["mean"]
    assert m["leakage_check"]["image"]["f1_weighted"] < m["leakage_check"]["text"]["f1_weighted"]
    preds = pl.read_parquet(stress_data / "predictions.parquet")
    assert preds.height == 3 * 3 * 120
    assert (stress_data / "confusion_matrix.png").stat().st_size > 1000
    for ck in m["models"]["fusion"]["checkpoints"]:
        _, meta = trainer.load_checkpoint(ck)
        assert meta["selected_on"] == "val" and set(meta["data_digests"]) == {"train", "val"}


def test_test_split_guard_refuses_a_second_scoring(stress_data):
    t = final.TestSplit(stress_data / "data/test")
    t.score("text/seed0", lambda d: np.zeros(d.n))
    with pytest.raises(RuntimeError, match="already scored"):
        t.score("text/seed0", lambda d: np.zeros(d.n))


def test_engagement_final_metrics(eng_data):
    run_sweep(eng_data, "engagement")
    m = final.score_final(FAST, "engagement", eng_data / "sweep/selection.json", eng_data / "data/test",
                          eng_data / "data/dataset.json", eng_data)
    assert list(m["models"]) == ["text", "image", "metadata", "fusion"]
    for name, r in m["models"].items():
        assert set(r["test"]) >= {"rmse", "mae", "r2", "spearman", "per_category"}
        assert set(r["test"]["per_category"]) == {"fashion", "food", "travel"}
    assert m["models"]["fusion"]["test"]["rmse"]["mean"] < m["baselines"]["train_mean"]["rmse"]["mean"]
    assert set(m["models"]["fusion"]["attention_mean"]) == {"text", "image", "metadata"}
    assert (eng_data / "pred_vs_actual.png").stat().st_size > 1000


def test_local_executor_matches_in_process(stress_data, tmp_path):
    """The submitit path (local processes) gives the same trials as the in-process one."""
    cfg = json.loads(json.dumps(FAST))
    cfg["train"].update(seeds=[0], stress={**cfg["train"]["stress"], "models": ["text"], "grid": {"lr": [0.003], "hidden": [32]}})
    cfg["train"]["sweep"] = {"executor": "local", "max_parallel_jobs": 1}
    a = sweep.run_sweep(cfg, "stress", stress_data / "data/train", stress_data / "data/val", tmp_path / "local")
    cfg["train"]["sweep"] = {"executor": "debug"}
    b = sweep.run_sweep(cfg, "stress", stress_data / "data/train", stress_data / "data/val", tmp_path / "debug")
    assert a["models"]["text"]["val_mean"] == b["models"]["text"]["val_mean"]
    assert list((tmp_path / "local/submitit").iterdir())  # it really went through submitit
