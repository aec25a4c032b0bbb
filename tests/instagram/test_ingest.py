"""Ingestion of the sample through the real workflow: every post exactly once, every fault labelled,
fields equal to an independent parse, summary equal to the tables, the Parquet contract kept."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_snakemake
from ingest_helpers import expected_post_ids, join_archives, mapped_images, mapping_rows, post_key, write_config

import affectflow
from affectflow import config as C
from affectflow import status as S
from affectflow.instagram.ingest import ingest_shard, summarize
from affectflow.instagram.plan import plan
from affectflow.instagram.post_parse import COMMENT_KEYS, PARSED_FIELDS, PostError, load_post, parse_post
from affectflow.io.multizip import MultiVolumeZip
from affectflow.io.parquet import ParquetWriter, config_digest, read_provenance
from affectflow.ops.sample import SPECIAL_CAPTIONS
from affectflow.tables import POSTS

SHARDS = 3


@pytest.fixture(scope="module")
def run(sample_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("ingest")
    ig = sample_dir / "instagram"
    cfg = write_config(work / "config.yaml", work / "results", work / "logs", ig, SHARDS)
    run_snakemake(work, "ingest", configfile=cfg)
    results = work / "results" / "instagram"
    return {
        "work": work,
        "ig": ig,
        "cfg": C.load(cfg),
        "results": results,
        "posts": pl.read_parquet(results / "posts"),
        "summary": json.loads((results / "ingest_summary.json").read_text()),
        "plan": json.loads((results / "plan" / "plan.json").read_text()),
        "planted": json.loads((sample_dir / "SAMPLE.json").read_text())["instagram"]["planted"],
    }


@pytest.fixture(scope="module")
def zips(run, tmp_path_factory):
    z = join_archives(run["ig"], tmp_path_factory.mktemp("joined"))
    yield z
    for f in z.values():
        f.close()


def _row(posts: pl.DataFrame, post_id: str) -> dict:
    rows = posts.filter(pl.col("post_id") == post_id).to_dicts()
    assert len(rows) == 1, post_id
    return rows[0]


def test_one_row_per_post_exactly_once(run, zips):
    posts = run["posts"]
    assert posts["post_id"].is_unique().all()
    assert set(posts["post_id"]) == expected_post_ids(run["ig"], zips["info"])
    assert sorted(posts["shard"].unique()) == list(range(SHARDS))
    assert set(posts["status"]) <= set(S.POST_STATUSES)


def test_every_planted_fault_has_its_status(run):
    posts, planted = run["posts"], run["planted"]
    mapping = str(run["ig"] / "JSON-Image_files_mapping.txt")
    expect = {
        "json_corrupt": ("json_corrupt", "invalid JSON"),
        "json_empty": ("json_empty", "empty file"),
        "json_invalid": ("json_invalid", "not an object"),
        "too_large": ("too_large", "declares"),
        "json_missing": ("json_missing", "posts_info.zip has no member"),
        "unmapped": ("unmapped", "has no row in the mapping file"),
        "mapping_malformed": ("mapping_malformed", "image list is not a list literal"),
        "unsafe_name": ("unsafe_name", "would escape an output folder"),
    }
    for key, (status, words) in expect.items():
        assert planted[key], key
        for pid in planted[key]:
            row = _row(posts, pid)
            assert row["status"] == status, (pid, row["status"], row["error"])
            assert words in row["error"]
            if key in ("json_corrupt", "json_empty", "json_invalid", "unmapped"):
                assert f"info/{pid}.info" in row["error"]  # the error names the member
    line = next(n for n, f in mapping_rows(run["ig"]) if post_key(f[0], f[1]) == planted["mapping_malformed"][0])
    assert f"{mapping}:{line}:" in _row(posts, planted["mapping_malformed"][0])["error"]
    for pid in planted["json_missing"]:
        assert mapping in _row(posts, pid)["error"]
    # faults carry no parsed fields; parsed states (ok, unmapped, mapping_malformed) do
    faults = posts.filter(~pl.col("status").is_in(["ok", "unmapped", "mapping_malformed"]))
    assert faults["caption"].null_count() == faults.height and faults["error"].null_count() == 0
    ok = posts.filter(pl.col("status") == "ok")
    assert ok["error"].null_count() == ok.height and ok["caption"].null_count() == 0


def test_fields_equal_an_independent_parse(run, zips):
    """Every parsed row equals ``parse_post`` applied to the member read by Python's zipfile."""
    posts = run["posts"].filter(pl.col("status").is_in(["ok", "unmapped", "mapping_malformed"]))
    info = zips["info"]
    assert posts.height > 80
    for row in posts.to_dicts():
        ref = parse_post(load_post(info.read(f"info/{row['post_id']}.info")))
        got = {k: row[k] for k in PARSED_FIELDS}
        ts = ref.pop("timestamp")
        assert int(got.pop("timestamp").timestamp() * 1000) == ts
        assert got["aspect_ratio"] == pytest.approx(ref.pop("aspect_ratio"), rel=1e-6)
        got.pop("aspect_ratio")
        assert got == ref, row["post_id"]
    for pid in run["planted"]["json_corrupt"]:
        with pytest.raises(PostError):
            load_post(info.read(f"info/{pid}.info"))


def test_post_variety_survives(run):
    posts = run["posts"].filter(pl.col("status") == "ok")
    assert set(posts["comments_source"].drop_nulls()) == set(COMMENT_KEYS)
    sidecars = posts.filter(pl.col("typename") == "GraphSidecar")
    assert sidecars.height and (sidecars["image_files"].list.len() + sidecars["missing_images"].list.len() >= 2).all()
    assert (posts["is_video"] == (posts["typename"] == "GraphVideo")).all() and posts["is_video"].any()
    captions = set(posts["caption"])
    assert set(SPECIAL_CAPTIONS) <= captions
    tokyo = posts.filter(pl.col("caption") == SPECIAL_CAPTIONS[0]).row(0, named=True)
    assert tokyo["hashtags"] == ["東京", "夜景"] and tokyo["caption_length"] == len(SPECIAL_CAPTIONS[0])
    emoji = posts.filter(pl.col("caption") == "🔥🔥🔥😍😍").row(0, named=True)
    assert emoji["caption_length"] == 5 and emoji["hashtags"] == []
    empty = posts.filter(pl.col("caption") == "")
    assert empty.height and (empty["caption_length"] == 0).all()
    assert posts["caption_length"].max() == 10_000
    assert posts["category"].null_count() == 0
    assert posts.filter(pl.col("category") == "fashion").height  # 'fasion' in influencers.txt, corrected


def test_images_listed(run, zips):
    posts, planted = run["posts"], run["planted"]
    mapped = mapped_images(run["ig"])
    present = {n.split("/", 1)[1] for n in zips["image"].namelist()}
    for row in posts.to_dicts():
        user = row["username"]
        want = mapped.get(row["post_id"], []) if row["status"] != "mapping_malformed" else []
        assert row["image_files"] == [n for n in want if f"{user}-{n}" in present], row["post_id"]
        assert row["missing_images"] == [n for n in want if f"{user}-{n}" not in present], row["post_id"]
    missing = {f"{r['username']}-{n}" for r in posts.to_dicts() for n in r["missing_images"]}
    assert set(planted["missing_images"]) <= missing
    summary = run["summary"]
    assert summary["missing_images"] == len(missing) == summary["image_archive"]["images_missing"]
    assert summary["images_present"] == posts["image_files"].list.len().sum() == summary["image_archive"]["images_present"]
    referenced = {f"{r['username']}-{n}" for r in posts.to_dicts() for n in r["image_files"]}
    assert summary["image_archive"]["orphan_images"] == len(present - referenced) >= len(planted["orphan_image"])


def test_summary_matches_the_tables(run):
    posts, summary, planted = run["posts"], run["summary"], run["planted"]
    assert summary["posts"] == posts.height == run["plan"]["posts"]
    assert summary["by_status"] == dict(posts.group_by("status").len().iter_rows())
    assert summary["duplicate_post_ids"] == 0
    assert summary["duplicate_mapping_rows"] == len(planted["duplicate_rows"]) == summary["mapping"]["duplicate_rows"]
    assert summary["mapping"]["malformed_rows"] == 1 and summary["mapping"]["unkeyable_rows"] == 1
    assert any("JSON-Image_files_mapping.txt:" in e for e in summary["mapping"]["malformed_examples"])
    assert summary["posts_with_missing_images"] == (posts["missing_images"].list.len() > 0).sum()
    assert sum(summary["by_category"].values()) == posts.height
    assert summary["by_category"]["unknown"] == posts["category"].null_count() == len(planted["unknown_influencer"])
    assert summary["influencers"]["categories_corrected"] == {"fasion": 1}
    assert summary["metadata_archive"]["unsafe_names"] == 1
    with MultiVolumeZip(run["ig"] / "Post_metadata" / "posts_info.zip") as zf:
        assert summary["volumes_read"] == [str(v) for v in zf.volumes]
        assert summary["metadata_archive"]["entries"] == zf.n_entries


def test_parquet_contract(run):
    files = sorted((run["results"] / "posts").glob("*.parquet"))
    assert [f.name for f in files] == [f"shard-{s:05d}.parquet" for s in range(SHARDS)]
    section = C.section(run["cfg"], "instagram")
    with MultiVolumeZip(run["ig"] / "Post_metadata" / "posts_info.zip") as zf:
        volumes = [str(v) for v in zf.volumes]
    for shard, f in enumerate(files):
        pf = pq.ParquetFile(f)
        assert pf.schema_arrow.remove_metadata().equals(POSTS)
        md = pf.metadata
        assert {md.row_group(g).column(c).compression for g in range(md.num_row_groups) for c in range(md.num_columns)} == {"ZSTD"}
        prov = read_provenance(f)
        assert prov["table"] == "instagram_posts" and prov["shard"] == shard
        assert prov["package_version"] == affectflow.__version__
        assert prov["config_digest"] == config_digest(section) and prov["config"] == section
        assert prov["sources"] == volumes
        assert set(pl.read_parquet(f)["shard"]) == {shard}
    assert not list((run["results"]).rglob(".*tmp-*"))  # no temporary files left behind


def test_nothing_is_extracted(run):
    """Members are read in place: no post file or unsafe path appears anywhere under the run."""
    written = {p.name for p in run["work"].rglob("*")}
    assert not any(n.endswith(".info") for n in written)
    unsafe = run["planted"]["unsafe_name"][0].removeprefix("member:")
    assert not (run["results"] / unsafe).resolve().exists()
    assert not (run["results"].parent / unsafe).resolve().exists()


def test_rerun_is_identical_and_post_ids_stable(run, tmp_path):
    """Planning and ingesting again gives the same shards, row for row; another shard count keeps
    every post_id and every field (only ``shard`` differs)."""
    cfg = run["cfg"]

    def ingest(results: Path, shards: int) -> list[pa.Table]:
        c = {**cfg, "instagram": {**cfg["instagram"], "shards": shards}}
        plan(c, results / "posts.parquet", results / "images.parquet", results / "plan.json")
        out = []
        for s in range(shards):
            ingest_shard(c, results / "posts.parquet", results / "plan.json", s, results / f"{s}.parquet")
            out.append(pq.read_table(results / f"{s}.parquet").replace_schema_metadata(None))
        return out

    again = ingest(tmp_path / "a", SHARDS)
    first = [pq.read_table(f).replace_schema_metadata(None) for f in sorted((run["results"] / "posts").glob("*.parquet"))]
    assert all(x.equals(y) for x, y in zip(first, again))
    other = pl.from_arrow(pa.concat_tables(ingest(tmp_path / "b", 5))).drop("shard").sort("post_id")
    assert other.equals(run["posts"].drop("shard").sort("post_id"))


def test_too_large_is_never_inflated(run, tmp_path, monkeypatch):
    """The zip bomb is refused from its directory entry: the reader is never asked for it."""
    cfg = run["cfg"]
    plan_dir = run["results"] / "plan"
    asked = []
    real = MultiVolumeZip.read_at

    def spy(self, name, *args, **kw):
        asked.append(name)
        return real(self, name, *args, **kw)

    monkeypatch.setattr(MultiVolumeZip, "read_at", spy)
    for s in range(SHARDS):
        ingest_shard(cfg, plan_dir / "posts.parquet", plan_dir / "plan.json", s, tmp_path / f"{s}.parquet")
    bomb = run["planted"]["too_large"][0]
    assert f"info/{bomb}.info" not in asked
    assert len(asked) == run["posts"].filter(pl.col("status").is_in(
        ["ok", "unmapped", "mapping_malformed", "json_corrupt", "json_empty", "json_invalid"])).height


def test_summary_refuses_missing_shards(run, tmp_path):
    shards = sorted((run["results"] / "posts").glob("*.parquet"))
    with pytest.raises(RuntimeError, match=f"plans {SHARDS} shards, but {SHARDS - 1} shard files were given"):
        summarize(run["results"] / "plan" / "plan.json", shards[:-1], tmp_path / "s.json")
    assert not (tmp_path / "s.json").exists()


def test_writes_are_atomic(tmp_path):
    """A failure mid-write leaves no file under the final name and keeps an earlier one intact."""
    target = tmp_path / "t.parquet"
    table = pa.table({"a": list(range(10))})
    with pytest.raises(RuntimeError, match="boom"):
        with ParquetWriter(target, table.schema, {"table": "t"}) as w:
            w.write(table)
            raise RuntimeError("boom")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with ParquetWriter(target, table.schema, {"table": "t"}) as w:
        w.write(table)
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        with ParquetWriter(target, table.schema, {"table": "t2"}) as w:
            w.write(table.slice(0, 3))
            raise RuntimeError("killed")
    assert target.read_bytes() == before and list(tmp_path.iterdir()) == [target]


def test_shard_failing_mid_read_leaves_no_output(run, tmp_path, monkeypatch):
    """A shard dying after it has started writing (here: its volume vanishes) leaves nothing behind."""
    from affectflow.instagram.ingest import ShardVolumeError
    from affectflow.io.multizip import VolumeError

    cfg = {**run["cfg"], "instagram": {**run["cfg"]["instagram"], "row_group_rows": 100}}
    plan_dir = run["results"] / "plan"
    real = MultiVolumeZip.read_at
    calls = []

    def flaky(self, *args, **kw):
        calls.append(1)
        if len(calls) > 20:
            raise VolumeError(self.volumes[0], "missing")
        return real(self, *args, **kw)

    monkeypatch.setattr(MultiVolumeZip, "read_at", flaky)
    out = tmp_path / "shard.parquet"
    with pytest.raises(ShardVolumeError, match="posts_info.z01 is missing"):
        ingest_shard(cfg, plan_dir / "posts.parquet", plan_dir / "plan.json", 0, out)
    assert list(tmp_path.iterdir()) == []


def test_damaged_members_get_their_status(sample_copy, tmp_path):
    """Member-level faults patched into a copy of the sample: a corrupt deflate stream, an
    encrypted flag, an unknown method and a name without ``<user>-``: each post gets its status."""
    from affectflow.ops.sample import rename_member

    ig = sample_copy / "instagram"
    last = ig / "Post_metadata" / "posts_info.zip"
    with MultiVolumeZip(last) as zf:
        members = [m for m in zf.members() if m.method == 8 and not m.name.startswith("../")]
        volumes = zf.volumes
        cd_disk, cd_offset = zf.cd_disk, zf.cd_offset
        corrupt, encrypted, unknown, renamed = members[5], members[6], members[7], members[8]
        hdr = bytes(zf._read_span(corrupt.disk, corrupt.offset, 30))
    nlen, xlen = int.from_bytes(hdr[26:28], "little"), int.from_bytes(hdr[28:30], "little")
    vol = bytearray(volumes[corrupt.disk].read_bytes())
    start = corrupt.offset + 30 + nlen + xlen
    assert start + corrupt.compressed_size <= len(vol)
    for k in range(10, 20):  # overwrite a stretch in the middle of the deflate stream
        vol[start + corrupt.compressed_size // 2 + k] ^= 0x5A
    volumes[corrupt.disk].write_bytes(bytes(vol))
    cd_vol = bytearray(volumes[cd_disk].read_bytes())
    for m, patch in ((encrypted, lambda e: e.__setitem__(slice(8, 10), (1).to_bytes(2, "little"))),
                     (unknown, lambda e: e.__setitem__(slice(10, 12), (99).to_bytes(2, "little")))):
        pos = cd_vol.index(m.name.encode(), cd_offset) - 46
        entry = cd_vol[pos : pos + 46]
        patch(entry)
        cd_vol[pos : pos + 46] = entry
    volumes[cd_disk].write_bytes(bytes(cd_vol))
    bad_name = renamed.name.replace("-", "_", 1)
    rename_member(volumes, renamed.name, bad_name)

    cfg = C.validate({"results": str(tmp_path), "instagram": {"root": str(ig), "shards": 2}})
    plan(cfg, tmp_path / "p.parquet", tmp_path / "i.parquet", tmp_path / "p.json")
    for s in range(2):
        ingest_shard(cfg, tmp_path / "p.parquet", tmp_path / "p.json", s, tmp_path / f"{s}.parquet")
    posts = pl.read_parquet(tmp_path / "[01].parquet")

    def pid(m):
        return m.name.split("/", 1)[1].rsplit(".", 1)[0]

    row = _row(posts, pid(corrupt))
    assert row["status"] == "read_error" and row["error"].startswith(f"posts_info.zip: {corrupt.name}: ")
    row = _row(posts, pid(encrypted))
    assert row["status"] == "unsupported" and "encrypted" in row["error"]
    row = _row(posts, pid(unknown))
    assert row["status"] == "unsupported" and "compression method 99" in row["error"]
    row = _row(posts, f"member:{bad_name}")
    assert row["status"] == "bad_member_name" and bad_name in row["error"]
    assert _row(posts, pid(renamed))["status"] == "json_missing"  # its mapping row no longer finds it
    assert posts["post_id"].is_unique().all()


def test_shard_job_never_imports_pandas(run, tmp_path):
    """pyarrow imports pandas on its first ``pa.array``/``pa.scalar``/``to_numpy`` (~0.3 s of CPU and
    ~40 MB per job, as much as 10k posts cost); the shard job builds Arrow data without them."""
    import subprocess
    import sys

    plan_dir = run["results"] / "plan"
    code = (
        "import sys\nfrom affectflow.cli import main\n"
        f"rc = main(['instagram-ingest', '--config-json', {C.to_json(C.section(run['cfg'], 'instagram'))!r},"
        f" '--plan', {str(plan_dir / 'posts.parquet')!r}, '--plan-summary', {str(plan_dir / 'plan.json')!r},"
        f" '--shard', '1', '--out', {str(tmp_path / 'out.parquet')!r}])\n"
        "print('pandas' in sys.modules, rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(Path(affectflow.__file__).parents[1]), "PATH": "/usr/bin:/bin"})
    assert proc.stdout.split() == ["False", "0"], proc.stderr[-2000:]
    assert pl.read_parquet(tmp_path / "out.parquet").equals(pl.read_parquet(run["results"] / "posts" / "shard-00001.parquet"))
