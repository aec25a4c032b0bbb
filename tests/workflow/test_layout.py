"""affectflow.layout is where every rule's files and config slice come from: the rules read it, and
a dry-run of the real workflow shows exactly the layout's outputs, logs, benchmarks and params."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml
from conftest import REPO, run_snakemake

from affectflow import config as C
from affectflow import layout as L
from affectflow.ops.run_status import STAGES, workflow_rules

SMK = sorted((REPO / "workflow" / "rules").glob("*.smk"))


def dry_run(workdir, cfgfile) -> list[dict]:
    """Every job of every target (forced), with its outputs, log, benchmark, wildcards and command."""
    proc = run_snakemake(workdir, "all", "fetch_models", "--dry-run", "--forceall", "-p", configfile=cfgfile)
    jobs, current = [], None
    for line in proc.stdout.splitlines() + [""]:
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m or not line.strip():
            if current:
                jobs.append(current)
            current = {"rule": m.group(1)} if m else None
        elif current is not None and (kv := re.match(r"^\s+(output|log|benchmark|wildcards): (.*)$", line)):
            current[kv.group(1)] = kv.group(2)
        elif current is not None and line.startswith("Shell command: "):
            current["shell"] = line.removeprefix("Shell command: ")
    return jobs


@pytest.fixture(scope="module")
def run(sample_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("layout")
    cfg = {"results": str(tmp / "results"), "logs": str(tmp / "logs"),
           "instagram": {"root": str(sample_dir / "instagram"), "shards": 3},
           "dreaddit": {"train": str(sample_dir / "dreaddit/dreaddit-train.csv"),
                        "test": str(sample_dir / "dreaddit/dreaddit-test.csv"), "shards": 2},
           "cremad": {"root": str(sample_dir / "cremad"), "shards": 2, "audio": {"speech": True}},
           "models": {"speech": {"id": "facebook/wav2vec2-base"},  # every optional rule planned
                      "text_embedding_2": {"id": "sentence-transformers/all-MiniLM-L12-v2"}},
           "train": {"stress": {"text_encoder": "text_embedding", "finetune_text": {"enabled": True},
                                "text2_encoder": "text_embedding_2", "models": ["text", "text_text2_lexical"]}}}
    cfgfile = tmp / "config.yaml"
    cfgfile.write_text(yaml.safe_dump(cfg))
    return {"cfg": C.load(cfgfile), "jobs": dry_run(tmp, cfgfile)}


def test_every_job_has_the_layouts_outputs_log_and_benchmark(run):
    cfg, seen = run["cfg"], set()
    for job in run["jobs"]:
        if "output" not in job:
            continue  # target rules (all, ingest, ...) have inputs only
        rule = job["rule"]
        assert rule in L.RULES, f"rule {rule} has outputs but no entry in affectflow.layout.RULES"
        wc = dict(kv.split("=", 1) for kv in job["wildcards"].split(", ")) if "wildcards" in job else {}
        assert job["output"].split(", ") == list(L.outputs(rule, cfg, wc).values()), rule
        assert job["log"] == L.log(rule, cfg, wc), rule
        assert job.get("benchmark") == L.benchmark(rule, cfg, wc), rule
        seen.add((rule, tuple(sorted(wc.items()))))
    expected = {(r, tuple(sorted(wc.items()))) for r in L.RULES for wc in L.jobs(r, cfg)}
    assert seen == expected  # layout.jobs lists exactly the jobs Snakemake plans


def test_every_rules_params_are_the_layouts_slice(run):
    """The --config-json each job gets is layout.params: one slicing rule for every stage."""
    cfg, checked = run["cfg"], set()
    for job in run["jobs"]:
        if "--config-json" not in job.get("shell", ""):
            continue
        argv = shlex.split(job["shell"])
        given = C.from_json(argv[argv.index("--config-json") + 1])
        wc = dict(kv.split("=", 1) for kv in job["wildcards"].split(", ")) if "wildcards" in job else {}
        assert given == L.params(job["rule"], cfg, wc), job["rule"]
        checked.add(job["rule"])
    run_blocks = {m.group(1) for f in SMK for m in re.finditer(r"^rule (\w+):\n(?:(?!rule ).*\n)*?    run:", f.read_text(), re.M)}
    with_params = {r for r, spec in L.RULES.items() if spec.reads or spec.models}
    assert checked == with_params - run_blocks  # a run: block's command is not printed by a dry-run


def test_rules_take_paths_only_from_the_layout():
    """No output:, log: or benchmark: in the .smk files spells a path: each names the layout's."""
    directive = re.compile(r"^    (output|log|benchmark):\n((?:        .*\n)+)", re.M)
    for f in SMK:
        for m in directive.finditer(f.read_text()):
            body = m.group(2)
            assert "RESULTS" not in body and "LOGS" not in body and 'f"' not in body, (f.name, m.group(0))


def test_every_rule_with_outputs_is_in_the_layout_and_in_status():
    declared = workflow_rules(REPO)
    with_outputs = {r for r, has_out in declared.items() if has_out}
    assert with_outputs == set(L.RULES)
    assert {s.rule for st in STAGES for s in st.steps} == set(L.RULES)


def test_helpers_used_across_files_live_in_common_smk():
    """A function or constant a .smk file defines at top level is used in no other .smk file,
    unless that file is common.smk."""
    defs = {}
    for f in SMK:
        for m in re.finditer(r"^(?:def (\w+)|([A-Z_][A-Z0-9_]*) =)", f.read_text(), re.M):
            defs[m.group(1) or m.group(2)] = f
    for name, home in defs.items():
        if home.name == "common.smk":
            continue
        users = [f.name for f in SMK if f != home and re.search(rf"\b{name}\b", f.read_text())]
        assert not users, f"{name} ({home.name}) is used in {users}: define it in common.smk"


def test_fill_keeps_wildcards_and_reads_nested_config():
    cfg = {"results": "r", "logs": "l", "models": {"dir": "m"}}
    assert L.fill("{models[dir]}/.fetched/{key}.json", cfg) == "m/.fetched/{key}.json"
    assert L.fill("{results}/x/shard-{shard}.parquet", cfg, {"shard": "00002"}) == "r/x/shard-00002.parquet"
    assert L.RULES["sentiment"].benchmark == "{logs}/benchmarks/instagram/sentiment/shard-{shard}.tsv"


def test_stage_params_slices_dotted_keys_and_models():
    cfg = {"results": "r", "features": {"device": "cpu", "sentiment": {"batch_size": 4}, "text_embedding": {}},
           "models": {"dir": "m", "sentiment": {"id": "s"}, "clip": {"arch": "a"}}}
    got = C.stage_params(cfg, ("results", "features.device", "features.sentiment"), ["sentiment"])
    assert got == {"results": "r", "features": {"device": "cpu", "sentiment": {"batch_size": 4}},
                   "models": {"dir": "m", "sentiment": {"id": "s"}}}
    got["features"]["sentiment"]["batch_size"] = 8
    assert cfg["features"]["sentiment"]["batch_size"] == 4  # a copy
    assert C.stage_params(cfg, ("*",)) == cfg
