"""Emotion models on CREMA-D's frozen features, split by actor, trained in three stages.

Models (``cremad.train.models``): one per modality (``audio`` = eGeMAPS, ``speech`` = the optional
learned encoder, ``video`` = pooled CLIP frames, ``text`` = the sentence: the control) and
``fusion``, attention over every listed modality. All are :class:`affectflow.train.models.AffectHead`:
per modality a standardising encoder with a learned *missing* embedding that stands in where the
modality is absent (a silent WAV, a corrupt video), and, for fusion, additive attention over the
available modalities with modality dropout while training.

The three-stage schedule (``cremad.train.schedule``):

1. each modality alone (these are the unimodal models reported);
2. fusion over the stage-1 encoders, frozen: only the attention, the head and the missing
   embeddings learn;
3. end to end: everything unfrozen at ``end_to_end_lr_scale`` x the rate; kept only where it
   improves the validation score (0 epochs skips it).

The feature extractors themselves (openSMILE, CLIP, the speech and text encoders) stay fixed:
"end to end" here means the whole head, not the towers (fine-tuning CLIP on frames is a GPU job
for another stage). Every stage picks its epoch on the validation actors; the test actors are
scored once per seed.

Scores (``metrics.json``): the 6-class intended emotion (accuracy, macro F1, UAR; mean and std
over seeds, cluster-bootstrap intervals over test actors, confusion matrices), the binary stress
proxy (P(stress) = the emotion model's summed probability of ``stress_emotions``), and the same
predictions scored against the crowd-perceived labels of ``tabulatedVotes.csv`` per presentation
(voice = audio-only, face = video-only, av = audio-visual), beside how often the crowd itself
named the intended emotion on the same clips.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from .. import status as S
from ..io.parquet import provenance, write_json, write_table
from ..layout import params as rule_params
from ..tables import CREMAD_PREDICTIONS
from ..train.evaluation import (MULTICLASS_METRICS, group_bootstrap_multiclass, multiclass_metrics,
                                summarize_seeds)
from .config import CremadConfig, validated
from .sample import EMOTIONS, VOTE_LETTERS

log = logging.getLogger(__name__)
K = len(EMOTIONS)
PRESENTATIONS = ("voice", "face", "av")


# -- data --------------------------------------------------------------------------------------------
def _vectors(paths: Sequence[str | Path], columns: Sequence[str], ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``ids`` from the feature files: the columns' vectors side by side, and where present."""
    frame = pl.concat([pl.read_parquet(p, columns=["clip_id", *columns]) for p in paths])
    pos = {c: i for i, c in enumerate(frame["clip_id"].to_list())}
    if len(pos) != frame.height:
        raise ValueError(f"{paths}: duplicate clip_id rows")
    parts, present = [], None
    for col in columns:
        arr = frame[col].to_arrow()
        arr = arr.combine_chunks() if hasattr(arr, "combine_chunks") else arr
        width = arr.type.list_size
        valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False))
        flat = np.asarray(arr.flatten().to_numpy(zero_copy_only=False), np.float32) if len(arr) else np.zeros(0, np.float32)
        x = np.zeros((len(arr), width), np.float32)
        if valid.any():
            x[valid] = flat.reshape(-1, width) if len(flat) == valid.sum() * width else flat.reshape(len(arr), width)[valid]
        parts.append(x)
        present = valid if present is None else present & valid
    x = np.concatenate(parts, axis=1)
    idx = np.array([pos.get(c, -1) for c in ids])
    out = np.zeros((len(ids), x.shape[1]), np.float32)
    mask = np.zeros(len(ids), bool)
    hit = idx >= 0
    out[hit], mask[hit] = x[idx[hit]], present[idx[hit]]
    return out, mask


def load_dataset(clips: str | Path, features: Mapping[str, Sequence[str | Path]]) -> dict[str, Any]:
    """The labelled clips and their features.

    Args:
        clips: the clips table; features: modality -> its feature files (audio: eGeMAPS shards,
            video: video shards, text: the text table, speech: speech shards).

    Returns:
        ``{"frame": polars rows (clip_id, actor_id, split, emotion_index, votes), "x": {m: float32 [n, d]},
        "mask": {m: bool [n]}, "excluded": {status: count}}``.
    """
    columns = {"audio": ["egemaps"], "speech": ["embedding"], "video": ["embedding_mean", "embedding_std"],
               "text": ["embedding"]}
    all_rows = pl.read_parquet(clips, columns=["clip_id", "actor_id", "split", "emotion_index", "status",
                                               *[f"{q}_vote" for q in PRESENTATIONS]])
    excluded = dict(all_rows.filter(pl.col("status") != S.OK)["status"].value_counts().iter_rows())
    frame = all_rows.filter((pl.col("status") == S.OK) & pl.col("split").is_not_null())
    ids = frame["clip_id"].to_list()
    x, mask = {}, {}
    for m, paths in features.items():
        x[m], mask[m] = _vectors(paths, columns[m], ids)
    return {"frame": frame, "x": x, "mask": mask, "excluded": excluded}


# -- training ------------------------------------------------------------------------------------------
def _tensors(data: Mapping, idx: np.ndarray, names: Sequence[str], device):
    import torch

    x = {m: torch.from_numpy(data["x"][m][idx]).to(device) for m in names}
    present = {m: torch.from_numpy(data["mask"][m][idx]).to(device) for m in names}
    return x, present


def predict(model, data: Mapping, idx: np.ndarray, device, batch: int = 4096) -> tuple[np.ndarray, np.ndarray | None]:
    """``(probabilities float32 [n, 6], attention float32 [n, modalities] or None)`` for rows ``idx``."""
    import torch

    model.eval()
    probs, weights = [], []
    with torch.no_grad():
        for a in range(0, len(idx), batch):
            x, present = _tensors(data, idx[a:a + batch], model.names, device)
            out, w = model(x, present)
            probs.append(torch.softmax(out.float(), -1).cpu().numpy())
            if w is not None:
                weights.append(w.float().cpu().numpy())
    p = np.concatenate(probs) if probs else np.zeros((0, K), np.float32)
    return p, (np.concatenate(weights) if weights else None)


def _score(y: np.ndarray, probs: np.ndarray, metric: str) -> float:
    return float(multiclass_metrics(y, probs.argmax(1), K)[metric])


def fit_stage(model, data: Mapping, train_idx: np.ndarray, val_idx: np.ndarray, epochs: int, lr: float,
              tc, seed: int, device, best_score: float | None = None) -> dict[str, Any]:
    """Train the parameters of ``model`` that require gradients; keep the epoch best on val.

    ``best_score`` (from an earlier stage) must be beaten for any epoch of this stage to be kept.

    Returns:
        ``{best_epoch, epochs_run, val_score, history}`` (the model holds the best weights).
    """
    import torch
    from torch import nn

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=tc.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    y_train = torch.from_numpy(data["y"][train_idx]).to(device)
    y_val = data["y"][val_idx]
    best = {"score": -np.inf if best_score is None else best_score, "epoch": 0,
            "state": copy.deepcopy(model.state_dict())}
    history, since = [], 0
    epoch = 0
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(len(train_idx), generator=gen).numpy()
        total = 0.0
        for a in range(0, len(perm), tc.batch_size):
            b = perm[a:a + tc.batch_size]
            x, present = _tensors(data, train_idx[b], model.names, device)
            out, _ = model(x, present)
            loss = loss_fn(out, y_train[torch.from_numpy(b).to(device)])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        s = _score(y_val, predict(model, data, val_idx, device)[0], tc.select_metric)
        history.append({"epoch": epoch, "train_loss": round(total / max(len(perm), 1), 5), f"val_{tc.select_metric}": s})
        if s > best["score"]:
            best = {"score": s, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
            since = 0
        else:
            since += 1
            if since >= tc.patience:
                break
    model.load_state_dict(best["state"])
    return {"best_epoch": best["epoch"], "epochs_run": epoch, "val_score": best["score"], "history": history}


def _standardise(model, data: Mapping, train_idx: np.ndarray) -> None:
    import torch

    with torch.no_grad():
        for m in model.names:
            x = data["x"][m][train_idx][data["mask"][m][train_idx]]
            if len(x) == 0:
                raise ValueError(f"modality {m!r} is missing for every training clip: did its feature stage run?")
            std = x.std(0)
            model.enc[m].in_mean.copy_(torch.from_numpy(x.mean(0)))
            model.enc[m].in_std.copy_(torch.from_numpy(np.where(std > 1e-6, std, 1.0).astype(np.float32)))


def train_seed(data: Mapping, tc, seed: int, modalities: Sequence[str], fusion: bool, device) -> dict[str, Any]:
    """Stages 1-3 for one seed: ``{model name: (model, log)}``."""
    import torch

    from ..train.models import AffectHead
    from ..train.trainer import seed_everything

    tr, va = data["idx"]["train"], data["idx"]["val"]
    dims = {m: data["x"][m].shape[1] for m in modalities}
    out: dict[str, Any] = {}
    for m in modalities:  # stage 1
        seed_everything(seed)
        net = AffectHead({m: dims[m]}, tc.hidden, tc.dropout, K, fusion=False).to(device)
        _standardise(net, data, tr)
        log_ = fit_stage(net, data, tr, va, tc.unimodal_epochs, tc.lr, tc, seed, device)
        out[m] = (net, {"stage1": log_})
    if fusion:
        seed_everything(seed)
        net = AffectHead(dims, tc.hidden, tc.dropout, K, fusion=True, modality_dropout=tc.modality_dropout).to(device)
        with torch.no_grad():
            for m in modalities:
                net.enc[m].load_state_dict(out[m][0].enc[m].state_dict())
        for m in modalities:  # stage 2: encoders frozen (their missing embeddings still learn)
            for p in net.enc[m].net.parameters():
                p.requires_grad_(False)
        s2 = fit_stage(net, data, tr, va, tc.fusion_epochs, tc.lr, tc, seed, device)
        s3 = None
        if tc.end_to_end_epochs:
            for p in net.parameters():
                p.requires_grad_(True)
            s3 = fit_stage(net, data, tr, va, tc.end_to_end_epochs, tc.lr * tc.end_to_end_lr_scale, tc, seed, device,
                           best_score=s2["val_score"])
        out["fusion"] = (net, {"stage2": s2, "stage3": s3})
    return out


# -- scoring -------------------------------------------------------------------------------------------
def _vote_index(vote: str | None) -> int:
    """A single-winner crowd vote -> emotion index; -1 for a tie, a missing vote or an unknown letter."""
    if not vote or ":" in vote or vote not in VOTE_LETTERS:
        return -1
    return VOTE_LETTERS.index(vote)


def _summary(y: np.ndarray, preds: np.ndarray, groups: np.ndarray, k: int, bc) -> dict[str, Any]:
    per_seed = [multiclass_metrics(y, p, k) for p in preds]
    ci = group_bootstrap_multiclass(y, preds, groups, k, bc.bootstrap_resamples, bc.bootstrap_level,
                                    bc.bootstrap_seed) if len(y) else {}
    out = summarize_seeds(per_seed, MULTICLASS_METRICS, ci)
    out["n"] = int(len(y))
    out["confusion_mean"] = np.mean([s["confusion"] for s in per_seed], axis=0).round(3).tolist()
    return out


def evaluate(data: Mapping, probs: np.ndarray, tc) -> dict[str, Any]:
    """Test-split scores of one model's predictions ``probs`` (seeds x rows x 6)."""
    test = data["idx"]["test"]
    frame = data["frame"][test]
    y = data["y"][test]
    groups = frame["actor_id"].to_numpy()
    preds = probs.argmax(-1)
    stress_cols = [EMOTIONS.index(e) for e in tc.stress_emotions]
    y_stress = np.isin(y, stress_cols).astype(np.int64)
    p_stress = probs[..., stress_cols].sum(-1)
    res = {"emotion": _summary(y, preds, groups, K, tc),
           "stress": _summary(y_stress, (p_stress >= 0.5).astype(np.int64), groups, 2, tc)}
    res["stress"]["positive_rate"] = float(y_stress.mean()) if len(y_stress) else None
    perceived = {}
    for q in PRESENTATIONS:
        v = np.array([_vote_index(s) for s in frame[f"{q}_vote"].to_list()])
        keep = v >= 0
        rec = _summary(v[keep], preds[:, keep], groups[keep], K, tc) if keep.any() else {"n": 0}
        rec["crowd_matches_intended"] = float((v[keep] == y[keep]).mean()) if keep.any() else None
        rec["ties_or_unrated"] = int((~keep).sum())
        perceived[q] = rec
    res["perceived"] = perceived
    return res


def _plots(out_dir: Path, results: Mapping[str, Any]) -> Path:
    from ..train.plots import confusion_matrices

    mats = {m: np.asarray(r["test"]["emotion"]["confusion_mean"]) for m, r in results.items()}
    return confusion_matrices(out_dir / "confusion.png", mats, "CREMA-D test actors: intended emotion (mean over seeds)",
                              labels=EMOTIONS)


def train_all(cfg: Mapping, clips: str | Path, features: Mapping[str, Sequence[str | Path]], out_dir: str | Path,
              threads: int | None = None) -> dict[str, Any]:
    """Stage ``cremad_train``: every configured model, every seed; writes ``metrics.json``,
    ``predictions.parquet`` (``tables.CREMAD_PREDICTIONS``, val and test rows) and ``confusion.png``.

    Args:
        cfg: the stage's config sections; clips: the clips table; features: modality -> feature files.
        out_dir: the model folder.

    Returns:
        The metrics dict (``models.<name>.test.{emotion,stress,perceived}``, ``split``, ``attention``, ...).
    """
    import torch

    from ..train.trainer import train_device

    t0 = time.perf_counter()
    cfg = validated(cfg)
    cc = CremadConfig.from_config(cfg)
    tc = cc.train
    if threads:
        torch.set_num_threads(threads)
    device = train_device("auto")
    unimodal = [m for m in tc.models if m != "fusion"]
    missing = [m for m in unimodal if m not in features]
    if missing:
        hint = " (the speech encoder runs only with cremad.audio.speech: true)" if "speech" in missing else ""
        raise ValueError(f"cremad.train.models names {missing} but no features were given for them{hint}")
    if not unimodal:
        raise ValueError("cremad.train.models names no modality: fusion needs at least one of audio, speech, video, text")
    data = load_dataset(clips, {m: features[m] for m in unimodal})
    frame = data["frame"]
    data["y"] = frame["emotion_index"].to_numpy().astype(np.int64)
    split = frame["split"].to_numpy()
    data["idx"] = {s: np.flatnonzero(split == s) for s in ("train", "val", "test")}
    empty = [s for s, i in data["idx"].items() if len(i) == 0]
    if empty:
        raise ValueError(f"no labelled clips in split(s) {empty}: need actors on all three sides (cremad.split)")
    actors = {s: sorted(set(frame["actor_id"].to_numpy()[i].tolist())) for s, i in data["idx"].items()}
    if set(actors["train"]) & set(actors["test"]) or set(actors["train"]) & set(actors["val"]) or set(actors["val"]) & set(actors["test"]):
        raise ValueError("an actor is on two sides of the split")
    fusion = "fusion" in tc.models
    probs = {m: [] for m in tc.models}
    attention = []
    logs = {m: [] for m in tc.models}
    out_dir = Path(out_dir)
    pred_rows = []
    eval_idx = np.concatenate([data["idx"]["val"], data["idx"]["test"]])
    for seed in tc.seeds:
        trained = train_seed(data, tc, seed, unimodal, fusion, device)
        for name, (net, log_) in trained.items():
            p, w = predict(net, data, eval_idx, device)
            probs[name].append(p[len(data["idx"]["val"]):])
            logs[name].append({"seed": seed, **log_})
            if name == "fusion":
                attention.append(w[len(data["idx"]["val"]):])
            sc = [EMOTIONS.index(e) for e in tc.stress_emotions]
            sub = frame[eval_idx]
            pred_rows.append(pa.table({
                "clip_id": sub["clip_id"].to_arrow(), "actor_id": sub["actor_id"].to_arrow().cast(pa.int32()),
                "split": sub["split"].to_arrow(), "model": pa.array([name] * len(eval_idx)),
                "seed": pa.array(np.full(len(eval_idx), seed, np.int32)),
                "emotion": pa.array([EMOTIONS[i] for i in data["y"][eval_idx]]),
                "predicted": pa.array([EMOTIONS[i] for i in p.argmax(1)]),
                "probabilities": pa.FixedSizeListArray.from_arrays(pa.array(p.astype(np.float32).ravel()), K),
                "p_stress": pa.array(p[:, sc].sum(1).astype(np.float32)),
                "attention": pa.array([list(map(float, r)) for r in w] if w is not None else [None] * len(eval_idx),
                                      pa.list_(pa.float32()))}))
    results = {}
    for name in tc.models:
        results[name] = {"modalities": unimodal if name == "fusion" else [name],
                         "test": evaluate(data, np.stack(probs[name]), tc), "training": logs[name]}
    att = None
    if fusion and attention:
        w = np.stack(attention)  # seeds x rows x modalities
        test_mask = np.stack([data["mask"][m][data["idx"]["test"]] for m in unimodal], 1)
        att = {"modalities": unimodal, "mean": dict(zip(unimodal, w.mean((0, 1)).round(4).tolist())),
               "mean_all_present": dict(zip(unimodal, w[:, test_mask.all(1)].mean((0, 1)).round(4).tolist()))
               if test_mask.all(1).any() else None}
        results["fusion"]["attention"] = att
    write_table(out_dir / "predictions.parquet", pa.concat_tables(pred_rows), CREMAD_PREDICTIONS,
                provenance("cremad_predictions", rule_params("cremad_train", cfg), clips=str(clips)))
    fig = _plots(out_dir, results)
    metrics = {
        "task": "CREMA-D intended emotion (6 classes), split by actor; stress is a proxy from the emotion model",
        "emotions": list(EMOTIONS), "stress_emotions": list(tc.stress_emotions), "selected_on": "val",
        "select_metric": tc.select_metric, "seeds": list(tc.seeds), "device": str(device),
        "split": {s: {"clips": int(len(i)), "actors": actors[s]} for s, i in data["idx"].items()},
        "excluded": data["excluded"],
        "modality_present": {s: {m: int(data["mask"][m][i].sum()) for m in unimodal} for s, i in data["idx"].items()},
        "chance": {"emotion_uar": 1 / K, "emotion_majority_accuracy": float(np.bincount(data["y"][data["idx"]["test"]], minlength=K).max()
                                                                            / max(len(data["idx"]["test"]), 1))},
        "models": results, "attention": att, "confusion_figure": str(fig),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json(out_dir / "metrics.json", metrics)
    log.info("cremad train: %s", json.dumps({m: round(r["test"]["emotion"]["uar"]["mean"], 3) for m, r in results.items()}))
    return metrics
