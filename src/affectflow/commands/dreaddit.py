"""Commands the Dreaddit rules run: read the CSVs, synthesize images, embed with CLIP, summarize."""

import json
from pathlib import Path

from ..cli import command, config_args, shard_args, stage_config


def _posts_args(p):
    config_args(p)
    p.add_argument("--out", required=True, type=Path, help="posts.parquet")
    p.add_argument("--summary", required=True, type=Path, help="posts_summary.json")


@command("dreaddit-posts", "read the two Dreaddit CSVs, label faulty rows, carve the validation split", _posts_args)
def posts(args):
    from ..dreaddit.posts import build_posts

    s = build_posts(stage_config(args), args.out, args.summary)
    print(json.dumps({"by_status": s["by_status"], "by_split": s["by_split"]}, indent=2))


def _synth_args(p):
    shard_args(p)
    p.add_argument("--images", type=Path, help="image folder (default {results}/dreaddit/images)")


@command("dreaddit-synthesize", "one shard: an image per post from its text (keeps valid earlier images)", _synth_args)
def synthesize(args):
    from ..dreaddit.synthesize import synthesize_shard

    synthesize_shard(stage_config(args), args.posts, args.shard, args.out, args.images, args.threads)


def _clip_args(p):
    shard_args(p)
    p.add_argument("--synth", required=True, type=Path, help="the shard's synthesis index")


@command("dreaddit-clip", "one shard: CLIP text and image embeddings of every post", _clip_args)
def clip(args):
    from ..dreaddit.clip import clip_shard

    clip_shard(stage_config(args), args.posts, args.synth, args.shard, args.out, args.threads)


def _summary_args(p):
    p.add_argument("--posts", required=True, type=Path)
    p.add_argument("--posts-summary", required=True, type=Path)
    p.add_argument("--synth", required=True, nargs="+", type=Path)
    p.add_argument("--clip", required=True, nargs="+", type=Path)
    p.add_argument("--out", required=True, type=Path)


@command("dreaddit-summary", "collect the Dreaddit stages' counts into summary.json and check the join", _summary_args)
def summary(args):
    from ..dreaddit.posts import summarize

    s = summarize(args.posts, args.posts_summary, args.synth, args.clip, args.out)
    print(json.dumps({"synth": s["synth"]["by_status"], "clip": s["clip"]["by_status"]}, indent=2))
