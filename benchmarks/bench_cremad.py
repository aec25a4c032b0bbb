#!/usr/bin/env python
"""Benchmark the CREMA-D feature readers against the obvious way to do the same work.

In the same run, on the same cores and files (clips the size of the published ones: 16 kHz mono
WAVs and 480x360 FLV video at 30 frames/s, ~2.5 s each, written locally with PyAV):

* **eGeMAPS** - clips/s per core: ours, ``affectflow.cremad.audio.egemaps_one`` (soundfile read, then
  openSMILE's ``process_signal`` on the samples in memory) in one process, and over ``--workers``
  processes (the rule's ``cremad.audio.workers``); the obvious alternative, openSMILE's own
  ``Smile.process_file`` per file (audiofile read + resampling checks), in one process.
* **video frames** - frames ready for CLIP per second: ours, ``affectflow.cremad.video.sample_frames``
  (PyAV decodes the file in memory, keeps a frame every 1/fps s, centre crop) followed by open_clip's
  preprocessing; the obvious alternative, ``ffmpeg -i clip.flv -vf fps=F frames/%04d.jpg`` per clip
  (frames written to disk as JPEG), then each JPEG opened with PIL and preprocessed one at a time.
  The same frames (rate, crop, preprocessing) come out of both; model inference is left out
  (it is the same for both). Also the raw decode rate (every frame, PyAV).

Each path runs ``--rounds`` times round-robin and the best round counts (a burst of other load on
a shared machine does not decide a ratio).

    python benchmarks/bench_cremad.py --quick     # ~1 min on 2 cores
    python benchmarks/bench_cremad.py             # the figures in the README

Prints a table and writes ``benchmarks/out/cremad[-quick].json``. Needs ``ffmpeg`` on PATH for the
baseline (Debian: ``apt-get install ffmpeg``); without it the baseline is skipped and said so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

SIZES = {"quick": {"clips": 12}, "full": {"clips": 60}}
SECONDS, WIDTH, HEIGHT, FPS = 2.5, 480, 360, 30  # the published clips: ~2.5 s, 480x360, 30 frames/s


def write_clips(out: Path, n: int) -> tuple[list[str], list[str]]:
    import numpy as np
    import soundfile as sf

    from affectflow.cremad.sample import EMOTIONS, SR, voice, write_video

    rng = np.random.default_rng(0)
    wavs, videos = [], []
    for i in range(n):
        e = EMOTIONS[i % len(EMOTIONS)]
        w, v = out / f"{1001 + i}_DFA_{e}_XX.wav", out / f"{1001 + i}_DFA_{e}_XX.flv"
        sf.write(str(w), voice(rng, e, 150.0, SECONDS), SR, subtype="PCM_16")
        write_video(v, rng, e, 120, SECONDS, width=WIDTH, height=HEIGHT, fps=FPS)
        wavs.append(str(w))
        videos.append(str(v))
    return wavs, videos


def _timed(fn, *args) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def egemaps_ours(paths: list[str]) -> int:
    from affectflow.cremad.audio import egemaps_one

    return sum(egemaps_one(p)[0] is not None for p in paths)


def egemaps_pool(paths: list[str], workers: int) -> int:
    from affectflow.cremad.audio import egemaps_one

    with ProcessPoolExecutor(workers) as pool:
        return sum(v is not None for v, _ in pool.map(egemaps_one, paths, chunksize=max(1, len(paths) // (4 * workers))))


def egemaps_files(paths: list[str]) -> int:
    import opensmile

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals)
    return sum(len(smile.process_file(p)) for p in paths)


def frames_ours(paths: list[str], fps: float, preprocess) -> int:
    from affectflow.cremad.video import sample_frames

    n = 0
    for p in paths:
        for im in sample_frames(p, fps, 10_000, 0.8):
            preprocess(im)
            n += 1
    return n


def frames_ffmpeg(paths: list[str], fps: float, preprocess, tmp: Path) -> int:
    from PIL import Image

    from affectflow.cremad.video import center_crop

    n = 0
    for k, p in enumerate(paths):
        d = tmp / f"jpeg-{k}"
        d.mkdir()
        subprocess.run(["ffmpeg", "-loglevel", "error", "-threads", "1", "-i", p, "-vf", f"fps={fps}", "-q:v", "2",
                        str(d / "%04d.jpg")], check=True)
        for f in sorted(d.iterdir()):
            with Image.open(f) as im:
                preprocess(center_crop(im.convert("RGB"), 0.8))
            n += 1
        shutil.rmtree(d)
    return n


def decode_all(paths: list[str]) -> int:
    import av

    n = 0
    for p in paths:
        with av.open(p) as c:
            n += sum(1 for _ in c.decode(video=0))
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--fps", type=float, default=5.0, help="frames kept per second (cremad.video.fps)")
    args = ap.parse_args(argv)
    size = SIZES["quick" if args.quick else "full"]
    import torch

    torch.set_num_threads(1)
    from open_clip.transform import image_transform

    preprocess = image_transform(224, is_train=False)  # ViT-B-32's preprocessing, no weights needed
    has_ffmpeg = shutil.which("ffmpeg") is not None
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        wavs, videos = write_clips(tmp, size["clips"])
        best: dict[str, tuple[float, int]] = {}

        def keep(name, seconds, items):
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, items)

        for _ in range(args.rounds):
            keep("egemaps_ours_1proc", *_timed(egemaps_ours, wavs))
            keep(f"egemaps_ours_{args.workers}proc", *_timed(egemaps_pool, wavs, args.workers))
            keep("egemaps_process_file_1proc", *_timed(egemaps_files, wavs))
            keep("frames_ours_pyav", *_timed(frames_ours, videos, args.fps, preprocess))
            if has_ffmpeg:
                keep("frames_ffmpeg_jpeg", *_timed(frames_ffmpeg, videos, args.fps, preprocess, tmp))
            keep("decode_all_frames_pyav", *_timed(decode_all, videos))
    rate = {k: items / s for k, (s, items) in best.items()}
    res = {
        "clips": size["clips"], "clip_seconds": SECONDS, "video": f"{WIDTH}x{HEIGHT} flv1 {FPS} fps", "fps_kept": args.fps,
        "rounds": args.rounds, "workers": args.workers, "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seconds": {k: round(s, 3) for k, (s, _) in best.items()}, "items": {k: n for k, (_, n) in best.items()},
        "rates": {k: round(v, 2) for k, v in rate.items()},
        "egemaps_clips_per_s_per_core": round(rate[f"egemaps_ours_{args.workers}proc"] / args.workers, 2),
        "egemaps_ratio_vs_process_file": round(rate["egemaps_ours_1proc"] / rate["egemaps_process_file_1proc"], 2),
        "frames_ratio_vs_ffmpeg_jpeg": round(rate["frames_ours_pyav"] / rate["frames_ffmpeg_jpeg"], 2) if has_ffmpeg else None,
        "ffmpeg": shutil.which("ffmpeg"),
        "command": "python benchmarks/bench_cremad.py" + (" --quick" if args.quick else ""),
    }
    print(f"CREMA-D readers, {size['clips']} clips of {SECONDS} s ({res['video']}), best of {args.rounds} rounds")
    print(f"{'path':<32}{'items':>8}{'seconds':>10}{'items/s':>10}")
    for k in best:
        print(f"{k:<32}{best[k][1]:>8}{best[k][0]:>10.2f}{rate[k]:>10.1f}")
    print(f"eGeMAPS: {res['egemaps_clips_per_s_per_core']} clips/s per core ({args.workers} processes); "
          f"in-memory vs process_file: {res['egemaps_ratio_vs_process_file']}x")
    print(f"frames for CLIP at {args.fps}/s: PyAV in memory vs ffmpeg->JPEG->one at a time: {res['frames_ratio_vs_ffmpeg_jpeg']}x")
    out = REPO / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    path = out / f"cremad{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
