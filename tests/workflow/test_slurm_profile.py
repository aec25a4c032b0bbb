"""profiles/slurm as an operator reads it: every entry explained, GPUs only for GPU rules, resources
that grow on retries, and Snakemake's own parser accepting it (dry-run). No SLURM needed."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import REPO, run_snakemake

PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
# The GPU rules (notes/common.md; the Dreaddit branch's per-shard synthesis rule is synthesize_shard,
# its `synthesize` is a target); every other rule runs on CPUs.
GPU_RULES = {"sentiment", "text_embeddings", "image_embeddings", "synthesize_shard", "dreaddit_clip", "finetune_stress",
             "cremad_video", "cremad_speech"}


@pytest.fixture(scope="module")
def profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


def test_every_entry_is_commented():
    """Each key (top level, rule, resource) has a comment on its line or right above it."""
    lines = PROFILE.read_text().splitlines()
    uncommented = []
    for i, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#") or line.lstrip().startswith("<<"):
            continue
        above = next((ln for ln in reversed(lines[:i]) if ln.strip()), "")
        sibling_block = re.match(r"^\s+\w+:", line) and not line.rstrip().endswith(":")
        if "#" not in line and not above.lstrip().startswith("#") and not sibling_block:
            uncommented.append(line)
    assert not uncommented, uncommented


def test_partition_and_account_are_the_lines_to_change():
    text = PROFILE.read_text()
    assert re.search(r"^\s+# slurm_partition: .*CHANGE", text, re.M)
    assert re.search(r"^\s+# slurm_account: .*CHANGE", text, re.M)


def test_gpu_rules_ask_for_one_gpu_and_no_other_rule_does(profile):
    res = profile["set-resources"]
    assert GPU_RULES <= set(res)
    for rule, r in res.items():
        if rule in GPU_RULES:
            assert r["gpu"] == 1, rule
        else:
            assert not {"gpu", "gres", "gpu_model"} & set(r), rule
    assert not {"gpu", "gres"} & set(profile["default-resources"])


def test_resources_grow_with_attempt(profile):
    """The memory and time of every rule (and the defaults) rise on each retry."""
    assert profile["retries"] >= 1
    for rule, r in [*profile["set-resources"].items(), ("<default>", profile["default-resources"])]:
        for key in ("mem_mb", "runtime"):
            values = [eval(str(r[key]), {"attempt": a}) for a in (1, 2, 3)]
            assert values[0] > 0 and values == sorted(set(values)), (rule, key, values)
        assert rule == "<default>" or rule in profile["set-threads"], f"{rule}: no cpus in set-threads"


def test_snakemake_reads_the_profile(sample_dir, tmp_path):
    """A dry-run through Snakemake's profile parser (merge keys, expressions) shows the profile's values."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"results": str(tmp_path / "r"), "logs": str(tmp_path / "l"),
                                   "instagram": {"root": str(sample_dir / "instagram"), "shards": 2}}))
    out = run_snakemake(tmp_path, "ingest", "--dry-run", "--profile", str(PROFILE.parent), configfile=cfg).stdout
    blocks = dict(re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", out, re.M))
    assert "mem_mb=8000" in blocks["instagram_plan"] and "runtime=60" in blocks["instagram_plan"]
    assert "mem_mb=2000" in blocks["instagram_ingest"] and "runtime=60" in blocks["instagram_ingest"]
    assert "gpu" not in blocks["instagram_ingest"]
