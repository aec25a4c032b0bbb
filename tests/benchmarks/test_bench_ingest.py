"""The benchmark's synthetic inputs are what it claims: valid archives in the published layout."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np
import polars as pl

from affectflow import config as C
from affectflow.instagram.ingest import ingest_shard
from affectflow.instagram.plan import plan
from affectflow.io.multizip import MultiVolumeZip
from affectflow.ops.sample import make_bulk_instagram

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_ingest  # noqa: E402


def test_big_directory_is_a_zip(tmp_path):
    names = np.array([f"info/{i:05d}_influencer-{10**18 + i}.info".encode() for i in range(70_000)])
    bench_ingest.write_big_directory(tmp_path / "d.zip", names)
    with zipfile.ZipFile(tmp_path / "d.zip") as z:  # 70k entries: needs the ZIP64 end record
        assert [i.filename for i in z.infolist()[:2]] == [n.decode() for n in names[:2]] and len(z.infolist()) == 70_000
    with MultiVolumeZip(tmp_path / "d.zip") as zf:
        assert zf.zip64 and zf.central_directory()["name"].to_pylist() == [n.decode() for n in names]


def test_plan_inputs_at_scale_plan_cleanly(tmp_path):
    bench_ingest.write_plan_inputs(tmp_path / "data", 1_000)
    cfg = C.validate({"results": str(tmp_path), "instagram": {"root": str(tmp_path / "data"), "shards": 3}})
    summary = plan(cfg, tmp_path / "p.parquet", tmp_path / "i.parquet", tmp_path / "p.json")
    assert summary["posts"] == 1_000 and summary["plan_status"] == {"parse": 1_000}
    assert summary["image_archive"]["images_present"] == 1_000 and summary["mapping"]["malformed_rows"] == 0


def test_bulk_archive_ingests(tmp_path):
    info = make_bulk_instagram(tmp_path / "data", 700, seed=1, split_size="64k", workers=2, posts_per_influencer=300)
    assert info["json_members"] < 700 and len(info["metadata_volumes"]) > 1
    assert info["metadata_volumes"][-1].endswith("posts_info.zip")
    cfg = C.validate({"results": str(tmp_path), "instagram": {"root": str(tmp_path / "data"), "shards": 2}})
    summary = plan(cfg, tmp_path / "p.parquet", tmp_path / "i.parquet", tmp_path / "p.json")
    assert summary["mapping"]["duplicate_rows"] == info["mapping_rows"] - 700
    counts = {}
    for s in range(2):
        for k, v in ingest_shard(cfg, tmp_path / "p.parquet", tmp_path / "p.json", s, tmp_path / f"{s}.parquet").items():
            counts[k] = counts.get(k, 0) + v
    assert counts == {"ok": info["json_members"], "json_missing": 700 - info["json_members"]}
    posts = pl.read_parquet(tmp_path / "[01].parquet")
    assert posts["caption"].null_count() == 700 - info["json_members"]


def test_bulk_archive_with_faulty_posts(tmp_path):
    """The fault-rate sweep's archives: the same posts, a fraction of them cut off or empty."""
    clean = make_bulk_instagram(tmp_path / "clean", 400, seed=2, split_size="64k", workers=1, posts_per_influencer=200)
    info = make_bulk_instagram(tmp_path / "data", 400, seed=2, split_size="64k", workers=1, posts_per_influencer=200,
                               corrupt_rate=0.1)
    assert info["json_members"] == clean["json_members"]
    cfg = C.validate({"results": str(tmp_path), "instagram": {"root": str(tmp_path / "data"), "shards": 1}})
    plan(cfg, tmp_path / "p.parquet", tmp_path / "i.parquet", tmp_path / "p.json")
    counts = ingest_shard(cfg, tmp_path / "p.parquet", tmp_path / "p.json", 0, tmp_path / "0.parquet")
    faulty = counts.get("json_corrupt", 0) + counts.get("json_empty", 0)
    assert counts.get("json_corrupt", 0) > 0 and counts.get("json_empty", 0) > 0
    assert 0.04 * info["json_members"] < faulty < 0.2 * info["json_members"]
    assert counts["ok"] + faulty == info["json_members"]
