"""Full fine-tuning of a text encoder with a stress head on Dreaddit: one job per seed (rule finetune_text).

The encoder is any sentence-transformers or Hugging Face encoder that ``models.<key>`` names
(``train.stress.finetune_text.model``, ``text_embedding`` by default: the same model the frozen
text features use). Its token states are pooled as its sentence-transformers config says (mean,
or the first token), then dropout and a linear layer give stress / no stress. Everything trains:
the encoder at ``lr``, the head at ``head_lr``, AdamW with linear warm-up and decay.

Protocol, the same as the heads on frozen features: train on ``train``; after each epoch score
``val`` and keep the epoch with the best ``train.stress.select_metric`` (binary F1 by default) at
the 0.5 threshold; write that epoch's validation probabilities (the ensemble is chosen on them);
only then read the test rows, score them once and write their probabilities. Checkpoint:
``model.safetensors`` (encoder + head; the settings, the encoder's digest and the epoch in its
metadata).

Speed: texts are tokenised once; training batches are drawn from length-sorted pools of
``50 x batch_size`` shuffled rows (little padding, still random), evaluation batches are length
sorted. bf16 autocast on GPUs and on CPUs with native bf16 units (AVX512-BF16/AMX), fp32
elsewhere (``precision``). Figures on the real Dreaddit copy: README, training section.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import polars as pl
import torch
from torch import nn

from .arrays import DataError
from .config import TrainConfig
from .evaluation import better, classification_metrics
from .finetune import save_finetuned, write_split_predictions
from .trainer import seed_everything

log = logging.getLogger(__name__)
POOL_ROWS = 50  # training rows are length-sorted within pools of POOL_ROWS x batch_size
LOG_EVERY = 40  # training steps between progress lines


class TextClassifier(nn.Module):
    """Encoder -> pooled sentence vector -> dropout -> linear (2 classes)."""

    def __init__(self, encoder: nn.Module, hidden: int, pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be mean or cls, not {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits (batch x 2, float32) of token ids and their mask (batch x tokens)."""
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            v = h[:, 0]
        else:
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            v = (h * m).sum(1) / m.sum(1).clamp(min=1)
        return self.head(self.dropout(v)).float()


def _pooling(path: Path) -> str:
    """The pooling a sentence-transformers folder declares (mean when it declares none)."""
    for cfg in sorted(path.glob("*_Pooling/config.json")):
        d = json.loads(cfg.read_text())
        if d.get("pooling_mode_cls_token"):
            return "cls"
        return "mean"
    return "mean"


def load_text_classifier(cfg: Mapping[str, Any], key: str):
    """``(TextClassifier, tokenizer, provenance)`` for ``models.<key>``, offline.

    Raises:
        ModelMissing: the model is not on disk (the message names the fetch command).
    """
    from transformers import AutoModel, AutoTokenizer

    from ..models import HFModel, provenance_of, resolve

    if key not in cfg.get("models", {}):
        raise DataError(f"train.stress.finetune_text.model is {key!r}, but models.{key} is not configured")
    spec = HFModel.from_config(cfg, key)
    path = resolve(cfg, spec)
    tok = AutoTokenizer.from_pretrained(str(path))
    enc = AutoModel.from_pretrained(str(path))
    model = TextClassifier(enc, int(enc.config.hidden_size), _pooling(path))
    return model, tok, {**provenance_of(cfg, spec, path), "pooling": model.pooling}


def _batches(lengths: np.ndarray, batch: int, shuffle: bool, gen: np.random.Generator | None) -> list[np.ndarray]:
    """Row indices per batch: length-sorted (evaluation) or shuffled pools, sorted within (training)."""
    if not shuffle:
        order = np.argsort(-lengths, kind="stable")
        return [order[a:a + batch] for a in range(0, len(order), batch)]
    perm = gen.permutation(len(lengths))
    out = []
    pool = POOL_ROWS * batch
    for a in range(0, len(perm), pool):
        p = perm[a:a + pool]
        p = p[np.argsort(-lengths[p], kind="stable")]
        out += [p[b:b + batch] for b in range(0, len(p), batch)]
    return [out[i] for i in gen.permutation(len(out))]


def _collate(ids: list[list[int]], rows: np.ndarray, pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids[i]) for i in rows)
    x = np.full((len(rows), width), pad, np.int64)
    m = np.zeros((len(rows), width), np.int64)
    for k, i in enumerate(rows):
        x[k, :len(ids[i])] = ids[i]
        m[k, :len(ids[i])] = 1
    return torch.from_numpy(x).to(device), torch.from_numpy(m).to(device)


@torch.no_grad()
def _predict(model: TextClassifier, ids, pad: int, batch: int, device, autocast) -> np.ndarray:
    """P(stress) per row, in row order."""
    model.eval()
    lengths = np.array([len(t) for t in ids])
    out = np.zeros(len(ids), np.float32)
    for rows in _batches(lengths, batch * 2, False, None):
        x, m = _collate(ids, rows, pad, device)
        with autocast():
            logits = model(x, m)
        out[rows] = torch.softmax(logits.float(), -1)[:, 1].cpu().numpy()
    return out


def finetune_text(cfg: Mapping[str, Any], seed: int, posts_path: str | Path, out_dir: str | Path,
                  threads: int | None = None) -> dict[str, Any]:
    """Fine-tune on train, choose the epoch on val, then score test once.

    Args:
        cfg: the config (sections ``train`` and ``models``).
        seed: initialisation of the head, dropout and batch order.
        posts_path: the Dreaddit posts table (its ``split`` column: train/val/test).
        out_dir: gets ``result.json``, ``val_predictions.parquet``, ``test_predictions.parquet``
            (tables.PREDICTIONS, ``prediction`` = P(stress)) and ``model.safetensors``.
        threads: torch CPU threads.

    Returns:
        The ``result.json`` dict: ``model`` (provenance), ``params``, ``best_epoch``, ``val_score``,
        ``val_metrics``, ``history`` (per epoch: train loss, val score, seconds, texts/s),
        ``rows``, ``device``, ``precision``, ``seconds``.

    Raises:
        DataError: train or val is empty, or train holds one label.
        ModelMissing: the encoder is not on disk.
    """
    from ..inference.device import place
    from .stress_data import read_labelled_posts

    t0 = time.perf_counter()
    tc = TrainConfig.from_config(cfg)
    ft = tc.finetune_text
    metric = tc.stress.select_metric
    out_dir = Path(out_dir)
    # bf16 autocast on a GPU, and on a CPU with native bf16 units (AMX/AVX512-BF16); else fp32
    where = place(tc.device, ft.precision, gpu_auto="best", cpu_half="native", what="train.device")
    device, dtype = where.device, where.dtype
    precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
    seed_everything(seed, threads)
    torch.use_deterministic_algorithms(False)  # attention kernels have no deterministic CUDA path
    model, tok, prov = load_text_classifier(cfg, ft.model)
    model.to(device)

    posts, _ = read_labelled_posts(Path(posts_path))
    rows = posts.select("post_id", "split", "text", "label")
    train, val = rows.filter(pl.col("split") == "train"), rows.filter(pl.col("split") == "val")
    if train.height == 0 or val.height == 0:
        raise DataError(f"{posts_path}: fine-tuning needs train and val rows (train {train.height}, val {val.height})")
    if train["label"].n_unique() < 2:
        raise DataError(f"{posts_path}: all train rows share one label")
    encode = lambda f: tok(f["text"].fill_null("").to_list(), truncation=True, max_length=ft.max_length)["input_ids"]  # noqa: E731
    ids = {"train": encode(train), "val": encode(val)}
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    y_train = train["label"].to_numpy().astype(np.int64)
    y_val = val["label"].to_numpy().astype(np.int64)

    use_amp = dtype != torch.float32
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if use_amp else (lambda: torch.autocast(device.type, enabled=False))
    scaler = torch.amp.GradScaler(enabled=precision == "fp16")
    opt = torch.optim.AdamW([{"params": model.encoder.parameters(), "lr": ft.lr},
                             {"params": model.head.parameters(), "lr": ft.head_lr}], weight_decay=ft.weight_decay)
    steps_per_epoch = math.ceil(train.height / ft.batch_size)
    total = steps_per_epoch * ft.epochs
    warm = max(1, int(ft.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
    gen = np.random.default_rng(seed)
    lengths = np.array([len(t) for t in ids["train"]])
    loss_fn = nn.CrossEntropyLoss()
    best: dict[str, Any] = {"score": float("nan"), "epoch": -1, "state": None, "metrics": None, "val_prob": None}
    history = []
    for epoch in range(1, ft.epochs + 1):
        model.train()
        seen, total_loss, te, step = 0, 0.0, time.perf_counter(), 0
        for b in _batches(lengths, ft.batch_size, True, gen):
            x, m = _collate(ids["train"], b, pad, device)
            with autocast():
                logits = model(x, m)
            loss = loss_fn(logits, torch.from_numpy(y_train[b]).to(device))
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
            sched.step()
            total_loss += float(loss.detach()) * len(b)
            seen += len(b)
            step += 1
            if step % LOG_EVERY == 0:
                log.info("seed %d epoch %d: step %d of %d, loss %.4f, %.1f texts/s", seed, epoch, step, steps_per_epoch,
                         total_loss / seen, seen / (time.perf_counter() - te))
        train_s = time.perf_counter() - te
        prob = _predict(model, ids["val"], pad, ft.batch_size, device, autocast)
        met = classification_metrics(y_val, (prob >= 0.5).astype(np.int64))
        history.append({"epoch": epoch, "train_loss": total_loss / max(seen, 1), f"val_{metric}": met[metric],
                        "seconds": round(time.perf_counter() - te, 2), "texts_per_s": round(seen / train_s, 1)})
        log.info("seed %d epoch %d: loss %.4f, val %s %.4f (%.0fs)", seed, epoch, total_loss / max(seen, 1), metric,
                 met[metric], time.perf_counter() - te)
        if best["state"] is None or better(metric, float(met[metric]), best["score"]):
            best = {"score": float(met[metric]), "epoch": epoch, "metrics": met, "val_prob": prob,
                    "state": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}}
    model.load_state_dict(best["state"])
    name = f"{ft.model}_finetune"
    write_split_predictions(out_dir / "val_predictions.parquet", val, "val", name, seed, best["val_prob"],
                            {"train": cfg.get("train", {})}, prov)

    # selection is over: now, and only now, the test split
    test = rows.filter(pl.col("split") == "test")
    prob = _predict(model, encode(test), pad, ft.batch_size, device, autocast)
    write_split_predictions(out_dir / "test_predictions.parquet", test, "test", name, seed, prob,
                            {"train": cfg.get("train", {})}, prov)
    digest = hashlib.blake2b(rows.select("post_id", "split", "label").write_csv().encode(), digest_size=16).hexdigest()
    params = {k: getattr(ft, k) for k in ("model", "epochs", "lr", "head_lr", "weight_decay", "batch_size",
                                          "max_length", "warmup")}
    ckpt = save_finetuned(out_dir / "model.safetensors", best["state"], {
        "task": "stress", "model": name, "encoder": prov, "seed": seed, "params": params, "best_epoch": best["epoch"],
        "selected_on": "val", "data_digest": digest}, cfg)
    result = {"task": "stress", "kind": "text_finetune", "name": name, "model": prov, "seed": seed, "params": params,
              "selected_on": "val", "select_metric": metric, "val_score": best["score"], "val_metrics": best["metrics"],
              "best_epoch": best["epoch"], "history": history,
              "rows": {"train": train.height, "val": val.height, "test": test.height},
              "device": str(device), "precision": precision, "data_digest": digest, "checkpoint": str(ckpt),
              "seconds": round(time.perf_counter() - t0, 2)}
    from ..io.parquet import write_json

    write_json(out_dir / "result.json", result)
    return result
