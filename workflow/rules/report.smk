# Report: HTML/PNG assets for `snakemake --report` (metrics tables, ingestion summary, benchmarks).
#   snakemake --profile profiles/local                      # runs everything, assets included
#   snakemake --report results/report.html [--configfile ...]   # then builds the one-file report
from pathlib import Path


report: "../report/workflow.rst"


# Benchmark results present when the DAG is built (benchmarks/out/ is written by benchmarks/*.py).
BENCH_FILES = sorted(str(p) for p in Path("benchmarks/out").glob("*.json"))


REPORT_OUT = outputs_of("report_assets")


rule report_assets:
    """Render the metrics, the ingestion summary and the benchmark figures for the report."""
    input:
        engagement=rules.train_engagement.output.metrics,
        stress=rules.train_stress.output.metrics,
        ingest=rules.instagram_ingest_summary.output.summary,
        # the overview page reads these summaries (and, beside them, the shards and benchmark files)
        features=rules.features_summary.output.summary,
        dreaddit=rules.dreaddit_summary.output.summary,
        cremad=rules.cremad_train.output.metrics,
        bench=BENCH_FILES,
    output:
        engagement=report(REPORT_OUT["engagement"], caption="../report/metrics_table.rst",
                          category="Engagement", labels={"figure": "metrics table"}),
        stress=report(REPORT_OUT["stress"], caption="../report/metrics_table.rst",
                      category="Stress", labels={"figure": "metrics table"}),
        ingest=report(REPORT_OUT["ingest"], caption="../report/ingest.rst",
                      category="Ingestion", labels={"figure": "ingestion summary"}),
        cremad=report(REPORT_OUT["cremad"], caption="../report/cremad.rst",
                      category="CREMA-D", labels={"figure": "metrics table"}),
        rules=report(REPORT_OUT["rules"], caption="../report/benchmarks.rst",
                     category="Benchmarks", labels={"figure": "rule benchmarks (table)"}),
        rules_png=report(REPORT_OUT["rules_png"], caption="../report/benchmarks.rst",
                         category="Benchmarks", labels={"figure": "rule benchmarks (plot)"}),
        bench=report(REPORT_OUT["bench"], caption="../report/benchmarks.rst",
                     category="Benchmarks", labels={"figure": "benchmark figures"}),
        overview=report(REPORT_OUT["overview"], caption="../report/overview.rst",
                        category="Overview", labels={"figure": "what this run made"}),
    params:
        bench_dir=path_of("report_assets", "bench_dir"),
        results=RESULTS,
    log:
        log_of("report_assets"),
    benchmark:
        benchmark_of("report_assets")
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    shell:
        "{AF} report-assets --engagement {input.engagement:q} --stress {input.stress:q} --ingest {input.ingest:q}"
        " --cremad {input.cremad:q} --out-cremad {output.cremad:q}"
        " --bench-dir {params.bench_dir:q} --bench-files {input.bench:q}"
        " --out-engagement {output.engagement:q} --out-stress {output.stress:q} --out-ingest {output.ingest:q}"
        " --out-rules {output.rules:q} --out-rules-png {output.rules_png:q} --out-bench {output.bench:q}"
        " --results {params.results:q} --out-overview {output.overview:q}"
        " > {log:q} 2>&1"


rule report:
    """The one-file HTML report (what `snakemake --report` makes), built at the end of a run."""
    input:
        rules.report_assets.output,
        rules.train.input,
    output:
        **outputs_of("report"),
    params:
        cfg=cfg_of("report"),
        snakefile=workflow.main_snakefile,
    log:
        log_of("report"),
    benchmark:
        benchmark_of("report")
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    shell:
        # An inner `snakemake --report` over this run's metadata, for the report's own inputs (not
        # this job), with this run's resolved config: the same DAG the run just finished.
        "{AF} report --config-json {params.cfg:q} --snakefile {params.snakefile:q} --out {output:q}"
        " report_assets > {log:q} 2>&1"
