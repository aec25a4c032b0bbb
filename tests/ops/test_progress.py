"""Long jobs log done/total, rate and ETA as plain log lines (no carriage returns), at a steady interval."""

from __future__ import annotations

import logging
import re

import pyarrow as pa
import pytest

from affectflow import config as C
from affectflow.inference.runner import run
from affectflow.ops import progress as P

LINE = re.compile(r"(?P<desc>.+?):\s+(?P<pct>\d+)%\|.*\| (?P<n>\d+)/(?P<total>\d+) \[[\d:]+<[\d:?]+, +[\d.?]+ ?\w* ?\w+/s\]")


def _lines(caplog) -> list[re.Match]:
    return [m for r in caplog.records if r.name == "affectflow.progress" and (m := LINE.fullmatch(r.getMessage()))]


def test_runner_logs_done_total_rate_and_eta(caplog, monkeypatch):
    monkeypatch.setenv("AFFECTFLOW_PROGRESS_SECONDS", "0")
    caplog.set_level(logging.INFO)

    class Sink:
        def write(self, batch, output):
            pass

    run([[1] * 10] * 5, lambda b: b, Sink(), name="sentiment shard 2", total=50, unit="texts")
    lines = _lines(caplog)
    assert lines and all(m["desc"] == "sentiment shard 2" and m["total"] == "50" for m in lines)
    assert lines[-1]["n"] == "50" and lines[-1]["pct"] == "100"
    assert all("\r" not in r.getMessage() for r in caplog.records)


def test_steady_interval_limits_the_lines(caplog, monkeypatch):
    monkeypatch.setenv("AFFECTFLOW_PROGRESS_SECONDS", "3600")
    caplog.set_level(logging.INFO)
    with P.progress(1000, "job", "items") as bar:
        for _ in range(1000):
            bar.update(1)
    assert len(_lines(caplog)) <= 3  # the first, and the final line(s) on close


def test_ingest_logs_progress_within_a_shard(tmp_path, caplog, monkeypatch):
    """A shard of several row groups logs a progress line per row group, before its end."""
    from affectflow.instagram.ingest import ingest_shard
    from affectflow.instagram.plan import plan
    from affectflow.ops.sample import SampleSpec, make_sample

    sample_dir = tmp_path / "sample"
    make_sample(sample_dir, SampleSpec(influencers=24))  # 288 posts: three row groups of 100

    monkeypatch.setenv("AFFECTFLOW_PROGRESS_SECONDS", "0")
    caplog.set_level(logging.INFO)
    cfg = C.validate({"results": str(tmp_path), "instagram": {"root": str(sample_dir / "instagram"), "shards": 1,
                                                               "row_group_rows": 100}})
    plan(cfg, tmp_path / "plan.parquet", tmp_path / "images.parquet", tmp_path / "plan.json")
    ingest_shard(cfg, tmp_path / "plan.parquet", tmp_path / "plan.json", 0, tmp_path / "shard.parquet")
    lines = [m for m in _lines(caplog) if m["desc"] == "ingest shard 0"]
    total = int(lines[-1]["total"])
    assert total > 200 and int(lines[-1]["n"]) == total
    partial = {int(m["n"]) for m in lines if 0 < int(m["n"]) < total}
    assert {100, 200} <= partial  # after each row group of 100 posts
