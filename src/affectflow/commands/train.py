"""Commands the training rules run: datasets, sweeps, fine-tuning, the final scoring."""

from pathlib import Path

from ..cli import command, config_args, given_paths, stage_config


def _eng_dataset_args(p):
    config_args(p)
    for name in ("posts", "sentiment", "text", "image"):
        p.add_argument(f"--{name}", nargs="+", required=True, type=Path, help=f"{name} shards, in shard order")
    p.add_argument("--out", required=True, type=Path, help="folder for train/ val/ test/")
    p.add_argument("--summary", required=True, type=Path)


@command("train-engagement-dataset", "join posts and Instagram features into train/val/test arrays (split by influencer)",
         _eng_dataset_args)
def engagement_dataset(args):
    from ..train.engagement_data import ShardInputs, build

    lists = (args.posts, args.sentiment, args.text, args.image)
    if len({len(x) for x in lists}) != 1:
        raise SystemExit(f"--posts/--sentiment/--text/--image need one file per shard each, got {[len(x) for x in lists]}")
    build(stage_config(args), [ShardInputs(*t) for t in zip(*lists)], args.out, args.summary)


def _stress_dataset_args(p):
    config_args(p)
    p.add_argument("--posts", required=True, type=Path, help="the Dreaddit posts table (with its split column)")
    p.add_argument("--clip", nargs="+", required=True, type=Path, help="Dreaddit CLIP shards")
    p.add_argument("--text", nargs="?", const=None, default=None, type=Path,
                   help="sentence-encoder text features (train.stress.text_encoder: text_embedding)")
    p.add_argument("--text2", nargs="?", const=None, default=None, type=Path,
                   help="the second sentence encoder's features, modality text2 (train.stress.text2_encoder)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--summary", required=True, type=Path)


@command("train-stress-dataset", "join Dreaddit posts and CLIP features into train/val/test arrays", _stress_dataset_args)
def stress_dataset(args):
    from ..train.stress_data import build

    text = next(iter(given_paths([args.text])), None)
    text2 = next(iter(given_paths([args.text2])), None)
    build(stage_config(args), args.posts, args.clip, args.out, args.summary, text_path=text, text2_path=text2)


def _text_args(p):
    config_args(p)
    p.add_argument("--kind", required=True, choices=["captions", "dreaddit"],
                   help="captions: one Instagram posts shard's captions; dreaddit: the Dreaddit texts")
    p.add_argument("--posts", required=True, type=Path, help="a posts shard, or the Dreaddit posts table")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--modality", default="text", choices=["text", "text2"],
                   help="dreaddit: text (models.text_embedding) or text2 (the models key in train.stress.text2_encoder)")


@command("train-text", "sentence-encoder text features (models.text_embedding): captions alone, or Dreaddit texts",
         _text_args)
def text(args):
    from ..train import text_features

    if args.kind == "captions":
        if args.modality != "text":
            raise SystemExit("train-text --kind captions: --modality text2 is for the Dreaddit texts only")
        print(text_features.captions(stage_config(args), args.posts, args.out, threads=args.threads,
                                     batch_size=args.batch_size))
    else:
        cfg = stage_config(args)
        key = "text_embedding" if args.modality == "text" else cfg.get("train", {}).get("stress", {}).get("text2_encoder")
        if not key:
            raise SystemExit("train-text --modality text2: train.stress.text2_encoder is not set")
        print(text_features.dreaddit(cfg, args.posts, args.out, threads=args.threads,
                                     batch_size=args.batch_size, model_key=key))


def _sweep_args(p):
    config_args(p)
    p.add_argument("--task", required=True, choices=["engagement", "stress"])
    p.add_argument("--train", required=True, type=Path, help="the train split folder")
    p.add_argument("--val", required=True, type=Path, help="the val split folder (the test split is never an input)")
    p.add_argument("--out", required=True, type=Path, help="sweep folder: trials/, trials.parquet, selection.json")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the debug executor")
    p.add_argument("--snakemake-executor", default=None,
                   help="the executor Snakemake runs with (resolves train.sweep.executor: auto)")


@command("train-sweep", "run every model x grid point x seed trial (submitit job arrays) and select on val", _sweep_args)
def sweep(args):
    from ..train.sweep import run_sweep

    sel = run_sweep(stage_config(args), args.task, args.train, args.val, args.out, threads=args.threads,
                    executor=args.snakemake_executor)
    for name, m in sel["models"].items():
        print(f"{args.task}/{name}: {m['params']} val {sel['select_metric']} {m['val_mean']:.4f} ± {m['val_std']:.4f}")


def _score_args(p):
    config_args(p)
    p.add_argument("--task", required=True, choices=["engagement", "stress"])
    p.add_argument("--selection", required=True, type=Path)
    p.add_argument("--val", type=Path, default=None,
                   help="the val split folder (stress: the ensemble's members, weights and threshold are chosen on it)")
    p.add_argument("--test", required=True, type=Path, help="the test split folder")
    p.add_argument("--dataset", required=True, type=Path, help="the dataset summary (dataset.json)")
    p.add_argument("--out", required=True, type=Path, help="folder for metrics.json, predictions, plots, checkpoints/")
    p.add_argument("--finetune", nargs="*", default=[], type=Path,
                   help="fine-tuning result.json files (stress: CLIP and/or text encoder, one per seed)")


@command("train-score", "score each model chosen on val on the test split, once per seed; write metrics.json", _score_args)
def score(args):
    from ..train.final import score_final

    m = score_final(stage_config(args), args.task, args.selection, args.test, args.dataset, args.out,
                    finetune=[f.parent for f in given_paths(args.finetune)], val_dir=args.val)
    keys = ("rmse", "spearman") if m["kind"] == "regression" else ("f1_weighted", "f1_macro")
    for name, r in m["models"].items():
        print(f"{args.task}/{name}: " + ", ".join(
            f"{k} {r['test'][k]['mean']:.4f} ± {r['test'][k]['std']:.4f} [{r['test'][k]['ci'][0]:.3f}, {r['test'][k]['ci'][1]:.3f}]"
            for k in keys))


def _finetune_args(p):
    config_args(p)
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--posts", required=True, type=Path)
    p.add_argument("--synth", nargs="+", required=True, type=Path, help="synthesis index shards")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--threads", type=int, default=None)


@command("train-finetune", "fine-tune CLIP with a stress head (epoch chosen on val), then score test once", _finetune_args)
def finetune(args):
    from ..train.finetune import finetune as run

    r = run(stage_config(args), args.seed, args.posts, args.synth, args.out, threads=args.threads)
    print(f"clip_finetune seed {args.seed}: best epoch {r['best_epoch']}, val {r['select_metric']} {r['val_score']:.4f}")


def _finetune_text_args(p):
    config_args(p)
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--posts", required=True, type=Path, help="the Dreaddit posts table")
    p.add_argument("--out", required=True, type=Path, help="the seed's folder: result.json, predictions, model.safetensors")
    p.add_argument("--threads", type=int, default=None)


@command("train-finetune-text", "fine-tune a text encoder (train.stress.finetune_text.model) with a stress head; "
         "epoch chosen on val, then test scored once", _finetune_text_args)
def finetune_text(args):
    from ..train.finetune_text import finetune_text as run

    r = run(stage_config(args), args.seed, args.posts, args.out, threads=args.threads)
    print(f"{r['name']} seed {args.seed}: best epoch {r['best_epoch']}, val {r['select_metric']} {r['val_score']:.4f} "
          f"({r['precision']} on {r['device']}, {r['seconds']:.0f}s)")
