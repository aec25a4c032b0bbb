"""Commands of the report stage: the HTML/PNG assets that ``snakemake --report`` embeds."""

from pathlib import Path

from ..cli import command, given_paths


def _assets_args(p):
    p.add_argument("--engagement", type=Path, help="engagement metrics.json")
    p.add_argument("--stress", type=Path, help="stress metrics.json")
    p.add_argument("--ingest", type=Path, help="ingest_summary.json")
    p.add_argument("--bench-dir", type=Path, required=True, help="Snakemake benchmark folder ({logs}/benchmarks)")
    p.add_argument("--bench-files", nargs="*", default=[], type=Path, help="benchmarks/out/*.json")
    for key in ("engagement", "stress", "ingest", "rules", "rules-png", "bench"):
        p.add_argument(f"--out-{key}", type=Path)


@command("report-assets", "render metrics, ingestion summary and benchmark figures for snakemake --report", _assets_args)
def assets(args):
    from ..report import build_assets

    out = {k.replace("-", "_"): getattr(args, f"out_{k.replace('-', '_')}")
           for k in ("engagement", "stress", "ingest", "rules", "rules-png", "bench")}
    build_assets(args.engagement, args.stress, args.ingest, args.bench_dir,
                 given_paths(args.bench_files), {k: v for k, v in out.items() if v})
