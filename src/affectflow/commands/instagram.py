"""Commands the Instagram ingestion rules run."""

import json
from pathlib import Path

from ..cli import command, config_args, stage_config


def _plan_args(p):
    config_args(p)
    p.add_argument("--posts", required=True, type=Path)
    p.add_argument("--images", required=True, type=Path)
    p.add_argument("--summary", required=True, type=Path)


@command("instagram-plan", "plan the ingestion: central directories, mapping, shards", _plan_args)
def plan(args):
    from ..instagram.plan import plan

    plan(stage_config(args), args.posts, args.images, args.summary)


def _ingest_args(p):
    config_args(p)
    p.add_argument("--plan", required=True, type=Path)
    p.add_argument("--plan-summary", required=True, type=Path)
    p.add_argument("--shard", required=True, type=int)
    p.add_argument("--out", required=True, type=Path)


@command("instagram-ingest", "parse one shard's post JSON from the archive into Parquet", _ingest_args)
def ingest(args):
    from ..instagram.ingest import ingest_shard

    ingest_shard(stage_config(args), args.plan, args.plan_summary, args.shard, args.out)


def _summary_args(p):
    p.add_argument("--plan-summary", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("shards", nargs="+", type=Path)


@command("instagram-summary", "collect the shards' status counts into ingest_summary.json", _summary_args)
def summary(args):
    from ..instagram.ingest import summarize

    s = summarize(args.plan_summary, args.shards, args.out)
    print(json.dumps(s["by_status"], indent=2))
