"""Synthesis throughput: images/s by precision and batch size, and the cost of the whole shard job.

    python benchmarks/bench_synth.py --quick                 # tiny pipeline, CPU, ~1 min
    python benchmarks/bench_synth.py                         # + more images, one full-size SD-1.x UNet step on CPU
    python benchmarks/bench_synth.py --device cuda --model models/hf/stabilityai--sd-turbo/main
    python benchmarks/bench_synth.py --device cuda --random-sd-turbo   # no weights at hand: same architecture,
                                                                       # random weights, same arithmetic

What is measured, all through the stage's own code (``synthesize.load_pipeline`` and its
``Generator`` mapper, then ``synthesize_shard`` end to end):

* ``pipeline``: images/s of the mapper alone (prompt encoding, denoising, VAE decode, to uint8) at
  each (precision, batch size), after a warm-up batch; the ratio to batch size 1 and to fp32 is
  reported (fp16 is GPU-only: on CPU the stage runs fp32).
* ``shard``: images/s of a whole ``synthesize_shard`` call on fresh posts (prompt fitting, PNG
  writing in threads, the index), against the pipeline alone: the overhead of everything else.
* ``full_unet_cpu`` (full mode): one UNet forward of an SD-1.x-sized UNet (860M parameters, random
  weights) at a small size on this CPU, to show the scale of a real model against the tiny one.

Figures print as a table and go to ``benchmarks/out/bench_synth.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from affectflow.dreaddit.config import SynthesisConfig, validated
from affectflow.dreaddit.synthesize import Generator, Job, load_pipeline, synthesis_placement

PROMPT = ("a candid photograph of the scene described here: I have been so worried about the rent this month, "
          "my landlord keeps calling and I can't sleep.")


def _cfg(model: Path, size: int, steps: int, batch: int, device: str, precision: str, results: Path) -> dict:
    return validated({"results": str(results), "models": {"dir": str(results / "models"), "diffusion": {"id": str(model)}},
                      "dreaddit": {"synthesis": {"width": size, "height": size, "steps": steps, "batch_size": batch,
                                                 "device": device, "precision": precision}}})


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_pipeline(model: Path, size: int, steps: int, device: str, precision: str, batches: list[int],
                   images: int, tmp: Path) -> list[dict]:
    rows = []
    cfg = _cfg(model, size, steps, max(batches), device, precision, tmp)
    where = synthesis_placement(device, precision)
    dev, dtype, prec = where.device, where.dtype, where.precision
    if prec != precision and precision != "auto":
        return [{"precision": precision, "batch": b, "images_per_s": None, "note": f"not run: {dev.type} uses {prec}"}
                for b in batches]
    t0 = time.perf_counter()
    pipe = load_pipeline(cfg, model, dev, dtype)
    load_s = time.perf_counter() - t0
    for batch in batches:
        syn = SynthesisConfig(**{**cfg["dreaddit"]["synthesis"], "batch_size": batch})
        gen = Generator(pipe, syn)
        jobs = [Job(f"p{i}", PROMPT, i, Path("unused"), "") for i in range(batch)]
        gen(jobs)  # warm-up: kernels, allocator, lazy init
        _sync(dev)
        n = max(images // batch, 1)
        t0 = time.perf_counter()
        for _ in range(n):
            out = gen(jobs)
        _sync(dev)
        dt = time.perf_counter() - t0
        ok = sum(1 for px, st, _ in out if px is not None)
        rows.append({"precision": prec, "batch": batch, "images": n * batch, "seconds": round(dt, 3),
                     "images_per_s": round(n * batch / dt, 2), "load_s": round(load_s, 2), "finite_images_last_batch": ok})
    del pipe
    if dev.type == "cuda":
        import torch

        torch.cuda.empty_cache()
    return rows


def bench_shard(model: Path, size: int, steps: int, device: str, precision: str, batch: int, tmp: Path) -> dict:
    """A whole synthesize_shard call (load + prompts + images + PNGs + index) on the sample's posts."""
    from affectflow.dreaddit.posts import build_posts
    from affectflow.dreaddit.synthesize import synthesize_shard
    from affectflow.ops.sample import SampleSpec, make_dreaddit

    data = tmp / "data"
    make_dreaddit(data, SampleSpec())
    cfg = _cfg(model, size, steps, batch, device, precision, tmp / "results")
    cfg["dreaddit"].update(train=str(data / "dreaddit-train.csv"), test=str(data / "dreaddit-test.csv"), shards=1)
    posts = tmp / "results" / "posts.parquet"
    build_posts(cfg, posts, tmp / "results" / "posts_summary.json")
    t0 = time.perf_counter()
    summary = synthesize_shard(cfg, posts, 0, tmp / "results" / "synth.parquet")
    wall = time.perf_counter() - t0
    t = summary["timing"]
    return {"posts": summary["posts"], "images": summary["made"], "job_wall_s": round(wall, 2),
            "runner_images_per_s": t["items_per_s"], "inference_s": t["inference_s"], "write_s": t["write_s"],
            "overhead_outside_runner_s": round(wall - t["wall_s"], 2)}


def bench_full_unet_cpu(size: int) -> dict:
    """One forward of an SD-1.x-sized UNet (random weights) on CPU at ``size`` px."""
    import torch
    from diffusers import UNet2DConditionModel

    t0 = time.perf_counter()
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                                block_out_channels=(320, 640, 1280, 1280)).eval()
    build = time.perf_counter() - t0
    lat = torch.randn(1, 4, size // 8, size // 8)
    ctx = torch.randn(1, 77, 768)
    with torch.inference_mode():
        unet(lat, 999, encoder_hidden_states=ctx)  # warm-up
        t0 = time.perf_counter()
        unet(lat, 999, encoder_hidden_states=ctx)
        step = time.perf_counter() - t0
    params = sum(p.numel() for p in unet.parameters())
    return {"size": size, "params_m": round(params / 1e6), "build_s": round(build, 1), "unet_step_s": round(step, 2),
            "threads": torch.get_num_threads()}


def build_random_sd_turbo(out: Path) -> Path:
    """SD-Turbo's architecture (SD 2.1 UNet, OpenCLIP-H text encoder, SD VAE) with random weights,
    saved as a diffusers folder: the same arithmetic as the real model where no weights can be
    fetched. Images are noise; speed is the real model's."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from affectflow.ops.tiny_models import save_sd_pipeline

    torch.manual_seed(0)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                                        num_attention_heads=16, hidden_act="gelu", projection_dim=1024))
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20),
                                use_linear_projection=True, block_out_channels=(320, 640, 1280, 1280))
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        sample_size=512)
    return save_sd_pipeline(out, text, unet, vae)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny pipeline only, few images")
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", type=Path, help="a diffusers pipeline folder (default: the tiny one, built here)")
    p.add_argument("--random-sd-turbo", action="store_true", help="build SD-Turbo's architecture with random weights")
    p.add_argument("--size", type=int, help="image side (default 64 tiny, 512 otherwise)")
    p.add_argument("--steps", type=int, help="denoising steps (default 2 tiny, 1 otherwise)")
    p.add_argument("--batch-sizes", type=int, nargs="+", help="default 1 8 (GPU: 1 16)")
    p.add_argument("--precisions", nargs="+", default=["fp16", "fp32"])
    p.add_argument("--images", type=int, help="images per measurement")
    p.add_argument("--full-unet-size", type=int, default=256, help="size of the full-size UNet CPU step (full mode)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "bench_synth.json")
    args = p.parse_args(argv)

    import torch

    from affectflow.ops.tiny_models import build_diffusion

    tmp = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    tiny = args.model is None and not args.random_sd_turbo
    if args.random_sd_turbo:
        model, kind = build_random_sd_turbo(tmp / "sd-turbo-random"), "SD-Turbo architecture, random weights"
    elif args.model:
        model, kind = args.model, str(args.model)
    else:
        model, kind = build_diffusion(tmp / "tiny"), "tiny random pipeline (affectflow tiny-models)"
    size = args.size or (64 if tiny else 512)
    steps = args.steps or (2 if tiny else 1)
    gpu = args.device.startswith("cuda")
    batches = args.batch_sizes or ([1, 16] if gpu else [1, 8])
    images = args.images or (16 if args.quick else 64 if tiny else 64)

    result = {"benchmark": "bench_synth", "mode": "quick" if args.quick else "full", "model": kind, "size": size,
              "steps": steps, "device": args.device,
              "device_name": torch.cuda.get_device_name(0) if gpu else platform.processor() or platform.machine(),
              "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
              "load_average_at_start": os.getloadavg(), "pipeline": []}
    for prec in args.precisions:
        result["pipeline"] += bench_pipeline(model, size, steps, args.device, prec, batches, images, tmp / prec)
    measured = [r for r in result["pipeline"] if r.get("images_per_s")]
    for r in measured:
        base_b = next((x for x in measured if x["precision"] == r["precision"] and x["batch"] == min(batches)), None)
        base_p = next((x for x in measured if x["precision"] == "fp32" and x["batch"] == r["batch"]), None)
        r["vs_batch_%d" % min(batches)] = round(r["images_per_s"] / base_b["images_per_s"], 2) if base_b else None
        r["vs_fp32"] = round(r["images_per_s"] / base_p["images_per_s"], 2) if base_p else None
    best = max(measured, key=lambda r: r["images_per_s"]) if measured else None
    if tiny or gpu:  # a full-size model on CPU would take half an hour for the sample's 83 images
        result["shard"] = bench_shard(model, size, steps, args.device, best["precision"] if best else "auto",
                                      best["batch"] if best else max(batches), tmp / "shard")
        if best:
            result["shard"]["vs_pipeline_alone"] = round(result["shard"]["runner_images_per_s"] / best["images_per_s"], 2)
    if not args.quick and not gpu:
        result["full_unet_cpu"] = bench_full_unet_cpu(args.full_unet_size)

    result["load_average_at_end"] = os.getloadavg()
    print(f"model: {kind}; {size}x{size}, {steps} steps, device {args.device} ({result['device_name']}); "
          f"load average {result['load_average_at_start'][0]:.1f} -> {result['load_average_at_end'][0]:.1f} "
          f"on {os.cpu_count()} cores (figures are only comparable on a quiet machine)")
    print(f"{'precision':>9} {'batch':>5} {'images/s':>9} {'vs batch ' + str(min(batches)):>10} {'vs fp32':>8}")
    for r in result["pipeline"]:
        if r.get("images_per_s") is None:
            print(f"{r['precision']:>9} {r['batch']:>5} {'-':>9}   {r['note']}")
        else:
            print(f"{r['precision']:>9} {r['batch']:>5} {r['images_per_s']:>9.2f} {r['vs_batch_%d' % min(batches)] or '-':>10} "
                  f"{r['vs_fp32'] or '-':>8}")
    s = result.get("shard")
    if s:
        print(f"shard job: {s['images']} images, {s['job_wall_s']} s wall ({s['overhead_outside_runner_s']} s loading), "
              f"{s['runner_images_per_s']} images/s in the runner ({s.get('vs_pipeline_alone')}x the pipeline alone; "
              f"write {s['write_s']} s)")
    if "full_unet_cpu" in result:
        f = result["full_unet_cpu"]
        print(f"full-size SD-1.x UNet ({f['params_m']}M params) on CPU, {f['size']}x{f['size']}: "
              f"{f['unet_step_s']} s per step ({f['threads']} threads)")
    shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
