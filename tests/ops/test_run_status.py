"""``affectflow status`` without SLURM: the state rules on hand-made evidence, the registry against
the real workflow, and a real local run with a failing shard."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import REPO, run_snakemake

from affectflow.ops import run_status as R

STEP = R.Step.of("instagram_ingest")
CFG = {"results": "res", "logs": "lg", "instagram": {"shards": 3}}


def snakemake_marker(workdir: Path, output: str) -> Path:
    """Write an incomplete marker exactly where Snakemake's own FilePersistence puts it."""
    from snakemake.persistence.file import FilePersistence

    subject = workdir / ".snakemake" / "incomplete"
    subject.mkdir(parents=True, exist_ok=True)
    fake = SimpleNamespace(_max_len=None)
    fake._fetch_max_len = lambda s: FilePersistence._fetch_max_len(fake, s)
    path = Path(FilePersistence._record_path(fake, str(subject), output))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"external_jobid": "4242"}))
    return path


def state(tmp_path, shard="00001", queue=None, running=False, markers=None):
    return R.job_status(STEP, CFG, {"shard": shard}, tmp_path,
                        R.incomplete_markers(tmp_path / ".snakemake") if markers is None else markers,
                        queue or {}, tmp_path / "slurm_logs", running)


def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


CLI_FAILURE = """2026-11-22 23:22:35,001 INFO affectflow.instagram.ingest: reading
Traceback (most recent call last):
  File "/x/cli.py", line 75, in main
    rc = args._run(args)
affectflow.instagram.ingest.ShardVolumeError: shard 1: volume /d/posts_info.z01 is missing
2026-11-22 23:22:35,384 ERROR affectflow: ShardVolumeError: shard 1: volume /d/posts_info.z01 is missing
"""


def test_log_error_reads_the_cli_error_line_or_a_traceback(tmp_path):
    assert R.log_error(write(tmp_path / "a.log", CLI_FAILURE)) == \
        "ShardVolumeError: shard 1: volume /d/posts_info.z01 is missing"
    bare = "Traceback (most recent call last):\n  File \"x\", line 1\nMemoryError\n"
    assert R.log_error(write(tmp_path / "b.log", bare)) == "MemoryError"
    assert R.log_error(write(tmp_path / "c.log", "2026-11-22 23:22:36,083 INFO shard 1: 72 posts\n")) is None
    assert R.log_error(tmp_path / "absent.log") is None


def test_slurm_kill_reasons(tmp_path):
    line = "slurmstepd: error: *** JOB 5 ON vm CANCELLED AT 2026-11-22T23:25:01 DUE TO TIME LIMIT ***\n"
    assert "time limit" in R.slurm_kill_reason(write(tmp_path / "t.log", "start\n" + line))
    oom = "slurmstepd: error: Detected 1 oom-kill event(s) in StepId=7.batch.\n"
    assert "out of memory" in R.slurm_kill_reason(write(tmp_path / "m.log", oom))
    assert R.slurm_kill_reason(write(tmp_path / "ok.log", "Finished jobid: 0\n")) is None


@pytest.mark.parametrize("output", ["results/instagram/posts/shard-00001.parquet", "/" + "long-folder/" * 30 + "x.parquet"])
def test_incomplete_markers_decode_snakemake_records(tmp_path, output):
    snakemake_marker(tmp_path, output)  # the long path is split into '@'-prefixed segments
    assert R.incomplete_markers(tmp_path / ".snakemake") == {output: "4242"}


def test_job_states_from_evidence(tmp_path):
    out = tmp_path / "res/instagram/posts/shard-00001.parquet"
    log = tmp_path / "lg/instagram/ingest/shard-00001.log"
    assert state(tmp_path).state == R.MISSING

    write(log, "2026-11-22 23:22:36,083 INFO affectflow: still going\n")
    assert state(tmp_path).state == R.MISSING  # a log without an error is not a failure

    write(log, CLI_FAILURE)
    j = state(tmp_path)
    assert (j.state, j.reason, j.log) == (R.FAILED, "ShardVolumeError: shard 1: volume /d/posts_info.z01 is missing",
                                         "lg/instagram/ingest/shard-00001.log")

    write(log, "2026-11-22 INFO started\n")
    slurm = write(tmp_path / "slurm_logs/rule_instagram_ingest/00001/77.log",
                  "slurmstepd: error: *** JOB 77 ON n1 CANCELLED AT 2026-11-22T01:00:00 DUE TO TIME LIMIT ***\n")
    j = state(tmp_path)
    assert j.state == R.FAILED and "time limit" in j.reason and j.slurm_log == str(slurm)

    tmp = write(out.parent / ".shard-00001.parquet.tmp-1234")
    slurm.unlink()
    j = state(tmp_path)
    assert j.state == R.INCOMPLETE and j.leftovers == [str(tmp.relative_to(tmp_path))]

    snakemake_marker(tmp_path, "res/instagram/posts/shard-00001.parquet")
    assert state(tmp_path).state == R.INCOMPLETE
    assert state(tmp_path, running=True).state == R.RUNNING  # a live Snakemake is still working on it

    write(out)
    assert state(tmp_path).state == R.INCOMPLETE  # written, but Snakemake never saw it finish
    assert state(tmp_path, markers={}).state == R.DONE

    comment = R.slurm_comment("instagram_ingest", {"shard": "00001"})
    assert comment == "rule_instagram_ingest_wildcards_00001"
    assert state(tmp_path, queue={comment: ("91", "PENDING")}).state == R.QUEUED
    j = state(tmp_path, queue={comment: ("91", "RUNNING")})
    assert (j.state, j.slurm_job) == (R.RUNNING, "91")


def test_partial_outputs_are_incomplete(tmp_path):
    step = R.Step("two", ("{results}/a.parquet", "{results}/b.parquet"), "{logs}/two.log")
    write(tmp_path / "res/a.parquet")
    j = R.job_status(step, CFG, {}, tmp_path, {}, {}, tmp_path, False)
    assert j.state == R.INCOMPLETE and "res/b.parquet" in j.reason


def fake_repo(tmp_path: Path, extra: str = "") -> Path:
    repo = tmp_path / "repo"
    (repo / "workflow/rules").mkdir(parents=True)
    (repo / "Snakefile").write_text("rule all:\n    input: 'x'\n")
    (repo / "workflow/rules/ingest.smk").write_text((REPO / "workflow/rules/ingest.smk").read_text() + extra)
    (repo / "workflow/rules/models.smk").write_text((REPO / "workflow/rules/models.smk").read_text())
    return repo


def test_collect_counts_and_resume_commands(tmp_path):
    wd = tmp_path / "wd"
    cfg = {"results": "res", "logs": "lg", "instagram": {"shards": 3}}
    for name in ("plan/posts.parquet", "plan/images.parquet", "plan/plan.json", "posts/shard-00000.parquet"):
        write(wd / "res/instagram" / name)
    write(wd / "lg/instagram/ingest/shard-00002.log", CLI_FAILURE)
    extra = "\n\nrule emotion_scores:\n    output:\n        'x'\n    shell: 'true'\n"
    repo = fake_repo(tmp_path, extra)
    st = R.collect(cfg, wd, profile=None, configfiles=["my config.yaml"], repo=repo, queue={})
    assert st.counts("ingest", "instagram_plan")[R.DONE] == 1
    assert st.counts("ingest", "instagram_ingest") == {**dict.fromkeys(R.STATES, 0), R.DONE: 1, R.MISSING: 1, R.FAILED: 1}
    assert st.unregistered_rules == ["emotion_scores"]  # in the workflow, not in the registry: said so
    # run elsewhere than the repository root: the resume command names the Snakefile
    assert st.resume == [f"snakemake -s {repo}/Snakefile --rerun-incomplete ingest --configfile 'my config.yaml'"]
    assert not st.all_done

    write(wd / ".snakemake/locks/0.input.lock")  # a Snakemake was killed: its lock is left
    st = R.collect(cfg, wd, profile="profiles/slurm", repo=fake_repo(tmp_path / "b"), queue={})
    sf = f"-s {tmp_path}/b/repo/Snakefile"
    assert st.locked and st.resume == [f"snakemake {sf} --profile profiles/slurm --unlock ingest",
                                       f"snakemake {sf} --profile profiles/slurm --rerun-incomplete ingest"]
    text = R.format_status(st)
    assert re.search(r"ingest\s+instagram_ingest\s+3\s+1\s+0\s+0\s+1\s+0\s+1", text)
    assert "instagram_ingest 00002: ShardVolumeError: shard 1" in text and "unlock" in text

    (wd / ".snakemake/locks/0.input.lock").unlink()
    write(wd / "res/instagram/ingest_summary.json")  # shards 1, 2 deleted by hand after the summary was made
    st = R.collect(cfg, wd, profile=None, repo=fake_repo(tmp_path / "d"), queue={})
    assert st.resume == [f"snakemake -s {tmp_path}/d/repo/Snakefile --rerun-incomplete res/instagram/posts/shard-00001.parquet "
                         "res/instagram/posts/shard-00002.parquet ingest"]
    for shard in ("00001", "00002"):
        write(wd / f"res/instagram/posts/shard-{shard}.parquet")
    st = R.collect(cfg, wd, profile=None, repo=fake_repo(tmp_path / "c"), queue={})
    assert st.all_done and st.resume == [] and "Everything is done." in R.format_status(st)

    write(wd / "res/instagram/posts/.shard-00001.parquet.tmp-99")  # an earlier attempt was killed mid-write
    st = R.collect(cfg, wd, profile=None, repo=fake_repo(tmp_path / "e"), queue={})
    assert st.all_done and st.leftovers == ["res/instagram/posts/.shard-00001.parquet.tmp-99"]
    assert "Temporary files left by killed jobs (1;" in R.format_status(st)


def test_stages_not_started_are_not_resumed(tmp_path):
    cfg = {"results": "res", "logs": "lg", "instagram": {"shards": 1},
           "models": {"dir": "m", "clip": {"arch": "ViT-B-32"}, "sbert": {"id": "x/y"}}}
    write(tmp_path / "res/instagram/plan/plan.json")
    st = R.collect(cfg, tmp_path, profile=None, repo=fake_repo(tmp_path), queue={})
    assert [j.label for j in st.stages["models"]["fetch_model"]] == ["clip", "sbert"]
    assert st.resume == [f"snakemake -s {tmp_path}/repo/Snakefile --rerun-incomplete ingest"]
    assert st.not_started == ["fetch_models"]
    assert "Not started yet (their targets): fetch_models" in R.format_status(st)
    for key in ("clip", "sbert"):
        write(tmp_path / f"m/.fetched/{key}.json")
    assert R.collect(cfg, tmp_path, profile=None, repo=fake_repo(tmp_path / "b"), queue={}).not_started == []


def test_orphaned_slurm_jobs_are_reported(tmp_path):
    queue = {"rule_instagram_ingest_wildcards_00001": ("612", "RUNNING")}
    st = R.collect({"results": "res", "logs": "lg", "instagram": {"shards": 2}}, tmp_path, profile=None,
                   repo=fake_repo(tmp_path), queue=queue)
    assert [j.state for j in st.stages["ingest"]["instagram_ingest"]] == [R.MISSING, R.RUNNING]
    assert st.orphan_jobs == [{"comment": "rule_instagram_ingest_wildcards_00001", "job": "612", "state": "RUNNING"}]
    assert "scancel 612" in R.format_status(st)


def test_profile_slurm_logdir_is_read():
    assert R.profile_setting("profiles/slurm", "slurm-logdir") == "logs/slurm"
    assert R.profile_setting(REPO / "profiles/slurm", "executor") == "slurm"
    assert R.profile_setting("no/such/profile", "executor") is None


def dry_run_jobs(workdir: Path, targets: list[str], configfile: Path) -> set[tuple[str, tuple[str, ...], str]]:
    """(rule, outputs, log) of every job of ``targets``, from a forced dry-run of the real workflow."""
    proc = run_snakemake(workdir, *targets, "--dry-run", "--forceall", configfile=configfile)
    jobs, current = set(), None
    for line in proc.stdout.splitlines() + [""]:
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m or not line.strip():
            if current and current.get("output"):
                jobs.add((current["rule"], tuple(current["output"].split(", ")), current.get("log", "")))
            current = {"rule": m.group(1)} if m else None
        elif current is not None and (kv := re.match(r"^\s+(output|log): (.*)$", line)):
            current[kv.group(1)] = kv.group(2)
    return jobs


def test_registry_matches_the_workflow(sample_dir, tmp_path):
    """Every registered rule that the workflow has: same outputs and log, for every job."""
    cfg = {"results": str(tmp_path / "results"), "logs": str(tmp_path / "logs"),
           "instagram": {"root": str(sample_dir / "instagram"), "shards": 3},
           "dreaddit": {"train": str(sample_dir / "dreaddit/dreaddit-train.csv"),
                        "test": str(sample_dir / "dreaddit/dreaddit-test.csv"), "shards": 2},
           "cremad": {"root": str(sample_dir / "cremad"), "shards": 2}}
    cfgfile = tmp_path / "config.yaml"
    cfgfile.write_text(yaml.safe_dump(cfg))
    from affectflow import config as C

    full = C.load(cfgfile)
    declared = R.workflow_rules(REPO)
    stages = [s for s in R.STAGES if s.target in declared]
    assert {s.name for s in stages} == {"models", "ingest", "features", "dreaddit", "cremad", "train", "report"}
    actual = dry_run_jobs(tmp_path, [s.target for s in stages], cfgfile)
    for stage in stages:
        for step in stage.steps:
            if step.rule not in declared:
                continue
            expected = {(step.rule, tuple(R._fmt(o, full, wc) for o in step.outputs), R._fmt(step.log, full, wc))
                        for wc in step.jobs(full)}
            assert {j for j in actual if j[0] == step.rule} == expected, step.rule


def test_status_command_on_a_real_local_run_with_a_failing_shard(tmp_path, sample_dir):
    """profiles/local: the plan runs; a volume vanishes; shard 0 fails, the others finish."""
    import shutil

    from affectflow.ops.sample import SampleSpec, make_sample

    sample = tmp_path / "sample"
    make_sample(sample, SampleSpec(influencers=24))
    cfgfile = tmp_path / "config.yaml"
    cfgfile.write_text(yaml.safe_dump({"results": str(tmp_path / "results"), "logs": str(tmp_path / "logs"),
                                       "instagram": {"root": str(sample / "instagram"), "shards": 4}}))
    run_snakemake(tmp_path, str(tmp_path / "results/instagram/plan/plan.json"), configfile=cfgfile)
    shutil.move(sample / "instagram/Post_metadata/posts_info.z01", tmp_path / "z01")
    assert run_snakemake(tmp_path, "ingest", configfile=cfgfile, check=False).returncode != 0

    cmd = [sys.executable, "-m", "affectflow", "status", "--configfile", str(cfgfile), "--profile", "profiles/local",
           "--directory", str(REPO)]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    data = json.loads(subprocess.run(cmd + ["--json"], capture_output=True, text=True, check=True).stdout)
    jobs = {j["wildcards"].get("shard", "-"): j for s in data["stages"] for r in s["rules"] if r["rule"] == "instagram_ingest"
            for j in r["jobs"]}
    assert {k: j["state"] for k, j in jobs.items()} == {"00000": "failed", "00001": "done", "00002": "done", "00003": "done"}
    assert "posts_info.z01 is missing" in jobs["00000"]["reason"]
    assert data["resume"][-1] == f"snakemake --profile profiles/local --rerun-incomplete ingest --configfile {cfgfile}"
    assert "instagram_ingest 00000: ShardVolumeError" in text and data["resume"][0] in text
    assert os.path.isfile(jobs["00000"]["log"])
    # Without --profile and --configfile, status repeats what the last Snakemake run was given.
    bare = subprocess.run([sys.executable, "-m", "affectflow", "status", "--directory", str(REPO), "--json"],
                          capture_output=True, text=True, check=True)
    last = json.loads(bare.stdout)
    assert last["resume"] == data["resume"] and last["run_from"].startswith(".snakemake/log/"), bare.stdout[-2000:]


def test_snakemake_command_lines_are_parsed_for_profile_and_configfiles():
    run = R.parse_snakemake_argv(["ingest", "--profile", "profiles/local", "--configfile", "a.yaml", "b.yaml", "-j", "2"])
    assert run.profile == "profiles/local" and run.configfiles == ["a.yaml", "b.yaml"]
    run = R.parse_snakemake_argv(["--configfile=a.yaml", "--profile=p", "--configfiles", "b.yaml", "--", "all"])
    assert run.profile == "p" and run.configfiles == ["a.yaml", "b.yaml"]
    assert R.parse_snakemake_argv(["-n", "--profile", "x"]) is None  # a dry-run is not the run to resume
    assert R.parse_snakemake_argv(["--profile", "x", "--unlock"]) is None


def test_last_run_is_read_from_the_newest_real_snakemake_log(tmp_path):
    logs = tmp_path / ".snakemake/log"
    head = "SNAKEMAKE\n=========\n  Command: /venv/snakemake/__main__.py {}\n  Snakefile: x\n"
    write(logs / "2026-11-30T010000.000000.snakemake.log", head.format("--profile profiles/slurm all --configfile c.yaml"))
    write(logs / "2026-11-30T020000.000000.snakemake.log", head.format("--profile profiles/local ingest --configfile 'my a.yaml' b.yaml"))
    write(logs / "2026-11-30T030000.000000.snakemake.log", head.format("--profile profiles/slurm --unlock"))
    run = R.last_run(tmp_path)
    assert run.profile == "profiles/local" and run.configfiles == ["my a.yaml", "b.yaml"]
    assert run.source.endswith("T020000.000000.snakemake.log")
    assert R.last_run(tmp_path / "nothing") is None


def test_unlock_is_not_advised_while_jobs_of_the_killed_run_still_write(tmp_path):
    cfg = {"results": "res", "logs": "lg", "instagram": {"shards": 2}}
    write(tmp_path / ".snakemake/locks/0.input.lock")
    write(tmp_path / "res/instagram/plan/plan.json")  # the stage has begun
    writer = {"pid": 4242, "cmd": "python -m affectflow instagram-ingest --shard 1"}
    st = R.collect(cfg, tmp_path, profile=None, repo=fake_repo(tmp_path), queue={}, writers=[writer])
    assert st.locked and not any("--unlock" in c for c in st.resume)
    text = R.format_status(st)
    assert "still writing" in text and "kill 4242" in text and "unlock it first" not in text
    queue = {"rule_instagram_ingest_wildcards_00001": ("612", "RUNNING")}  # orphaned SLURM job
    st = R.collect(cfg, tmp_path, profile=None, repo=fake_repo(tmp_path / "b"), queue=queue, writers=[])
    assert not any("--unlock" in c for c in st.resume) and "scancel 612" in R.format_status(st)
    st = R.collect(cfg, tmp_path, profile=None, repo=fake_repo(tmp_path / "c"), queue={}, writers=[])
    # nobody writes: unlocking is safe (-s names the Snakefile: this working directory is not the repository)
    assert st.resume[0] == f"snakemake -s {tmp_path / 'c' / 'repo' / 'Snakefile'} --unlock ingest"


def test_progress_per_stage_with_rows_per_second(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    cfg = {"results": "res", "logs": "lg", "instagram": {"shards": 3}}
    for shard, rows, secs in (("00000", 100, 2.0), ("00001", 300, 2.0)):
        out = tmp_path / f"res/instagram/posts/shard-{shard}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"post_id": [str(i) for i in range(rows)]}), out)
        write(tmp_path / f"lg/benchmarks/instagram/ingest/shard-{shard}.tsv", f"s\th:m:s\tmax_rss\n{secs}\t0:00:02\t10\n")
    st = R.collect(cfg, tmp_path, profile=None, repo=fake_repo(tmp_path), queue={}, writers=[])
    p = st.progress["ingest"]
    assert (p["done"], p["total"]) == (2, 5)  # plan and summary missing, one shard missing
    assert p["rules"]["instagram_ingest"] == {"done": 2, "total": 3, "unit": "shards", "rows": 400, "seconds": 4.0,
                                              "rows_per_s": 100.0}
    assert "instagram_ingest 2/3 shards, 100 rows/s per job" in R.format_status(st)


def test_a_running_job_shows_its_last_progress_line(tmp_path):
    write(tmp_path / "lg/instagram/ingest/shard-00001.log",
          "2026-11-30 06:40:01,002 INFO affectflow.progress: ingest shard 1:  45%|####5     | 18000/40000 [00:09<00:11, 1987.12 posts/s]\n"
          "2026-11-30 06:40:02,002 INFO affectflow.instagram.ingest: something else\n")
    queue = {"rule_instagram_ingest_wildcards_00001": ("612", "RUNNING")}
    j = state(tmp_path, queue=queue)
    assert j.state == R.RUNNING and j.reason.startswith("ingest shard 1:  45%") and "ETA" not in j.reason
    assert "18000/40000 [00:09<00:11" in j.reason


def test_a_job_killed_by_a_signal_is_failed_not_missing(tmp_path):
    """A local job killed with SIGKILL (kill -9, the OOM killer) writes no error to its own log;
    the real Snakemake run log records it, and status reports the job failed, from that log."""
    step = R.Step("victim", ("{results}/v/{shard}.out",), "{logs}/v/{shard}.log",
                  lambda cfg: [{"shard": s} for s in ("00000", "00001")])
    (tmp_path / "Snakefile").write_text(
        "rule all:\n    input: expand('res/v/{s}.out', s=['00000', '00001'])\n"
        "rule victim:\n    output: 'res/v/{shard}.out'\n    log: 'lg/v/{shard}.log'\n"
        "    shell: \"echo started > {log}; if [ {wildcards.shard} = 00000 ]; then kill -9 $$; fi; touch {output}\"\n")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--keep-going", "-d", str(tmp_path),
                           "-s", str(tmp_path / "Snakefile")], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode != 0, proc.stderr

    failures = R.run_log_failures(tmp_path / ".snakemake" / "log")
    assert list(failures) == ["lg/v/00000.log"]
    jobs = {wc["shard"]: R.job_status(step, CFG, wc, tmp_path, {}, {}, tmp_path, False, run_failures=failures)
            for wc in step.jobs(CFG)}
    assert jobs["00001"].state == R.DONE
    assert jobs["00000"].state == R.FAILED and "kill -9" in jobs["00000"].reason
    assert str(failures["lg/v/00000.log"]) in jobs["00000"].reason

    # A later attempt that rewrote the job's log is not judged by the older run's record.
    later = tmp_path / "lg/v/00000.log"
    os.utime(later, (failures["lg/v/00000.log"].stat().st_mtime + 10,) * 2)
    assert R.job_status(step, CFG, {"shard": "00000"}, tmp_path, {}, {}, tmp_path, False,
                        run_failures=failures).state == R.MISSING


def test_status_takes_several_configfiles_after_one_flag(tmp_path):
    """As snakemake does: ``--configfile a.yaml b.yaml`` (and the flag repeated) both work."""
    from affectflow.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["status", "--configfile", "a.yaml", "b.yaml"]).configfile == ["a.yaml", "b.yaml"]
    assert parser.parse_args(["status", "--configfile", "a.yaml", "--configfile", "b.yaml"]).configfile == ["a.yaml", "b.yaml"]
    assert parser.parse_args(["status"]).configfile == []


def test_resume_from_the_repository_root_names_no_snakefile(tmp_path):
    """Run in the repository root, Snakemake finds the Snakefile itself: no ``-s``."""
    repo = fake_repo(tmp_path)
    cfg = {"results": "res", "logs": "lg", "instagram": {"shards": 1}}
    write(repo / "res/instagram/plan/plan.json")
    st = R.collect(cfg, repo, profile=None, repo=repo, queue={})
    assert st.resume == ["snakemake --rerun-incomplete ingest"]


def test_a_job_left_running_by_a_killed_snakemake_is_running(tmp_path):
    """kill -9 of a local Snakemake leaves its jobs running; status finds them by their output
    argument and working directory instead of calling them incomplete (to be redone now)."""
    out = "res/instagram/posts/shard-00001.parquet"
    snakemake_marker(tmp_path, out)
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "affectflow", "--out", out],
                           cwd=tmp_path)
    try:
        for _ in range(50):  # the process is listed once it has exec'd
            local = R.local_job_processes(tmp_path)
            if out in local:
                break
            time.sleep(0.1)
        assert local.get(out) == job.pid
        j = R.job_status(STEP, CFG, {"shard": "00001"}, tmp_path, R.incomplete_markers(tmp_path / ".snakemake"),
                         {}, tmp_path / "slurm_logs", False, local_jobs=local)
        assert j.state == R.RUNNING and f"pid {job.pid}" in j.reason
        assert R.local_job_processes(tmp_path / "res") == {}  # another working directory: not ours
    finally:
        job.kill()
        job.wait()
    assert out not in R.local_job_processes(tmp_path)
    assert state(tmp_path).state == R.INCOMPLETE
