"""Commands of the report stage: the HTML/PNG assets that ``snakemake --report`` embeds."""

from pathlib import Path

from ..cli import command, config_args, given_paths, stage_config


def _assets_args(p):
    p.add_argument("--engagement", type=Path, help="engagement metrics.json")
    p.add_argument("--stress", type=Path, help="stress metrics.json")
    p.add_argument("--ingest", type=Path, help="ingest_summary.json")
    p.add_argument("--cremad", type=Path, help="CREMA-D metrics.json")
    p.add_argument("--bench-dir", type=Path, required=True, help="Snakemake benchmark folder ({logs}/benchmarks)")
    p.add_argument("--bench-files", nargs="*", default=[], type=Path, help="benchmarks/out/*.json")
    p.add_argument("--results", type=Path, help="the run's results folder (the overview page reads it)")
    for key in ("engagement", "stress", "ingest", "cremad", "rules", "rules-png", "bench", "overview"):
        p.add_argument(f"--out-{key}", type=Path)


@command("report-assets", "render metrics, ingestion summary and benchmark figures for snakemake --report", _assets_args)
def assets(args):
    from ..report import build_assets

    out = {k.replace("-", "_"): getattr(args, f"out_{k.replace('-', '_')}")
           for k in ("engagement", "stress", "ingest", "cremad", "rules", "rules-png", "bench")}
    build_assets(args.engagement, args.stress, args.ingest, args.bench_dir,
                 given_paths(args.bench_files), {k: v for k, v in out.items() if v}, cremad=args.cremad)
    if args.out_overview:
        from ..report import build_overview

        if not args.results:
            raise ValueError("--out-overview needs --results")
        build_overview(args.results, args.bench_dir, args.out_overview, given_paths(args.bench_files))


def _report_args(p):
    config_args(p)
    p.add_argument("--snakefile", required=True, type=Path, help="the workflow's main Snakefile")
    p.add_argument("--directory", default=".", type=Path, help="the run's working directory (default: here)")
    p.add_argument("--out", required=True, type=Path, help="the report to write (report.html)")
    p.add_argument("targets", nargs="+", help="rules whose report() outputs the report shows")


@command("report", "the one-file HTML report of a finished run (snakemake --report, same config)", _report_args)
def report(args):
    from ..report import snakemake_report

    snakemake_report(stage_config(args), args.snakefile, args.out, args.targets, args.directory)
