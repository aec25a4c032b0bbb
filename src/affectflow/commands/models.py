"""Model commands: fetch the configured models (login node), build the tiny test models."""

import json
from pathlib import Path

from ..cli import command, config_args, stage_config


def _fetch_args(p):
    config_args(p)
    p.add_argument("--only", nargs="*", help="model keys to fetch (default: all configured)")
    p.add_argument("--stamp", type=Path, help="file to write the resolved paths to (for the rule's output)")


@command("fetch-models", "download the configured models into models.dir (needs internet: run on a login node)",
         _fetch_args)
def fetch_models(args):
    from ..io.parquet import write_json
    from ..models import fetch

    paths = fetch(stage_config(args), args.only)
    print(json.dumps(paths, indent=2))
    if args.stamp:
        write_json(args.stamp, paths)


def _tiny_args(p):
    p.add_argument("out", type=Path)
    p.add_argument("--only", nargs="*", help="which tiny models (default: all)")
    p.add_argument("--seed", type=int, default=0)


@command("tiny-models", "build tiny random-weight models of the real classes (tests, demo; offline)", _tiny_args)
def tiny_models(args):
    from ..ops.tiny_models import build_all

    print(json.dumps(build_all(args.out, args.only, args.seed), indent=2))
