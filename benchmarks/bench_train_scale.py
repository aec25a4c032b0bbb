"""Training at scale: mini-batches streamed from the memory-mapped split folders vs. arrays in RAM.

    python benchmarks/bench_train_scale.py --quick     # 200k + 50k rows
    python benchmarks/bench_train_scale.py             # 2M + 200k rows (~6 GB of fp16 features on disk)

Rows carry the engagement task's real widths: 768-d text (all-mpnet-base-v2), 512-d pooled image
(CLIP ViT-B/32), 26 metadata features. Each variant runs in its own process so its peak RSS is its
own: ``memmap`` is the pipeline's trainer (``trainer.fit`` on ``SplitData``, one epoch of the fusion
model); ``in_ram`` is the obvious alternative, the same model and batches with the arrays loaded
whole into memory (``np.load`` without mmap). Also timed: writing the split folder
(``SplitWriter``, chunked). Figures print and go to benchmarks/out/bench_train_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
OUT = ROOT / "benchmarks/out"
DIMS = {"text": 768, "image": 512, "metadata": 26}
CHUNK = 50_000


def write_split(folder: Path, split: str, n: int, seed: int) -> float:
    import pyarrow as pa

    from affectflow.train.arrays import Modality, SplitWriter

    mods = [Modality(m, d, "float32" if m == "metadata" else "float16") for m, d in DIMS.items()]
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    w = SplitWriter(folder / split, split, n, mods, "float32", "engagement", None)
    for a in range(0, n, CHUNK):
        k = min(CHUNK, n - a)
        z = rng.normal(size=k).astype(np.float32)
        x = {m: rng.normal(size=(k, d)).astype(np.float32) for m, d in DIMS.items()}
        for m in ("text", "image"):
            x[m][:, 0] += 2 * z
            x[m] /= np.linalg.norm(x[m], axis=1, keepdims=True)
        mask = {m: (rng.random(k) > 0.1) if m != "metadata" else np.ones(k, bool) for m in DIMS}
        ids = [f"{split}-{i}" for i in range(a, a + k)]
        rows = pa.table({"post_id": ids, "split": [split] * k, "group": [f"g{i % 1000}" for i in range(a, a + k)],
                         "category": ["food"] * k, "target": pa.array(z)})
        w.write(x, mask, z, rows)
    w.close()
    return time.perf_counter() - t0


class PeakMemory:
    """Peak anonymous (heap) and file-backed (mapped pages, reclaimable) RSS, sampled from /proc."""

    def __init__(self, every: float = 0.05):
        import threading

        self.peak = {"RssAnon": 0, "RssFile": 0, "VmRSS": 0}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _sample(self) -> None:
        for line in Path("/proc/self/status").read_text().splitlines():
            key = line.split(":")[0]
            if key in self.peak:
                self.peak[key] = max(self.peak[key], int(line.split()[1]) // 1024)  # MB

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self._sample()

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self._sample()


def train_variant(folder: Path, variant: str, threads: int, batch: int) -> dict:
    """One epoch of the fusion head (run in a child process: its peak RSS is this variant's)."""
    import torch

    from affectflow.train import trainer
    from affectflow.train.arrays import open_split
    from affectflow.train.config import TrainConfig

    torch.set_num_threads(threads)
    mem = PeakMemory().__enter__()
    tr, va = open_split(folder / "train"), open_split(folder / "val")
    if variant == "in_ram":  # the obvious alternative: everything loaded, then the same loop
        for d in (tr, va):
            d.x = {m: np.load(d.folder / f"x_{m}.npy") for m in d.x}
            d.mask = {m: np.load(d.folder / f"mask_{m}.npy") for m in d.mask}
            d.y = np.load(d.folder / "y.npy")
    cfg = TrainConfig.from_config({"train": {"engagement": {"epochs": 1, "patience": 1, "batch_size": batch}}})
    t0 = time.perf_counter()
    r = trainer.fit(cfg.engagement, "fusion", {"lr": 1e-3, "hidden": 128, "dropout": 0.1, "weight_decay": 1e-4}, 0,
                    tr, va, threads=threads)
    s = time.perf_counter() - t0
    mem.__exit__()
    return {"variant": variant, "seconds": round(s, 2), "train_rows_per_s": round(tr.n / s, 1),
            "val_rmse": r.val_metrics["rmse"], "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_anon_mb": mem.peak["RssAnon"], "peak_file_mb": mem.peak["RssFile"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (more than free cores makes OpenMP crawl)")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--work", type=Path, default=OUT / "train_scale")
    ap.add_argument("--child", nargs=2, metavar=("FOLDER", "VARIANT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(train_variant(Path(args.child[0]), args.child[1], args.threads, args.batch)))
        return 0
    n_train, n_val = (200_000, 50_000) if args.quick else (2_000_000, 200_000)
    folder = args.work / ("quick" if args.quick else "full")
    if (folder / "train/meta.json").is_file() and (folder / "val/meta.json").is_file() and \
            json.loads((folder / "train/meta.json").read_text())["rows"] == n_train:
        write_s = {"reused": float("nan")}  # written by an earlier run
    else:
        write_s = {s: write_split(folder, s, n, k) for k, (s, n) in enumerate((("train", n_train), ("val", n_val)))}
    disk = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    print(f"wrote {n_train:,} + {n_val:,} rows ({disk / 2**30:.2f} GiB) at {(n_train + n_val) / sum(write_s.values()):,.0f} rows/s")
    runs = {}
    for variant in ("memmap", "in_ram"):
        subprocess.run(["sync"], check=False)
        out = subprocess.run([sys.executable, __file__, "--child", str(folder), variant, "--threads", str(args.threads),
                              "--batch", str(args.batch)], capture_output=True, text=True, check=True)
        runs[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        r = runs[variant]
        print(f"{variant:7s} one epoch: {r['train_rows_per_s']:,.0f} rows/s, peak RSS {r['peak_rss_mb']:,.0f} MB "
              f"(heap {r['peak_anon_mb']:,} MB, mapped file pages {r['peak_file_mb']:,} MB), val RMSE {r['val_rmse']:.3f}")
    res = {"benchmark": "bench_train_scale", "mode": "quick" if args.quick else "full", "rows": {"train": n_train, "val": n_val},
           "dims": DIMS, "disk_gib": round(disk / 2**30, 3), "write_rows_per_s": round((n_train + n_val) / sum(write_s.values()), 1),
           "threads": args.threads, "cpus": os.cpu_count(), "runs": runs,
           "heap_ratio_in_ram_over_memmap": round(runs["in_ram"]["peak_anon_mb"] / max(runs["memmap"]["peak_anon_mb"], 1), 2),
           "speed_ratio_memmap_over_in_ram": round(runs["memmap"]["train_rows_per_s"] / runs["in_ram"]["train_rows_per_s"], 2)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_train_scale.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"in-RAM peak heap / memmap peak heap: {res['heap_ratio_in_ram_over_memmap']}x; "
          f"memmap speed / in-RAM speed: {res['speed_ratio_memmap_over_in_ram']}x")
    print(f"wrote {OUT / 'bench_train_scale.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
