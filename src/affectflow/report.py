"""Report assets for ``snakemake --report``: self-contained HTML tables and figures.

The report embeds HTML and PNG files inline, so the metrics, the ingestion summary and the
benchmark figures are rendered here as small standalone HTML pages (no JavaScript, inline CSS).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import polars as pl

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;font-size:13px;margin:12px;color:#222}
h2{font-size:16px;margin:14px 0 6px} h3{font-size:14px;margin:12px 0 4px}
table{border-collapse:collapse;margin:6px 0 14px} th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left} .note{color:#555;max-width:60em} .ci{color:#777;font-size:11px}
tr.base td{color:#666;font-style:italic}
.banner{background:#b2182b;color:#fff;padding:8px 12px;font-weight:bold;font-size:14px}
"""

REG_COLS = [("rmse", "RMSE"), ("mae", "MAE"), ("r2", "R²"), ("spearman", "Spearman")]
CLS_COLS = [("accuracy", "accuracy"), ("f1", "F1 (stress)"), ("f1_weighted", "weighted F1"), ("f1_macro", "macro F1")]


def _e(x: Any) -> str:
    return html.escape(str(x))


def _num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}" if isinstance(x, float) else _e(x)


def _cell(rec: Mapping[str, Any] | None) -> str:
    """mean ± std over seeds, with the bootstrap interval below."""
    if not rec:
        return "<td>–</td>"
    s = _num(rec.get("mean"))
    if rec.get("std") and len(rec.get("per_seed", [])) > 1:
        s += f" ± {_num(rec['std'])}"
    if rec.get("ci"):
        s += f"<br><span class=ci>[{_num(rec['ci'][0])}, {_num(rec['ci'][1])}]</span>"
    return f"<td>{s}</td>"


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{_e(title)}</title><style>{CSS}</style></head>"
            f"<body><h2>{_e(title)}</h2>{body}</body></html>\n")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], left: int = 1) -> str:
    th = "".join(f"<th class=l>{_e(h)}</th>" if i < left else f"<th>{_e(h)}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def metrics_html(metrics: Mapping[str, Any]) -> str:
    """The test figures of every model (mean ± std over seeds, bootstrap CI), how they were chosen."""
    reg = metrics["kind"] == "regression"
    cols = REG_COLS if reg else CLS_COLS
    sel = metrics["select_metric"]
    order = metrics.get("model_order") or list(metrics["models"])
    models = {name: metrics["models"][name] for name in order}
    rows = []
    for name, m in models.items():
        val = m.get("val", {}).get(sel, {})
        rows.append([f"<td class=l>{_e(name)}</td>", f"<td class=l>{_e(', '.join(m.get('modalities', [])))}</td>",
                     *[_cell(m["test"].get(k)) for k, _ in cols],
                     f"<td>{_num(val.get('mean'))}</td>", f"<td class=l>{_e(json.dumps(m.get('params', {}), sort_keys=True))}</td>"])
    for bname, b in metrics.get("baselines", {}).items():
        rows.append([f"<td class=l><i>{_e(bname)}</i></td>", "<td class=l>–</td>", *[_cell(b.get(k)) for k, _ in cols],
                     "<td>–</td>", "<td class=l>constant from train</td>"])
    n_seeds = len(metrics.get("seeds", []))
    bs = metrics.get("bootstrap", {})
    from .ops.demo_guard import NOTICE_KEY

    body = [
        f"<div class=banner>{_e(metrics[NOTICE_KEY])}</div>" if metrics.get(NOTICE_KEY) else "",
        encoders_line(metrics),
        f"<p class=note>Test split: {metrics['data']['rows'].get('test')} rows, scored once per model and seed "
        f"({n_seeds} seeds: mean ± std; below, the {int(bs.get('level', .95) * 100)}% bootstrap interval of the seed-mean, "
        f"{bs.get('resamples')} resamples). Every configuration and epoch was chosen on the <b>{_e(metrics['selected_on'])}</b> "
        f"split by {_e(sel)}.</p>",
        _table(["model", "modalities", *[c for _, c in cols], f"val {sel}", "chosen grid point"], rows, left=2),
    ]
    if metrics.get("anchors"):
        body.append("<h3>Published anchors (Dreaddit official 715-row test split)</h3>")
        body.append(_table(["result", "metric", "value"], [
            [f"<td class=l>{_e(a['source'])}</td>", f"<td class=l>{_e(a['metric'])}</td>", f"<td>{_num(a['value'])}</td>"]
            for a in metrics["anchors"].values()]))
    if metrics.get("leakage_check"):
        lc = metrics["leakage_check"]
        body.append(f"<h3>Leakage check</h3><p class=note>{_e(lc['note'])}</p>")
        body.append(_table(["model", "accuracy", "weighted F1", "macro F1"], [
            [f"<td class=l>{_e(k)}</td>", *[f"<td>{_num(lc[k].get(x))}</td>" for x in ("accuracy", "f1_weighted", "f1_macro")]]
            for k in ("image", "text", "majority") if k in lc]))
    cats = sorted({c for m in models.values() for c in m["test"].get("per_category", {})})
    if cats:
        key = cols[0][0] if reg else "f1_weighted"
        body.append(f"<h3>Per category ({_e(key)}, seed-mean)</h3>")
        body.append(_table(["model", *cats], [
            [f"<td class=l>{_e(name)}</td>", *[f"<td>{_num(m['test'].get('per_category', {}).get(c, {}).get(key))}</td>" for c in cats]]
            for name, m in models.items()]))
    if any(m.get("attention_mean") for m in models.values()):
        body.append("<h3>Fusion: mean attention weight per modality (test)</h3>" + fusion_weights_table(metrics))
    ds = metrics.get("dataset", {})
    facts = {"rows": metrics["data"]["rows"], "left out": metrics["data"].get("excluded", {}),
             **{k: v for k, v in ds.items()}, "data digests": metrics["data"]["digests"],
             "config digest": metrics.get("config_digest")}
    body.append("<h3>Data</h3>" + _table(["", ""], [[f"<td class=l>{_e(k)}</td>", f"<td class=l>{_e(json.dumps(v, default=str))}</td>"]
                                                  for k, v in facts.items()], left=2))
    title = "Engagement regression (test)" if reg else "Stress classification (test)"
    if metrics.get(NOTICE_KEY):
        title = f"DEMO RUN, NOT REAL RESULTS: {title}"
    return _page(title, "".join(body))


def cremad_html(metrics: Mapping[str, Any]) -> str:
    """CREMA-D: per-modality and fused emotion scores (intended labels), the stress proxy, the same
    predictions against the crowd-perceived labels per presentation, attention weights, the split."""
    models = metrics["models"]
    emo = [("accuracy", "accuracy"), ("f1_macro", "macro F1"), ("uar", "UAR")]
    rows = [[f"<td class=l>{_e(n)}</td>", f"<td class=l>{_e(', '.join(m['modalities']))}</td>",
             *[_cell(m["test"]["emotion"].get(k)) for k, _ in emo],
             *[_cell(m["test"]["stress"].get(k)) for k in ("uar", "f1_macro")]] for n, m in models.items()]
    t = metrics["split"]["test"]
    body = [
        f"<p class=note>Test: {t['clips']} clips of {len(t['actors'])} actors never seen in training or model "
        f"selection (split by actor). Mean ± std over seeds {_e(metrics['seeds'])}; below, the bootstrap interval "
        f"resampling test actors. Chance UAR is {_num(metrics['chance']['emotion_uar'])}. The <b>text</b> model reads only "
        f"the sentence, which is the same for every emotion: it is the control and must stay near chance. Stress is a "
        f"proxy: P(stress) = P({_e(' or '.join(metrics['stress_emotions']))}) from the emotion model.</p>",
        _table(["model", "modalities", *[f"emotion {c}" for _, c in emo], "stress UAR", "stress macro F1"], rows, left=2),
        "<h3>Against the crowd-perceived labels (tabulatedVotes.csv, single-winner votes)</h3>",
    ]
    pres = {"voice": "audio-only", "face": "video-only", "av": "audio-visual"}
    first = next(iter(models.values()))["test"]["perceived"]
    body.append(_table(["model", *[f"{v} UAR" for v in pres.values()]], [
        [f"<td class=l>{_e(n)}</td>", *[_cell(m["test"]["perceived"][q].get("uar")) for q in pres]]
        for n, m in models.items()] + [
        ["<td class=l><i>crowd = intended</i></td>", *[f"<td>{_num(first[q].get('crowd_matches_intended'))}</td>" for q in pres]]]))
    att = metrics.get("attention")
    if att:
        body.append("<h3>Fusion: mean attention weight per modality (test)</h3>")
        body.append(_table(["", *att["modalities"]], [
            ["<td class=l>all test clips</td>", *[f"<td>{_num(att['mean'][m])}</td>" for m in att["modalities"]]]] + (
            [["<td class=l>clips with every modality</td>", *[f"<td>{_num(att['mean_all_present'][m])}</td>"
                                                             for m in att["modalities"]]]] if att.get("mean_all_present") else [])))
    facts = {"split": metrics["split"], "left out": metrics["excluded"], "modality present": metrics["modality_present"]}
    body.append("<h3>Data</h3>" + _table(["", ""], [[f"<td class=l>{_e(k)}</td>", f"<td class=l>{_e(json.dumps(v))}</td>"]
                                                  for k, v in facts.items()], left=2))
    return _page("CREMA-D emotion and stress proxy (test actors)", "".join(body))


def ingest_html(summary: Mapping[str, Any]) -> str:
    """The ingestion summary: posts by status and category, and every other count it holds."""
    body = []
    for key in ("by_status", "by_category"):
        if isinstance(summary.get(key), Mapping):
            body.append(f"<h3>{_e(key.replace('_', ' '))}</h3>")
            body.append(_table([key.split("_")[1], "posts"], [[f"<td class=l>{_e(k)}</td>", f"<td>{_e(v)}</td>"]
                                                            for k, v in sorted(summary[key].items(), key=lambda kv: -kv[1]
                                                                               if isinstance(kv[1], (int, float)) else 0)]))
    rest = {k: v for k, v in summary.items() if k not in ("by_status", "by_category")}
    body.append("<h3>all counts</h3>" + _kv_table(rest))  # nested counts as tables, never raw JSON
    return _page(f"Instagram ingestion: {summary.get('posts', '?')} posts", "".join(body))


def _flatten(obj: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, Any]]:
    if isinstance(obj, Mapping) and depth < 4:
        out = []
        for k, v in obj.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)
        return out
    if isinstance(obj, list) and len(obj) > 12:
        return [(prefix, f"[{len(obj)} items] " + json.dumps(obj[:5], default=str)[:200] + " …")]
    return [(prefix, json.dumps(obj, default=str) if isinstance(obj, (list, dict)) else obj)]


def rule_benchmarks(bench_dir: str | Path) -> pl.DataFrame:
    """Snakemake's per-job benchmark files per rule (``{logs}/benchmarks/<area>/<rule>[/<job>].tsv``):
    jobs, median and max seconds per job, the sum of job-seconds (compute spent, not the stage's
    wall time: jobs run side by side), the largest peak RSS; slowest job first."""
    times = job_times(bench_dir)
    if not times.height:
        return pl.DataFrame(schema={"rule": pl.Utf8, "jobs": pl.UInt32, "median_s": pl.Float64, "max_s": pl.Float64,
                                    "total_s": pl.Float64, "max_rss_mb": pl.Float64})
    return (times.group_by("rule").agg(pl.len().alias("jobs"), pl.col("s").median().alias("median_s"),
                                       pl.col("s").max().alias("max_s"), pl.col("s").sum().alias("total_s"),
                                       pl.col("max_rss_mb").max())
            .sort("max_s", descending=True))


def rule_benchmarks_html(df: pl.DataFrame) -> str:
    rows = [[f"<td class=l>{_e(r['rule'])}</td>", f"<td>{r['jobs']}</td>", f"<td>{_num(r['median_s'], 1)}</td>",
             f"<td>{_num(r['max_s'], 1)}</td>", f"<td>{_num(r['total_s'], 1)}</td>", f"<td>{_num(r['max_rss_mb'], 0)}</td>"]
            for r in df.iter_rows(named=True)]
    return _page("Rule benchmarks (this run)", "<p class=note>From Snakemake's benchmark files, per job: the median "
                 "and the slowest job's wall seconds, the job-seconds a rule used in all (its jobs ran side by side, so "
                 "this is not the stage's wall time), and the largest peak RSS (MB).</p>"
                 + _table(["rule", "jobs", "median s/job", "max s/job", "job-seconds in all", "max RSS MB"], rows))


def rule_benchmarks_png(df: pl.DataFrame, path: str | Path) -> Path:
    """Median (bar) and slowest (tick) seconds per job of each rule, never summed over jobs."""
    from .train.plots import _plt, save_figure

    top = df.head(20)
    rules = top["rule"].to_list()[::-1]
    fig, ax = _plt().subplots(figsize=(7, 0.3 * max(top.height, 3) + 1))
    ax.barh(rules, top["median_s"].to_list()[::-1], color="#4c78a8", label="median job")
    ax.scatter(top["max_s"].to_list()[::-1], rules, color="#e45756", marker="|", s=120, label="slowest job")
    ax.set_xlabel("wall seconds per job")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Time per job, by rule", fontsize=10)
    return save_figure(fig, path, dpi=100)


def benchmark_figures_html(files: Sequence[str | Path], run_rules: pl.DataFrame | None = None) -> str:
    """The figures the project's benchmarks wrote to ``benchmarks/out/*.json``, one table each.

    Without any (a fresh clone), the page says how to make them and shows this run's own time
    per job (``run_rules``, from :func:`rule_benchmarks`) instead of staying empty."""
    if not files:
        body = ("<p class=note>No benchmark results in benchmarks/out/ when this report was built; run "
                "<code>make bench</code> (or <code>python benchmarks/bench_X.py</code>) to add the project's "
                "benchmarks here. Meanwhile, this run's own time per job:</p>")
        if run_rules is not None and run_rules.height:
            body += rule_benchmarks_html(run_rules).split("</h2>", 1)[1].rsplit("</body>", 1)[0]
        return _page("Benchmark figures", body)
    body = []
    for f in files:
        f = Path(f)
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError) as exc:
            body.append(f"<h3>{_e(f.name)}</h3><p class=note>unreadable: {_e(exc)}</p>")
            continue
        body.append(f"<h3>{_e(f.stem)}</h3>" + _table(["figure", "value"], [
            [f"<td class=l>{_e(k)}</td>", f"<td class=l>{_e(_num(v, 4) if isinstance(v, float) else v)}</td>"]
            for k, v in _flatten(data)[:200]]))
    return _page("Benchmark figures", "".join(body))


def build_assets(engagement: str | Path | None, stress: str | Path | None, ingest: str | Path | None,
                 bench_dir: str | Path, bench_files: Sequence[str | Path], out: Mapping[str, str | Path],
                 cremad: str | Path | None = None) -> None:
    """Write every report asset named in ``out`` (keys: engagement, stress, ingest, cremad, rules, rules_png, bench)."""
    from .io.parquet import atomic

    def put(key: str, text: str) -> None:
        with atomic(out[key]) as tmp:
            tmp.write_text(text)

    for key, src, render in (("engagement", engagement, metrics_html), ("stress", stress, metrics_html),
                             ("ingest", ingest, ingest_html), ("cremad", cremad, cremad_html)):
        if key in out and src:
            put(key, render(json.loads(Path(src).read_text())))
    df = rule_benchmarks(bench_dir)
    if "rules" in out:
        put("rules", rule_benchmarks_html(df))
    if "rules_png" in out:
        rule_benchmarks_png(df, out["rules_png"])
    if "bench" in out:
        put("bench", benchmark_figures_html(bench_files, df))


def snakemake_report(cfg: Mapping[str, Any], snakefile: str | Path, out: str | Path, targets: Sequence[str],
                     workdir: str | Path = ".") -> Path:
    """The one-file HTML report of a run: ``snakemake --report`` over the run's metadata.

    The workflow's rule ``report`` calls this at the end of a run (``affectflow report``): an
    inner Snakemake on the same Snakefile, working directory and resolved config reads the
    metadata the run just left in ``.snakemake/`` and embeds the outputs marked ``report()`` of
    ``targets`` (and their upstream jobs). It takes no lock (``--nolock``): the outer Snakemake
    holds it, and the inner one only reads.

    Args:
        cfg: the run's whole resolved config (the rule passes it as ``--config-json``).
        snakefile: the workflow's main Snakefile.
        out: the report to write (``.html``: one self-contained file).
        targets: the rules (or files) whose report outputs the report shows.
        workdir: the run's working directory.

    Returns:
        ``out``.

    Raises:
        subprocess.CalledProcessError: the inner Snakemake failed (its output is on stdout/stderr).
    """
    import subprocess
    import sys
    import tempfile

    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        cfgfile = Path(tmp) / "config.yaml"
        cfgfile.write_text(yaml.safe_dump(dict(cfg), sort_keys=True))
        cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir),
               "--configfile", str(cfgfile), "--report", str(out), "--nolock", *targets]
        subprocess.run(cmd, check=True)
    return Path(out)


# -- the overview page: what an operator looks at first ---------------------------------------------

STATUS_COLORS = {"ok": "#4c9f70", "unmapped": "#9ecae1", "mapping_malformed": "#6baed6", "json_missing": "#fdae6b",
                 "missing": "#fdae6b", "json_empty": "#fd8d3c", "json_corrupt": "#e6550d", "json_invalid": "#d94801",
                 "unreadable": "#e6550d", "too_large": "#a63603", "read_error": "#b2182b", "unsupported": "#762a83",
                 "unsafe_name": "#542788", "bad_member_name": "#8073ac", "post_not_parsed": "#bdbdbd"}


def _png_data_uri(fig) -> str:
    """A matplotlib figure as an inline ``data:image/png;base64`` URI (the page stays one file)."""
    import base64
    import io

    from .train.plots import _plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")  # room for a legend beside the axes
    _plt().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _shard_of(path: Path) -> int | None:
    stem = Path(path).stem
    return int(stem.split("-")[1]) if stem.startswith("shard-") and stem.split("-")[1].isdigit() else None


def status_per_shard(files: Sequence[str | Path], column: str = "status") -> pl.DataFrame:
    """Rows per (shard, status) over per-shard Parquet files (the shard from ``shard-NNNNN``).

    Returns:
        columns ``shard`` (int), ``status`` (str, ``null`` as "null"), ``n`` (rows).
    """
    parts = []
    for f in files:
        shard = _shard_of(Path(f))
        if shard is None:
            continue
        counts = pl.read_parquet(f, columns=[column]).group_by(column).len()
        parts.append(counts.select(pl.lit(shard).alias("shard"), pl.col(column).fill_null("null").alias("status"),
                                   pl.col("len").alias("n")))
    if not parts:
        return pl.DataFrame(schema={"shard": pl.Int64, "status": pl.Utf8, "n": pl.UInt32})
    return pl.concat(parts).with_columns(pl.col("shard").cast(pl.Int64)).sort("shard", "status")


def stacked_bars(df: pl.DataFrame, title: str, unit: str) -> str:
    """Stacked bars of ``df`` (shard, status, n): one bar per shard, one colour per status; a data URI."""
    from .train.plots import _plt

    plt = _plt()
    shards = sorted(df["shard"].unique().to_list())
    statuses = (df.group_by("status").agg(pl.col("n").sum()).sort("n", descending=True)["status"].to_list())
    fig, ax = plt.subplots(figsize=(min(2 + 0.35 * len(shards), 14), 3.2))
    bottom = np.zeros(len(shards))
    palette = plt.get_cmap("tab20")
    for i, st in enumerate(statuses):
        vals = np.array([df.filter((pl.col("shard") == s) & (pl.col("status") == st))["n"].sum() for s in shards], float)
        ax.bar([str(s) for s in shards], vals, bottom=bottom, label=st, color=STATUS_COLORS.get(st, palette(i % 20)))
        bottom += vals
    ax.set_xlabel("shard")
    ax.set_ylabel(unit)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=min(len(statuses), 4), loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png_data_uri(fig)


def job_times(bench_dir: str | Path) -> pl.DataFrame:
    """One row per job from Snakemake's benchmark files: ``rule`` (its folder under the benchmark
    root), ``job`` (shard/seed or "-"), ``s`` (wall seconds), ``max_rss_mb``."""
    bench_dir = Path(bench_dir)
    rows = []
    for f in sorted(bench_dir.rglob("*.tsv")):
        rel = f.relative_to(bench_dir)
        per_job = rel.stem.split("-")[0] in ("shard", "seed")
        try:
            df = pl.read_csv(f, separator="\t", columns=["s", "max_rss"],
                             schema_overrides={"s": pl.Float64, "max_rss": pl.Utf8})
        except Exception:  # noqa: BLE001 - a half-written benchmark file must not sink the report
            continue
        for s, rss in df.iter_rows():
            rss_mb = None
            try:
                rss_mb = float(str(rss).replace("-", "")) if rss not in (None, "-", "NA") else None
            except ValueError:
                pass
            rows.append({"rule": str(rel.parent if per_job else rel.with_suffix("")), "job": rel.stem if per_job else "-",
                         "s": float(s), "max_rss_mb": rss_mb})
    return pl.DataFrame(rows, schema={"rule": pl.Utf8, "job": pl.Utf8, "s": pl.Float64, "max_rss_mb": pl.Float64})


def job_spread_png(times: pl.DataFrame) -> str | None:
    """Seconds per job for each per-shard rule, one dot per job, median marked: the spread across shards."""
    from .train.plots import _plt

    multi = times.filter(pl.col("job") != "-")
    rules = multi.group_by("rule").agg(pl.col("s").median().alias("m")).sort("m", descending=True)["rule"].to_list()
    if not rules:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rules) + 1.2))
    for i, r in enumerate(rules[::-1]):
        s = multi.filter(pl.col("rule") == r)["s"].to_numpy()
        ax.scatter(s, np.full(len(s), i), s=14, alpha=0.7, color="#4c78a8")
        ax.plot([np.median(s)] * 2, [i - 0.3, i + 0.3], color="#e45756", lw=2)
    ax.set_yticks(range(len(rules)), rules[::-1], fontsize=8)
    ax.set_xlabel("wall seconds per job (dots: shards or seeds; red: median)")
    ax.set_title("Spread of job times across shards", fontsize=10)
    return _png_data_uri(fig)


def throughput(times: pl.DataFrame, rows_per_job: Mapping[tuple[str, str], int]) -> list[dict[str, Any]]:
    """Per per-shard rule: jobs, median and max seconds per job, and rows written per job-second.

    ``rows_per_job`` maps (rule folder as in :func:`job_times`, job) to the rows its output holds.
    """
    out = []
    for rule, df in times.filter(pl.col("job") != "-").group_by("rule", maintain_order=True):
        rule = rule[0]
        secs = df["s"].to_numpy()
        rows = [rows_per_job.get((rule, j)) for j in df["job"].to_list()]
        known = [(r, s) for r, s in zip(rows, secs) if r is not None]
        rate = sum(r for r, _ in known) / sum(s for _, s in known) if known and sum(s for _, s in known) > 0 else None
        out.append({"rule": rule, "jobs": len(secs), "median_s": float(np.median(secs)), "max_s": float(secs.max()),
                    "rows": sum(r for r, _ in known) if known else None, "rows_per_s": rate})
    return sorted(out, key=lambda r: -r["median_s"])


def contact_sheet(synth_files: Sequence[str | Path], limit: int = 24, size: int = 160) -> str:
    """A grid of synthesized Dreaddit images with the prompt each was made from (never the label)."""
    import base64
    import io

    from PIL import Image

    cells = []
    for f in synth_files:
        df = pl.read_parquet(f, columns=["post_id", "image_path", "prompt", "status"]).filter(pl.col("status") == "ok")
        for post_id, image_path, prompt, _ in df.iter_rows():
            if len(cells) >= limit:
                break
            try:
                with Image.open(image_path) as im:
                    im = im.convert("RGB")
                    im.thumbnail((size, size))
                    buf = io.BytesIO()
                    im.save(buf, format="PNG")
            except OSError:
                continue
            uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
            cells.append(f"<figure><img src='{uri}' alt='{_e(post_id)}' width={size}>"
                         f"<figcaption>{_e(prompt[:220])}</figcaption></figure>")
    if not cells:
        return "<p class=note>No synthesized image yet.</p>"
    return "<div class=sheet>" + "".join(cells) + "</div>"


def _kv_table(d: Mapping[str, Any]) -> str:
    """A readable two-column table: scalars as they are, small mappings as ``k: v`` lists, no raw JSON."""
    rows = []
    for k, v in d.items():
        if isinstance(v, Mapping):
            if not v:
                text = "–"
            elif all(not isinstance(x, (Mapping, list)) for x in v.values()):
                text = ", ".join(f"{_e(a)}: {_e(_num(b, 3) if isinstance(b, float) else b)}" for a, b in list(v.items())[:30])
            else:
                text = _kv_table(v)
                rows.append([f"<td class=l>{_e(k)}</td>", f"<td class=l>{text}</td>"])
                continue
        elif isinstance(v, list):
            item = (lambda x: "; ".join(f"{a}: {b}" for a, b in x.items()) if isinstance(x, Mapping) else str(x))
            sep = "<br>" if any(isinstance(x, Mapping) for x in v) else ", "
            text = sep.join(_e(item(x)) for x in v[:12]) + (f" … ({len(v)} in all)" if len(v) > 12 else "") if v else "–"
        else:
            text = _e(_num(v, 3) if isinstance(v, float) else v)
        rows.append([f"<td class=l>{_e(k)}</td>", f"<td class=l>{text}</td>"])
    return _table(["", ""], rows, left=2)


def fusion_weights_table(metrics: Mapping[str, Any]) -> str:
    """The fusion models' mean attention per modality, one column per modality, as percentages."""
    att = {n: m["attention_mean"] for n, m in metrics.get("models", {}).items() if m.get("attention_mean")}
    if not att:
        return ""
    mods = sorted({k for w in att.values() for k in w})
    rows = [[f"<td class=l>{_e(n)}</td>", *[f"<td>{100 * w[k]:.1f}%</td>" if k in w else "<td>–</td>" for k in mods]]
            for n, w in att.items()]
    return ("<p class=note>Mean attention weight per modality on the test split (sums to 100% per post).</p>"
            + _table(["model", *mods], rows))


def encoders_line(metrics: Mapping[str, Any]) -> str:
    enc = metrics.get("encoders") or {}
    if not enc:
        return "<p class=note>Encoders: not recorded in this metrics file.</p>"
    return ("<p class=note>Encoders: " + "; ".join(f"<b>{_e(k)}</b> {_e(v.get('model'))} @ {_e(v.get('revision'))}"
                                                  for k, v in enc.items()) + "</p>")


def metrics_summary_html(metrics: Mapping[str, Any]) -> str:
    """The test figures in brief (seed-mean ± std) with the encoders and fusion weights."""
    reg = metrics["kind"] == "regression"
    cols = REG_COLS if reg else CLS_COLS
    order = metrics.get("model_order") or list(metrics["models"])
    rows = [[f"<td class=l>{_e(n)}</td>", *[_cell(metrics["models"][n]["test"].get(k)) for k, _ in cols]] for n in order]
    rows += [[f"<td class=l><i>{_e(b)}</i></td>", *[_cell(v.get(k)) for k, _ in cols]]
             for b, v in metrics.get("baselines", {}).items()]
    note = ("RMSE is the mean over seeds of each seed's RMSE (the same figure in metrics.json, the tables and the "
            "plots). " if reg else "")
    return (encoders_line(metrics) + f"<p class=note>{note}Chosen on the {_e(metrics.get('selected_on'))} split; "
            f"test scored once per model and seed.</p>" + _table(["model", *[c for _, c in cols]], rows)
            + fusion_weights_table(metrics))


OVERVIEW_CSS = CSS + """
nav a{margin-right:10px} section{border-top:1px solid #ddd;margin-top:10px;padding-top:4px}
.sheet{display:flex;flex-wrap:wrap;gap:8px} figure{margin:0;width:170px} figcaption{font-size:10px;color:#444}
"""


def overview_html(sections: Sequence[tuple[str, str, str]], notice: str | None = None) -> str:
    """The page: an optional banner (the demo notice) first, a table of contents, then each
    ``(id, title, html)`` section."""
    title = "affectflow report" if not notice else f"{notice} | affectflow report"
    banner = f"<div class=banner id=notice>{_e(notice)}</div>" if notice else ""
    toc = "<nav>" + "".join(f"<a href='#{sid}'>{_e(t)}</a>" for sid, t, _ in sections) + "</nav>"
    body = "".join(f"<section id={sid}><h2>{_e(t)}</h2>{html_}</section>" for sid, t, html_ in sections)
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{_e(title)}</title><style>{OVERVIEW_CSS}</style>"
            f"</head><body>{banner}<h1>affectflow: what this run made</h1>{toc}{body}</body></html>\n")


def build_overview(results: str | Path, bench_dir: str | Path, out: str | Path,
                   bench_files: Sequence[str | Path] = ()) -> Path:
    """Write the overview page from what a run left under ``results`` and ``bench_dir``.

    Sections (each present when its inputs exist): ingestion (post statuses per shard, stacked;
    categories), images (image statuses per shard), features (per table: rows, with features,
    statuses), Dreaddit (summary and a contact sheet of synthesized images with their prompts),
    engagement and stress (test figures, encoders and revisions, fusion weights), throughput (per
    per-shard rule: rows per job-second, median and max job time) with the spread of job times,
    and the project's benchmark figures when ``bench_files`` holds any. The first line of the page
    (its title) and its first element carry the demo notice when tiny models made the metrics.

    Returns:
        ``out``.
    """
    from .io.parquet import atomic, parquet_files
    from .ops.demo_guard import NOTICE_KEY

    results = Path(results)
    ig, dd, models = results / "instagram", results / "dreaddit", results / "models"
    sections: list[tuple[str, str, str]] = []
    notice = None
    metrics = {}
    for task in ("engagement", "stress"):
        f = models / task / "metrics.json"
        if f.is_file():
            metrics[task] = json.loads(f.read_text())
            notice = notice or metrics[task].get(NOTICE_KEY)

    posts = parquet_files(ig / "posts") if (ig / "posts").is_dir() else []
    if posts:
        df = status_per_shard(posts)
        body = f"<img src='{stacked_bars(df, 'Posts by status, per shard', 'posts')}' alt='post statuses per shard'>"
        summary = ig / "ingest_summary.json"
        if summary.is_file():
            s = json.loads(summary.read_text())
            body += "<h3>Posts by category</h3>" + _kv_table(s.get("by_category", {}))
            body += "<h3>Faults counted</h3>" + _kv_table({k: v for k, v in s.items()
                                                             if k not in ("by_status", "by_category", "shards")
                                                             and not isinstance(v, (Mapping, list))})
        sections.append(("ingestion", "Ingestion", body))
    images = parquet_files(ig / "image_embeddings") if (ig / "image_embeddings").is_dir() else []
    if images:
        df = status_per_shard(images)
        sections.append(("images", "Images", f"<img src='{stacked_bars(df, 'Images by status, per shard', 'images')}' "
                                             "alt='image statuses per shard'>"))
    fsum = ig / "features_summary.json"
    if fsum.is_file():
        s = json.loads(fsum.read_text())
        statuses = sorted({k for t in s.get("tables", {}).values() for k in t.get("by_status", {})})
        rows = [[f"<td class=l>{_e(name)}</td>", f"<td>{t.get('rows')}</td>", f"<td>{t.get('with_features')}</td>",
                 *[f"<td>{t.get('by_status', {}).get(k, 0)}</td>" for k in statuses]] for name, t in s.get("tables", {}).items()]
        body = (f"<p class=note>{s.get('posts')} posts; join problems: {_e('; '.join(s.get('problems', [])) or 'none')}.</p>"
                + _table(["table", "rows", "with features", *statuses], rows))
        sections.append(("features", "Features", body))
    dsum = dd / "summary.json"
    synth = parquet_files(dd / "synth") if (dd / "synth").is_dir() else []
    if dsum.is_file() or synth:
        body = _kv_table(json.loads(dsum.read_text())) if dsum.is_file() else ""
        if synth:
            body += ("<h3>Synthesized images and the prompts they were made from</h3>"
                     "<p class=note>The first images in shard order; the prompt is all the model saw (no label).</p>"
                     + contact_sheet(synth))
        sections.append(("dreaddit", "Dreaddit", body))
    for task, title in (("engagement", "Engagement (test)"), ("stress", "Stress (test)")):
        if task in metrics:
            sections.append((task, title, metrics_summary_html(metrics[task])))
    times = job_times(bench_dir)
    if times.height:
        rows_per_job: dict[tuple[str, str], int] = {}
        import pyarrow.parquet as pq

        for rule_dir, folder in (("instagram/ingest", ig / "posts"), ("instagram/sentiment", ig / "sentiment"),
                                 ("instagram/text_embeddings", ig / "text_embeddings"),
                                 ("instagram/image_embeddings", ig / "image_embeddings"),
                                 ("dreaddit/synthesize", dd / "synth"), ("dreaddit/clip", dd / "clip")):
            for f in (sorted(folder.glob("shard-*.parquet")) if folder.is_dir() else []):
                rows_per_job[(rule_dir, f.stem)] = pq.ParquetFile(f).metadata.num_rows
        tp = throughput(times, rows_per_job)
        body = "<p class=note>Per job, from Snakemake's benchmark files: nothing summed across jobs.</p>"
        body += _table(["rule", "jobs", "median s/job", "max s/job", "rows", "rows per job-second"], [
            [f"<td class=l>{_e(r['rule'])}</td>", f"<td>{r['jobs']}</td>", f"<td>{r['median_s']:.1f}</td>",
             f"<td>{r['max_s']:.1f}</td>", f"<td>{r['rows'] if r['rows'] is not None else '–'}</td>",
             f"<td>{_num(r['rows_per_s'], 1)}</td>"] for r in tp])
        spread = job_spread_png(times)
        if spread:
            body += f"<img src='{spread}' alt='job times per shard'>"
        sections.append(("throughput", "Throughput", body))
    if bench_files:
        sections.append(("benchmarks", "Benchmarks", benchmark_figures_html(bench_files).split("<body>", 1)[1]
                         .rsplit("</body>", 1)[0]))
    with atomic(out) as tmp:
        tmp.write_text(overview_html(sections, notice))
    return Path(out)
