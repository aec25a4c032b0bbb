"""A results folder holds one run's truth (issue kind 5): shard files of another plan are removed by
the plan and refused by every reader, two runs cannot write one results folder, a temporary is
swept only when its writer is gone, and a job refuses a plan made for another shard count."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pyarrow as pa
import pytest
from conftest import run_snakemake
from ingest_helpers import write_config

from affectflow import config as C
from affectflow.instagram.ingest import PlanMismatch, ingest_shard, summarize
from affectflow.instagram.plan import plan
from affectflow.io.parquet import ParquetWriter
from affectflow.ops import run_status as R
from affectflow.ops.inspect_parquet import inspect
from affectflow.ops.results_folder import ResultsLocked, foreign_shard_files, hold_lock


def _run(sample, results, shards):
    cfg = C.validate({"results": str(results), "instagram": {"root": str(sample / "instagram"), "shards": shards}})
    p = results / "instagram" / "plan"
    summary = plan(cfg, p / "posts.parquet", p / "images.parquet", p / "plan.json")
    outs = [results / "instagram" / "posts" / f"shard-{s:05d}.parquet" for s in range(shards)]
    for s, out in enumerate(outs):
        ingest_shard(cfg, p / "posts.parquet", p / "plan.json", s, out)
    return cfg, summary, outs


def test_replanning_with_fewer_shards_leaves_one_runs_rows(sample_dir, tmp_path):
    results = tmp_path / "results"
    _, _, outs7 = _run(sample_dir, results, 7)
    cfg, summary, outs3 = _run(sample_dir, results, 3)
    posts = results / "instagram" / "posts"
    assert sorted(p.name for p in posts.iterdir()) == [o.name for o in outs3]
    assert sorted(os.path.basename(p) for p in summary["removed_foreign_shards"]) == [o.name for o in outs7[3:]]
    assert inspect(posts)["rows"] == summary["posts"]
    assert summarize(results / "instagram/plan/plan.json", outs3, tmp_path / "s.json")["posts"] == summary["posts"]

    # a stray file of another plan (copied back, or written by another checkout) is refused by every reader
    (posts / "shard-00005.parquet").write_bytes(outs3[0].read_bytes())
    assert foreign_shard_files(cfg) == [posts / "shard-00005.parquet"]
    with pytest.raises(ValueError, match=r"1 shard file\(s\) are not in the current plan of 3 shards \(shard-00005"):
        inspect(posts)
    with pytest.raises(ValueError, match="not in the current plan"):
        summarize(results / "instagram/plan/plan.json", outs3, tmp_path / "s.json")
    with pytest.raises(RuntimeError, match="plans 3 shards, but 4 shard files"):
        summarize(results / "instagram/plan/plan.json", [*outs3, posts / "shard-00005.parquet"], tmp_path / "s.json")
    st = R.collect({**C.validate({"results": str(results), "logs": str(tmp_path / "logs"),
                                  "instagram": {"root": str(sample_dir / "instagram"), "shards": 3}})},
                   tmp_path, profile=None, queue={})
    assert st.foreign_files == [str(posts / "shard-00005.parquet")] and not st.all_done
    assert "Shard files outside the current plan (1;" in R.format_status(st)


def test_a_job_refuses_a_plan_made_for_another_shard_count(sample_dir, tmp_path):
    results = tmp_path / "results"
    _run(sample_dir, results, 2)
    cfg = C.validate({"results": str(results), "instagram": {"root": str(sample_dir / "instagram"), "shards": 5}})
    p = results / "instagram" / "plan"
    with pytest.raises(PlanMismatch, match=r"plan\.json was made for 2 shards, but the config says 5"):
        ingest_shard(cfg, p / "posts.parquet", p / "plan.json", 4, tmp_path / "x.parquet")


def _holder(results, seconds=30):
    code = ("import sys, time; from affectflow.ops.results_folder import hold_lock; "
            f"fd = hold_lock({str(results)!r}, 'checkout A'); print('held', flush=True); time.sleep({seconds})")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_two_runs_cannot_write_one_results_folder(tmp_path):
    results = tmp_path / "results"
    proc = _holder(results)
    try:
        with pytest.raises(ResultsLocked, match=rf"in use by another run \(pid {proc.pid} on .* checkout A\)"):
            hold_lock(results)
    finally:
        proc.kill()
        proc.wait()
    os.close(hold_lock(results, "checkout B"))  # free once the holder is gone (killed: the OS drops its lock)


def test_snakemake_takes_the_results_lock(sample_dir, tmp_path):
    results = tmp_path / "results"
    cfg = write_config(tmp_path / "config.yaml", results, tmp_path / "logs", sample_dir / "instagram", 1)
    proc = _holder(results)
    try:
        out = run_snakemake(tmp_path, "ingest", configfile=cfg, check=False)
    finally:
        proc.kill()
        proc.wait()
    assert out.returncode != 0 and "is in use by another run" in out.stdout + out.stderr
    assert not (results / "instagram" / "plan").exists()


def test_only_temporaries_of_gone_writers_are_swept(tmp_path):
    host = socket.gethostname()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        names = {"live": f".t.parquet.tmp-{host}-{live.pid}", "dead": f".t.parquet.tmp-{host}-{dead.pid}",
                 "other_host": ".t.parquet.tmp-node17-1", "old_dead": f".t.parquet.tmp-{dead.pid}"}
        for n in names.values():
            (tmp_path / n).write_bytes(b"PAR1 half")
        schema = pa.schema([("x", pa.int32())])
        with ParquetWriter(tmp_path / "t.parquet", schema) as w:
            w.write({"x": [1]})
        left = {p.name for p in tmp_path.iterdir()}
        assert names["live"] in left and names["other_host"] in left
        assert names["dead"] not in left and names["old_dead"] not in left and "t.parquet" in left
    finally:
        live.kill()
        live.wait()
