"""The ecosystem's conventions: licence, citation, Python version, pins, the README's SQL."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements/constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def test_python_version_is_stated_alike_everywhere():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    assert sys.version_info >= (3, 11)  # the version these pins were installed and tested with
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    text = (REPO / "environment.yml").read_text()
    assert "-c requirements/constraints.txt" in text  # conda's pip installs the same pins


def test_every_dependency_is_pinned():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    pins = _pins()
    for dep in deps:
        name = re.split(r"[<>=\[; ]", dep)[0]
        assert re.sub(r"[-_.]+", "-", name).lower() in pins, f"{name} is not pinned in requirements/constraints.txt"
    assert "pytz" in pins and "duckdb" in pins  # duckdb returns timezone timestamps through pytz


def test_licence_and_citation():
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"] == "MIT"
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    refs = {r["title"]: r for r in cff["references"]}
    assert refs["Multimodal Post Attentive Profiling for Influencer Marketing"]["year"] == 2020  # Kim et al., WWW
    assert refs["Dreaddit: A Reddit Dataset for Stress Analysis in Social Media"]["year"] == 2019
    assert refs["CREMA-D: Crowd-sourced Emotional Multimodal Actors Dataset"]["year"] == 2014
    assert all(r["authors"] and r["doi"] for r in refs.values())


def test_readme_sql_with_the_array_cast_runs_in_duckdb(tmp_path):
    """The README's cast (embedding::FLOAT[dim]) is what duckdb's array functions need; timestamps
    with a time zone come back (through pytz)."""
    import duckdb

    from affectflow.io.arrays import embedding_array

    readme = (REPO / "README.md").read_text()
    assert "text_embedding::FLOAT[512]" in readme
    vec = np.random.default_rng(0).random((3, 512), dtype=np.float32)
    t = pa.table({"post_id": ["a", "b", "c"], "text_embedding": embedding_array(vec, np.ones(3, bool), 512),
                  "image_embedding": embedding_array(vec, np.ones(3, bool), 512),
                  "timestamp": pa.array([0, 1, 2], pa.timestamp("ms", tz="UTC"))})
    pq.write_table(t, tmp_path / "c.parquet")
    con = duckdb.connect()
    got = con.sql(f"SELECT array_cosine_similarity(text_embedding::FLOAT[512], image_embedding::FLOAT[512]) "
                  f"FROM '{tmp_path}/c.parquet'").fetchall()
    assert [round(x, 5) for (x,) in got] == [1.0, 1.0, 1.0]
    ((ts,),) = con.sql(f"SELECT timestamp FROM '{tmp_path}/c.parquet' LIMIT 1").fetchall()
    assert ts.tzinfo is not None
