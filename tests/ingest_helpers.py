"""Independent views of the sample for the ingestion tests: Info-ZIP joins the volumes and Python's
zipfile reads them, so expectations never come from the code under test."""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

import yaml

ARCHIVES = {"info": "Post_metadata/posts_info.zip", "image": "Post_images/posts_image.zip"}


def join_archives(instagram: Path, out: Path) -> dict[str, zipfile.ZipFile]:
    zips = {}
    for kind, rel in ARCHIVES.items():
        dst = out / f"{kind}.zip"
        subprocess.run(["zip", "-q", "-s", "0", str(instagram / rel), "--out", str(dst)], check=True)
        zips[kind] = zipfile.ZipFile(dst)
    return zips


def mapping_rows(instagram: Path) -> list[tuple[int, list[str]]]:
    """(line number, tab-separated fields) of every data line of the mapping file."""
    lines = (instagram / "JSON-Image_files_mapping.txt").read_text().splitlines()
    return [(i, ln.split("\t")) for i, ln in enumerate(lines, 1) if i > 1 and ln.strip()]


def post_key(user: str, file: str) -> str:
    return f"{user}-{file.rsplit('.', 1)[0] if '.' in file else file}"


def expected_post_ids(instagram: Path, info: zipfile.ZipFile) -> set[str]:
    """Every post the archive or the mapping names: the rows ingestion must produce, once each."""
    ids = set()
    for n in info.namelist():
        base = n.rsplit("/", 1)[-1]
        if ".." in n.split("/") or n.startswith("/"):
            ids.add(f"member:{n}")
        else:
            user, file = base.split("-", 1)
            ids.add(post_key(user, file))
    for _, f in mapping_rows(instagram):
        if len(f) >= 2 and f[0].strip() and f[1].strip():
            ids.add(post_key(f[0].strip(), f[1].strip()))
    return ids


def mapped_images(instagram: Path) -> dict[str, list[str]]:
    """Post key -> image names, for the well-formed mapping rows."""
    out = {}
    for _, f in mapping_rows(instagram):
        if len(f) == 3 and re.fullmatch(r"\[('[^']*'(, )?)*\]", f[2]):
            out.setdefault(post_key(f[0], f[1]), re.findall(r"'([^']*)'", f[2]))
    return out


def write_config(path: Path, results: Path, logs: Path, instagram: Path, shards: int, **extra) -> Path:
    path.write_text(yaml.safe_dump({"results": str(results), "logs": str(logs),
                                    "instagram": {"root": str(instagram), "shards": shards, **extra}}))
    return path
