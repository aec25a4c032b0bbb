"""Report assets: metrics tables, rule benchmarks, benchmark figures (the HTML the report embeds)."""

import json

import polars as pl

from affectflow import report as R


def metrics(kind="classification"):
    cell = lambda m: {"mean": m, "std": 0.01, "per_seed": [m - 0.01, m, m + 0.01], "ci": [m - 0.05, m + 0.05]}  # noqa: E731
    keys = ("accuracy", "f1", "f1_weighted", "f1_macro") if kind == "classification" else ("rmse", "mae", "r2", "spearman")
    test = {k: cell(0.7) for k in keys} | {"per_category": {"ptsd": {"n": 10, "f1_weighted": 0.61, "rmse": 0.3}}}
    return {
        "task": "stress", "kind": kind, "selected_on": "val", "select_metric": "f1_weighted", "seeds": [0, 1, 2],
        "data": {"rows": {"train": 10, "val": 5, "test": 7}, "digests": {"test": "abc"}, "excluded": {}},
        "bootstrap": {"resamples": 1000, "level": 0.95}, "model_order": ["text", "image"],
        "models": {"image": {"modalities": ["image"], "params": {"lr": 0.001}, "val": {"f1_weighted": {"mean": 0.5}}, "test": test},
                   "text": {"modalities": ["text"], "params": {"lr": 0.01}, "val": {"f1_weighted": {"mean": 0.8}}, "test": test,
                            "attention_mean": {"text": 0.6, "image": 0.4}}},
        "baselines": {"majority": {k: {"mean": 0.3, "per_seed": [0.3], "ci": [0.2, 0.4]} for k in keys}},
        "anchors": {"bert": {"value": 0.807, "metric": "f1", "source": "Turcan & McKeown 2019"}},
        "leakage_check": {"note": "image-only <b>check</b>", "image": {"accuracy": 0.5, "f1_weighted": 0.5, "f1_macro": 0.5},
                          "text": {"accuracy": 0.8, "f1_weighted": 0.8, "f1_macro": 0.8}},
    }


def test_metrics_table_has_every_model_ci_anchor_and_escapes_text():
    page = R.metrics_html(metrics())
    assert page.index(">text<") < page.index(">image<")  # the configured model order, not alphabetical
    assert "0.700 ± 0.010" in page and "[0.650, 0.750]" in page
    assert "Turcan &amp; McKeown 2019" in page and "0.807" in page
    assert "image-only &lt;b&gt;check&lt;/b&gt;" in page  # text from metrics is escaped
    assert ">ptsd<" in page and "0.610" in page
    assert "<b>val</b> split" in page


def test_regression_table_columns():
    page = R.metrics_html(metrics("regression"))
    for col in ("RMSE", "MAE", "R²", "Spearman"):
        assert f"<th>{col}</th>" in page


def test_rule_benchmarks_per_job_not_summed(tmp_path):
    head = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (tmp_path / "instagram/ingest").mkdir(parents=True)
    for k, s in enumerate((1.5, 2.5)):
        (tmp_path / f"instagram/ingest/shard-{k:05d}.tsv").write_text(head + f"{s}\t0:00:01\t{100 + k}\t1\t1\t1\t0\t0\t0\t1\n")
    (tmp_path / "train").mkdir()
    (tmp_path / "train/stress_sweep.tsv").write_text(head + "10.0\t0:00:10\t-\t1\t1\t1\t0\t0\t0\t1\n")
    (tmp_path / "train/broken.tsv").write_text("garbage")
    df = R.rule_benchmarks(tmp_path)
    rows = {r["rule"]: r for r in df.iter_rows(named=True)}
    assert rows["instagram/ingest"]["jobs"] == 2 and rows["instagram/ingest"]["total_s"] == 4.0
    assert rows["instagram/ingest"]["median_s"] == 2.0 and rows["instagram/ingest"]["max_s"] == 2.5
    assert "median s/job" in R.rule_benchmarks_html(df)
    assert rows["instagram/ingest"]["max_rss_mb"] == 101
    assert rows["train/stress_sweep"]["total_s"] == 10.0
    assert df["rule"][0] == "train/stress_sweep"  # slowest first
    png = R.rule_benchmarks_png(df, tmp_path / "r.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_benchmark_figures_page(tmp_path):
    assert "No benchmark results" in R.benchmark_figures_html([])
    run = pl.DataFrame(
        {"rule": ["instagram/ingest"], "jobs": [2], "median_s": [2.0], "max_s": [2.5], "total_s": [4.0], "max_rss_mb": [100.0]})
    assert ">instagram/ingest<" in R.benchmark_figures_html([], run)  # a fresh clone: this run's figures, not nothing
    f = tmp_path / "bench_x.json"
    f.write_text(json.dumps({"quick": {"posts_per_s": 12345.678, "ratio": 3.2}, "machine": "2 cores"}))
    page = R.benchmark_figures_html([f])
    assert "quick.posts_per_s" in page and "12345.6780" in page and "bench_x" in page


def test_build_assets_writes_every_named_output(tmp_path):
    m = tmp_path / "m.json"
    m.write_text(json.dumps(metrics()))
    ing = tmp_path / "ingest.json"
    ing.write_text(json.dumps({"posts": 98, "by_status": {"ok": 85, "json_missing": 5}, "mapping": {"duplicates": 3}}))
    out = {k: tmp_path / "out" / f"{k}.html" for k in ("engagement", "stress", "ingest", "rules", "bench")}
    out["rules_png"] = tmp_path / "out/rules.png"
    R.build_assets(m, m, ing, tmp_path / "nobench", [], out)
    assert all(p.stat().st_size > 100 for p in out.values())
    page = out["ingest"].read_text()
    assert "98 posts" in page and ">mapping<" in page and "duplicates: 3" in page  # nested counts readable, no JSON


def test_report_command_builds_the_one_file_report_of_a_finished_run(tmp_path):
    """`affectflow report` (what rule `report` runs): an inner snakemake --report over a finished
    run, with the config it is given (here a config key names the report's figure)."""
    import subprocess
    import sys

    from affectflow.cli import main

    (tmp_path / "Snakefile").write_text(
        'rule table:\n'
        '    output: report("out/table.html", category="Tables", labels={"figure": config["label"]})\n'
        '    shell: "mkdir -p out && echo \'<p>cell</p>\' > {output}"\n')
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--config", "label=x", "--quiet"],
                   cwd=tmp_path, check=True, capture_output=True)
    out = tmp_path / "report.html"
    rc = main(["report", "--config-json", json.dumps({"label": "metrics-table-label"}), "--snakefile",
               str(tmp_path / "Snakefile"), "--directory", str(tmp_path), "--out", str(out), "table"])
    assert rc in (0, None)
    html = out.read_text()
    assert out.stat().st_size > 10_000 and "metrics-table-label" in html  # the config given, not the run's


def test_metrics_page_names_encoders_reads_fusion_weights_and_flags_a_demo():
    from affectflow.ops.demo_guard import NOTICE_KEY

    m = metrics("regression") | {"encoders": {"text_embedding": {"model": "sentence-transformers/all-mpnet-base-v2",
                                                                 "revision": "abc123"}}}
    page = R.metrics_html(m)
    assert "sentence-transformers/all-mpnet-base-v2 @ abc123" in page
    assert "<th>image</th><th>text</th>" in page and "<td>60.0%</td>" in page  # weights: a column per modality
    assert "DEMO RUN" not in page
    demo = R.metrics_html(m | {NOTICE_KEY: "DEMO RUN, NOT REAL RESULTS: tiny models"})
    assert demo.splitlines()[0].split("<title>")[1].startswith("DEMO RUN, NOT REAL RESULTS")
    assert demo.index("class=banner") < demo.index("<table")
