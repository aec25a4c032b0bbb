"""Training one trial: mini-batches streamed from the split memmaps, early stopping on ``val``.

Reproducible by seed: the parameters' initialisation, dropout and the batch order all come from
``seed``; deterministic algorithms are switched on, and torch uses a fixed thread count. On CPU
the same seed gives bit-identical weights (tested).

The trainer is handed the train and val splits only. It picks the epoch on val; it never sees
test.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..inference.device import place, set_threads
from ..io.parquet import atomic
from .arrays import DataError, SplitData
from .config import HeadConfig
from .evaluation import better, classification_metrics, regression_metrics
from .models import AffectHead, modalities_of

log = logging.getLogger(__name__)
STATS_CHUNK_BYTES = 32 << 20  # bounds the memory of the input-statistics pass
PREDICT_BATCH = 8192


def train_device(name: str) -> torch.device:
    """The device the heads train on (``train.device``: auto | cpu | cuda), in fp32.

    Raises:
        DeviceMissing: ``cuda`` is named and no GPU is visible.
    """
    return place(name, "fp32", what="train.device").device


def seed_everything(seed: int, threads: int | None = None) -> None:
    """Seed torch and numpy, switch on deterministic algorithms and fix the thread count."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads:
        set_threads(threads)


def _moments(data: SplitData, m: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of modality ``m`` over the rows where it is present (streamed in chunks)."""
    dim = data.modalities[m].dim
    rows = max(256, STATS_CHUNK_BYTES // (8 * dim))
    s, ss, n = np.zeros(dim), np.zeros(dim), 0
    for a in range(0, data.n, rows):
        x = np.asarray(data.x[m][a:a + rows], np.float64)
        x = x[np.asarray(data.mask[m][a:a + rows])]
        s += x.sum(0)
        ss += np.einsum("ij,ij->j", x, x)
        n += len(x)
    if n == 0:
        raise DataError(f"{data.folder}: modality {m!r} is missing for all {data.n} {data.split} rows "
                        f"(are its embeddings all null? did its feature stage run?)")
    mean = s / n
    std = np.sqrt(np.maximum(ss / n - mean**2, 0))
    return mean, np.where(std > 1e-6, std, 1.0)


def check_target(data: SplitData, kind: str) -> None:
    """Refuse a target that cannot be learned or scored: constant, non-finite, or a single class."""
    y = np.asarray(data.y)
    if len(y) == 0:
        raise DataError(f"{data.folder}: the {data.split} split is empty")
    if kind == "regression":
        if not np.isfinite(y).all():
            raise DataError(f"{data.folder}: {int((~np.isfinite(y)).sum())} non-finite target value(s)")
        if np.ptp(y) == 0:
            raise DataError(f"{data.folder}: the target is constant ({float(y[0]):.4g}) over all {len(y)} "
                            f"{data.split} rows: nothing to learn")
    elif len(np.unique(y)) < 2 and data.split == "train":
        raise DataError(f"{data.folder}: all {len(y)} train rows have label {int(y[0])}: nothing to learn")


def build_model(task: str, model: str, dims: Mapping[str, int], params: Mapping[str, Any],
                modality_dropout: float) -> AffectHead:
    mods = modalities_of(task, model)
    return AffectHead({m: dims[m] for m in mods}, hidden=int(params["hidden"]), dropout=float(params["dropout"]),
                      out_dim=1 if task == "engagement" else 2, fusion=model == "fusion",
                      modality_dropout=modality_dropout if model == "fusion" else 0.0)


@dataclass
class FitResult:
    model: AffectHead
    best_epoch: int
    epochs_run: int
    val_metrics: dict[str, Any]
    val_score: float
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def _to(x: Mapping[str, np.ndarray], device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in x.items()}


@torch.no_grad()
def predict(model: AffectHead, data: SplitData, device: torch.device, batch: int = PREDICT_BATCH
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions for every row of ``data`` in order: scores (regression) or P(class 1); fusion weights."""
    model.eval()
    outs, ws = [], []
    for a in range(0, data.n, batch):
        idx = np.arange(a, min(a + batch, data.n))
        x, mask, _ = data.batch(idx, model.names)
        out, w = model(_to(x, device), _to(mask, device))
        if out.shape[-1] == 1:
            outs.append((out.squeeze(-1) * model.y_std + model.y_mean).float().cpu().numpy())
        else:
            outs.append(torch.softmax(out.float(), -1)[:, 1].cpu().numpy())
        if w is not None:
            ws.append(w.float().cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros(0, np.float32), (np.concatenate(ws) if ws else None)


def score(kind: str, y: np.ndarray, out: np.ndarray) -> dict[str, Any]:
    if kind == "regression":
        return regression_metrics(y, out)
    return classification_metrics(y, (out >= 0.5).astype(np.int64))


def fit(head: HeadConfig, model_name: str, params: Mapping[str, Any], seed: int, train: SplitData,
        val: SplitData, device: torch.device | str = "cpu", threads: int | None = None) -> FitResult:
    """Train ``model_name`` with ``params`` on ``train``; keep the epoch best on ``val``."""
    t0 = time.perf_counter()
    if train.split != "train" or val.split != "val":
        raise DataError(f"fit takes the train and val splits, got {train.split!r} and {val.split!r}")
    device = torch.device(device)
    kind = head.kind
    check_target(train, kind)
    check_target(val, kind)
    seed_everything(seed, threads)
    dims = {m: train.modalities[m].dim for m in train.modalities}
    model = build_model(head.task, model_name, dims, params, head.modality_dropout)
    with torch.no_grad():
        for m in model.names:
            mean, std = _moments(train, m)
            model.enc[m].in_mean.copy_(torch.from_numpy(mean))
            model.enc[m].in_std.copy_(torch.from_numpy(std))
        if kind == "regression":
            y = np.asarray(train.y, np.float64)
            model.y_mean.fill_(float(y.mean()))
            model.y_std.fill_(float(y.std()) or 1.0)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=float(params["lr"]), weight_decay=float(params["weight_decay"]))
    loss_fn = nn.MSELoss() if kind == "regression" else nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    bs = head.batch_size
    best = (np.nan, -1, None, None)  # score, epoch, state, metrics
    history, since_best, epoch = [], 0, 0
    for epoch in range(1, head.epochs + 1):
        model.train()
        perm = torch.randperm(train.n, generator=gen).numpy()
        total, seen = 0.0, 0
        for a in range(0, train.n, bs):
            idx = np.sort(perm[a:a + bs])
            x, mask, y = train.batch(idx, model.names)
            out, _ = model(_to(x, device), _to(mask, device))
            if kind == "regression":
                target = (torch.from_numpy(y.astype(np.float32)).to(device) - model.y_mean) / model.y_std
                loss = loss_fn(out.squeeze(-1), target)
            else:
                loss = loss_fn(out, torch.from_numpy(y.astype(np.int64)).to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        out, _ = predict(model, val, device)
        metrics = score(kind, np.asarray(val.y), out)
        s = float(metrics[head.select_metric])
        history.append({"epoch": epoch, "train_loss": total / max(seen, 1), f"val_{head.select_metric}": s})
        if best[2] is None or better(head.select_metric, s, best[0]):
            best = (s, epoch, copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()}), metrics)
            since_best = 0
        else:
            since_best += 1
            if since_best >= head.patience:
                break
    model.load_state_dict(best[2])
    return FitResult(model=model.cpu(), best_epoch=best[1], epochs_run=epoch, val_metrics=best[3],
                     val_score=best[0], history=history, seconds=time.perf_counter() - t0)


# -- checkpoints -------------------------------------------------------------------------------------
def save_checkpoint(path: str | Path, model: AffectHead, meta: Mapping[str, Any]) -> Path:
    """safetensors weights; everything needed to rebuild and audit the model in its metadata."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic(path) as tmp:
        save_file(state, str(tmp), metadata={"affectflow": json.dumps({**meta, "package_version": __version__},
                                                                        sort_keys=True, default=str)})
    return Path(path)


def load_checkpoint(path: str | Path) -> tuple[AffectHead, dict[str, Any]]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["affectflow"])
    model = build_model(meta["task"], meta["model"], meta["dims"], meta["params"], meta.get("modality_dropout", 0.0))
    model.load_state_dict(load_file(str(path)))
    model.eval()
    return model, meta
