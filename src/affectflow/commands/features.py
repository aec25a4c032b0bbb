"""Commands the Instagram feature rules run: sentiment, text and image embeddings, their summary."""

import json
from pathlib import Path

from ..cli import command, shard_args, stage_config


@command("sentiment", "DistilBERT sentiment of each post's caption and merged comments (one shard)", shard_args)
def sentiment(args):
    from ..features.sentiment import sentiment_shard

    print(json.dumps(sentiment_shard(stage_config(args), args.posts, args.out, args.threads, args.shard)))


@command("text-embeddings", "SBERT embedding of each post's caption + merged comments (one shard)", shard_args)
def text_embeddings(args):
    from ..features.text_embed import text_embeddings_shard

    print(json.dumps(text_embeddings_shard(stage_config(args), args.posts, args.out, args.threads, args.shard)))


def _image_args(p):
    shard_args(p)
    p.add_argument("--plan-images", required=True, type=Path, help="the plan's images.parquet")
    p.add_argument("--pooled", required=True, type=Path, help="output: one pooled embedding per post")


@command("image-embeddings", "CLIP embedding of every image of every post (one shard), and per-post means",
         _image_args)
def image_embeddings(args):
    from ..features.image_embed import image_embeddings_shard

    print(json.dumps(image_embeddings_shard(stage_config(args), args.posts, args.plan_images, args.shard, args.out,
                                            args.pooled, args.threads)))


def _summary_args(p):
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--posts", required=True, nargs="+", type=Path)
    for name in ("sentiment", "text-embeddings", "image-embeddings", "image-pooled"):
        p.add_argument(f"--{name}", nargs="+", type=Path, default=[])


@command("features-summary", "status counts of the feature tables and their join checks against the posts",
         _summary_args)
def features_summary(args):
    from ..features.common import FEATURE_TABLES, summarize

    tables = {name: getattr(args, name) for name in FEATURE_TABLES if getattr(args, name)}
    s = summarize(args.posts, tables, args.out)
    print(json.dumps({k: v["by_status"] for k, v in s["tables"].items()}, indent=2))
