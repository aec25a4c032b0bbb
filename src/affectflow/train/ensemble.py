"""Ensembles chosen on the validation split: a weighted average of the members' P(stress).

Every subset of the candidate models up to ``max_members``, every combination of the allowed
relative weights, and (with ``threshold: true``) every decision threshold on a 0.01 grid between
0.05 and 0.95 is scored on val with the selection metric; the best wins, ties going to fewer
members, then to the threshold nearest 0.5, then to the earlier candidate order. Only validation
probabilities and labels are arguments: the choice cannot depend on test.

A single model with a tuned threshold is among the candidates, so the ensemble is never worse on
val than the best single model (it may be on test: that is what the test figure is for).

Seeds: a candidate may give one probability vector or one per seed (seeds x rows). An ensemble
is then evaluated once per seed (seed ``i`` of every member, a member with fewer seeds reusing
them in turn) and scored by the mean over seeds, so its figure is a mean of seeds like every
single model's, not a larger seed-averaged ensemble.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import numpy as np

from .evaluation import LOWER_IS_BETTER, _from_counts

THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.01), 2)


def scores_at_thresholds(y: np.ndarray, prob: np.ndarray, thresholds: np.ndarray, metric: str) -> np.ndarray:
    """``metric`` of the labels ``prob >= t`` for every ``t`` in ``thresholds`` (vectorised).

    Args:
        y: true labels (rows,), 0/1.
        prob: P(class 1) (rows,).
        thresholds: (T,).
        metric: a key of :func:`evaluation._from_counts` (f1, f1_weighted, f1_macro, accuracy...).

    Returns:
        (T,) float64.
    """
    y = np.asarray(y, np.int64)
    pred = (np.asarray(prob)[None] >= np.asarray(thresholds)[:, None]).astype(np.int64)
    codes = (y[None] * 2 + pred) + (np.arange(len(thresholds)) * 4)[:, None]
    c = np.bincount(codes.ravel(), minlength=len(thresholds) * 4).reshape(len(thresholds), 2, 2)
    return _from_counts(c)[metric]


def _weightings(k: int, weights: Sequence[float]) -> list[tuple[float, ...]]:
    """Distinct normalised weight vectors of ``k`` members from the allowed relative weights."""
    seen, out = set(), []
    for w in itertools.product(weights, repeat=k):
        v = tuple(round(x / sum(w), 6) for x in w)
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def choose_ensemble(y_val: np.ndarray, val_probs: Mapping[str, np.ndarray], metric: str, max_members: int = 3,
                    weights: Sequence[float] = (1.0, 2.0), tune_threshold: bool = True) -> dict[str, Any]:
    """The val-best weighted average of candidates' probabilities.

    Args:
        y_val: validation labels (rows,).
        val_probs: candidate name -> validation P(stress), (rows,) or one row per seed (seeds, rows),
            in a fixed order.
        metric: the selection metric (higher is better; rmse-like metrics are refused).
        max_members: largest subset tried.
        weights: relative weights a member may take.
        tune_threshold: choose the threshold on val (else 0.5).

    Returns:
        ``members`` (names), ``weights`` (summing to 1), ``threshold``, ``val_score`` (at that
        threshold), ``val_score_at_0_5``, ``candidates`` (each one's val score at 0.5 and at its
        own best threshold), ``combinations_tried``, ``selected_on: "val"``, ``select_metric``.

    Raises:
        ValueError: no candidates, or a metric where lower is better.
    """
    if metric in LOWER_IS_BETTER:
        raise ValueError(f"ensembles are chosen by a classification metric, not {metric!r}")
    names = list(val_probs)
    if not names:
        raise ValueError("no candidate models for the ensemble")
    p = {n: np.atleast_2d(np.asarray(val_probs[n], np.float64)) for n in names}
    bad = [n for n in names if p[n].ndim != 2 or p[n].shape[0] == 0]
    if bad:
        raise ValueError(f"candidates {bad} have no seeds (expected (rows,) or (seeds, rows) probabilities)")
    labels = np.asarray(y_val, np.float64)
    bad = [n for n in names if p[n].shape[1] != len(labels)]
    if bad:
        raise ValueError(f"candidates {bad} have another number of val rows than the labels ({len(labels)})")
    bad = [n for n in names if not np.all(np.isfinite(p[n]))]
    if bad:
        raise ValueError(f"candidates {bad} have non-finite (NaN/inf) val probabilities")
    bad = [n for n in names if p[n].min() < 0 or p[n].max() > 1]
    if bad:
        raise ValueError(f"candidates {bad} have val scores outside [0, 1]: probabilities, not logits, are averaged")
    if not np.all(np.isin(labels, (0, 1))):
        raise ValueError("val labels must be 0/1 (a NaN or another class was given)")
    if len(np.unique(labels)) < 2:
        raise ValueError(f"val holds {len(labels)} row(s) of a single class: no ensemble or threshold can be "
                         "chosen on it")
    y = labels.astype(np.int64)
    thr = THRESHOLDS if tune_threshold else np.array([0.5])

    def per_seed(members, w, at):  # (seeds, thresholds)
        return np.stack([scores_at_thresholds(y, s, at, metric)
                         for s in combine_seeds(p, {"members": members, "weights": w})])

    def score(members, w, at):  # (thresholds,): the mean over seeds
        return per_seed(members, w, at).mean(axis=0)

    best: tuple | None = None
    tried = 0
    for k in range(1, min(max_members, len(names)) + 1):
        for combo in itertools.combinations(range(len(names)), k):
            for w in _weightings(k, weights) if k > 1 else [(1.0,)]:
                s = score([names[i] for i in combo], w, thr)
                tried += 1
                j = int(np.lexsort((np.abs(thr - 0.5), -s))[0])  # best score, then nearest 0.5
                key = (-s[j], k, abs(thr[j] - 0.5))
                if best is None or key < best[0]:
                    best = (key, combo, w, float(thr[j]), float(s[j]))
    _, combo, w, t, best_score = best
    cands = {}
    for n in names:
        s = score([n], (1.0,), THRESHOLDS)
        cands[n] = {"val_at_0_5": float(score([n], (1.0,), np.array([0.5]))[0]), "seeds": int(p[n].shape[0]),
                    "val_best": float(s.max()), "best_threshold": float(THRESHOLDS[int(np.argmax(s))])}
    members = [names[i] for i in combo]
    seeds_val = [float(v) for v in per_seed(members, w, np.array([t]))[:, 0]]
    return {"members": members, "weights": list(w), "threshold": t, "val_score": best_score,
            "val_per_seed": seeds_val, "val_std": float(np.std(seeds_val, ddof=1)) if len(seeds_val) > 1 else 0.0,
            "val_score_at_0_5": float(score(members, w, np.array([0.5]))[0]),
            "seeds": int(max(p[m].shape[0] for m in members)),
            "select_metric": metric, "selected_on": "val", "threshold_tuned": bool(tune_threshold),
            "max_members": max_members, "allowed_weights": list(weights), "combinations_tried": tried,
            "candidates": cands}


def combine(probs: Mapping[str, np.ndarray], choice: Mapping[str, Any]) -> np.ndarray:
    """The ensemble's P(stress): ``choice``'s weighted average of ``probs[member]`` (rows,)."""
    return sum(w * np.asarray(probs[m], np.float64) for m, w in zip(choice["members"], choice["weights"]))


def combine_seeds(stacks: Mapping[str, np.ndarray], choice: Mapping[str, Any]) -> np.ndarray:
    """The ensemble's P(stress) once per seed.

    Args:
        stacks: name -> P(stress), (seeds, rows) or (rows,) for one seed.
        choice: ``members`` and ``weights`` (see :func:`choose_ensemble`).

    Returns:
        (S, rows) float64, S the most seeds of any member: row ``i`` averages seed ``i`` of every
        member (seed ``i mod n`` of a member with ``n`` seeds).
    """
    arrs = [np.atleast_2d(np.asarray(stacks[m], np.float64)) for m in choice["members"]]
    n = max(a.shape[0] for a in arrs)
    return np.stack([sum(w * a[i % a.shape[0]] for w, a in zip(choice["weights"], arrs)) for i in range(n)])
