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

import polars as pl

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;font-size:13px;margin:12px;color:#222}
h2{font-size:16px;margin:14px 0 6px} h3{font-size:14px;margin:12px 0 4px}
table{border-collapse:collapse;margin:6px 0 14px} th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left} .note{color:#555;max-width:60em} .ci{color:#777;font-size:11px}
tr.base td{color:#666;font-style:italic}
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
    body = [
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
    att = {n: m["attention_mean"] for n, m in models.items() if m.get("attention_mean")}
    if att:
        body.append("<h3>Fusion: mean attention weight per modality (test)</h3>")
        body.append(_table(["model", "weights"], [[f"<td class=l>{_e(n)}</td>", f"<td class=l>{_e(w)}</td>"] for n, w in att.items()]))
    ds = metrics.get("dataset", {})
    facts = {"rows": metrics["data"]["rows"], "left out": metrics["data"].get("excluded", {}),
             **{k: v for k, v in ds.items()}, "data digests": metrics["data"]["digests"],
             "config digest": metrics.get("config_digest")}
    body.append("<h3>Data</h3>" + _table(["", ""], [[f"<td class=l>{_e(k)}</td>", f"<td class=l>{_e(json.dumps(v, default=str))}</td>"]
                                                  for k, v in facts.items()], left=2))
    title = "Engagement regression (test)" if reg else "Stress classification (test)"
    return _page(title, "".join(body))


def ingest_html(summary: Mapping[str, Any]) -> str:
    """The ingestion summary: posts by status and category, and every other count it holds."""
    body = []
    for key in ("by_status", "by_category"):
        if isinstance(summary.get(key), Mapping):
            body.append(f"<h3>{_e(key.replace('_', ' '))}</h3>")
            body.append(_table([key.split("_")[1], "posts"], [[f"<td class=l>{_e(k)}</td>", f"<td>{_e(v)}</td>"]
                                                            for k, v in sorted(summary[key].items(), key=lambda kv: -kv[1]
                                                                               if isinstance(kv[1], (int, float)) else 0)]))
    rest = [(k, v) for k, v in _flatten(summary) if not k.startswith(("by_status", "by_category"))]
    body.append("<h3>all counts</h3>" + _table(["key", "value"], [[f"<td class=l>{_e(k)}</td>", f"<td class=l>{_e(v)}</td>"]
                                                                    for k, v in rest[:400]]))
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
    """Snakemake's per-job benchmark files, summed per rule (``{logs}/benchmarks/<area>/<rule>[/<job>].tsv``)."""
    bench_dir = Path(bench_dir)
    frames = []
    for f in sorted(bench_dir.rglob("*.tsv")):
        rel = f.relative_to(bench_dir)
        rule = str(rel.parent) if rel.stem.split("-")[0] in ("shard", "seed") else str(rel.with_suffix(""))
        try:
            df = pl.read_csv(f, separator="\t", columns=["s", "max_rss"], schema_overrides={"s": pl.Float64, "max_rss": pl.Utf8})
        except Exception:  # noqa: BLE001 - a half-written benchmark file must not sink the report
            continue
        frames.append(df.select(pl.lit(rule).alias("rule"), pl.col("s"),
                                pl.col("max_rss").str.replace("-", "").cast(pl.Float64, strict=False).alias("max_rss_mb")))
    if not frames:
        return pl.DataFrame(schema={"rule": pl.Utf8, "jobs": pl.UInt32, "total_s": pl.Float64, "max_s": pl.Float64,
                                    "max_rss_mb": pl.Float64})
    return (pl.concat(frames).group_by("rule").agg(pl.len().alias("jobs"), pl.col("s").sum().alias("total_s"),
                                                   pl.col("s").max().alias("max_s"), pl.col("max_rss_mb").max())
            .sort("total_s", descending=True))


def rule_benchmarks_html(df: pl.DataFrame) -> str:
    rows = [[f"<td class=l>{_e(r['rule'])}</td>", f"<td>{r['jobs']}</td>", f"<td>{_num(r['total_s'], 1)}</td>",
             f"<td>{_num(r['max_s'], 1)}</td>", f"<td>{_num(r['max_rss_mb'], 0)}</td>"] for r in df.iter_rows(named=True)]
    return _page("Rule benchmarks (this run)", "<p class=note>From Snakemake's benchmark files: wall seconds summed over "
                 "a rule's jobs, the slowest job, and the largest peak RSS (MB).</p>"
                 + _table(["rule", "jobs", "total s", "max s", "max RSS MB"], rows))


def rule_benchmarks_png(df: pl.DataFrame, path: str | Path) -> Path:
    from .train.plots import _plt, save_figure

    top = df.head(20)
    fig, ax = _plt().subplots(figsize=(7, 0.3 * max(top.height, 3) + 1))
    ax.barh(top["rule"].to_list()[::-1], top["total_s"].to_list()[::-1], color="#4c78a8")
    ax.set_xlabel("wall seconds, summed over jobs")
    ax.set_title("Where the time went (rules)", fontsize=10)
    return save_figure(fig, path, dpi=100)


def benchmark_figures_html(files: Sequence[str | Path]) -> str:
    """The figures the project's benchmarks wrote to ``benchmarks/out/*.json``, one table each."""
    if not files:
        return _page("Benchmark figures", "<p class=note>No benchmark results in benchmarks/out/ when this report was "
                     "built; run <code>python benchmarks/bench_X.py</code> (or <code>make bench</code>) first.</p>")
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
                 bench_dir: str | Path, bench_files: Sequence[str | Path], out: Mapping[str, str | Path]) -> None:
    """Write every report asset named in ``out`` (keys: engagement, stress, ingest, rules, rules_png, bench)."""
    from .io.parquet import atomic

    def put(key: str, text: str) -> None:
        with atomic(out[key]) as tmp:
            tmp.write_text(text)

    for key, src, render in (("engagement", engagement, metrics_html), ("stress", stress, metrics_html),
                             ("ingest", ingest, ingest_html)):
        if key in out and src:
            put(key, render(json.loads(Path(src).read_text())))
    df = rule_benchmarks(bench_dir)
    if "rules" in out:
        put("rules", rule_benchmarks_html(df))
    if "rules_png" in out:
        rule_benchmarks_png(df, out["rules_png"])
    if "bench" in out:
        put("bench", benchmark_figures_html(bench_files))


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
