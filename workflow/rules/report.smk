# Report: HTML/PNG assets for `snakemake --report` (metrics tables, ingestion summary, benchmarks).
#   snakemake --profile profiles/local                      # runs everything, assets included
#   snakemake --report results/report.html [--configfile ...]   # then builds the one-file report
from pathlib import Path


report: "../report/workflow.rst"


REPORT = f"{RESULTS}/report"
# Benchmark results present when the DAG is built (benchmarks/out/ is written by benchmarks/*.py).
BENCH_FILES = sorted(str(p) for p in Path("benchmarks/out").glob("*.json"))


rule report_assets:
    """Render the metrics, the ingestion summary and the benchmark figures for the report."""
    input:
        engagement=rules.train_engagement.output.metrics,
        stress=rules.train_stress.output.metrics,
        ingest=rules.instagram_ingest_summary.output[0],
        bench=BENCH_FILES,
    output:
        engagement=report(f"{REPORT}/engagement_metrics.html", caption="../report/metrics_table.rst",
                          category="Engagement", labels={"figure": "metrics table"}),
        stress=report(f"{REPORT}/stress_metrics.html", caption="../report/metrics_table.rst",
                      category="Stress", labels={"figure": "metrics table"}),
        ingest=report(f"{REPORT}/ingest_summary.html", caption="../report/ingest.rst",
                      category="Ingestion", labels={"figure": "ingestion summary"}),
        rules=report(f"{REPORT}/rule_benchmarks.html", caption="../report/benchmarks.rst",
                     category="Benchmarks", labels={"figure": "rule benchmarks (table)"}),
        rules_png=report(f"{REPORT}/rule_runtime.png", caption="../report/benchmarks.rst",
                         category="Benchmarks", labels={"figure": "rule benchmarks (plot)"}),
        bench=report(f"{REPORT}/benchmark_figures.html", caption="../report/benchmarks.rst",
                     category="Benchmarks", labels={"figure": "benchmark figures"}),
    params:
        bench_dir=f"{LOGS}/benchmarks",
    log:
        f"{LOGS}/report/report_assets.log",
    benchmark:
        f"{LOGS}/benchmarks/report/report_assets.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    shell:
        "{AF} report-assets --engagement {input.engagement:q} --stress {input.stress:q} --ingest {input.ingest:q}"
        " --bench-dir {params.bench_dir:q} --bench-files {input.bench:q}"
        " --out-engagement {output.engagement:q} --out-stress {output.stress:q} --out-ingest {output.ingest:q}"
        " --out-rules {output.rules:q} --out-rules-png {output.rules_png:q} --out-bench {output.bench:q}"
        " > {log:q} 2>&1"


rule report:
    """The one-file HTML report (what `snakemake --report` makes), built at the end of a run."""
    input:
        rules.report_assets.output,
        rules.train.input,
    output:
        f"{RESULTS}/report.html",
    params:
        config=lambda wc: afc.to_json(config),
        snakefile=workflow.main_snakefile,
    log:
        f"{LOGS}/report/report.log",
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    run:
        # An inner `snakemake --report` over this run's metadata, for the report's own inputs (not
        # this job), with this run's resolved config: the same DAG the run just finished.
        import os, subprocess, tempfile, yaml

        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "config.yaml"
            cfg.write_text(yaml.safe_dump(afc.from_json(params.config), sort_keys=True))
            cmd = [sys.executable, "-m", "snakemake", "--snakefile", params.snakefile, "--directory", os.getcwd(),
                   "--configfile", str(cfg), "--report", output[0], "--nolock", "report_assets"]
            with open(log[0], "w") as fh:
                subprocess.run(cmd, check=True, stdout=fh, stderr=subprocess.STDOUT)
