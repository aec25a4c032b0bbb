"""Configuration: schema errors name the key; extra config files override nested keys only."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import run_snakemake

from affectflow import config as C
from affectflow.instagram.config import InstagramConfig


@pytest.mark.parametrize("cfg,key,words", [
    ({"instagram": {"shards": 0}}, "instagram.shards", "less than the minimum of 1"),
    ({"instagram": {"shards": "many"}}, "instagram.shards", "is not of type 'integer'"),
    ({"instagram": {"shardz": 3}}, "instagram", "unknown key 'instagram.shardz' (did you mean 'instagram.shards'?)"),
    ({"instagram": {"max_compression_ratio": 0.5}}, "instagram.max_compression_ratio", "minimum"),
    ({"results": 5}, "results", "is not of type 'string'"),
    ({"colour": "blue"}, "<root>", "unknown key 'colour' (known: results, logs"),
])
def test_schema_errors_name_the_key(cfg, key, words):
    with pytest.raises(C.ConfigError) as exc:
        C.validate(cfg)
    line = next(ln for ln in str(exc.value).splitlines() if ln.strip().startswith(f"{key}:"))
    assert words in line


def test_every_problem_is_listed():
    with pytest.raises(C.ConfigError) as exc:
        C.validate({"instagram": {"shards": 0, "row_group_rows": 5}})
    assert "instagram.shards" in str(exc.value) and "instagram.row_group_rows" in str(exc.value)


def test_defaults_filled():
    cfg = C.validate({})
    assert cfg["instagram"]["shards"] == 64 and cfg["instagram"]["max_member_bytes"] == 16 << 20
    ig = InstagramConfig.from_config(cfg)
    assert str(ig.metadata_zip) == "data/instagram/Post_metadata/posts_info.zip"


def test_extra_configfile_overrides_nested_keys(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"instagram": {"shards": 2, "root": "/data/ig"}}))
    cfg = C.load(extra)
    base = C.load()
    assert cfg["instagram"]["shards"] == 2 and cfg["instagram"]["root"] == "/data/ig"
    assert {k: v for k, v in cfg["instagram"].items() if k not in ("shards", "root")} == \
        {k: v for k, v in base["instagram"].items() if k not in ("shards", "root")}
    assert cfg["results"] == base["results"]


def test_workflow_takes_overrides_and_rejects_bad_keys(sample_dir, tmp_path):
    """Through Snakemake: an extra --configfile sets instagram.shards (other keys keep config.yaml's
    values), and a bad value stops the run with the key named."""
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"results": str(tmp_path / "r"), "logs": str(tmp_path / "l"),
                                    "instagram": {"root": str(sample_dir / "instagram"), "shards": 2}}))
    proc = run_snakemake(tmp_path, "-n", "ingest", configfile=good)
    assert re.search(r"^instagram_ingest\s+2$", proc.stdout, re.M), proc.stdout
    assert "posts_info.zip" in proc.stdout  # the default metadata_zip, from config.yaml

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"instagram": {"root": str(sample_dir / "instagram"), "shards": 0}}))
    proc = run_snakemake(tmp_path, "-n", "ingest", configfile=bad, check=False)
    assert proc.returncode != 0
    assert "instagram.shards: 0 is less than the minimum of 1" in proc.stdout + proc.stderr


@pytest.mark.parametrize("text,line", [
    ("instagram: {root: [unclosed\n", 2),          # an unclosed flow sequence: found at the end
    ("instagram:\n  shards: 4\n\tlogs: x\n", 3),   # a tab in the indentation
    ("results: a\n  logs: b\n", 2),                # indentation that maps nothing
])
def test_a_config_file_that_is_not_yaml_is_one_line_naming_it(tmp_path, text, line):
    """PyYAML names '<unicode string>'; the error names the file, line and column, on one line."""
    f = tmp_path / "my config.yaml"
    f.write_text(text)
    with pytest.raises(C.ConfigError) as err:
        C.load(f)
    msg = str(err.value)
    assert msg.startswith(f"{f}:{line}:") and "not valid YAML" in msg and "\n" not in msg
