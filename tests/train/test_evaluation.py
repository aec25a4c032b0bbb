"""Metrics and bootstrap intervals: checked against scikit-learn / scipy, and for coverage."""

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score

from affectflow.train import evaluation as E


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    p = np.where(rng.random(300) < 0.7, y, 1 - y)
    m = E.classification_metrics(y, p)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert m["f1"] == pytest.approx(f1_score(y, p))
    assert m["f1_macro"] == pytest.approx(f1_score(y, p, average="macro"))
    assert m["f1_weighted"] == pytest.approx(f1_score(y, p, average="weighted"))
    assert np.asarray(m["confusion"]).sum() == 300


def test_classification_metrics_degenerate_predictions():
    y = np.array([0, 1, 1, 0])
    p = np.zeros(4, int)  # never predicts stress: F1 of the stress class is 0, not NaN
    m = E.classification_metrics(y, p)
    assert m["f1"] == 0.0
    assert m["f1_macro"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0))


def test_regression_metrics_match_reference():
    rng = np.random.default_rng(0)
    y = rng.normal(size=500)
    p = y + rng.normal(scale=0.5, size=500)
    m = E.regression_metrics(y, p)
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((p - y) ** 2)))
    assert m["mae"] == pytest.approx(mean_absolute_error(y, p))
    assert m["r2"] == pytest.approx(r2_score(y, p))
    assert m["spearman"] == pytest.approx(spearmanr(y, p).statistic)


def test_bootstrap_interval_brackets_the_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(1)

    def width(n):
        y = rng.integers(0, 2, n)
        preds = np.stack([np.where(rng.random(n) < 0.8, y, 1 - y) for _ in range(3)])
        ci = E.bootstrap_classification(y, preds, resamples=500, level=0.95, seed=0)
        point = np.mean([E.classification_metrics(y, p)["f1_weighted"] for p in preds])
        lo, hi = ci["f1_weighted"]
        assert lo <= point <= hi
        return hi - lo

    assert width(2000) < width(100) / 2


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(2)
    y = rng.normal(size=200)
    p = np.stack([y + rng.normal(size=200)])
    a = E.bootstrap_regression(y, p, 300, 0.9, seed=5)
    assert a == E.bootstrap_regression(y, p, 300, 0.9, seed=5)
    assert a != E.bootstrap_regression(y, p, 300, 0.9, seed=6)
    assert a["rmse"][0] < E.regression_metrics(y, p[0])["rmse"] < a["rmse"][1]


def test_summary_over_seeds():
    s = E.summarize_seeds([{"f1": 0.5}, {"f1": 0.7}, {"f1": 0.6}], ["f1"], {"f1": [0.4, 0.8]})
    assert s["f1"]["mean"] == pytest.approx(0.6)
    assert s["f1"]["std"] == pytest.approx(0.1)
    assert s["f1"]["ci"] == [0.4, 0.8]


def test_better_respects_direction():
    assert E.better("rmse", 0.1, 0.2) and not E.better("rmse", 0.3, 0.2)
    assert E.better("f1_weighted", 0.9, 0.8) and not E.better("f1_weighted", float("nan"), 0.1)
