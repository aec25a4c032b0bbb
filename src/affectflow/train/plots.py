"""Figures for metrics.json's companions and the report (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Lay out, write (PNG, parent folders made) and close ``fig``."""
    plt = _plt()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def pred_vs_actual(path: str | Path, y: np.ndarray, preds: Mapping[str, np.ndarray], title: str,
                   max_points: int = 20000, seed: int = 0, rmse: Mapping[str, float] | None = None) -> Path:
    """One panel per model: seed-mean prediction against the actual score (a sample of points).

    ``rmse`` (model -> value) is the figure each panel quotes: pass the metrics table's (the mean
    over seeds of each seed's RMSE) so plot and table agree; without it, the RMSE of the plotted
    seed-mean prediction."""
    plt = _plt()
    y = np.asarray(y, np.float64)
    idx = np.arange(len(y))
    if len(y) > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(len(y), max_points, replace=False))
    names = list(preds)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.4), squeeze=False, sharex=True, sharey=True)
    lo, hi = float(np.min(y)), float(np.max(y))
    for ax, name in zip(axes[0], names):
        p = np.asarray(preds[name], np.float64)
        ax.scatter(y[idx], p[idx], s=6, alpha=0.5, linewidths=0)
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--")
        err = (rmse or {}).get(name)
        err = float(np.sqrt(np.mean((p - y) ** 2))) if err is None else float(err)
        ax.set_title(f"{name}  (RMSE {err:.3f}, mean over seeds)" if rmse else f"{name}  (RMSE {err:.3f})", fontsize=9)
        ax.set_xlabel("actual")
    axes[0][0].set_ylabel("predicted (mean over seeds)")
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def confusion_matrices(path: str | Path, matrices: Mapping[str, np.ndarray], title: str,
                       labels: tuple[str, str] = ("no stress", "stress")) -> Path:
    """One panel per model: test confusion counts (mean over seeds), rows = truth."""
    plt = _plt()
    names = list(matrices)
    fig, axes = plt.subplots(1, len(names), figsize=(2.9 * len(names), 3.0), squeeze=False)
    for ax, name in zip(axes[0], names):
        c = np.asarray(matrices[name], np.float64)
        ax.imshow(c, cmap="Blues", vmin=0)
        for i in range(c.shape[0]):
            for j in range(c.shape[1]):
                ax.text(j, i, f"{c[i, j]:.1f}".rstrip("0").rstrip("."), ha="center", va="center", fontsize=9,
                        color="white" if c[i, j] > c.max() / 2 else "black")
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("predicted", fontsize=8)
    axes[0][0].set_ylabel("true", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
