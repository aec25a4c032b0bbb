"""Full fine-tuning of CLIP (both towers) with a fused head on Dreaddit: one job per seed.

The head sees the L2-normalised text and image features side by side (a learned vector stands in
where a post has no usable image) and outputs stress / no stress. Everything trains: the towers at
``lr``, the head at ``head_lr``. The epoch kept is the one with the best validation score; only
then is the test split loaded, scored once, and its predictions written for the final rule.

The text tower reads the first 77 tokens of each post (open_clip's own truncation; the frozen
features of the Dreaddit CLIP stage average windows over the whole text instead).

GPU: bf16 autocast, pinned memory, image decoding in DataLoader workers. CPU (tests, the demo with
a tiny CLIP): fp32, same code. The CLIP is ``models.clip`` (the one the Dreaddit CLIP features
use), loaded offline through :func:`affectflow.models.load_clip`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import polars as pl
import pyarrow as pa
import torch
from torch import nn

from .. import status as S
from .. import tables
from ..inference.device import place
from ..io.parquet import atomic, config_digest, provenance, write_json, write_table
from .arrays import DataError
from .config import TrainConfig
from .evaluation import better, classification_metrics
from .trainer import seed_everything

log = logging.getLogger(__name__)


class StressCLIP(nn.Module):
    """CLIP towers + a linear head on [text feature, image feature]."""

    def __init__(self, clip: nn.Module, embed_dim: int):
        super().__init__()
        self.clip = clip
        self.missing_image = nn.Parameter(torch.zeros(embed_dim))
        self.head = nn.Linear(2 * embed_dim, 2)

    def forward(self, tokens: torch.Tensor, images: torch.Tensor, has_image: torch.Tensor) -> torch.Tensor:
        t = nn.functional.normalize(self.clip.encode_text(tokens), dim=-1)
        i = nn.functional.normalize(self.clip.encode_image(images), dim=-1)
        i = torch.where(has_image[:, None], i, self.missing_image.to(i.dtype).expand_as(i))
        return self.head(torch.cat([t, i], dim=-1).float())


class _Posts(torch.utils.data.Dataset):
    def __init__(self, frame: pl.DataFrame, tokens: torch.Tensor, transform, image_size: int):
        self.paths = frame["image_file"].to_list()
        self.labels = frame["label"].to_numpy().astype(np.int64)
        self.tokens = tokens
        self.transform = transform
        self.blank = torch.zeros(3, image_size, image_size)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        path = self.paths[i]
        if path is None:
            return self.tokens[i], self.blank, False, self.labels[i]
        with Image.open(path) as im:
            return self.tokens[i], self.transform(im.convert("RGB")), True, self.labels[i]


def _image_size(model: nn.Module) -> int:
    size = getattr(getattr(model, "visual", None), "image_size", 224)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def read_rows(posts_path: str | Path, synth_paths: Sequence[str | Path], results: str | Path) -> pl.DataFrame:
    """Dreaddit posts with the file of their synthesized image (null when unusable)."""
    from .stress_data import read_labelled_posts

    posts, _ = read_labelled_posts(Path(posts_path))  # the rows the frozen-feature heads train on, same checks
    posts = posts.select("post_id", "split", "text", "label")
    synth = pl.concat([pl.read_parquet(p, columns=["post_id", "image_path", "status"]) for p in synth_paths])
    df = posts.join(synth, on="post_id", how="left", maintain_order="left")

    def resolve(p: str | None) -> str | None:
        if p is None:
            return None
        for cand in (Path(p), Path(results) / p, Path(results) / "dreaddit" / p):
            if cand.is_file():
                return str(cand)
        return None

    ok = (pl.col("status") == S.OK) & pl.col("image_path").is_not_null()
    df = df.with_columns(pl.when(ok).then(pl.col("image_path")).otherwise(None).alias("image_path"))
    return df.with_columns(pl.Series("image_file", [resolve(p) for p in df["image_path"].to_list()], pl.String))


def _loader(frame, tokenizer, transform, image_size, batch, workers, shuffle, seed, pin):
    tokens = tokenizer(frame["text"].fill_null("").to_list())
    ds = _Posts(frame, tokens, transform, image_size)
    gen = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=shuffle, generator=gen, num_workers=workers,
                                       pin_memory=pin, persistent_workers=False, drop_last=False)


@torch.no_grad()
def _predict(model: StressCLIP, loader, device, autocast) -> np.ndarray:
    model.eval()
    out = []
    for tokens, images, has_image, _ in loader:
        with autocast():
            logits = model(tokens.to(device, non_blocking=True), images.to(device, non_blocking=True),
                           has_image.to(device))
        out.append(torch.softmax(logits.float(), -1)[:, 1].cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def finetune(cfg: Mapping[str, Any], seed: int, posts_path: str | Path, synth_paths: Sequence[str | Path],
             out_dir: str | Path, threads: int | None = None) -> dict[str, Any]:
    """Fine-tune on train, choose the epoch on val, then score test once; write result.json,
    test_predictions.parquet and model.safetensors under ``out_dir``."""
    t0 = time.perf_counter()
    tc = TrainConfig.from_config(cfg)
    ft = tc.finetune
    out_dir = Path(out_dir)
    # bf16 autocast on a GPU by default; on a CPU fp32 unless a precision is named
    where = place(tc.device, ft.precision, gpu_auto="bf16", cpu_half="as_asked", what="train.device")
    device, precision = where.device, where.precision
    seed_everything(seed, threads)
    torch.use_deterministic_algorithms(False)  # CLIP's attention kernels have no deterministic CUDA path
    from ..models import ClipModel, load_clip

    clip, pre_val, tokenizer, clip_prov = load_clip(cfg, ClipModel.from_config(cfg), device="cpu")
    pre_train = pre_val  # no augmentation: the images are synthetic renderings of the text
    model_id = f"{clip_prov.get('arch')}/{clip_prov.get('pretrained')}"
    embed_dim = int(clip.text_projection.shape[1]) if hasattr(clip, "text_projection") and clip.text_projection is not None \
        else int(clip.encode_text(tokenizer(["x"])).shape[-1])
    model = StressCLIP(clip, embed_dim).to(device)
    size = _image_size(clip)
    rows = read_rows(posts_path, synth_paths, cfg.get("results", "results"))
    fit_rows = rows.filter(pl.col("split").is_in(["train", "val"]))
    train, val = fit_rows.filter(pl.col("split") == "train"), fit_rows.filter(pl.col("split") == "val")
    if train.height == 0 or val.height == 0:
        raise DataError(f"{posts_path}: fine-tuning needs train and val rows (train {train.height}, val {val.height})")
    if train["label"].n_unique() < 2:
        raise DataError(f"{posts_path}: all train rows share one label")
    pin = device.type == "cuda"
    workers = ft.workers if device.type == "cuda" else 0
    tl = _loader(train, tokenizer, pre_train, size, ft.batch_size, workers, True, seed, pin)
    vl = _loader(val, tokenizer, pre_val, size, ft.batch_size, workers, False, seed, pin)
    dtype = None if precision == "fp32" else where.dtype
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else (lambda: torch.autocast(device.type, enabled=False))
    scaler = torch.amp.GradScaler(enabled=precision == "fp16")
    head_params = [model.missing_image, *model.head.parameters()]
    opt = torch.optim.AdamW([{"params": model.clip.parameters(), "lr": ft.lr},
                             {"params": head_params, "lr": ft.head_lr}], weight_decay=ft.weight_decay)
    metric = tc.stress.select_metric
    loss_fn = nn.CrossEntropyLoss()
    best: tuple[float, int, dict | None, dict | None] = (float("nan"), -1, None, None)
    history = []
    for epoch in range(1, ft.epochs + 1):
        model.train()
        seen, total, te = 0, 0.0, time.perf_counter()
        for tokens, images, has_image, labels in tl:
            with autocast():
                logits = model(tokens.to(device, non_blocking=True), images.to(device, non_blocking=True),
                               has_image.to(device))
                loss = loss_fn(logits.float(), labels.to(device))
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += float(loss.detach()) * len(labels)
            seen += len(labels)
        prob = _predict(model, vl, device, autocast)
        m = classification_metrics(val["label"].to_numpy(), (prob >= 0.5).astype(np.int64))
        history.append({"epoch": epoch, "train_loss": total / max(seen, 1), f"val_{metric}": m[metric],
                        "seconds": round(time.perf_counter() - te, 2), "items_per_s": round(seen / (time.perf_counter() - te), 1)})
        log.info("seed %d epoch %d: loss %.4f, val %s %.4f", seed, epoch, total / max(seen, 1), metric, m[metric])
        if best[2] is None or better(metric, float(m[metric]), best[0]):
            best = (float(m[metric]), epoch, {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}, m)
    model.load_state_dict(best[2])

    # selection is over: now, and only now, the test split
    test = rows.filter(pl.col("split") == "test")
    prob = _predict(model, _loader(test, tokenizer, pre_val, size, ft.batch_size, workers, False, seed, pin), device, autocast)
    write_table(out_dir / "test_predictions.parquet", pa.table({
        "post_id": test["post_id"].to_arrow(), "split": pa.array(["test"] * test.height),
        "model": pa.array(["clip_finetune"] * test.height), "seed": pa.array(np.full(test.height, seed, np.int32)),
        "target": pa.array(test["label"].cast(pl.Float32).to_numpy()), "prediction": pa.array(prob.astype(np.float32)),
        "predicted_label": pa.array((prob >= 0.5).astype(np.int8))}), tables.PREDICTIONS,
        provenance("stress_finetune_predictions", {"train": cfg.get("train", {})}, model=model_id, seed=seed))
    digest = hashlib.blake2b(rows.select("post_id", "split", "label").write_csv().encode(), digest_size=16).hexdigest()
    params = {k: getattr(ft, k) for k in ("epochs", "lr", "head_lr", "weight_decay", "batch_size")}
    from safetensors.torch import save_file

    ckpt = out_dir / "model.safetensors"
    state = {k: v.contiguous() for k, v in best[2].items()}
    with atomic(ckpt) as tmp:
        save_file(state, str(tmp), metadata={"affectflow": json.dumps({
            "task": "stress", "model": "clip_finetune", "clip": clip_prov, "seed": seed,
            "params": params, "best_epoch": best[1], "selected_on": "val", "data_digest": digest,
            "config_digest": config_digest(cfg.get("train", {}))}, default=str)})
    result = {"task": "stress", "model": model_id, "clip": clip_prov, "seed": seed, "params": params,
              "selected_on": "val", "select_metric": metric, "val_score": best[0], "val_metrics": best[3],
              "best_epoch": best[1], "history": history, "rows": {"train": train.height, "val": val.height, "test": test.height},
              "images_missing": int(rows["image_file"].null_count()), "device": str(device), "precision": precision,
              "data_digest": digest, "checkpoint": str(ckpt), "seconds": round(time.perf_counter() - t0, 2)}
    write_json(out_dir / "result.json", result)
    return result
