"""The ingestion plan: the mapping file parsed safely, deterministic shards, one row group per shard."""

from __future__ import annotations

import os

import polars as pl
import pyarrow.parquet as pq
import pytest

from affectflow import config as C
from affectflow.instagram.plan import plan, read_influencers, read_mapping, read_plan_shard

MAPPING = [
    "influencer_name\tJSON_PostMetadata_file_name\tImage_file_name",
    "a\t1.info\t['1.jpg']",
    "a\t1.info\t['1.jpg']",  # 3: exact duplicate
    "b\t2.info\t[\"2_0.jpg\", '2_1.jpg',]",  # both quote styles, trailing comma
    "c\t3.info\t__import__('os').system('touch CANARY')",  # 5: code, not a list
    "d\t4.info\t['4.jpg', __import__('os').system('touch CANARY')]",  # 6: code inside a list
    "e\t5.info\t[]",
    "f\t6.info",  # 8: two fields
    "lonely_row_without_tabs",  # 9: names no post
    "g\t7.info\t['7.jpg']\textra",  # 10: four fields: a tab inside a name, so no trusted key
    "a\t1.info\t['1b.jpg']",  # 11: conflicts with line 2 (same post, other images)
    "h\t8.info\t['a,b.jpg', 'c d.jpg']\r",  # CRLF ending, a comma and a space inside names
    "",
    "i\t9.info\t['it\\'s.jpg']",  # 14: escaped quote: refused, never unescaped by eval
]


@pytest.fixture
def mapping(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything executed would drop CANARY here
    path = tmp_path / "mapping.txt"
    path.write_text("\n".join(MAPPING) + "\n")
    return path


def test_mapping_parsed_safely_with_faults_counted(mapping, tmp_path):
    df, counts = read_mapping(mapping)
    assert not (tmp_path / "CANARY").exists()
    rows = {r["post_id"]: r for r in df.to_dicts()}
    assert rows["a-1"]["images"] == ["1.jpg"] and not rows["a-1"]["mapping_malformed"]
    assert rows["b-2"]["images"] == ["2_0.jpg", "2_1.jpg"]
    assert rows["e-5"]["images"] == []
    assert rows["h-8"]["images"] == ["a,b.jpg", "c d.jpg"]
    for pid, line in (("c-3", 5), ("d-4", 6), ("f-6", 8), ("i-9", 14)):
        assert rows[pid]["mapping_malformed"] and rows[pid]["images"] == [], pid
        assert rows[pid]["mapping_error"].startswith(f"{mapping}:{line}: "), rows[pid]["mapping_error"]
    assert "expected 3 tab-separated fields, found 2" in rows["f-6"]["mapping_error"]
    assert "g-7" not in rows and f"{mapping}:10: row names no influencer and JSON file (or has a tab inside a name)" in counts["malformed_examples"]
    assert counts["rows"] == len([ln for ln in MAPPING[1:] if ln.strip()])
    assert counts["duplicate_rows"] == 1 and counts["conflicting_rows"] == 1 and counts["unkeyable_rows"] == 2
    assert counts["malformed_rows"] == 4 and counts["posts"] == len(rows) == 8
    assert f"{mapping}:9: row names no influencer and JSON file (or has a tab inside a name)" in counts["malformed_examples"]
    assert df["post_id"].is_unique().all()


def test_influencers(tmp_path):
    path = tmp_path / "influencers.txt"
    path.write_text("Username\tCategory\t#Followers\t#Followees\t#Posts\n" + "=" * 40 + "\n"
                    "ann\tfasion\t1,234\t10\t300\nbob\tFood\t99\t1\t2\ncat\tpet\tmany\t1\t2\ndan\tpet\n")
    df, counts = read_influencers(path)
    assert df.sort("username").rows() == [("ann", "fashion", 1234), ("bob", "food", 99)]
    assert counts["malformed_rows"] == 2 and counts["categories_corrected"] == {"fasion": 1}
    assert [e.split(": ")[0] for e in counts["malformed_examples"]] == [f"{path}:5", f"{path}:6"]


@pytest.fixture(scope="module")
def planned(sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("plan")
    cfg = C.validate({"results": str(out), "instagram": {"root": str(sample_dir / "instagram"), "shards": 5}})
    summary = plan(cfg, out / "posts.parquet", out / "images.parquet", out / "plan.json")
    return cfg, out, summary


def test_shards_are_balanced_in_archive_order(planned):
    _, out, summary = planned
    posts = pl.read_parquet(out / "posts.parquet")
    sizes = posts.group_by("shard").len().sort("shard")["len"].to_list()
    assert len(sizes) == 5 and max(sizes) - min(sizes) <= 1 and sum(sizes) == summary["posts"]
    assert posts["shard"].is_sorted()
    located = posts.filter(pl.col("disk").is_not_null())
    assert located.select(pl.struct("disk", "offset")).to_series().is_sorted()  # sequential reads
    assert posts.filter(pl.col("disk").is_null())["shard"].min() == 4  # JSON-less posts come last
    for shard, vols in summary["shard_volumes"].items():
        disks = located.filter(pl.col("shard") == int(shard))["disk"]
        assert {f"posts_info.z{d + 1:02d}" if d + 1 < len(summary["metadata_archive"]["volumes"]) else "posts_info.zip"
                for d in disks} <= set(vols)
    images = pl.read_parquet(out / "images.parquet")
    assert images["shard"].is_sorted()
    assert images.join(posts.select("post_id", "shard"), on="post_id").filter(pl.col("shard") != pl.col("shard_right")).height == 0


def test_plan_is_deterministic(planned, tmp_path):
    cfg, out, _ = planned
    plan(cfg, tmp_path / "posts.parquet", tmp_path / "images.parquet", tmp_path / "plan.json")
    for name in ("posts.parquet", "images.parquet"):
        a = pq.read_table(out / name).replace_schema_metadata(None)
        b = pq.read_table(tmp_path / name).replace_schema_metadata(None)
        assert a.equals(b), name


def test_a_shard_reads_only_its_row_group(planned, tmp_path):
    """Overwrite every other shard's pages with garbage: the shard still reads, the others cannot."""
    _, out, _ = planned
    path = tmp_path / "posts.parquet"
    path.write_bytes((out / "posts.parquet").read_bytes())
    md = pq.ParquetFile(path).metadata
    assert md.num_row_groups == 5
    for g in range(5):
        stats = md.row_group(g).column(1).statistics
        assert md.row_group(g).column(1).path_in_schema == "shard" and stats.min == stats.max == g
    want = read_plan_shard(path, 2)
    with open(path, "r+b") as fh:
        for g in (0, 1, 3, 4):
            for c in range(md.num_columns):
                col = md.row_group(g).column(c)
                start = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
                fh.seek(start)
                fh.write(os.urandom(col.total_compressed_size))
    got = read_plan_shard(path, 2)
    assert got.equals(want) and set(got["shard"].to_pylist()) == {2} and got.num_rows > 0
    with pytest.raises(Exception):  # noqa: B017  (whatever the Parquet reader raises on garbage)
        read_plan_shard(path, 3).validate(full=True)


def test_plan_tables_carry_a_members_location_in_member_field_order():
    """tables.MEMBER_LOCATION is the one declaration: both plan tables carry it, and its columns
    are Member's fields in order (rows are read back positionally into Members)."""
    from dataclasses import fields

    from affectflow.io.multizip import Member
    from affectflow.tables import MEMBER_COLUMNS, MEMBER_LOCATION, PLAN_IMAGES, PLAN_POSTS

    assert [f.name for f in fields(Member)] == ["name", *MEMBER_COLUMNS[1:]]
    for schema in (PLAN_POSTS, PLAN_IMAGES):
        assert [(n, schema.field(n).type) for n in MEMBER_COLUMNS] == MEMBER_LOCATION
