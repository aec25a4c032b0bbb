"""Models shipped as a zip split over several PyPI packages: located through the installed
distributions, read in place as one stream, extracted once with CRC checks."""

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from affectflow.io.split_archive import ConcatenatedFile, assemble_split_model, split_parts
from affectflow.models import HFModel, ModelMissing, resolve


def _zip(files: dict[str, bytes], compress=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _install(site: Path, prefix: str, archive: bytes, parts: int, skip=(), stem="model", version="0.0.1") -> list[Path]:
    """Fake installed distributions ``<prefix>-001``...: a package folder holding one byte range and
    a dist-info whose RECORD lists it (what pip leaves behind)."""
    cuts = np.linspace(0, len(archive), parts + 1).astype(int)
    out = []
    for i in range(1, parts + 1):
        if i in skip:
            continue
        pkg = f"{prefix}_{i:03d}"
        rel = f"{pkg}/input/{stem}.zip.{i:03d}"
        (site / pkg / "input").mkdir(parents=True)
        (site / rel).write_bytes(archive[cuts[i - 1]:cuts[i]])
        info = site / f"{prefix.replace('-', '_')}_{i:03d}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {prefix}-{i:03d}\nVersion: {version}\n")
        (info / "RECORD").write_text(f"{rel},,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")
        out.append(site / rel)
    return out


MODEL = {"m/config.json": b'{"model_type": "bert"}', "m/modules.json": b"[]", "m/desktop.ini": b"junk",
         "m/1_Pooling/config.json": b"{}", "m/model.safetensors": os.urandom(300_000)}


@pytest.fixture
def site(tmp_path, monkeypatch):
    s = tmp_path / "site"
    s.mkdir()
    monkeypatch.syspath_prepend(str(s))
    return s


def test_concatenated_file_reads_and_seeks_like_the_joined_bytes(tmp_path):
    rng = np.random.default_rng(0)
    blobs = [rng.bytes(n) for n in (7, 1, 5000, 0, 33)]
    paths = []
    for i, b in enumerate(blobs):
        paths.append(tmp_path / f"p{i}")
        paths[-1].write_bytes(b)
    whole = b"".join(blobs)
    with ConcatenatedFile(paths) as f:
        assert f.read() == whole
        for _ in range(200):
            a = int(rng.integers(0, len(whole) + 3))
            n = int(rng.integers(0, 200))
            f.seek(a)
            assert f.read(n) == whole[a:a + n]
        f.seek(-10, io.SEEK_END)
        assert f.read() == whole[-10:] and f.tell() == len(whole)


@pytest.mark.parametrize("parts", [1, 3, 5])
@pytest.mark.parametrize("compress", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_parts_assemble_into_the_model_folder_once(site, tmp_path, parts, compress):
    _install(site, "tiny-enc-pypi-part", _zip(MODEL, compress), parts)
    assert [(p.name, v) for p, v in split_parts("tiny-enc-pypi-part")] == [
        (f"model.zip.{i:03d}", "0.0.1") for i in range(1, parts + 1)]
    folder = assemble_split_model("tiny-enc-pypi-part", tmp_path / "store")
    assert folder == tmp_path / "store/tiny-enc-pypi-part/m"
    for name, data in MODEL.items():
        if not name.endswith("desktop.ini"):
            assert (folder.parent / name).read_bytes() == data
    assert not (folder / "desktop.ini").exists()
    marker = json.loads((folder.parent / ".complete").read_text())
    assert marker["folder"] == "m" and len(marker["parts"]) == parts
    assert not list((tmp_path / "store").glob(".*tmp*"))  # no temporary left behind
    for p, _ in split_parts("tiny-enc-pypi-part"):  # extracted once: later jobs need no parts
        p.unlink()
    assert assemble_split_model("tiny-enc-pypi-part", tmp_path / "store") == folder


def test_pypi_scheme_resolves_a_split_model_under_models_dir(site, tmp_path):
    _install(site, "tiny-enc-pypi-part", _zip(MODEL), 3)
    cfg = {"models": {"dir": str(tmp_path / "models"), "enc": {"id": "pypi:tiny-enc-pypi-part-*"}}}
    assert resolve(cfg, HFModel.from_config(cfg, "enc")) == tmp_path / "models/pypi/tiny-enc-pypi-part/m"


@pytest.mark.parametrize("skip, match", [({2}, "tiny-enc-pypi-part-002 are not installed"),
                                         ({1, 3}, "tiny-enc-pypi-part-001, tiny-enc-pypi-part-003 are not installed"),
                                         ({4}, "do not form a zip.*last part missing"),
                                         ({1, 2, 3, 4}, "no part is installed")])
def test_missing_parts_are_named(site, tmp_path, skip, match):
    _install(site, "tiny-enc-pypi-part", _zip(MODEL), 4, skip=skip)
    with pytest.raises(ModelMissing, match=match):
        assemble_split_model("tiny-enc-pypi-part", tmp_path / "store")
    assert not (tmp_path / "store/tiny-enc-pypi-part").exists()


def test_a_damaged_member_fails_its_crc_and_leaves_nothing(site, tmp_path):
    archive = bytearray(_zip(MODEL, zipfile.ZIP_STORED))
    at = bytes(archive).index(MODEL["m/model.safetensors"][:64]) + 1000
    archive[at] ^= 0xFF
    _install(site, "tiny-enc-pypi-part", bytes(archive), 3)
    with pytest.raises(ModelMissing, match="model.safetensors is damaged"):
        assemble_split_model("tiny-enc-pypi-part", tmp_path / "store")
    assert not (tmp_path / "store/tiny-enc-pypi-part").exists()
    assert not list((tmp_path / "store").glob(".*tmp*"))


@pytest.mark.parametrize("name", ["../evil/config.json", "/abs/config.json", "m/../../config.json"])
def test_members_that_leave_the_folder_are_refused(site, tmp_path, name):
    _install(site, "tiny-enc-pypi-part", _zip({**MODEL, name: b"{}"}), 2)
    with pytest.raises(ModelMissing, match="would leave the model folder"):
        assemble_split_model("tiny-enc-pypi-part", tmp_path / "store")
    assert not (tmp_path / "evil").exists()


def test_an_archive_without_a_model_folder_is_refused(site, tmp_path):
    _install(site, "tiny-enc-pypi-part", _zip({"readme.txt": b"hello"}), 2)
    with pytest.raises(ModelMissing, match="no config.json or modules.json"):
        assemble_split_model("tiny-enc-pypi-part", tmp_path / "store")


def test_upgraded_parts_are_extracted_again_and_removed_parts_keep_the_copy(site, tmp_path):
    v1 = _install(site, "tiny-enc-pypi-part", _zip({**MODEL, "m/v.json": b'{"v": 1}'}), 3)
    folder = assemble_split_model("tiny-enc-pypi-part", tmp_path / "store")
    assert (folder / "v.json").read_bytes() == b'{"v": 1}'
    for p in v1:  # pip uninstall, then a new release in two parts
        p.unlink()
    for info in site.glob("*.dist-info"):
        for f in info.iterdir():
            f.unlink()
        info.rmdir()
    assert assemble_split_model("tiny-enc-pypi-part", tmp_path / "store") == folder  # nothing installed: the copy
    site2 = site / "v2"
    site2.mkdir()
    import sys

    sys.path.insert(0, str(site2))
    try:
        _install(site2, "tiny-enc-pypi-part", _zip({**MODEL, "m/v.json": b'{"v": 2}'}), 2)
        again = assemble_split_model("tiny-enc-pypi-part", tmp_path / "store")
    finally:
        sys.path.remove(str(site2))
    assert again == folder and (again / "v.json").read_bytes() == b'{"v": 2}'
    assert len(json.loads((folder.parent / ".complete").read_text())["parts"]) == 2
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["tiny-enc-pypi-part"]


def test_leftovers_of_killed_extractions_are_swept_and_a_folder_without_marker_replaced(site, tmp_path):
    _install(site, "tiny-enc-pypi-part", _zip(MODEL), 2)
    store = tmp_path / "store"
    import socket
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname().replace("/", "_")
    gone = store / f".tiny-enc-pypi-part.tmp-{host}-{dead.pid}"
    alive = store / f".tiny-enc-pypi-part.tmp-{host}-1"  # pid 1 is alive
    (gone / "m").mkdir(parents=True)
    alive.mkdir(parents=True)
    (store / "tiny-enc-pypi-part" / "m").mkdir(parents=True)  # an interrupted replace: no marker
    (store / "tiny-enc-pypi-part" / "m" / "half.bin").write_bytes(b"x")
    folder = assemble_split_model("tiny-enc-pypi-part", store)
    assert not gone.exists() and alive.exists()  # a live writer's temporary is left alone
    assert not (folder / "half.bin").exists() and (folder / "config.json").is_file()


def test_prefix_spellings_share_one_extraction_and_errors_name_the_config_key(site, tmp_path):
    _install(site, "tiny-enc-pypi-part", _zip(MODEL), 2)
    cfg = {"models": {"dir": str(tmp_path / "models"), "a": {"id": "pypi:tiny-enc-pypi-part-*"},
                      "b": {"id": "pypi:Tiny_Enc.pypi_part-*"}, "c": {"id": "pypi:tiny-enc-pypi-part-001"},
                      "d": {"id": "pypi:nothing-here-*"}}}
    assert resolve(cfg, HFModel.from_config(cfg, "a")) == resolve(cfg, HFModel.from_config(cfg, "b"))
    assert len(list((tmp_path / "models/pypi").iterdir())) == 1
    with pytest.raises(ModelMissing, match=r"models.c: .*one part of a model split .*pypi:tiny-enc-pypi-part-\*"):
        resolve(cfg, HFModel.from_config(cfg, "c"))
    with pytest.raises(ModelMissing, match=r"^models.d: pypi:nothing-here-\*: no part is installed"):
        resolve(cfg, HFModel.from_config(cfg, "d"))


def test_an_unwritable_store_is_one_line_with_the_remedy(site, tmp_path):
    _install(site, "tiny-enc-pypi-part", _zip(MODEL), 2)
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ModelMissing, match="cannot extract into .*make models.dir writable"):
        assemble_split_model("tiny-enc-pypi-part", tmp_path / "file" / "pypi")


@pytest.mark.parametrize("marker", ["{not json", "", "[1]", '"str"', '{"parts": []}', '{"folder": 5, "parts": []}',
                                    '{"folder": "../../..", "parts": []}', '{"folder": "/etc", "parts": []}'])
def test_a_damaged_or_tampered_marker_means_extract_again(site, tmp_path, marker):
    _install(site, "tiny-enc-pypi-part", _zip(MODEL), 2)
    store = tmp_path / "store"
    folder = assemble_split_model("tiny-enc-pypi-part", store)
    (folder.parent / ".complete").write_text(marker)
    assert assemble_split_model("tiny-enc-pypi-part", store) == folder
    assert json.loads((folder.parent / ".complete").read_text())["folder"] == "m"


@pytest.mark.parametrize("files, match", [
    ({**MODEL, "x/config.json": b"{}"}, "several model folders"),
    ({"m/config.json": b"{}", "m/w.bin": b"1"}, None),
])
def test_an_ambiguous_model_folder_is_refused(site, tmp_path, files, match):
    _install(site, "tiny-enc-pypi-part", _zip(files), 2)
    if match:
        with pytest.raises(ModelMissing, match=match):
            assemble_split_model("tiny-enc-pypi-part", tmp_path / "store")
    else:
        assert assemble_split_model("tiny-enc-pypi-part", tmp_path / "store").name == "m"


def test_a_member_stored_twice_is_refused(site, tmp_path):
    buf = io.BytesIO()
    with pytest.warns(UserWarning), zipfile.ZipFile(buf, "w") as zf:
        for name, data in MODEL.items():
            zf.writestr(name, data)
        zf.writestr("m/config.json", b'{"evil": true}')
    _install(site, "tiny-enc-pypi-part", buf.getvalue(), 2)
    with pytest.raises(ModelMissing, match=r"stored twice \(\['m/config.json'\]\)"):
        assemble_split_model("tiny-enc-pypi-part", tmp_path / "store")


def test_the_copy_python_would_use_wins_when_parts_are_installed_twice(site, tmp_path, monkeypatch):
    later = tmp_path / "later"
    later.mkdir()
    monkeypatch.syspath_prepend(str(site))  # site first on sys.path, later after it
    import sys

    sys.path.append(str(later))
    try:
        _install(site, "tiny-enc-pypi-part", _zip({**MODEL, "m/v.json": b"2"}), 2, version="2")
        _install(later, "tiny-enc-pypi-part", _zip({**MODEL, "m/v.json": b"1"}), 2, version="1")
        folder = assemble_split_model("tiny-enc-pypi-part", tmp_path / "store")
        assert (folder / "v.json").read_bytes() == b"2"
        _install(later / "more", "tiny-enc-pypi-part", _zip({**MODEL, "m/v.json": b"1"}), 3, version="1")
        sys.path.append(str(later / "more"))  # v1's third part, found after v2's two: not one release
        with pytest.raises(ModelMissing, match="parts of different releases"):
            assemble_split_model("tiny-enc-pypi-part", tmp_path / "store2")
    finally:
        for p in (str(later), str(later / "more")):
            if p in sys.path:
                sys.path.remove(p)


def test_set_aside_copies_of_killed_replacements_are_swept(site, tmp_path):
    import socket
    import subprocess

    _install(site, "tiny-enc-pypi-part", _zip(MODEL), 2)
    dead = subprocess.Popen(["true"])
    dead.wait()
    old = tmp_path / "store" / f".tiny-enc-pypi-part.old-{socket.gethostname().replace('/', '_')}-{dead.pid}"
    (old / "m").mkdir(parents=True)
    assemble_split_model("tiny-enc-pypi-part", tmp_path / "store")
    assert not old.exists()
