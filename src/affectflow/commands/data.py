"""Commands for data at rest: the bundled sample, and inspecting Parquet outputs."""

import json
from pathlib import Path

from ..cli import command


def _sample_args(p):
    p.add_argument("out", type=Path, help="folder to write (instagram/, dreaddit/ and cremad/ below it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--influencers", type=int, default=8)
    p.add_argument("--posts-per-influencer", type=int, default=12)


@command("sample", "write the bundled sample datasets (deterministic by seed)", _sample_args)
def sample(args):
    from ..ops.sample import SampleSpec, make_sample

    info = make_sample(args.out, SampleSpec(seed=args.seed, influencers=args.influencers,
                                            posts_per_influencer=args.posts_per_influencer))
    print(f"sample written to {args.out}: {info['instagram']['posts']} Instagram posts, "
          f"{info['dreaddit']['train']}+{info['dreaddit']['test']} Dreaddit rows, {info['cremad']['clips']} CREMA-D clips")


def _inspect_args(p):
    p.add_argument("path", type=Path, help="a Parquet file, or a folder of them")
    p.add_argument("--json", action="store_true", help="machine-readable output")


@command("inspect", "print a Parquet file's or folder's schema, rows, status counts and provenance", _inspect_args)
def inspect(args):
    from ..ops.inspect_parquet import format_report, inspect

    report = inspect(args.path)
    print(json.dumps(report, indent=2, default=str) if args.json else format_report(report))
