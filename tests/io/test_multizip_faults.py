"""Damage to one member fails only that member (issue kind 1): damaged directory entries, entries
sharing or overlapping bytes, and volume sets broken the ways users break them."""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
from pathlib import Path

import polars as pl
import pytest
from hostile import clean_posts, write_dataset

from affectflow import config as C
from affectflow import status as S
from affectflow.instagram.ingest import ShardVolumeError, ingest_shard
from affectflow.instagram.plan import plan
from affectflow.io.multizip import CDIR_SIG, ArchiveError, MemberError, MultiVolumeZip

pytestmark = pytest.mark.skipif(shutil.which("zip") is None, reason="needs Info-ZIP zip")


def _make(root: Path, n: int = 30, split: str = "64k", seed: int = 0) -> tuple[dict[str, bytes], list[Path]]:
    rng = random.Random(seed)
    files = {}
    src = root / "src"
    (src / "info").mkdir(parents=True)
    for i in range(n):
        data = (" ".join(rng.choice(["caption", "likes", "#x", "über"]) for _ in range(rng.randrange(500, 4000)))).encode()
        if i % 5 == 0:
            data = rng.randbytes(20_000)  # stored, and large enough to span volumes
        files[f"info/u{i:02d}-{i}.info"] = data
        (src / f"info/u{i:02d}-{i}.info").write_bytes(data)
    out = root / "out" / "a.zip"
    out.parent.mkdir()
    subprocess.run(["zip", "-q", "-X", "-s", split, str(out), "-@"], input="\n".join(sorted(files)).encode(),
                   cwd=src, check=True, env={**os.environ, "TZ": "UTC"})
    return files, sorted(out.parent.glob("a.z*"))


def _entry_at(last: Path, name: str) -> int:
    """Byte position of ``name``'s central-directory record in the last volume."""
    with MultiVolumeZip(last) as zf:
        assert zf.cd_disk == zf.n_disks - 1
        cd_offset = zf.cd_offset
    data = last.read_bytes()
    p = cd_offset
    while data[p : p + 4] == CDIR_SIG:
        nlen, xlen, clen = struct.unpack_from("<3H", data, p + 28)
        if data[p + 46 : p + 46 + nlen] == name.encode():
            return p
        p += 46 + nlen + xlen + clen
    raise KeyError(name)


def _patch(last: Path, name: str, field: int, fmt: str, value) -> None:
    pos = _entry_at(last, name) + field
    with open(last, "r+b") as fh:
        fh.seek(pos)
        fh.write(struct.pack(fmt, value))


def _read_all(last: Path) -> dict[str, bytes | str]:
    out = {}
    with MultiVolumeZip(last) as zf:
        assert zf.check_volumes(zf.central_directory()) == {}, "a damaged entry must not condemn a volume"
        for m in zf.members():
            try:
                out[m.name] = zf.read(m)
            except MemberError as exc:
                out[m.name] = f"{exc.status}: {exc}"
    return out


@pytest.mark.parametrize("bit", [31, 30, 24, 20])
def test_wild_local_header_offset_fails_only_its_member(tmp_path, bit):
    files, vols = _make(tmp_path)
    victim = "info/u07-7.info"
    with MultiVolumeZip(vols[-1]) as zf:
        offset = next(m.offset for m in zf.members() if m.name == victim)
    _patch(vols[-1], victim, 42, "<L", offset | (1 << bit))
    got = _read_all(vols[-1])
    assert got[victim].startswith("read_error") and victim in got[victim] and "past the end of volume" in got[victim]
    assert {k: v for k, v in got.items() if k != victim} == {k: v for k, v in files.items() if k != victim}


def test_wild_disk_number_fails_only_its_member(tmp_path):
    files, vols = _make(tmp_path)
    _patch(vols[-1], "info/u03-3.info", 34, "<H", 300)
    got = _read_all(vols[-1])
    assert got["info/u03-3.info"].startswith("read_error") and "volume 301" in got["info/u03-3.info"]
    assert sum(isinstance(v, bytes) for v in got.values()) == len(files) - 1


def test_entry_pointing_at_another_members_header(tmp_path):
    """Two entries claiming the same bytes: each member is read only through its own header, so the
    damaged entry gets read_error naming the owner and the owner stays ok (keep both, verify each)."""
    files, vols = _make(tmp_path)
    with MultiVolumeZip(vols[-1]) as zf:
        mem = {m.name: m for m in zf.members()}
    a, b = mem["info/u01-1.info"], mem["info/u02-2.info"]
    _patch(vols[-1], b.name, 42, "<L", a.offset)
    _patch(vols[-1], b.name, 34, "<H", a.disk)
    got = _read_all(vols[-1])
    assert got[a.name] == files[a.name]
    assert got[b.name].startswith("read_error") and "belongs to 'info/u01-1.info'" in got[b.name]


def test_overlapping_ranges_are_counted_and_both_read(tmp_path):
    """An entry whose data range runs over the next member's header (the overlap zip-bomb shape):
    both are kept, each verified by its own header and CRC, and the plan counts the overlap."""
    posts = clean_posts(12, seed=5)
    data = write_dataset(tmp_path / "ds", posts, split_size="64k")
    last = data / "Post_metadata" / "posts_info.zip"
    with MultiVolumeZip(last) as zf:
        ms = sorted((m for m in zf.members() if not m.is_dir), key=lambda m: (m.disk, m.offset))
    first, second = next((x, y) for x, y in zip(ms, ms[1:]) if x.disk == y.disk)
    _patch(last, first.name, 20, "<L", first.compressed_size + 100)  # data now runs into `second`
    cfg = C.validate({"results": str(tmp_path), "instagram": {"root": str(data), "shards": 2}})
    summary = plan(cfg, tmp_path / "p.parquet", tmp_path / "i.parquet", tmp_path / "p.json")
    meta = summary["metadata_archive"]
    assert meta["overlap_entries"] == 2 and set(meta["overlap_examples"]) == {first.name, second.name}
    assert summary["volume_problems"]["metadata"] == {}
    rows = pl.concat([pl.from_arrow(_shard(cfg, tmp_path, s)) for s in range(2)])
    assert rows.filter(pl.col("json_file").is_in([first.name.split("-", 1)[1], second.name.split("-", 1)[1]]))[
        "status"].to_list() == [S.OK, S.OK]


def _shard(cfg, tmp_path, s):
    import pyarrow.parquet as pq

    ingest_shard(cfg, tmp_path / "p.parquet", tmp_path / "p.json", s, tmp_path / f"s{s}.parquet")
    return pq.read_table(tmp_path / f"s{s}.parquet")


def test_one_wild_entry_in_a_dataset_costs_one_row(tmp_path):
    posts = clean_posts(40, seed=9)
    data = write_dataset(tmp_path / "ds", posts, split_size="64k")
    last = data / "Post_metadata" / "posts_info.zip"
    victim = f"info/00001_mossfit-{posts[17][0]}.info"
    with MultiVolumeZip(last) as zf:
        offset = next(m.offset for m in zf.members() if m.name == victim)
    _patch(last, victim, 42, "<L", offset | (1 << 31))
    cfg = C.validate({"results": str(tmp_path), "instagram": {"root": str(data), "shards": 3}})
    summary = plan(cfg, tmp_path / "p.parquet", tmp_path / "i.parquet", tmp_path / "p.json")
    assert summary["volume_problems"]["metadata"] == {}, "the volume is intact: only the entry is damaged"
    assert summary["metadata_archive"]["stray_entries"] == 1
    rows = pl.concat([pl.from_arrow(_shard(cfg, tmp_path, s)) for s in range(3)])
    bad = rows.filter(pl.col("status") != S.OK)
    assert bad["post_id"].to_list() == [f"00001_mossfit-{posts[17][0]}"]
    assert bad["status"][0] == S.READ_ERROR and victim in bad["error"][0] and "past the end" in bad["error"][0]
    assert rows.height == 40


def test_a_really_truncated_volume_is_still_called_truncated(tmp_path):
    files, vols = _make(tmp_path)
    mid = vols[len(vols) // 2]
    with open(mid, "r+b") as fh:
        fh.truncate(mid.stat().st_size // 2)
    with MultiVolumeZip(vols[-1]) as zf:
        problems = zf.check_volumes(zf.central_directory())
    assert list(problems) == [len(vols) // 2] and problems[len(vols) // 2].startswith("truncated")


def test_volumes_joined_with_cat_name_the_problem_and_the_remedy(tmp_path):
    _, vols = _make(tmp_path)
    joined = tmp_path / "joined" / "posts.zip"
    joined.parent.mkdir()
    joined.write_bytes(b"".join(v.read_bytes() for v in vols))
    with pytest.raises(ArchiveError, match=r"joined end to end \(e\.g\. with cat\).*zip -s 0"):
        MultiVolumeZip(joined)
    # the same bytes without the split marker (a set written with -sp or stripped) are also recognised
    data = joined.read_bytes()
    if data[:4] == b"PK\x07\x08":
        joined.write_bytes(data[4:])
        with pytest.raises(ArchiveError, match="joined end to end"):
            MultiVolumeZip(joined)


def test_a_missing_first_volume_names_the_remedy(tmp_path):
    posts = clean_posts(200, seed=2)
    data = write_dataset(tmp_path / "ds", posts, split_size="64k")
    z01 = data / "Post_metadata" / "posts_info.z01"
    assert z01.exists()
    cfg = C.validate({"results": str(tmp_path), "instagram": {"root": str(data), "shards": 2}})
    summary = plan(cfg, tmp_path / "p.parquet", tmp_path / "i.parquet", tmp_path / "p.json")
    assert summary["volume_problems"]["metadata"] == {}
    z01.rename(z01.with_suffix(".bak"))
    with pytest.raises(ShardVolumeError, match=r"posts_info\.z01 is missing.*Copy the missing volume beside the others"):
        ingest_shard(cfg, tmp_path / "p.parquet", tmp_path / "p.json", 0, tmp_path / "s0.parquet")
