"""Read Info-ZIP multi-volume ("split") archives in place.

The Instagram dataset ships as ``name.z01 … name.zNN`` plus ``name.zip`` (the last volume, holding
the central directory). Python's :mod:`zipfile` cannot read such a set, and unpacking ~23M small
files onto a cluster filesystem is what we refuse to do. This module parses the central directory
(ZIP64 included) and reads any member from its volume and offset, following the bytes across
volume boundaries, with every volume memory-mapped so reads are zero-copy slices.

Nothing is extracted; member names are only ever used as labels, and unsafe ones are flagged.
"""

from __future__ import annotations

import bz2
import mmap
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

EOCD_SIG = b"PK\x05\x06"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
ZIP64_EOCD_SIG = b"PK\x06\x06"
CDIR_SIG = b"PK\x01\x02"
LOCAL_SIG = b"PK\x03\x04"

_CDIR = struct.Struct("<4s6H3L5H2L")  # 46 bytes
_LOCAL = struct.Struct("<4s5H3L2H")  # 30 bytes
_EOCD = struct.Struct("<4s4H2LH")  # 22 bytes
_Z64LOC = struct.Struct("<4sLQL")  # 20 bytes
_Z64EOCD = struct.Struct("<4sQ2H2L4Q")  # 56 bytes

METHOD_STORED, METHOD_DEFLATE, METHOD_BZIP2 = 0, 8, 12

MEMBER_FIELDS = ("name", "disk", "offset", "compressed_size", "uncompressed_size", "method", "crc", "flags")


class ArchiveError(Exception):
    """The archive as a whole cannot be used (no central directory, bad structure)."""


class VolumeError(ArchiveError):
    """A volume is missing or truncated; ``volume`` names the file."""

    def __init__(self, volume: Path | str, problem: str, detail: str = ""):
        self.volume = str(volume)
        self.problem = problem  # "missing" | "truncated"
        super().__init__(f"volume {self.volume} is {problem}" + (f": {detail}" if detail else ""))


class MemberError(Exception):
    """One member cannot be read; ``status`` is the label that goes into the output table."""

    def __init__(self, status: str, message: str):
        self.status = status
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Member:
    """One central-directory entry: where the member's local header is and how it is stored."""

    name: str
    disk: int
    offset: int
    compressed_size: int
    uncompressed_size: int
    method: int
    crc: int
    flags: int

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


def volume_paths(last_volume: Path, n_disks: int) -> list[Path]:
    """``x.z01 … x.z(n-1), x.zip``: the naming Info-ZIP uses for split archives."""
    last_volume = Path(last_volume)
    stem = last_volume.with_suffix("")
    return [Path(f"{stem}.z{i:02d}") for i in range(1, n_disks)] + [last_volume]


_UNSAFE_PART = re.compile(r"(^|/)\.\.(/|$)")


def unsafe_name(name: str) -> str | None:
    """Why a member name would escape an output folder, or None when it is safe."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if "\\" in name:
        return "backslash in name"
    if _UNSAFE_PART.search(name):
        return "parent-directory component '..'"
    if "\x00" in name:
        return "NUL byte in name"
    return None


def _decode_name(raw: bytes, flags: int) -> str:
    if flags & 0x800:
        return raw.decode("utf-8", "replace")
    try:  # Info-ZIP on Linux stores UTF-8 bytes without setting the flag
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp437")


class MultiVolumeZip:
    """A split archive opened for reading in place.

    ``last_volume`` is the ``.zip`` file; its ``.zNN`` siblings are found beside it. A single-file
    zip works too (one volume). Volumes are opened lazily, so a missing or truncated volume only
    fails the reads that need it: :meth:`check_volumes` reports them up front.
    """

    def __init__(self, last_volume: str | os.PathLike):
        self.last_volume = Path(last_volume)
        if not self.last_volume.is_file():
            raise VolumeError(self.last_volume, "missing", "the last volume holds the central directory")
        self._maps: dict[int, mmap.mmap | bytes] = {}
        self._files: dict[int, object] = {}
        self._read_eocd()
        self.volumes = volume_paths(self.last_volume, self.n_disks)

    # -- central directory -------------------------------------------------------------------
    def _read_eocd(self) -> None:
        size = self.last_volume.stat().st_size
        with open(self.last_volume, "rb") as fh:
            tail_len = min(size, 22 + 65535 + 20)
            fh.seek(size - tail_len)
            tail = fh.read(tail_len)
        pos = tail.rfind(EOCD_SIG)
        while pos >= 0 and pos + 22 > len(tail):
            pos = tail.rfind(EOCD_SIG, 0, pos)
        if pos < 0:
            raise ArchiveError(f"{self.last_volume}: no end-of-central-directory record (not a zip, or truncated)")
        (_, disk_no, cd_disk, n_this, n_total, cd_size, cd_offset, _clen) = _EOCD.unpack_from(tail, pos)
        self.n_disks = disk_no + 1
        self.cd_disk, self.n_entries, self.cd_size, self.cd_offset = cd_disk, n_total, cd_size, cd_offset
        self.zip64 = False
        loc = pos - 20
        if loc >= 0 and tail[loc : loc + 4] == ZIP64_LOCATOR_SIG:
            _, z64_disk, z64_off, total_disks = _Z64LOC.unpack_from(tail, loc)
            self.n_disks = total_disks
            self.zip64 = True
            # The ZIP64 EOCD record sits on the last disk in every archive Info-ZIP writes.
            if z64_disk != self.n_disks - 1:
                raise ArchiveError(f"{self.last_volume}: ZIP64 record on disk {z64_disk} is not supported")
            with open(self.last_volume, "rb") as fh:
                fh.seek(z64_off)
                rec = fh.read(56)
            if rec[:4] != ZIP64_EOCD_SIG:
                raise ArchiveError(f"{self.last_volume}: ZIP64 end record not found at offset {z64_off}")
            (_, _, _, _, _, cd_disk, n_this, n_total, cd_size, cd_offset) = _Z64EOCD.unpack(rec)
            self.cd_disk, self.n_entries, self.cd_size, self.cd_offset = cd_disk, n_total, cd_size, cd_offset

    def central_directory(self) -> "pa.Table":
        """Every central-directory entry, in directory order, as a table.

        Columns: ``name, disk, offset, compressed_size, uncompressed_size, method, crc, flags``.
        Columnar because the real archives hold 10-13M entries: a Python object per entry would
        cost gigabytes.
        """
        import pyarrow as pa

        buf = self._read_span(self.cd_disk, self.cd_offset, self.cd_size)
        cols: dict[str, list] = {k: [] for k in MEMBER_FIELDS}
        names, disks, offs, csizes, usizes, methods, crcs, flagl = (cols[k] for k in MEMBER_FIELDS)
        unpack = _CDIR.unpack_from
        pos, end = 0, len(buf)
        for i in range(self.n_entries):
            if pos + 46 > end or buf[pos : pos + 4] != CDIR_SIG:
                raise ArchiveError(f"{self.last_volume}: central directory corrupt at entry {i}")
            (_, _vm, _vn, flags, method, _t, _d, crc, csize, usize, nlen, xlen, clen, disk, _ia, _ea, off) = unpack(buf, pos)
            p = pos + 46
            names.append(_decode_name(bytes(buf[p : p + nlen]), flags))
            if csize == 0xFFFFFFFF or usize == 0xFFFFFFFF or off == 0xFFFFFFFF or disk == 0xFFFF:
                usize, csize, off, disk = _zip64_extra(buf[p + nlen : p + nlen + xlen], usize, csize, off, disk)
            disks.append(disk)
            offs.append(off)
            csizes.append(csize)
            usizes.append(usize)
            methods.append(method)
            crcs.append(crc)
            flagl.append(flags)
            pos = p + nlen + xlen + clen
        types = (pa.string(), pa.int32(), pa.int64(), pa.int64(), pa.int64(), pa.int16(), pa.uint32(), pa.uint16())
        return pa.table({k: pa.array(cols[k], type=t) for k, t in zip(MEMBER_FIELDS, types)})

    def members(self) -> list[Member]:
        """Every entry as :class:`Member` objects (convenient for small archives and tests)."""
        t = self.central_directory().to_pydict()
        return [Member(*row) for row in zip(*(t[k] for k in MEMBER_FIELDS))]

    # -- volumes -----------------------------------------------------------------------------
    def volume_sizes(self) -> list[int | None]:
        return [p.stat().st_size if p.exists() else None for p in self.volumes]

    def check_volumes(self, directory: "pa.Table | None" = None) -> dict[int, str]:
        """Problems per disk number: ``{disk: "missing" | "truncated: ..."}``.

        Volume sizes alone cannot tell a truncated volume: Info-ZIP never splits a local header,
        so it closes a volume early when the next header does not fit. What must hold is that
        each member's bytes (at least header + name + data) end before the next member starts,
        counting positions across volumes by their actual sizes; a truncated volume shifts every
        later position back and breaks that order at its boundary. Cuts smaller than a header's
        extra field slip through here and surface as a CRC error when the member is read.
        """
        import numpy as np
        import pyarrow.compute as pc

        sizes = self.volume_sizes()
        problems: dict[int, str] = {d: "missing" for d, s in enumerate(sizes) if s is None}
        if directory is not None and directory.num_rows:
            present = np.asarray([sz is not None for sz in sizes])
            starts = np.concatenate([[0], np.cumsum([sz or 0 for sz in sizes])]).astype(np.int64)
            disk = np.append(directory["disk"].to_numpy().astype(np.int64), self.cd_disk)
            offset = np.append(directory["offset"].to_numpy().astype(np.int64), self.cd_offset)
            length = np.append(30 + pc.binary_length(directory["name"]).to_numpy().astype(np.int64)
                               + directory["compressed_size"].to_numpy().astype(np.int64), 0)
            order = np.lexsort((offset, disk))
            dk, begin, ln = disk[order], starts[disk[order]] + offset[order], length[order]
            # compare each member with the next only where every volume between them is present
            missing_before = np.concatenate([[0], np.cumsum(~present)])
            intact = missing_before[dk[1:] + 1] - missing_before[dk[:-1]] == 0
            bad = intact & (begin[:-1] + ln[:-1] > begin[1:])
            for d in np.unique(dk[:-1][bad]):
                problems.setdefault(int(d), f"truncated: {sizes[d]} bytes is too short for the members stored on it")
        return problems

    def _map(self, disk: int):
        m = self._maps.get(disk)
        if m is None:
            path = self.volumes[disk]
            try:
                fh = open(path, "rb")
            except FileNotFoundError:
                raise VolumeError(path, "missing") from None
            size = os.fstat(fh.fileno()).st_size
            m = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
            self._files[disk] = fh
            self._maps[disk] = m
        return m

    def _read_span(self, disk: int, offset: int, length: int) -> memoryview | bytes:
        """``length`` bytes from (disk, offset), continuing into the following volumes."""
        m = self._map(disk)
        if offset + length <= len(m):
            return memoryview(m)[offset : offset + length]
        parts = []
        while length > 0:
            if disk >= self.n_disks:
                raise VolumeError(self.volumes[-1], "truncated", "read runs past the last volume")
            m = self._map(disk)
            if offset > len(m):
                raise VolumeError(self.volumes[disk], "truncated", f"offset {offset} beyond its {len(m)} bytes")
            chunk = m[offset : offset + length]
            parts.append(chunk)
            length -= len(chunk)
            disk, offset = disk + 1, 0
        return b"".join(parts)

    def read(self, member: Member, max_size: int | None = None) -> bytes:
        """The member's uncompressed bytes, CRC-checked.

        Raises :class:`MemberError` (a per-record status) for a bad member and
        :class:`VolumeError` when the volume holding it is missing or truncated.
        """
        if max_size is not None and member.uncompressed_size > max_size:
            raise MemberError("too_large", f"{member.name}: declared size {member.uncompressed_size} bytes exceeds the limit {max_size}")
        if member.flags & 0x1:
            raise MemberError("unsupported", f"{member.name}: encrypted member")
        hdr = self._read_span(member.disk, member.offset, 30)
        sig, _v, _f, _m, _t, _d, _crc, _cs, _us, nlen, xlen = _LOCAL.unpack(bytes(hdr))
        if sig != LOCAL_SIG:
            raise MemberError("read_error", f"{member.name}: no local header at volume {self.volumes[member.disk].name} offset {member.offset}")
        data = self._read_span(member.disk, member.offset + 30 + nlen + xlen, member.compressed_size)
        if member.method == METHOD_STORED:
            out = bytes(data)
        elif member.method == METHOD_DEFLATE:
            d = zlib.decompressobj(-15)
            try:
                out = d.decompress(data, member.uncompressed_size + 1)
            except zlib.error as exc:
                raise MemberError("read_error", f"{member.name}: deflate stream corrupt ({exc})") from None
        elif member.method == METHOD_BZIP2:
            try:
                out = bz2.decompress(data)
            except (OSError, ValueError) as exc:
                raise MemberError("read_error", f"{member.name}: bzip2 stream corrupt ({exc})") from None
        else:
            raise MemberError("unsupported", f"{member.name}: compression method {member.method} is not supported")
        if len(out) != member.uncompressed_size:
            raise MemberError("read_error", f"{member.name}: {len(out)} bytes inflated, directory says {member.uncompressed_size}")
        if zlib.crc32(out) != member.crc:
            raise MemberError("read_error", f"{member.name}: CRC mismatch (corrupt data)")
        return out

    def close(self) -> None:
        for m in self._maps.values():
            if isinstance(m, mmap.mmap):
                m.close()
        for fh in self._files.values():
            fh.close()
        self._maps.clear()
        self._files.clear()

    def __enter__(self) -> "MultiVolumeZip":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self):  # DataLoader workers each reopen their own handles
        state = self.__dict__.copy()
        state["_maps"], state["_files"] = {}, {}
        return state


def _zip64_extra(extra, usize: int, csize: int, off: int, disk: int) -> tuple[int, int, int, int]:
    pos = 0
    extra = bytes(extra)
    while pos + 4 <= len(extra):
        hid, hlen = struct.unpack_from("<2H", extra, pos)
        if hid == 0x0001:
            p = pos + 4
            if usize == 0xFFFFFFFF:
                (usize,) = struct.unpack_from("<Q", extra, p)
                p += 8
            if csize == 0xFFFFFFFF:
                (csize,) = struct.unpack_from("<Q", extra, p)
                p += 8
            if off == 0xFFFFFFFF:
                (off,) = struct.unpack_from("<Q", extra, p)
                p += 8
            if disk == 0xFFFF:
                (disk,) = struct.unpack_from("<L", extra, p)
            break
        pos += 4 + hlen
    return usize, csize, off, disk
