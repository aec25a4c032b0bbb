"""The overview page in a real browser: headless Chromium renders it, every section is there and
every image loads; the demo notice is its first line and first element. Skipped where Chromium is
missing (`.ci/run` installs Debian's `chromium`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_report import metrics

from affectflow import config as C
from affectflow import report as R
from affectflow import tables
from affectflow.ops.demo_guard import NOTICE_KEY

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
SECTIONS = ("ingestion", "images", "features", "dreaddit", "engagement", "stress", "throughput")
# Appended to a copy of the page: Chromium writes the verdict into the DOM it dumps.
PROBE = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images];
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-broken', imgs.filter(i => !i.complete || i.naturalWidth === 0).length);
  document.body.setAttribute('data-sections', [...document.querySelectorAll('section')].map(s => s.id).join(','));
  document.body.setAttribute('data-first', document.body.firstElementChild.id || document.body.firstElementChild.tagName);
});</script>"""


@pytest.fixture(scope="module")
def run_results(sample_dir, tmp_path_factory) -> tuple[Path, Path]:
    """A results folder as a run leaves it: ingested posts (the real stage on the sample), image
    statuses, feature and Dreaddit summaries, synthesized PNGs with prompts, both metrics files
    (made with tiny models: they carry the notice), and per-job benchmark files."""
    from PIL import Image

    from affectflow.instagram.ingest import ingest_shard
    from affectflow.instagram.plan import plan

    root = tmp_path_factory.mktemp("report-run")
    res, ig = root / "results", root / "results/instagram"
    cfg = C.validate({"results": str(res), "instagram": {"root": str(sample_dir / "instagram"), "shards": 3}})
    plan(cfg, ig / "plan/posts.parquet", ig / "plan/images.parquet", ig / "plan/plan.json")
    for s in range(3):
        ingest_shard(cfg, ig / "plan/posts.parquet", ig / "plan/plan.json", s, ig / f"posts/shard-{s:05d}.parquet")
        st = ["ok"] * (10 + s) + ["missing"] * 2 + ["unreadable"] * s
        (ig / "image_embeddings").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"post_id": [f"p{i}" for i in range(len(st))], "status": st}),
                       ig / f"image_embeddings/shard-{s:05d}.parquet")
    (ig / "ingest_summary.json").write_text(json.dumps({"posts": 96, "by_status": {"ok": 80}, "by_category": {"food": 40, "pet": 56},
                                                         "duplicate_mapping_rows": 3, "orphan_images": 1}))
    (ig / "features_summary.json").write_text(json.dumps({"posts": 96, "problems": [], "tables": {
        "sentiment": {"rows": 96, "with_features": 90, "by_status": {"ok": 90, "no_text": 6}},
        "image_embeddings": {"rows": 120, "with_features": 100, "by_status": {"ok": 100, "missing": 20}}}}))
    dd = res / "dreaddit"
    (dd / "images").mkdir(parents=True)
    paths = []
    for i in range(5):
        p = dd / "images" / f"post{i}.png"
        Image.fromarray(np.full((64, 64, 3), 40 * i, np.uint8)).save(p)
        paths.append(str(p))
    n = len(paths) + 1
    (dd / "synth").mkdir()
    pq.write_table(pa.table({"post_id": [f"post{i}" for i in range(n)], "image_path": paths + [None],
                             "prompt": [f"a candid photograph of the scene described here: text {i}" for i in range(n)],
                             "prompt_truncated": [False] * n, "seed": list(range(n)), "model": ["tiny"] * n,
                             "status": ["ok"] * (n - 1) + ["no_text"], "error": [None] * n}, schema=tables.DREADDIT_SYNTH),
                   dd / "synth/shard-00000.parquet")
    (dd / "summary.json").write_text(json.dumps({"posts": 6, "by_status": {"ok": 5, "no_text": 1}, "shards": 1}))
    notice = "DEMO RUN, NOT REAL RESULTS: made with tiny random-weight models (models.clip); every figure here is meaningless."
    for task, kind in (("engagement", "regression"), ("stress", "classification")):
        m = metrics(kind) | {NOTICE_KEY: notice, "encoders": {"clip": {"model": "ViT-B-32", "revision": "laion2b_s34b_b79k"}}}
        (res / "models" / task).mkdir(parents=True)
        (res / "models" / task / "metrics.json").write_text(json.dumps(m))
    bench = root / "logs/benchmarks"
    for rule, jobs in (("instagram/ingest", 3), ("dreaddit/synthesize", 1)):
        for s in range(jobs):
            f = bench / rule / f"shard-{s:05d}.tsv"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(f"s\th:m:s\tmax_rss\n{1.5 + s}\t0:00:01\t120.5\n")
    (bench / "instagram").joinpath("plan.tsv").write_text("s\th:m:s\tmax_rss\n0.8\t0:00:00\t90\n")
    return res, bench


def test_overview_has_every_section_and_the_notice_first(run_results, tmp_path):
    res, bench = run_results
    page = R.build_overview(res, bench, tmp_path / "overview.html").read_text()
    assert page.splitlines()[0].split("<title>")[1].startswith("DEMO RUN, NOT REAL RESULTS")  # the first line says so
    for sid in SECTIONS:
        assert f"<section id={sid}>" in page, sid
    assert "ViT-B-32 @ laion2b_s34b_b79k" in page  # encoders and revisions beside the metrics
    assert "60.0%" in page and "40.0%" in page  # fusion weights as a table of percentages
    assert "text 3" in page and "no_text" not in page.split("<section id=dreaddit>")[1].split("<h3>")[1]  # prompts
    assert "stress" not in page.split("class=sheet")[1].split("</div>")[0].lower()  # no label on the sheet
    assert "median s/job" in page and "summed" in page  # per job, not summed
    assert "<section id=benchmarks>" not in page  # no empty benchmark section in a fresh clone


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install -y chromium)")
def test_overview_renders_in_headless_chromium(run_results, tmp_path):
    res, bench = run_results
    page = R.build_overview(res, bench, tmp_path / "overview.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                           "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    body = re.search(r"<body([^>]*)>", proc.stdout)
    assert body, proc.stderr[-2000:]
    attrs = dict(re.findall(r'data-(\w+)="([^"]*)"', body.group(1)))
    assert attrs["sections"].split(",") == list(SECTIONS)
    assert int(attrs["images"]) >= 3 + 5  # bars, spread and the contact sheet
    assert attrs["broken"] == "0"
    assert attrs["first"] == "notice"
    shot = Path(os.environ.get("AFFECTFLOW_REPORT_SHOT", tmp_path / "overview.png"))
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1400,2400", probe.as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000
