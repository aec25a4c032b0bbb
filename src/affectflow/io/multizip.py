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

_LOCAL_SHORT = struct.Struct("<4s22x2H")  # signature, name length, extra length
_EOCD = struct.Struct("<4s4H2LH")  # 22 bytes
_Z64LOC = struct.Struct("<4sLQL")  # 20 bytes
_Z64EOCD = struct.Struct("<4sQ2H2L4Q")  # 56 bytes

METHOD_STORED, METHOD_DEFLATE, METHOD_BZIP2 = 0, 8, 12
_SLACK = 1 << 16  # compressed bytes allowed past max_size (deflate's stored-block overhead is far less)

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
        """Whether the entry is a folder (its name ends with ``/``)."""
        return self.name.endswith("/")


def volume_paths(last_volume: Path, n_disks: int) -> list[Path]:
    """``x.z01 … x.z(n-1), x.zip``: the naming Info-ZIP uses for split archives."""
    last_volume = Path(last_volume)
    stem = last_volume.with_suffix("")
    return [Path(f"{stem}.z{i:02d}") for i in range(1, n_disks)] + [last_volume]


MAX_GAP = 65535 + 24 + 4  # largest local extra field + data descriptor (+ the split marker on .z01)


def member_layout(directory: "pa.Table", sizes: list[int | None]) -> dict[str, "np.ndarray"]:
    """Where each directory entry's bytes lie, and which entries are stray or overlap.

    Args:
        directory: columns ``name, disk, offset, compressed_size`` (one row per entry).
        sizes: each volume's size in bytes (None when missing).

    Returns:
        numpy arrays, one value per entry, in the table's order: ``disk``, ``offset``, ``length``
        (header + name + data: a lower bound, the local extra field is not known here),
        ``stray`` (a disk number outside the set, or a header past its volume's end, more than
        ``MAX_GAP`` beyond where the entries before it on that volume end: no real member is
        there, the entry is damaged) and
        ``overlap`` (its bytes overlap another entry's on the same volume: a damaged entry, or a
        crafted archive; each such member is still read through its own header and CRC).
    """
    import numpy as np
    import pyarrow.compute as pc

    from .arrays import to_numpy

    disk = to_numpy(directory["disk"]).astype(np.int64)
    offset = to_numpy(directory["offset"]).astype(np.int64)
    length = 30 + to_numpy(pc.binary_length(directory["name"])).astype(np.int64) \
        + to_numpy(directory["compressed_size"]).astype(np.int64)
    n = len(disk)
    size = np.asarray([-1 if s is None else s for s in sizes], np.int64)
    vol = size[np.clip(disk, 0, len(size) - 1)] if len(size) else np.full(n, -1)
    order = np.lexsort((offset, disk))
    d, o, ln = disk[order], offset[order], length[order]
    same = np.concatenate([[False], d[1:] == d[:-1]])
    ends = o + ln
    # where the entries before each one on its volume end: a running maximum restarted at each
    # volume (volumes are < 2^40 bytes, so shifting by the disk number keeps volumes apart)
    shift = d << 40
    run = np.maximum.accumulate(ends + shift) - shift if n else ends
    prev_end = np.zeros(n, np.int64)
    prev_end[1:] = np.where(same[1:], run[:-1], 0)
    stray_s = ((vol[order] >= 0) & (o >= vol[order]) & (o - prev_end > MAX_GAP)) | (d < 0) | (d >= len(size))
    overlap_s = np.zeros(n, bool)
    if n > 1:
        overlap_s[1:] |= same[1:] & (o[1:] < prev_end[1:])
        overlap_s[:-1] |= same[1:] & (o[1:] < ends[:-1])  # and the entry it runs into
    stray, overlap = np.empty(n, bool), np.empty(n, bool)
    stray[order], overlap[order] = stray_s, overlap_s & ~stray_s
    return {"disk": disk, "offset": offset, "length": length, "stray": stray, "overlap": overlap}


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
        self._check_not_joined(size - len(tail) + pos, disk_no, cd_disk, cd_size, cd_offset)
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

    def _check_not_joined(self, eocd_at: int, disk_no: int, cd_disk: int, cd_size: int, cd_offset: int) -> None:
        """Refuse a split set joined with ``cat`` (or any file that is not the last volume), naming
        the remedy: its end record still describes the last volume of a set, so every offset in it
        is wrong for the joined file, and its ``.zNN`` siblings are (usually) gone."""
        if disk_no == 0 or disk_no == 0xFFFF:  # one volume, or the count lives in the ZIP64 records
            return
        siblings = volume_paths(self.last_volume, disk_no + 1)[:-1]
        if any(p.exists() for p in siblings):
            return  # a set in place (a missing volume among them is check_volumes' to report)
        with open(self.last_volume, "rb") as fh:
            head = fh.read(4)
        joined = head == b"PK\x07\x08"  # the split marker Info-ZIP writes only at the start of .z01
        if not joined and cd_disk == disk_no and 0xFFFFFFFF not in (cd_size, cd_offset):
            # the directory ends where the end records begin (after a ZIP64 record pair, if any):
            # in a last volume it starts at cd_offset; in a joined file, later by the volumes before
            starts = [eocd_at - cd_size, eocd_at - 76 - cd_size]
            joined = cd_offset not in starts and any(st > cd_offset for st in starts)
        if joined:
            raise ArchiveError(
                f"{self.last_volume}: this file holds a split archive's {disk_no + 1} volumes joined end to end "
                f"(e.g. with cat): its directory still addresses volumes {siblings[0].name} … {self.last_volume.name}, "
                "which are not beside it. Point the config at the original last volume (.zip) with its .z01… siblings "
                f"in the same folder, or join properly with `zip -s 0 {siblings[0].with_suffix('.zip').name} "
                "--out joined.zip` (Info-ZIP rewrites the offsets).")

    def central_directory(self) -> "pa.Table":
        """Every central-directory entry, in directory order, as a table.

        Columns: ``name, disk, offset, compressed_size, uncompressed_size, method, crc, flags``.
        Columnar and vectorised (see :func:`parse_central_directory`) because the real archives
        hold 10-13M entries: a Python object per entry would cost gigabytes and a minute.

        Returns:
            A table of ``MEMBER_FIELDS`` (``name`` string, the others int64), one row per entry.

        Raises:
            ArchiveError: the directory is malformed.
            VolumeError: the volume holding it is missing or truncated.
        """
        buf = self._read_span(self.cd_disk, self.cd_offset, self.cd_size)
        try:
            return parse_central_directory(buf, self.n_entries, str(self.last_volume))
        finally:
            if isinstance(buf, memoryview):
                buf.release()

    def members(self) -> list[Member]:
        """Every entry as :class:`Member` objects (convenient for small archives and tests)."""
        t = self.central_directory().to_pydict()
        return [Member(*row) for row in zip(*(t[k] for k in MEMBER_FIELDS))]

    # -- volumes -----------------------------------------------------------------------------
    def volume_sizes(self) -> list[int | None]:
        """Bytes of each volume in disk order, None for a volume that is missing."""
        return [p.stat().st_size if p.exists() else None for p in self.volumes]

    def check_volumes(self, directory: "pa.Table | None" = None) -> dict[int, str]:
        """Problems per disk number: ``{disk: "missing" | "truncated: ..."}``.

        Volume sizes alone cannot tell a truncated volume: Info-ZIP never splits a local header,
        so it closes a volume early when the next header does not fit. What must hold is that
        each member's bytes (at least header + name + data) end before the next member starts,
        counting positions across volumes by their actual sizes; a truncated volume shifts every
        later position back and breaks that order at its boundary. Cuts smaller than a header's
        extra field slip through here and surface as a CRC error when the member is read.

        Only the members a volume really holds count: an entry whose offset lies past its volume's
        end, far beyond where the members before it end (a damaged or crafted entry, see
        :func:`member_layout`), is that member's fault (``read_error`` when it is read), and two
        entries overlapping inside one volume are not a truncation either.
        """
        import numpy as np

        sizes = self.volume_sizes()
        problems: dict[int, str] = {d: "missing" for d, s in enumerate(sizes) if s is None}
        if directory is not None and directory.num_rows:
            present = np.asarray([sz is not None for sz in sizes])
            starts = np.concatenate([[0], np.cumsum([sz or 0 for sz in sizes])]).astype(np.int64)
            lay = member_layout(directory, sizes)
            keep = ~lay["stray"]
            dk = np.append(lay["disk"][keep], self.cd_disk)
            off = np.append(lay["offset"][keep], self.cd_offset)
            ln = np.append(lay["length"][keep], 0)
            order = np.lexsort((off, dk))
            dk, begin, ln = dk[order], starts[dk[order]] + off[order], ln[order]
            # compare each member with the next only where every volume between them is present
            missing_before = np.concatenate([[0], np.cumsum(~present)])
            intact = missing_before[dk[1:] + 1] - missing_before[dk[:-1]] == 0
            bad = intact & (dk[:-1] != dk[1:]) & (begin[:-1] + ln[:-1] > begin[1:])
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
            m = memoryview(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)) if size else memoryview(b"")
            self._files[disk] = fh
            self._maps[disk] = m
        return m

    def _read_span(self, disk: int, offset: int, length: int) -> memoryview | bytes:
        """``length`` bytes from (disk, offset), continuing into the following volumes."""
        m = self._map(disk)
        if offset + length <= len(m):
            return m[offset : offset + length]
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

    def _span_or_fault(self, name: str, disk: int, offset: int, length: int):
        """:meth:`_read_span` for a member's own bytes: running past the last volume is the member's fault."""
        try:
            return self._read_span(disk, offset, length)
        except VolumeError as exc:
            if exc.problem != "truncated":
                raise
            raise MemberError("read_error", f"{name}: its {length} bytes at volume {self.volumes[disk].name} offset "
                                            f"{offset} run past the end of the archive; its directory entry is damaged") from None

    def read(self, member: Member, max_size: int | None = None) -> bytes:
        """The member's uncompressed bytes, CRC-checked.

        Args:
            member: the central-directory entry.
            max_size: refuse a member that declares more bytes than this (None: no limit).

        Returns:
            The uncompressed bytes (exactly ``uncompressed_size`` of them).

        Raises:
            MemberError: a bad member (its ``status``: ``too_large``, ``unsupported``, ``read_error``);
                a per-record fault, the caller records it and goes on.
            VolumeError: the volume holding it is missing or truncated (a shard-level fault).
        """
        return self.read_at(member.name, member.disk, member.offset, member.compressed_size,
                            member.uncompressed_size, member.method, member.crc, member.flags, max_size)

    def read_at(self, name: str, disk: int, offset: int, compressed_size: int, uncompressed_size: int,
                method: int, crc: int, flags: int, max_size: int | None = None) -> bytes:
        """:meth:`read` from the directory fields themselves (the ingest loop's hot path: no objects).

        Inflation is bounded by the declared size: a member whose directory entry lies about its
        size stops one byte past it and is reported, never inflated further.

        Returns and raises as :meth:`read`.
        """
        if max_size is not None and (uncompressed_size > max_size or compressed_size > max_size + _SLACK):
            raise MemberError("too_large", f"{name}: declares {uncompressed_size} bytes ({compressed_size} compressed), "
                                           f"past the limit {max_size}; not read")
        if flags & 0x1:
            raise MemberError("unsupported", f"{name}: encrypted member")
        if not 0 <= disk < self.n_disks:
            raise MemberError("read_error", f"{name}: the directory places it on volume {disk + 1}, but the set has "
                                            f"{self.n_disks}; its directory entry is damaged")
        m = self._maps.get(disk)
        if m is None:
            m = self._map(disk)
        if offset + 30 <= len(m):  # the common case: header and data inside one volume
            sig, nlen, xlen = _LOCAL_SHORT.unpack_from(m, offset)
        elif offset >= len(m):
            # The volume's size was checked against every member's place (check_volumes) before any
            # read: a header past its end is this entry's fault, not a truncated volume.
            raise MemberError("read_error", f"{name}: local header offset {offset} is past the end of volume "
                                            f"{self.volumes[disk].name} ({len(m)} bytes); its directory entry is damaged")
        else:
            sig, nlen, xlen = _LOCAL_SHORT.unpack(bytes(self._span_or_fault(name, disk, offset, 30)))
        if sig != LOCAL_SIG:
            raise MemberError("read_error", f"{name}: no local header at volume {self.volumes[disk].name} offset {offset}")
        local = m[offset + 30 : offset + 30 + nlen] if offset + 30 + nlen <= len(m) else self._span_or_fault(name, disk, offset + 30, nlen)
        if local != name.encode("utf-8", "surrogateescape") and _decode_name(bytes(local), flags) != name:
            # two directory entries sharing one local header: each member is read only through its own
            raise MemberError("read_error", f"{name}: the header at volume {self.volumes[disk].name} offset {offset} "
                                            f"belongs to {_decode_name(bytes(local), flags)!r}; its directory entry is damaged")
        start = offset + 30 + nlen + xlen
        end = start + compressed_size
        data = m[start:end] if end <= len(m) else self._span_or_fault(name, disk, start, compressed_size)
        if method == METHOD_DEFLATE:
            try:
                out = zlib.decompressobj(-15).decompress(data, uncompressed_size + 1)
            except zlib.error as exc:
                raise MemberError("read_error", f"{name}: deflate stream corrupt ({exc})") from None
        elif method == METHOD_STORED:
            out = bytes(data)
        elif method == METHOD_BZIP2:
            try:
                out = bz2.BZ2Decompressor().decompress(data, uncompressed_size + 1)
            except (OSError, ValueError) as exc:
                raise MemberError("read_error", f"{name}: bzip2 stream corrupt ({exc})") from None
        else:
            raise MemberError("unsupported", f"{name}: compression method {method} is not supported")
        if len(out) != uncompressed_size:
            more = " or more" if len(out) > uncompressed_size else ""
            raise MemberError("read_error", f"{name}: {len(out)} bytes{more} inflated, directory says {uncompressed_size}")
        if zlib.crc32(out) != crc:
            raise MemberError("read_error", f"{name}: CRC mismatch (corrupt data)")
        return out

    def close(self) -> None:
        """Unmap and close every volume (the archive can be read again: volumes map on demand)."""
        for m in self._maps.values():
            mm = m.obj
            m.release()
            if isinstance(mm, mmap.mmap):
                try:
                    mm.close()
                except BufferError:  # a slice is still referenced somewhere: the GC unmaps it
                    pass
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


_CD_SIG = 0x02014B50  # b"PK\x01\x02" read as little-endian uint32
_CHUNK = 1 << 26


def _unaligned(buf, dtype: str, length: int) -> "np.ndarray":
    """A read-only view where element ``i`` is the ``dtype`` value starting at byte ``i``.

    Zip records are packed with no alignment, so fields are gathered with ``view[pos + k]``
    from this stride-1 view instead of being unpacked one record at a time.
    """
    import numpy as np

    size = np.dtype(dtype).itemsize
    return np.ndarray(shape=(max(length - size + 1, 0),), dtype=dtype, buffer=buf, strides=(1,))


def _entry_positions(buf, n: int, where: str) -> "np.ndarray":
    """Byte offsets of the ``n`` central-directory records in ``buf``.

    Records have variable length, so in principle this is a sequential walk. The fast path
    finds every ``PK\x01\x02`` signature at once and accepts them when they chain exactly
    (each record ends where the next begins, the last at the end); a name or extra field that
    happens to contain the signature breaks the chain, and then the exact walk runs instead.
    """
    import numpy as np

    length = len(buf)
    u16, u32 = _unaligned(buf, "<u2", length), _unaligned(buf, "<u4", length)
    cands = np.concatenate([np.flatnonzero(u32[s : s + _CHUNK] == _CD_SIG) + s for s in range(0, len(u32), _CHUNK)]
                           or [np.zeros(0, np.int64)]).astype(np.int64)
    cands = cands[cands + 46 <= length]
    if len(cands) == n:
        nxt = cands + 46 + u16[cands + 28] + u16[cands + 30] + u16[cands + 32]
        if n == 0 or (cands[0] == 0 and nxt[-1] == length and np.array_equal(nxt[:-1], cands[1:])):
            return cands
    pos = np.empty(n, np.int64)
    p = 0
    walk = struct.Struct("<4s24x3H").unpack_from
    for i in range(n):
        if p + 46 > length:
            raise ArchiveError(f"{where}: central directory corrupt at entry {i} (ends early)")
        sig, nlen, xlen, clen = walk(buf, p)
        if sig != CDIR_SIG:
            raise ArchiveError(f"{where}: central directory corrupt at entry {i}")
        pos[i] = p
        p += 46 + nlen + xlen + clen
    return pos


def parse_central_directory(buf, n: int, where: str = "archive") -> "pa.Table":
    """The ``n`` records of a central directory held in ``buf``, as a table (see ``MEMBER_FIELDS``).

    Vectorised with numpy: record positions (see :func:`_entry_positions`), every fixed field
    gathered from unaligned views, ZIP64 extra fields resolved in bulk where the ZIP64 block comes
    first (as Info-ZIP writes it), and names built as an Arrow string-view array over the buffer,
    then copied once into a string column (UTF-8 checked in C++). Names that are not UTF-8 fall
    back to cp437 per name, as zip tools do.
    """
    import numpy as np
    import pyarrow as pa

    from .arrays import numbers

    length = len(buf)
    pos = _entry_positions(buf, n, where)
    u8 = np.frombuffer(buf, np.uint8)
    u16, u32, u64 = (_unaligned(buf, t, length) for t in ("<u2", "<u4", "<u8"))
    flags, method, nlen, xlen = u16[pos + 8], u16[pos + 10], u16[pos + 28], u16[pos + 30]
    crc, csize, usize = u32[pos + 16], u32[pos + 20].astype(np.int64), u32[pos + 24].astype(np.int64)
    disk, offset = u16[pos + 34].astype(np.int64), u32[pos + 42].astype(np.int64)

    z_u, z_c, z_o, z_d = usize == 0xFFFFFFFF, csize == 0xFFFFFFFF, offset == 0xFFFFFFFF, disk == 0xFFFF
    need = np.flatnonzero(z_u | z_c | z_o | z_d)
    if len(need):
        ext = pos[need] + 46 + nlen[need]
        nbytes = 8 * (z_u[need].astype(np.int64) + z_c[need] + z_o[need]) + 4 * z_d[need]
        first = (xlen[need] >= 4) & (np.minimum(ext + 4, length - 2) == ext + 4)
        hid = np.where(first, u16[np.minimum(ext, length - 2)], 0)
        hlen = np.where(first, u16[np.minimum(ext + 2, length - 2)], 0)
        bulk = first & (hid == 1) & (hlen >= nbytes) & (xlen[need] >= 4 + nbytes)
        rows, p = need[bulk], ext[bulk] + 4
        for flag, col, size in ((z_u, usize, 8), (z_c, csize, 8), (z_o, offset, 8), (z_d, disk, 4)):
            hit = flag[rows]
            col[rows[hit]] = (u64 if size == 8 else u32)[p[hit]].astype(np.int64)
            p = p + size * hit
        for i in need[~bulk]:  # ZIP64 block not first: parse this entry's extra field in Python
            e = int(pos[i]) + 46 + int(nlen[i])
            usize[i], csize[i], offset[i], disk[i] = _zip64_extra(
                buf[e : e + int(xlen[i])], int(usize[i]), int(csize[i]), int(offset[i]), int(disk[i]))

    names = _names(buf, u8, pos + 46, nlen, flags)
    cols = {"name": names, "disk": disk.astype(np.int32), "offset": offset, "compressed_size": csize,
            "uncompressed_size": usize, "method": method.astype(np.int16), "crc": crc, "flags": flags}
    types = (pa.string(), pa.int32(), pa.int64(), pa.int64(), pa.int64(), pa.int16(), pa.uint32(), pa.uint16())
    return pa.table({k: v if k == "name" else numbers(v, t) for (k, v), t in zip(cols.items(), types)})


def _names(buf, u8, start, nlen, flags) -> "pa.Array":
    """Member names: an Arrow binary-view array pointing into ``buf``, cast (copied) to strings."""
    import numpy as np
    import pyarrow as pa

    n = len(start)
    views = np.zeros((n, 16), np.uint8)
    views[:, 0:4] = nlen.astype("<i4").view(np.uint8).reshape(n, 4)
    short = nlen <= 12
    # short names are stored inline in the view; long ones as (prefix, buffer 0, offset)
    for k in range(12):
        idx = np.minimum(start + k, max(len(u8) - 1, 0))
        if k < 4:
            views[:, 4 + k] = np.where(k < nlen, u8[idx], 0)
        else:
            views[:, 4 + k] = np.where(short & (k < nlen), u8[idx], views[:, 4 + k])
    long = np.flatnonzero(~short)
    if len(long):
        views[long, 8:12] = 0
        views[long, 12:16] = start[long].astype("<i4").view(np.uint8).reshape(-1, 4)
    if len(buf) >= 1 << 31:
        raise ArchiveError(f"central directory of {len(buf)} bytes: over the 2 GiB a name view can address")
    raw = pa.Array.from_buffers(pa.binary_view(), n, [None, pa.py_buffer(views), pa.py_buffer(buf)])
    try:
        return raw.cast(pa.string())
    except pa.ArrowInvalid:  # some names are not UTF-8: decode those as zip tools do
        return pa.array([_decode_name(b, int(f)) for b, f in zip(raw.to_pylist(), flags)], pa.string())
