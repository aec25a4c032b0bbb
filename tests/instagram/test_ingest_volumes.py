"""Damaged volumes, through the real workflow: the shards that need the volume fail, naming it and
every affected shard; the other shards complete; replacing the volume reruns only the failures."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import run_snakemake

from affectflow.instagram.plan import plan
from affectflow.ops.sample import SampleSpec, make_instagram

SHARDS = 8


@pytest.fixture(scope="module")
def big_sample(tmp_path_factory) -> Path:
    """360 posts in 64k volumes: enough volumes that no shard needs all of them."""
    root = tmp_path_factory.mktemp("big-sample")
    make_instagram(root / "instagram", SampleSpec(seed=3, influencers=6, posts_per_influencer=60, split_size="64k"))
    return root


@pytest.fixture
def dataset(big_sample, tmp_path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(big_sample, dst)
    return dst / "instagram"


def _config(tmp_path: Path, root: Path) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"results": str(tmp_path / "results"), "logs": str(tmp_path / "logs"),
                                   "instagram": {"root": str(root), "shards": SHARDS}}))
    return cfg


def _damage(dataset: Path, how: str) -> str:
    """Damage a middle volume of the post-JSON archive; return its name."""
    volumes = sorted((dataset / "Post_metadata").glob("posts_info.z[0-9]*"))
    assert len(volumes) >= 4, "the test needs a multi-volume archive"
    victim = volumes[len(volumes) // 2]
    if how == "missing":
        victim.rename(victim.with_name(victim.name + ".bak"))
    else:
        shutil.copy(victim, victim.with_name(victim.name + ".bak"))
        with open(victim, "r+b") as fh:
            fh.truncate(victim.stat().st_size // 3)
    return victim.name


def _restore(dataset: Path, name: str) -> None:
    vol = dataset / "Post_metadata" / name
    os.replace(vol.with_name(name + ".bak"), vol)


@pytest.mark.parametrize("how", ["missing", "truncated"])
def test_damaged_volume_fails_only_its_shards(dataset, tmp_path, how):
    name = _damage(dataset, how)
    proc = run_snakemake(tmp_path, "ingest", configfile=_config(tmp_path, dataset), check=False)
    assert proc.returncode != 0

    results = tmp_path / "results" / "instagram"
    summary = json.loads((results / "plan" / "plan.json").read_text())
    assert summary["volume_problems"]["metadata"][name].startswith(how)
    affected = summary["shards_affected"][name]
    assert affected == sorted(int(s) for s, vols in summary["shard_volumes"].items() if name in vols)
    assert 0 < len(affected) < SHARDS, "some shards must not need the damaged volume"
    for shard in range(SHARDS):
        out = results / "posts" / f"shard-{shard:05d}.parquet"
        log = (tmp_path / "logs" / "instagram" / "ingest" / f"shard-{shard:05d}.log").read_text()
        if shard in affected:
            assert not out.exists()
            assert f"volume {dataset / 'Post_metadata' / name} is {how}" in log
            assert f"shards that need it: {affected}" in log
        else:
            assert out.exists(), f"shard {shard} does not need {name} and must complete"
    assert not (results / "ingest_summary.json").exists()
    assert name in proc.stdout + proc.stderr  # the failed log is shown to the operator

    # Replace the volume and rerun: only the failed shards run, the finished ones are kept as they are.
    done = {s: (results / "posts" / f"shard-{s:05d}.parquet").stat().st_mtime_ns for s in range(SHARDS) if s not in affected}
    _restore(dataset, name)
    run_snakemake(tmp_path, "ingest", configfile=_config(tmp_path, dataset))
    for s, mtime in done.items():
        assert (results / "posts" / f"shard-{s:05d}.parquet").stat().st_mtime_ns == mtime
    final = json.loads((results / "ingest_summary.json").read_text())
    assert final["posts"] == summary["posts"]
    assert "read_error" not in final["by_status"]
    # The summary reports the volume as the shards read it (replaced), not as the plan saw it.
    vol = next(v for v in final["metadata_archive"]["volumes"] if Path(v["path"]).name == name)
    assert vol["problem"] is None and vol["problem_at_plan"].startswith(how) and "replaced" in vol["rechecked"]


def test_missing_last_volume_stops_the_plan_naming_it(dataset, tmp_path):
    last = dataset / "Post_metadata" / "posts_info.zip"
    last.unlink()
    proc = run_snakemake(tmp_path, "ingest", configfile=_config(tmp_path, dataset), check=False)
    assert proc.returncode != 0
    assert str(last) in proc.stdout + proc.stderr
    assert not (tmp_path / "results" / "instagram" / "plan" / "posts.parquet").exists()
    cfg = yaml.safe_load(_config(tmp_path, dataset).read_text())
    from affectflow import config as C

    # The last volume is the configured path itself: its absence names the config key to fix.
    with pytest.raises(FileNotFoundError, match=r"instagram\.metadata_zip: .*posts_info\.zip does not exist"):
        plan(C.validate(cfg), tmp_path / "p.parquet", tmp_path / "i.parquet", tmp_path / "p.json")


def test_volume_damaged_after_planning_is_caught_by_the_shard(dataset, tmp_path):
    """The plan saw every volume intact; a volume cut afterwards still fails its shards by name."""
    from affectflow import config as C
    from affectflow.instagram.ingest import ShardVolumeError, ingest_shard

    cfg = C.validate(yaml.safe_load(_config(tmp_path, dataset).read_text()))
    plan_dir = tmp_path / "plan"
    summary = plan(cfg, plan_dir / "posts.parquet", plan_dir / "images.parquet", plan_dir / "plan.json")
    assert not summary["shards_affected"]
    name = _damage(dataset, "truncated")
    users = [int(s) for s, vols in summary["shard_volumes"].items() if name in vols]
    out = tmp_path / "shard.parquet"
    with pytest.raises(ShardVolumeError, match=re.escape(name) + r" is truncated.*shards that need it: " + re.escape(str(users))):
        ingest_shard(cfg, plan_dir / "posts.parquet", plan_dir / "plan.json", users[0], out)
    assert not out.exists() and not list(tmp_path.glob(".shard.parquet.tmp-*"))
    free = next(s for s in range(SHARDS) if s not in users)
    counts = ingest_shard(cfg, plan_dir / "posts.parquet", plan_dir / "plan.json", free, out)
    assert out.exists() and "read_error" not in counts
