"""The split-archive reader against archives made by Info-ZIP and by Python's zipfile."""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import struct
import subprocess
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest

from affectflow.io.multizip import (
    METHOD_BZIP2,
    METHOD_DEFLATE,
    METHOD_STORED,
    ArchiveError,
    MemberError,
    MultiVolumeZip,
    VolumeError,
    parse_central_directory,
    unsafe_name,
)

pytestmark = pytest.mark.skipif(shutil.which("zip") is None, reason="needs Info-ZIP zip")


def _tree(root: Path, seed: int = 0) -> dict[str, bytes]:
    """Files of every kind a split archive must carry: text that deflates, random bytes that zip
    stores, files larger than a 64k volume (they must span), an empty file and a UTF-8 name."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    for i in range(12):
        words = " ".join(rng.choice(["caption", "likes", "#travel", "über", "東京", "😍"]) for _ in range(rng.randrange(50, 4000)))
        files[f"info/user{i:02d}-{i}.info"] = words.encode()
    for i in range(6):
        files[f"image/user{i:02d}-{i}.jpg"] = rng.randbytes(rng.choice([3_000, 40_000, 150_000]))
    files["info/empty-0.info"] = b""
    files["info/ünïcode-名前.info"] = "名前".encode() * 100
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def _zip(src: Path, archive: Path, names: list[str], *flags: str) -> list[Path]:
    archive.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["zip", "-q", "-X", *flags, str(archive), "-@"], input="\n".join(sorted(names)).encode(),
                   cwd=src, check=True, env={**os.environ, "TZ": "UTC"})
    return sorted(archive.parent.glob(archive.stem + ".z*"))


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """A 64k-volume Info-ZIP split archive of :func:`_tree`."""
    root = tmp_path_factory.mktemp("split")
    files = _tree(root / "src")
    volumes = _zip(root / "src", root / "out" / "a.zip", list(files), "-s", "64k")
    return files, volumes


def _spans(zf: MultiVolumeZip, m) -> bool:
    """Whether a member's bytes continue past the end of the volume its header is on."""
    hdr = zf._read_span(m.disk, m.offset, 30)
    nlen, xlen = struct.unpack_from("<2H", bytes(hdr), 26)
    return m.offset + 30 + nlen + xlen + m.compressed_size > zf.volumes[m.disk].stat().st_size


def test_split_archive_members_read_byte_identical(split):
    files, volumes = split
    assert len(volumes) >= 4 and volumes[-1].suffix == ".zip" and volumes[0].name == "a.z01"
    with MultiVolumeZip(volumes[-1]) as zf:
        assert zf.n_disks == len(volumes) and zf.volumes == volumes
        members = zf.members()
        assert {m.name for m in members} == set(files)
        for m in members:
            assert zf.read(m) == files[m.name], m.name
        methods = {m.method for m in members}
        spanning = [m.name for m in members if _spans(zf, m)]
    assert methods == {METHOD_STORED, METHOD_DEFLATE}  # zip stores what does not deflate
    assert len(spanning) >= 2, "the test archive must have members crossing volume boundaries"


def _utf8_name(info: zipfile.ZipInfo) -> str:
    """zipfile decodes names without the UTF-8 flag as cp437; Info-ZIP on Linux writes UTF-8 bytes
    without setting it, and the reader (like unzip) takes such names as UTF-8 when they are."""
    if info.flag_bits & 0x800:
        return info.filename
    raw = info.filename.encode("cp437")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return info.filename


def test_directory_agrees_with_zipfile_on_the_joined_archive(split, tmp_path):
    """Info-ZIP's own join (zip -s 0) gives one file Python's zipfile reads: same names, sizes, CRCs."""
    _, volumes = split
    joined = tmp_path / "joined.zip"
    subprocess.run(["zip", "-q", "-s", "0", str(volumes[-1]), "--out", str(joined)], check=True)
    with zipfile.ZipFile(joined) as ref, MultiVolumeZip(volumes[-1]) as zf:
        want = sorted((_utf8_name(i), i.CRC, i.compress_size, i.file_size, i.compress_type) for i in ref.infolist())
        got = sorted((m.name, m.crc, m.compressed_size, m.uncompressed_size, m.method) for m in zf.members())
    assert got == want


def test_zip64_split_archive(tmp_path):
    """``zip -fz`` forces ZIP64 records: 0xFFFFFFFF in the directory, sizes in the ZIP64 extra field."""
    files = _tree(tmp_path / "src", seed=1)
    volumes = _zip(tmp_path / "src", tmp_path / "out" / "z.zip", list(files), "-fz", "-s", "64k")
    with MultiVolumeZip(volumes[-1]) as zf:
        assert zf.zip64 and zf.n_disks == len(volumes) > 1
        raw = bytes(zf._read_span(zf.cd_disk, zf.cd_offset, zf.cd_size))
        assert struct.unpack_from("<L", raw, 24)[0] == 0xFFFFFFFF  # first entry's size lives in the extra field
        members = zf.members()
        assert {m.name for m in members} == set(files)
        for m in members:
            assert zf.read(m) == files[m.name]
        assert max(m.uncompressed_size for m in members) == max(len(v) for v in files.values())


def test_zip64_extra_not_first_and_offsets(tmp_path):
    """A ZIP64 block after another extra field, with a 64-bit offset, is found (the per-entry path)."""
    name = b"info/u-1.info"
    data = b"x" * 100
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 45, 0, 0, 0, 0, zlib.crc32(data), 100, 100, len(name), 0) + name
    pad = b"\0" * 7
    extra = struct.pack("<2H", 0x5455, 5) + b"\x01abcd" + struct.pack("<2HQQQ", 0x0001, 24, 100, 100, len(pad))
    cd = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 798, 45, 0, 0, 0, 0, zlib.crc32(data), 0xFFFFFFFF, 0xFFFFFFFF,
                     len(name), len(extra), 0, 0, 0, 0, 0xFFFFFFFF) + name + extra
    blob = pad + local + data
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(cd), len(blob), 0)
    path = tmp_path / "x.zip"
    path.write_bytes(blob + cd + eocd)
    with MultiVolumeZip(path) as zf:
        (m,) = zf.members()
        assert (m.offset, m.compressed_size, m.uncompressed_size) == (len(pad), 100, 100)
        assert zf.read(m) == data


def test_directory_of_python_zipfile_archive(tmp_path):
    """Stored, deflated and bzip2 members, UTF-8-flagged names, and a name that is not UTF-8."""
    path = tmp_path / "py.zip"
    payload = {"a.txt": b"hello " * 1000, "ß/名前.info": "名前".encode() * 50, "b.bin": os.urandom(500), "c.bz": b"bz" * 5000}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo("a.txt"), payload["a.txt"], zipfile.ZIP_DEFLATED)
        z.writestr("ß/名前.info", payload["ß/名前.info"], zipfile.ZIP_DEFLATED)
        z.writestr("b.bin", payload["b.bin"], zipfile.ZIP_STORED)
        z.writestr("c.bz", payload["c.bz"], zipfile.ZIP_BZIP2)
        z.writestr("legacy.txt", b"cp437 name", zipfile.ZIP_STORED)
    # make one name cp437 (no UTF-8 flag, not valid UTF-8), as old zip tools wrote them
    data = path.read_bytes().replace(b"legacy.txt", b"l\x82gacy.txt")
    path.write_bytes(data)
    with zipfile.ZipFile(path) as ref:
        want = {i.filename: (i.CRC, i.compress_size, i.file_size, i.compress_type, i.header_offset) for i in ref.infolist()}
    with MultiVolumeZip(path) as zf:
        members = zf.members()
        got = {m.name: (m.crc, m.compressed_size, m.uncompressed_size, m.method, m.offset) for m in members}
        assert got == want
        assert "légacy.txt" in got  # cp437 0x82 is é, as zipfile decodes it
        by_name = {m.name: m for m in members}
        assert by_name["c.bz"].method == METHOD_BZIP2
        for name, blob in payload.items():
            assert zf.read(by_name[name]) == blob


def test_signature_bytes_inside_a_name_fall_back_to_the_exact_walk(tmp_path):
    """A name containing ``PK\\x01\\x02`` breaks the vectorised signature scan; the walk still parses it."""
    path = tmp_path / "sig.zip"
    names = ["plain.txt", "evil\x01PK\x01\x02name.txt", "after.txt"]
    with zipfile.ZipFile(path, "w") as z:
        for n in names:
            z.writestr(n, n.encode() * 10)
    with MultiVolumeZip(path) as zf:
        cd = bytes(zf._read_span(zf.cd_disk, zf.cd_offset, zf.cd_size))
        assert cd.count(b"PK\x01\x02") > zf.n_entries  # the fast path cannot be used
        members = zf.members()
        assert [m.name for m in members] == names
        assert [zf.read(m) for m in members] == [n.encode() * 10 for n in names]


def test_corrupt_directory_is_an_archive_error():
    buf = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0) + b"name"
    with pytest.raises(ArchiveError, match="corrupt at entry 1"):
        parse_central_directory(buf + b"XX\x01\x02" + buf[4:], 2, "t.zip")


def test_crc_mismatch_is_read_error(tmp_path):
    path = tmp_path / "c.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("stored.txt", b"A" * 1000, zipfile.ZIP_STORED)
        z.writestr("deflated.txt", b"B" * 1000 + os.urandom(200), zipfile.ZIP_DEFLATED)
    with MultiVolumeZip(path) as zf:
        members = {m.name: m for m in zf.members()}
    data = bytearray(path.read_bytes())
    stored = members["stored.txt"]
    data[stored.offset + 30 + len("stored.txt") + 500] ^= 0xFF  # flip a byte of the stored data
    deflated = members["deflated.txt"]
    data[deflated.offset + 30 + len("deflated.txt") + deflated.compressed_size - 20] ^= 0xFF
    path.write_bytes(bytes(data))
    with MultiVolumeZip(path) as zf:
        with pytest.raises(MemberError, match="CRC mismatch") as exc:
            zf.read(stored)
        assert exc.value.status == "read_error"
        with pytest.raises(MemberError) as exc:
            zf.read(deflated)
        assert exc.value.status == "read_error" and "deflated.txt" in str(exc.value)


def test_encrypted_member_is_unsupported(tmp_path):
    (tmp_path / "s.txt").write_text("secret post")
    subprocess.run(["zip", "-q", "-P", "pw", str(tmp_path / "e.zip"), "s.txt"], cwd=tmp_path, check=True)
    with MultiVolumeZip(tmp_path / "e.zip") as zf:
        (m,) = zf.members()
        assert m.flags & 1
        with pytest.raises(MemberError, match="encrypted") as exc:
            zf.read(m)
    assert exc.value.status == "unsupported"


def test_unknown_method_is_unsupported(tmp_path):
    path = tmp_path / "lzma.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_LZMA) as z:
        z.writestr("post.info", b"{}" * 100)
    with MultiVolumeZip(path) as zf:
        (m,) = zf.members()
        with pytest.raises(MemberError, match="compression method 14") as exc:
            zf.read(m)
    assert exc.value.status == "unsupported"


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2])
def test_lying_declared_size_stops_inflating(tmp_path, method):
    """A directory entry claiming 100 bytes for 50 MB of zeros: inflation stops at 101 bytes."""
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=method) as z:
        z.writestr("bomb.info", b"\0" * (50 << 20))
    with MultiVolumeZip(path) as zf:
        (m,) = zf.members()
        liar = dataclasses.replace(m, uncompressed_size=100)
        tracemalloc.start()
        try:
            with pytest.raises(MemberError, match="101 bytes or more inflated, directory says 100") as exc:
                zf.read(liar)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert exc.value.status == "read_error"
    assert peak < 4 << 20  # nowhere near the 50 MB the stream would inflate to


def test_declared_size_past_limit_is_refused_before_reading(tmp_path):
    """``too_large`` is decided from the directory alone: the bytes (here: none) are never touched."""
    path = tmp_path / "t.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.info", b"{}")
    with MultiVolumeZip(path) as zf:
        (m,) = zf.members()
        nowhere = dataclasses.replace(m, offset=10**12, uncompressed_size=1 << 40)
        with pytest.raises(MemberError, match="past the limit") as exc:
            zf.read(nowhere, max_size=16 << 20)
        assert exc.value.status == "too_large"
        huge_compressed = dataclasses.replace(m, offset=10**12, compressed_size=1 << 40)
        with pytest.raises(MemberError) as exc:
            zf.read(huge_compressed, max_size=16 << 20)
        assert exc.value.status == "too_large"
        assert zf.read(m, max_size=16 << 20) == b"{}"


def _copy(volumes: list[Path], dst: Path) -> Path:
    for v in volumes:
        shutil.copy(v, dst / v.name)
    return dst / volumes[-1].name


def test_missing_volume(split, tmp_path):
    files, volumes = split
    last = _copy(volumes, tmp_path)
    (tmp_path / "a.z02").unlink()
    with MultiVolumeZip(last) as zf:
        assert zf.check_volumes(zf.central_directory()) == {1: "missing"}
        members = zf.members()
        with pytest.raises(VolumeError, match=r"a\.z02 is missing"):
            zf.read(next(m for m in members if m.disk == 1))
        intact = [m for m in members if m.disk >= 2 and not _spans(zf, m)]
        assert intact and all(zf.read(m) == files[m.name] for m in intact)  # other volumes still read


@pytest.mark.parametrize("cut", [1, 100, "half"])
def test_truncated_volume(split, tmp_path, cut):
    """Any cut is seen from the directory alone: the members after the cut no longer line up."""
    _, volumes = split
    last = _copy(volumes, tmp_path)
    with MultiVolumeZip(last) as zf:
        disk = next(d for d in range(1, zf.n_disks - 1)
                    if any(m.disk == d for m in zf.members()) and any(m.disk == d + 1 for m in zf.members()))
    victim = zf.volumes[disk]
    size = victim.stat().st_size
    with open(victim, "r+b") as fh:
        fh.truncate(size // 2 if cut == "half" else size - cut)
    with MultiVolumeZip(last) as zf:
        problems = zf.check_volumes(zf.central_directory())
    assert list(problems) == [disk] and problems[disk].startswith("truncated")


def test_missing_last_volume_names_it(tmp_path):
    with pytest.raises(VolumeError, match=r"nope\.zip is missing"):
        MultiVolumeZip(tmp_path / "nope.zip")


def test_not_a_zip(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"not a zip at all" * 10)
    with pytest.raises(ArchiveError, match="no end-of-central-directory"):
        MultiVolumeZip(tmp_path / "x.zip")


@pytest.mark.parametrize("name,why", [
    ("../x.info", "parent"), ("info/../../x", "parent"), ("/etc/passwd", "absolute"), ("C:/x", "absolute"),
    ("info\\x", "backslash"), ("a\x00b", "NUL"),
])
def test_unsafe_names(name, why):
    assert why in unsafe_name(name)


@pytest.mark.parametrize("name", ["info/u-1.info", "image/u-..jpg", "info/a..b-1.info"])
def test_safe_names(name):
    assert unsafe_name(name) is None
