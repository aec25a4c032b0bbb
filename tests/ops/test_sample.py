"""The bundled sample: deterministic, in the published layout, with every planted fault present."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from affectflow.instagram.post_parse import COMMENT_KEYS, unwrap
from affectflow.io.multizip import MultiVolumeZip
from affectflow.ops.sample import SPECIAL_CAPTIONS, SampleSpec, make_instagram, make_sample

REPO = Path(__file__).resolve().parents[2]


def _sample_cli(out: Path, seed: int, hashseed: str) -> None:
    """``affectflow sample`` in a fresh interpreter (its own string-hash salt)."""
    env = {**os.environ, "PYTHONHASHSEED": hashseed, "PYTHONPATH": str(REPO / "src")}
    subprocess.run([sys.executable, "-m", "affectflow", "sample", str(out), "--seed", str(seed),
                    "--influencers", "3", "--posts-per-influencer", "40"], check=True, env=env, capture_output=True)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path):
    _sample_cli(tmp_path / "a", 7, "1")
    _sample_cli(tmp_path / "b", 7, "2")
    _sample_cli(tmp_path / "c", 8, "1")
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys()
    changed = {k for k in a if a[k] != c[k]}
    assert {"instagram/Post_metadata/posts_info.zip", "instagram/JSON-Image_files_mapping.txt",
            "dreaddit/dreaddit-train.csv", "cremad/processedResults/tabulatedVotes.csv"} <= changed


@pytest.fixture(scope="module")
def joined(sample_dir, tmp_path_factory):
    """Both archives joined by Info-ZIP (``zip -s 0``) and opened with Python's zipfile: an
    independent reader to check the sample against."""
    out = tmp_path_factory.mktemp("joined")
    zips = {}
    for kind, rel in (("info", "Post_metadata/posts_info.zip"), ("image", "Post_images/posts_image.zip")):
        dst = out / f"{kind}.zip"
        subprocess.run(["zip", "-q", "-s", "0", str(sample_dir / "instagram" / rel), "--out", str(dst)], check=True)
        zips[kind] = zipfile.ZipFile(dst)
    yield zips
    for z in zips.values():
        z.close()


@pytest.fixture(scope="module")
def planted(sample_dir):
    return json.loads((sample_dir / "SAMPLE.json").read_text())["instagram"]["planted"]


def _mapping(sample_dir: Path) -> list[str]:
    return (sample_dir / "instagram" / "JSON-Image_files_mapping.txt").read_text().splitlines()


def test_published_layout(sample_dir):
    ig = sample_dir / "instagram"
    for folder, stem in (("Post_metadata", "posts_info"), ("Post_images", "posts_image")):
        names = sorted(p.name for p in (ig / folder).iterdir())
        assert names[-1] == f"{stem}.zip" and len(names) >= 2
        assert names[:-1] == [f"{stem}.z{i:02d}" for i in range(1, len(names))]
        assert all((ig / folder / n).stat().st_size <= 65536 for n in names)
    assert (ig / "influencers.txt").read_text().splitlines()[0] == "Username\tCategory\t#Followers\t#Followees\t#Posts"
    assert _mapping(sample_dir)[0] == "influencer_name\tJSON_PostMetadata_file_name\tImage_file_name"
    with MultiVolumeZip(ig / "Post_metadata" / "posts_info.zip") as info, MultiVolumeZip(ig / "Post_images" / "posts_image.zip") as img:
        info_names = [m.name for m in info.members()]
        img_names = [m.name for m in img.members()]
    safe = [n for n in info_names if not n.startswith("../")]
    assert all(re.fullmatch(r"info/\d\d_[a-z]+-\d{19}\.info", n) for n in safe)
    assert all(re.fullmatch(r"image/\d\d_[a-z]+-\d{19}(_\d)?\.jpg", n) for n in img_names)
    dd = sample_dir / "dreaddit"
    train, test = (dd / "dreaddit-train.csv").read_text(), (dd / "dreaddit-test.csv").read_text()
    assert train.split(",", 1)[0] == "subreddit" and test.split(",", 1)[0] == "id"


def test_archives_are_valid_for_standard_tools(sample_dir, joined):
    """unzip's own test passes on the joined archives, and zipfile reads every member."""
    for z in joined.values():
        assert z.testzip() is None
        subprocess.run(["unzip", "-tq", z.filename], check=True, capture_output=True)


def test_every_planted_fault_is_present(sample_dir, joined, planted):
    info, image = joined["info"], joined["image"]
    infos = {n.split("/", 1)[1].rsplit(".", 1)[0]: n for n in info.namelist() if n.startswith("info/")}
    images = {n.split("/", 1)[1] for n in image.namelist()}
    lines = _mapping(sample_dir)
    mapped = {f"{ln.split(chr(9))[0]}-{ln.split(chr(9))[1].rsplit('.', 1)[0]}": ln for ln in lines[1:] if ln.count("\t") == 2}
    mapped_images = {f"{ln.split(chr(9))[0]}-{n}" for ln in lines[1:] if ln.count("\t") == 2
                     for n in re.findall(r"'([^']*)'", ln.split("\t")[2])}
    influencers = {ln.split("\t")[0] for ln in (sample_dir / "instagram" / "influencers.txt").read_text().splitlines()[2:]}

    for pid in planted["json_corrupt"]:
        with pytest.raises(json.JSONDecodeError):
            json.loads(info.read(infos[pid]))
    for pid in planted["json_empty"]:
        assert info.read(infos[pid]) == b""
    for pid in planted["json_invalid"]:
        assert isinstance(json.loads(info.read(infos[pid])), list)
    for pid in planted["too_large"]:
        zi = info.getinfo(infos[pid])
        assert zi.file_size > 1 << 20 and zi.file_size > 100 * zi.compress_size
    for pid in planted["json_missing"]:
        assert pid in mapped and pid not in infos
    for pid in planted["unmapped"]:
        assert pid in infos and pid not in mapped
    for pid in planted["mapping_malformed"]:
        assert not re.fullmatch(r"\[('[^']*'(, )?)*\]", mapped[pid].split("\t")[2])
    for name in planted["unsafe_name"]:
        assert name.startswith("member:../") and name[len("member:"):] in info.namelist()
    for name in planted["missing_images"]:
        assert name in mapped_images and name not in images
    for name in planted["orphan_image"]:
        assert name in image.namelist() and name.split("/", 1)[1] not in mapped_images
    for pid in planted["duplicate_rows"]:
        assert sum(1 for ln in lines if ln == mapped[pid]) == 2
    for user in planted["unknown_influencer"]:
        assert user not in influencers and any(ln.startswith(user + "\t") for ln in lines)
    assert "lonely_row_without_tabs" in lines  # a row without fields

    def img(name):
        return image.read("image/" + name)

    for name in planted["empty_image"]:
        assert img(name) == b""
    for name in planted["corrupt_image"]:
        with pytest.raises(OSError):
            Image.open(io.BytesIO(img(name))).load()
    for name, mode in [(n, "CMYK") for n in planted["cmyk_image"]] + [(n, "L") for n in planted["gray_image"]]:
        assert Image.open(io.BytesIO(img(name))).mode == mode
    for name in planted["png_image"]:
        assert img(name).startswith(b"\x89PNG")
    for name in planted["bomb_image"]:
        with pytest.raises(Image.DecompressionBombError, match="3600000000 pixels"):  # 60000 x 60000
            Image.open(io.BytesIO(img(name)))


def test_post_variety(joined, sample_dir):
    """Multi-image posts, videos, all three comment keys, wrapped and bare objects, special captions."""
    info = joined["info"]
    nodes = []
    for n in info.namelist():
        try:
            obj = json.loads(info.read(n))
        except ValueError:
            continue
        if isinstance(obj, dict):
            nodes.append((obj, unwrap(obj)))
    assert {k for _, node in nodes for k in COMMENT_KEYS if k in node} == set(COMMENT_KEYS)
    assert any("graphql" in obj for obj, _ in nodes) and any("graphql" not in obj for obj, _ in nodes)
    types = {node["__typename"] for _, node in nodes}
    assert types == {"GraphImage", "GraphSidecar", "GraphVideo"}
    assert all(node["is_video"] == (node["__typename"] == "GraphVideo") for _, node in nodes)
    captions = {e["node"]["text"] for _, node in nodes for e in node["edge_media_to_caption"]["edges"]}
    assert set(SPECIAL_CAPTIONS) - {""} <= captions
    assert any(node["edge_media_to_caption"]["edges"] == [] for _, node in nodes)  # no caption at all
    sidecars = [ln for ln in _mapping(sample_dir) if ln.count("'") >= 4]
    assert sidecars, "multi-image posts are listed with several images"


def test_spec_scales(tmp_path):
    """A bigger sample with smaller volumes (as the volume-damage tests use) keeps the layout."""
    info = make_instagram(tmp_path, SampleSpec(seed=1, influencers=4, posts_per_influencer=60, split_size="64k"))
    assert info["posts"] == 240
    volumes = sorted((tmp_path / "Post_metadata").iterdir())
    assert len(volumes) >= 3


def test_make_sample_writes_summary(tmp_path):
    info = make_sample(tmp_path, SampleSpec(influencers=2, posts_per_influencer=30, dreaddit_train=4, dreaddit_test=2))
    summary = json.loads((tmp_path / "SAMPLE.json").read_text())
    assert summary["instagram"]["posts"] == info["instagram"]["posts"] == 60
    assert (summary["dreaddit"]["train"], summary["dreaddit"]["test"]) == (4, 2)


def test_too_small_a_sample_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 51 posts"):
        make_instagram(tmp_path, SampleSpec(influencers=2, posts_per_influencer=3))
