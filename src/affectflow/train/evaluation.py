"""Metrics, bootstrap intervals and the summary over seeds.

Classification metrics come from confusion counts, computed for every bootstrap resample at once
(``np.bincount`` over resample-offset codes), so 1,000 resamples of the 715-row Dreaddit test set
over 3 seeds take milliseconds. The interval is a percentile interval of the *seed-mean* metric:
each resample of test rows is scored with every seed's predictions and averaged, which is the
figure we report.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

LOWER_IS_BETTER = frozenset({"rmse", "mae", "loss"})
CLASS_METRICS = ("accuracy", "f1", "precision", "recall", "f1_macro", "f1_weighted")
REG_METRICS = ("rmse", "mae", "r2", "spearman")


def better(metric: str, a: float, b: float) -> bool:
    """Is score ``a`` better than ``b`` under ``metric``? (NaN is never better.)"""
    if np.isnan(a):
        return False
    if np.isnan(b):
        return True
    return a < b if metric in LOWER_IS_BETTER else a > b


def sort_key(metric: str, score: float) -> float:
    """Ascending key: best first."""
    if score is None or np.isnan(score):
        return np.inf
    return score if metric in LOWER_IS_BETTER else -score


# -- regression --------------------------------------------------------------------------------------
def _rank(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, axis=-1)


def regression_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    y = np.asarray(y, np.float64)
    p = np.asarray(p, np.float64)
    err = p - y
    ss_tot = float(((y - y.mean()) ** 2).sum()) if len(y) else 0.0
    out = {"n": int(len(y)), "rmse": float(np.sqrt(np.mean(err**2))) if len(y) else np.nan,
           "mae": float(np.mean(np.abs(err))) if len(y) else np.nan,
           "r2": float(1 - (err**2).sum() / ss_tot) if ss_tot > 0 else np.nan}
    if len(y) > 1 and np.ptp(y) > 0 and np.ptp(p) > 0:
        ry, rp = _rank(y), _rank(p)
        out["spearman"] = float(np.corrcoef(ry, rp)[0, 1])
    else:
        out["spearman"] = np.nan
    return out


# -- classification ----------------------------------------------------------------------------------
def _margins(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, true positives per class, true per class, predicted per class)`` of ``c[..., true, pred]``."""
    c = c.astype(np.float64)
    return c.sum(axis=(-2, -1)), np.diagonal(c, axis1=-2, axis2=-1), c.sum(axis=-1), c.sum(axis=-2)


def _from_counts(c: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics from confusion counts ``c[..., true, pred]`` (vectorised over leading axes)."""
    n, tp, true, pred = _margins(c)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1_c = np.where(true + pred > 0, 2 * tp / (true + pred), 0.0)
        prec_c = np.where(pred > 0, tp / np.where(pred > 0, pred, 1), 0.0)
        rec_c = np.where(true > 0, tp / np.where(true > 0, true, 1), 0.0)
        return {
            "accuracy": tp.sum(-1) / n,
            "f1": f1_c[..., 1], "precision": prec_c[..., 1], "recall": rec_c[..., 1],
            "f1_macro": f1_c.mean(-1),
            "f1_weighted": (f1_c * true).sum(-1) / n,
        }


def confusion(y: np.ndarray, pred: np.ndarray, k: int = 2) -> np.ndarray:
    return np.bincount(np.asarray(y, np.int64) * k + np.asarray(pred, np.int64), minlength=k * k).reshape(k, k)


def classification_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, object]:
    """Accuracy, F1 of the stress class (the Dreaddit paper's F1), macro and weighted F1."""
    c = confusion(y, pred)
    out: dict[str, object] = {k: float(v) for k, v in _from_counts(c).items()}
    out["n"] = int(len(y))
    out["confusion"] = c.tolist()
    return out


def bootstrap_classification(y: np.ndarray, preds: np.ndarray, resamples: int, level: float, seed: int,
                             chunk: int = 100) -> dict[str, list[float]]:
    """Percentile intervals of each metric of the seed-mean, resampling test rows.

    ``preds`` is (seeds x rows) of predicted labels.
    """
    y = np.asarray(y, np.int64)
    preds = np.atleast_2d(np.asarray(preds, np.int64))
    n, k = len(y), 2
    rng = np.random.default_rng(seed)
    vals = {m: [] for m in CLASS_METRICS}
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(b, n))
        codes = y[idx][None] * k + preds[:, idx]  # seeds x b x n
        offs = (np.arange(preds.shape[0] * b) * k * k).reshape(preds.shape[0], b, 1)
        c = np.bincount((codes + offs).ravel(), minlength=preds.shape[0] * b * k * k)
        c = c.reshape(preds.shape[0], b, k, k)
        for m, v in _from_counts(c).items():
            vals[m].append(v.mean(axis=0))
    return _intervals(vals, level)


def bootstrap_regression(y: np.ndarray, preds: np.ndarray, resamples: int, level: float, seed: int,
                         chunk: int = 50, spearman_max_rows: int = 200_000) -> dict[str, list[float]]:
    """Percentile intervals of RMSE, MAE, R² (and Spearman for test sets up to ``spearman_max_rows``)."""
    y = np.asarray(y, np.float64)
    preds = np.atleast_2d(np.asarray(preds, np.float64))
    n = len(y)
    chunk = max(1, min(chunk, 20_000_000 // max(n * preds.shape[0], 1)))
    rng = np.random.default_rng(seed)
    metrics = ["rmse", "mae", "r2"] + (["spearman"] if n <= spearman_max_rows else [])
    vals = {m: [] for m in metrics}
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(b, n))
        yy = y[idx]  # b x n
        err = preds[:, idx] - yy[None]  # seeds x b x n
        mse = (err**2).mean(-1)
        ss_tot = ((yy - yy.mean(-1, keepdims=True)) ** 2).sum(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            vals["rmse"].append(np.sqrt(mse).mean(0))
            vals["mae"].append(np.abs(err).mean(-1).mean(0))
            vals["r2"].append((1 - (err**2).sum(-1) / ss_tot).mean(0))
            if "spearman" in vals:
                ry = _rank(yy)
                rp = _rank(preds[:, idx])
                ry = ry - ry.mean(-1, keepdims=True)
                rp = rp - rp.mean(-1, keepdims=True)
                rho = (rp * ry[None]).sum(-1) / np.sqrt((rp**2).sum(-1) * (ry**2).sum(-1)[None])
                vals["spearman"].append(rho.mean(0))
    return _intervals(vals, level)


def _intervals(vals: Mapping[str, list[np.ndarray]], level: float) -> dict[str, list[float]]:
    a = (1 - level) / 2
    out = {}
    for m, parts in vals.items():
        v = np.concatenate(parts)
        v = v[np.isfinite(v)]
        out[m] = [float(np.quantile(v, a)), float(np.quantile(v, 1 - a))] if len(v) else [np.nan, np.nan]
    return out


def summarize_seeds(per_seed: Sequence[Mapping[str, object]], metrics: Iterable[str],
                    intervals: Mapping[str, list[float]] | None = None) -> dict[str, dict[str, object]]:
    """``{metric: {mean, std, per_seed[, ci]}}`` - std is the sample standard deviation over seeds."""
    out = {}
    for m in metrics:
        v = np.array([float(s[m]) for s in per_seed], np.float64)
        rec: dict[str, object] = {"mean": float(np.nanmean(v)) if np.isfinite(v).any() else np.nan,
                                  "std": float(np.nanstd(v, ddof=1)) if np.isfinite(v).sum() > 1 else 0.0,
                                  "per_seed": v.tolist()}
        if intervals and m in intervals:
            rec["ci"] = intervals[m]
        out[m] = rec
    return out


# -- several classes (CREMA-D emotions) --------------------------------------------------------------
MULTICLASS_METRICS = ("accuracy", "f1_macro", "uar")


def multiclass_from_counts(c: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, macro F1 and UAR from confusion counts ``c[..., true, pred]`` (vectorised).

    UAR (unweighted average recall, the affective-computing standard; Schuller et al., Interspeech
    2009 Emotion Challenge) is the mean of the per-class recalls over the classes present in the
    truth. Macro F1 averages the per-class F1 over the classes present in the truth or the
    predictions (scikit-learn's default label set).
    """
    n, tp, true, pred = _margins(c)
    with np.errstate(divide="ignore", invalid="ignore"):
        present = true > 0
        recall = np.where(present, tp / np.where(present, true, 1), 0.0)
        uar = (recall * present).sum(-1) / present.sum(-1)
        seen = (true + pred) > 0
        f1 = np.where(seen, 2 * tp / np.where(seen, true + pred, 1), 0.0)
        f1_macro = (f1 * seen).sum(-1) / seen.sum(-1)
        return {"accuracy": tp.sum(-1) / n, "f1_macro": f1_macro, "uar": uar}


def multiclass_metrics(y: np.ndarray, pred: np.ndarray, k: int) -> dict[str, object]:
    """``{accuracy, f1_macro, uar, n, confusion}`` for labels ``0..k-1`` (confusion rows = truth)."""
    c = confusion(y, pred, k)
    out: dict[str, object] = {m: float(v) for m, v in multiclass_from_counts(c).items()}
    out["n"] = int(len(y))
    out["confusion"] = c.tolist()
    return out


def group_bootstrap_multiclass(y: np.ndarray, preds: np.ndarray, groups: np.ndarray, k: int, resamples: int,
                               level: float, seed: int) -> dict[str, list[float]]:
    """Percentile intervals of the seed-mean accuracy, macro F1 and UAR, resampling *groups*.

    Test rows of one speaker are not independent, so the resampling unit is the group (the actor):
    each resample draws as many groups as there are, with replacement, and pools their rows
    (cluster bootstrap; Field & Welsh, JRSS-B 2007). Computed from per-group confusion counts, so
    a resample costs one sum.

    Args:
        y: true labels, int [rows]; preds: predicted labels, int [seeds, rows]; groups: [rows].

    Returns:
        ``{metric: [low, high]}``.
    """
    y = np.asarray(y, np.int64)
    preds = np.atleast_2d(np.asarray(preds, np.int64))
    uniq, g = np.unique(np.asarray(groups), return_inverse=True)
    n_groups, n_seeds = len(uniq), preds.shape[0]
    codes = (g[None] * k * k + y[None] * k + preds).ravel() + np.repeat(np.arange(n_seeds) * n_groups * k * k, len(y))
    per_group = np.bincount(codes, minlength=n_seeds * n_groups * k * k).reshape(n_seeds, n_groups, k, k)
    rng = np.random.default_rng(seed)
    vals: dict[str, list[np.ndarray]] = {m: [] for m in MULTICLASS_METRICS}
    for start in range(0, resamples, 200):
        b = min(200, resamples - start)
        pick = rng.integers(0, n_groups, size=(b, n_groups))
        c = per_group[:, pick].sum(axis=2)  # seeds x b x k x k
        for m, v in multiclass_from_counts(c).items():
            vals[m].append(np.nanmean(v, axis=0))
    return _intervals(vals, level)
