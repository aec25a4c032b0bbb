"""``affectflow inspect``: schema, rows, status counts and provenance of a file or a folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from affectflow import config as C
from affectflow.instagram.ingest import ingest_shard
from affectflow.instagram.plan import plan
from affectflow.tables import POSTS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shards(sample_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("inspect")
    cfg = C.validate({"results": str(out), "instagram": {"root": str(sample_dir / "instagram"), "shards": 2}})
    plan(cfg, out / "plan.parquet", out / "images.parquet", out / "plan.json")
    for s in range(2):
        ingest_shard(cfg, out / "plan.parquet", out / "plan.json", s, out / "posts" / f"shard-{s:05d}.parquet")
    return out / "posts"


def _inspect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "affectflow", "inspect", *args], capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})


def test_inspect_folder_text(shards):
    proc = _inspect(str(shards))
    assert proc.returncode == 0, proc.stderr
    posts = pl.read_parquet(shards)
    out = proc.stdout
    assert out.splitlines()[0].startswith(f"{shards}: 2 file(s), {posts.height:,} rows")
    schema_lines = out.split("schema:\n", 1)[1].split("status:\n", 1)[0].splitlines()
    assert [line.split()[0] for line in schema_lines] == POSTS.names
    assert "timestamp[ms, tz=UTC]" in out
    for status, n in posts.group_by("status").len().iter_rows():
        assert any(line.split() == [status, f"{n:,}"] for line in out.splitlines()), status
    assert "provenance:" in out and "package_version: 0.1.0" in out and "config_digest:" in out
    assert "posts_info.zip" in out  # the source volumes


def test_inspect_json(shards):
    proc = _inspect(str(shards / "shard-00001.parquet"), "--json")
    report = json.loads(proc.stdout)
    posts = pl.read_parquet(shards / "shard-00001.parquet")
    assert report["files"] == 1 and report["rows"] == posts.height
    assert report["status"] == dict(posts.group_by("status").len().iter_rows())
    assert [n for n, _ in report["schema"]] == POSTS.names
    assert report["provenance"]["table"] == "instagram_posts" and report["provenance"]["shard"] == 1


def test_inspect_nothing_there(tmp_path):
    proc = _inspect(str(tmp_path))
    assert proc.returncode == 1 and "no Parquet files" in proc.stderr


@pytest.mark.parametrize("cut", [0, 6, 5000, -1])  # empty, shorter than a footer, cut mid-file, footer lost
def test_an_unreadable_file_in_a_folder_is_named(shards, tmp_path, cut):
    """One cut shard among good ones: the error's one line names that file (pyarrow's own
    message names none), and says how to recover."""
    import shutil

    folder = tmp_path / "posts"
    shutil.copytree(shards, folder)
    bad = folder / "shard-00001.parquet"
    data = bad.read_bytes()
    bad.write_bytes(data[:cut] if cut >= 0 else data[:-8])
    proc = _inspect(str(folder))
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and f"{bad}: not a readable Parquet file" in last and "rerun its job" in last


def test_inspect_folder_of_several_tables_lists_each(shards):
    """The ingest folder (the plan's two tables beside the posts shards) is three tables, not one."""
    root = shards.parent
    proc = _inspect(str(root))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{root}: 3 tables"
    posts = pl.read_parquet(shards)
    assert f"  {shards}: 2 file(s), {posts.height:,} rows" in lines
    plan_rows = pl.read_parquet(root / "plan.parquet").height
    assert f"  {root / 'plan.parquet'}: 1 file(s), {plan_rows:,} rows" in lines
    report = json.loads(_inspect(str(root), "--json").stdout)
    assert sorted(t["path"] for t in report["tables"]) == sorted(
        [str(root / "images.parquet"), str(root / "plan.parquet"), str(shards)])
    assert {t["path"]: t["rows"] for t in report["tables"]}[str(shards)] == posts.height


def test_inspect_errors_are_one_line_unless_verbose(tmp_path):
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"not parquet at all")
    proc = _inspect(str(bad))
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "broken.parquet" in err[0] and "Traceback" not in proc.stderr, proc.stderr
    verbose = _inspect(str(bad), "-v")
    assert verbose.returncode == 1 and "Traceback (most recent call last)" in verbose.stderr
    assert "broken.parquet" in verbose.stderr.strip().splitlines()[-1]
