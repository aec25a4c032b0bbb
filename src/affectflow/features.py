"""What the three Instagram feature stages share: their config, the torch set-up, the posts they read.

Each stage (:mod:`sentiment`, :mod:`text_embed`, :mod:`image_embed`) turns one posts shard into one
feature table with exactly one row per post (per mapped image for the image table), so every
output joins back to the posts table on ``post_id``. A post that was not parsed passes through
with its own status and null features; a feature's own faults get a feature status
(:mod:`affectflow.status`), never a placeholder value.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import polars as pl

from . import status as S

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextStageConfig:
    """Settings of a text model stage (sentiment, text embeddings)."""

    threads: int
    batch_size: int  # texts per batch at most
    max_tokens: int  # padded tokens per batch at most: long texts make smaller batches
    max_length: int | None  # tokens per text; None: the model's own limit
    window: int  # posts tokenised and sorted by length together (bounds memory)

    @classmethod
    def from_section(cls, sec: Mapping[str, Any]) -> "TextStageConfig":
        return cls(threads=int(sec["threads"]), batch_size=int(sec["batch_size"]), max_tokens=int(sec["max_tokens"]),
                   max_length=None if sec.get("max_length") is None else int(sec["max_length"]),
                   window=int(sec["window"]))


@dataclass(frozen=True)
class ImageStageConfig:
    """Settings of the CLIP image stage: batching, decoding workers, decode limits."""

    threads: int
    batch_size: int
    workers: int | str  # DataLoader decode processes, or "auto" (from the job's threads)
    prefetch_factor: int
    draft: bool  # decode JPEGs at a reduced scale when the model's input is smaller (PIL draft)
    max_pixels: int  # an image whose header declares more pixels is refused (decompression bomb)
    pin_memory: bool

    @classmethod
    def from_section(cls, sec: Mapping[str, Any]) -> "ImageStageConfig":
        return cls(threads=int(sec["threads"]), batch_size=int(sec["batch_size"]), workers=sec["workers"],
                   prefetch_factor=int(sec["prefetch_factor"]), draft=bool(sec["draft"]),
                   max_pixels=int(sec["max_pixels"]), pin_memory=bool(sec["pin_memory"]))

    def n_workers(self, threads: int, device_type: str) -> int:
        """Decode processes: what config says, else all but one of the job's cores on a GPU (the
        GPU does the maths, the cores decode) and a quarter of them on CPU (where the cores do both)."""
        if self.workers != "auto":
            return int(self.workers)
        return max(threads - 1, 0) if device_type == "cuda" else max(threads // 4, 1 if threads > 1 else 0)


@dataclass(frozen=True)
class FeaturesConfig:
    device: str  # auto | cpu | cuda | cuda:N
    precision: str  # auto | fp32 | fp16 | bf16
    sentiment: TextStageConfig
    text_embedding: TextStageConfig
    image_embedding: ImageStageConfig

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "FeaturesConfig":
        """From the ``features`` section; a rule passes only its own stage's part, so the schema
        fills the rest with defaults (and checks what is there)."""
        from .config import validate

        f = validate({"features": copy.deepcopy(dict(cfg.get("features") or {}))})["features"]
        return cls(device=str(f["device"]), precision=str(f["precision"]),
                   sentiment=TextStageConfig.from_section(f["sentiment"]),
                   text_embedding=TextStageConfig.from_section(f["text_embedding"]),
                   image_embedding=ImageStageConfig.from_section(f["image_embedding"]))


def stage_config(cfg: Mapping[str, Any], stage: str, model_key: str) -> dict[str, Any]:
    """The config one feature stage runs with: device, precision, its own settings, its model.

    Rules pass only this (so that, say, a new image batch size does not rerun sentiment).
    """
    f = cfg["features"]
    return {"results": cfg.get("results"),
            "features": {"device": f["device"], "precision": f["precision"], stage: f[stage]},
            "models": {"dir": cfg["models"]["dir"], model_key: cfg["models"][model_key]}}


def setup_torch(fcfg: FeaturesConfig, threads: int):
    """``(device, dtype)`` for a stage job, with the CPU thread pool sized to the job's cores."""
    import torch

    from .models import device_and_dtype

    threads = max(int(threads), 1)
    torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true" if threads > 1 else "false")
    # the Rust tokenizer's pool would otherwise size itself to the whole node, not the job's cores
    os.environ.setdefault("RAYON_NUM_THREADS", str(threads))
    os.environ.setdefault("RAYON_RS_NUM_CPUS", str(threads))
    device, dtype = device_and_dtype(fcfg.device, fcfg.precision, cpu_bf16=True)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    log.info("device %s, dtype %s, %d threads", device, str(dtype).replace("torch.", ""), threads)
    return device, dtype


def autocast(device, dtype):
    """Mixed precision where it pays: autocast on the device in half precision, nothing in fp32."""
    import torch

    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def prepare_model(net, device, dtype):
    """Weights on the device, in half precision when the stage runs in it (autocast alone would
    recast every weight on every call), eval mode."""
    import torch

    net = net.to(device)
    if dtype != torch.float32:
        net = net.to(dtype)
    return net.eval()


def to_device(t, device, pin: bool = True):
    """Host -> device copy that overlaps with compute: pinned source, non-blocking copy."""
    if device.type != "cuda":
        return t
    if pin and not t.is_pinned():
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


# -- posts ----------------------------------------------------------------------------------------
def read_posts(path: str | Path, columns: list[str]) -> pl.DataFrame:
    """The posts shard's columns a stage needs (``post_id`` and ``status`` always)."""
    cols = list(dict.fromkeys(["post_id", "status", *columns]))
    return pl.read_parquet(path, columns=cols)


def parsed(status: pl.Expr | None = None) -> pl.Expr:
    """True for posts whose fields were parsed (features run on them)."""
    return (status if status is not None else pl.col("status")).is_in(sorted(S.PARSED))


def clean_text(col: pl.Expr) -> pl.Expr:
    """Stripped text, null when empty or whitespace only."""
    t = col.str.strip_chars()
    return pl.when(t.str.len_chars() > 0).then(t).otherwise(None)


def mostly_non_latin(col: pl.Expr) -> pl.Expr:
    """True when under half of the text's letters are Latin script (null for no letters).

    A script test, not language identification: Spanish passes, Japanese does not. It flags the
    texts an English model cannot read, which is what the status is for.
    """
    letters = col.str.count_matches(r"\p{L}")
    latin = col.str.count_matches(r"\p{Latin}")
    return pl.when(letters > 0).then(latin * 2 < letters).otherwise(None)


def text_status(post_status: pl.Expr, scored: list[pl.Expr], non_latin: list[pl.Expr]) -> pl.Expr:
    """Row status of a text feature: the post's own when not parsed, else ``no_text`` when no
    text was scored, ``non_latin`` when a scored text is mostly non-Latin, else ``ok``."""
    any_scored = pl.any_horizontal(scored)
    any_non_latin = pl.any_horizontal([s & n.fill_null(False) for s, n in zip(scored, non_latin)])
    return (pl.when(~parsed(post_status)).then(post_status)
            .when(~any_scored).then(pl.lit(S.NO_TEXT))
            .when(any_non_latin).then(pl.lit(S.NON_LATIN))
            .otherwise(pl.lit(S.OK)))


# -- summary --------------------------------------------------------------------------------------
FEATURE_TABLES = ("sentiment", "text_embeddings", "image_embeddings", "image_pooled")


def summarize(posts: list[str | Path], tables: Mapping[str, list[str | Path]], out: str | Path) -> dict[str, Any]:
    """``features_summary.json``: rows and status counts per feature table, and the join checks:
    one row per post in each per-post table, no feature row without its post. Fails (after writing
    the summary) when a check does not hold, naming the table."""
    from .parquet_io import write_json

    post_ids = pl.scan_parquet([str(p) for p in posts]).select("post_id", "status").collect()
    summary: dict[str, Any] = {"posts": post_ids.height, "tables": {}}
    problems = []
    for name, files in tables.items():
        value = "caption_sentiment" if name == "sentiment" else "embedding"
        df = pl.scan_parquet([str(f) for f in files]).select("post_id", "status", pl.col(value).is_not_null().alias("has")).collect()
        rec: dict[str, Any] = {
            "rows": df.height,
            "by_status": dict(df.group_by("status").len().sort("status").iter_rows()),
            "with_features": int(df["has"].sum()),
            "rows_without_post": df.join(post_ids, on="post_id", how="anti").height,
        }
        if rec["rows_without_post"]:
            problems.append(f"{name}: {rec['rows_without_post']} rows name no post")
        if name != "image_embeddings":  # the per-post tables: exactly one row per post
            rec["duplicate_post_ids"] = df.height - df["post_id"].n_unique()
            rec["posts_without_row"] = post_ids.join(df, on="post_id", how="anti").height
            if rec["duplicate_post_ids"] or rec["posts_without_row"]:
                problems.append(f"{name}: {rec['duplicate_post_ids']} duplicate post_ids, "
                                f"{rec['posts_without_row']} posts without a row")
        summary["tables"][name] = rec
    summary["problems"] = problems
    write_json(out, summary)
    if problems:
        raise RuntimeError("feature tables do not join one to one with the posts: " + "; ".join(problems))
    return summary
