"""Bounded memory and time whatever the input (issue kind 2): small zip bombs cannot add up, a row
group is flushed at a byte budget, a MemoryError is one member's status, absurd config values are
refused at start-up."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hostile import clean_posts, write_dataset

from affectflow import config as C
from affectflow import status as S
from affectflow.instagram import ingest as I
from affectflow.instagram.plan import plan


def _padded(raw: bytes, size: int) -> bytes:
    """A valid post of exactly ``size`` bytes: whitespace inflates ~1000:1 like a zip bomb."""
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def _run(data, work, shards=1, **ig):
    cfg = C.validate({"results": str(work), "instagram": {"root": str(data), "shards": shards, **ig}})
    summary = plan(cfg, work / "p.parquet", work / "i.parquet", work / "p.json")
    outs = [work / f"s{s}.parquet" for s in range(shards)]
    counts = [I.ingest_shard(cfg, work / "p.parquet", work / "p.json", s, o) for s, o in enumerate(outs)]
    return summary, outs, counts


def test_many_one_mib_bombs_are_refused_not_inflated(tmp_path):
    posts = clean_posts(20, seed=4)
    bombs = [(f"{m}9", _padded(r, 1 << 20)) for m, r in posts[:12]]  # exactly 1 MiB each, ~1000:1
    data = write_dataset(tmp_path / "ds", posts[12:] + bombs)
    summary, outs, counts = _run(data, tmp_path / "w")
    assert summary["plan_status"][S.TOO_LARGE] == 12 and counts[0] == {S.OK: 8, S.TOO_LARGE: 12}
    t = pq.read_table(outs[0]).to_pylist()
    assert all("past the limits" in r["error"] for r in t if r["status"] == S.TOO_LARGE)


def test_row_groups_flush_at_the_byte_budget(tmp_path):
    posts = clean_posts(60, seed=6)
    big = [(m, _padded(r, 60_000)) for m, r in posts[:40]]  # under the ratio floor: read, parsed
    data = write_dataset(tmp_path / "ds", big + posts[40:])
    _, outs, counts = _run(data, tmp_path / "w", row_group_bytes=1 << 20)
    assert counts[0] == {S.OK: 60}
    f = pq.ParquetFile(outs[0])
    plan_rows = pq.read_table(tmp_path / "w" / "p.parquet").sort_by([("disk", "ascending"), ("offset", "ascending")])
    sizes = dict(zip(plan_rows["post_id"].to_pylist(), plan_rows["uncompressed_size"].to_pylist()))
    assert f.num_row_groups >= 3
    for g in range(f.num_row_groups):
        ids = f.read_row_group(g, columns=["post_id"])["post_id"].to_pylist()
        assert sum(sizes[i] for i in ids) <= 1 << 20 or len(ids) == 1
    # rows are those of one row group per shard: the budget changes the cut, not the rows
    _, outs2, _ = _run(data, tmp_path / "w2")
    assert pq.read_table(outs2[0]).drop_columns(["shard"]).equals(pq.read_table(outs[0]).drop_columns(["shard"]))


def test_row_group_bounds():
    plan = pa.table({"uncompressed_size": pa.array([10, 10, 50, None, 10, 200, 10], pa.int64()),
                     "plan_status": pa.array([None, None, None, "json_missing", "mapping_malformed", "too_large", None])})
    assert I.row_group_bounds(plan, 100, 30) == [0, 2, 3, 7]  # the refused members cost nothing
    assert I.row_group_bounds(plan, 2, 10_000) == [0, 2, 4, 6, 7]
    assert I.row_group_bounds(plan.slice(0, 0), 2, 10) == [0]


def test_memory_error_on_one_member_is_its_status(tmp_path, monkeypatch):
    posts = clean_posts(10, seed=8)
    data = write_dataset(tmp_path / "ds", posts)
    real = I.MultiVolumeZip.read_at
    victim = f"info/00001_mossfit-{posts[3][0]}.info"

    def read_at(self, name, *a, **k):
        if name == victim:
            raise MemoryError
        return real(self, name, *a, **k)

    monkeypatch.setattr(I.MultiVolumeZip, "read_at", read_at)
    _, outs, counts = _run(data, tmp_path / "w")
    assert counts[0] == {S.OK: 9, S.TOO_LARGE: 1}
    row = next(r for r in pq.read_table(outs[0]).to_pylist() if r["status"] == S.TOO_LARGE)
    assert victim in row["error"] and "out of memory" in row["error"]


@pytest.mark.parametrize("key,value,words", [
    ("max_compression_ratio", float("nan"), "nan is not a finite number"),
    ("max_compression_ratio", float("inf"), "inf is not a finite number"),
    ("max_compression_ratio", 5000, "is greater than the maximum"),
    ("shards", 10**11, "is greater than the maximum of 100000"),
    ("row_group_bytes", 10, "is less than the minimum"),
    ("max_member_bytes", 1 << 40, "is greater than the maximum"),
])
def test_absurd_config_values_are_refused_at_start_up(key, value, words):
    with pytest.raises(C.ConfigError, match=rf"instagram\.{key}: .*{words}"):
        C.validate({"instagram": {key: value}})


def test_a_nan_from_yaml_is_refused(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("instagram:\n  max_compression_ratio: .nan\n")
    with pytest.raises(C.ConfigError, match="max_compression_ratio: nan is not a finite number"):
        C.load(f)
    assert json.loads(json.dumps(C.load()["instagram"]))["row_group_bytes"] == 1 << 28
    assert np.isfinite(C.load()["instagram"]["max_compression_ratio"])
