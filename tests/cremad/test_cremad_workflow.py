"""`snakemake cremad --profile profiles/local` on the sample: every rule, logs and benchmarks, status."""

import json

import polars as pl
import pytest
import yaml
from conftest import REPO, run_snakemake
from cremad_support import cremad_config, cremad_models  # noqa: F401  (fixture)


@pytest.mark.slow
def test_cremad_target_on_the_sample(sample_dir, cremad_models, tmp_path):
    cfg = cremad_config(tmp_path, sample_dir, cremad_models,
                        train={"schedule": {"unimodal_epochs": 15, "fusion_epochs": 8, "end_to_end_epochs": 2}})
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(cfg))
    run_snakemake(tmp_path, "cremad", configfile=configfile)
    cm = tmp_path / "results" / "cremad"
    clips = pl.read_parquet(cm / "clips" / "clips.parquet")
    for kind in ("egemaps", "video"):
        shards = sorted((cm / kind).glob("shard-*.parquet"))
        assert [p.name for p in shards] == ["shard-00000.parquet", "shard-00001.parquet"]
        assert pl.concat([pl.read_parquet(p, columns=["clip_id"]) for p in shards])["clip_id"].to_list() == clips["clip_id"].to_list()
    assert not (cm / "speech").exists()  # cremad.audio.speech is off by default
    metrics = json.loads((cm / "model" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"audio", "video", "text", "fusion"}
    assert (cm / "model" / "confusion.png").is_file()
    logs = tmp_path / "logs"
    for rule in ("clips", "text", "train"):
        assert (logs / "cremad" / f"{rule}.log").is_file() and (logs / "benchmarks" / "cremad" / f"{rule}.tsv").is_file()
    assert len(list((logs / "benchmarks" / "cremad" / "video").glob("*.tsv"))) == 2

    proc = run_snakemake(tmp_path, "cremad", "--dry-run", configfile=configfile)
    assert "Nothing to be done" in proc.stdout + proc.stderr

    from affectflow import config as C
    from affectflow.ops.run_status import collect

    st = collect(C.load(configfile), str(REPO), profile="profiles/local").to_dict()
    stage = next(s for s in st["stages"] if s["name"] == "cremad")
    counts = {r["rule"]: r["counts"] for r in stage["rules"]}
    done = {rule: c.get("done", 0) for rule, c in counts.items()}
    assert done == {"cremad_clips": 1, "cremad_egemaps": 2, "cremad_speech": 0, "cremad_video": 2, "cremad_text": 1,
                    "cremad_train": 1}, counts
    assert "cremad" not in " ".join(st["resume"] or [])
