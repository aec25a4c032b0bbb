"""The workflow on a real SLURM cluster (one node on localhost, started by tests/slurm/cluster.sh).

Every run goes through ``--profile profiles/slurm`` itself; ``tests/slurm/fast`` is layered on top
(a second ``--profile``) and only shortens the status polling. Faults are real: a volume that is
unreadable while a shard runs, a job SLURM kills at its time limit, job processes and the main
Snakemake SIGKILLed mid-write. The assertions read SLURM's accounting (``sacct``), the outputs
and ``affectflow status``.

The scenarios are independent (each has its own working directory, sample copy and SLURM jobs)
and mostly wait on the scheduler, so they run side by side: the module fixture starts the selected
ones in threads, and each test collects its scenario (its assertions raise there). The
time-limit scenario alone needs over a minute, since SLURM enforces time limits in whole minutes.

These tests need root and apt (CI has both). They fail loudly when the cluster cannot start; a
developer without root can skip them with ``AFFECTFLOW_SKIP_SLURM=1`` (never set in CI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from conftest import REPO, whole_dag_config

from affectflow.ops.run_status import incomplete_markers

pytestmark = pytest.mark.slurm

SLURM_PROFILE = REPO / "profiles" / "slurm"
SNAKEFILE = REPO / "Snakefile"
FAST = REPO / "tests" / "slurm" / "fast"
HOOKS = REPO / "tests" / "slurm" / "hooks"
# Scenarios run in threads; building the tiny models imports transformers lazily, which is not
# thread-safe: one build at a time.
MODELS_BUILD = threading.Lock()
SUMMARY_KEYS = ("posts", "by_status", "by_category", "duplicate_post_ids", "images_present", "missing_images",
                "posts_with_missing_images", "shards")


# -- the cluster and the runs -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def slurm_cluster():
    """Install (first time) and start the one-node cluster; idempotent, ~1 s when it is up."""
    if os.environ.get("AFFECTFLOW_SKIP_SLURM") == "1":
        pytest.skip("AFFECTFLOW_SKIP_SLURM=1: SLURM tests skipped by request")
    proc = subprocess.run(["bash", str(REPO / "tests" / "slurm" / "cluster.sh")], capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0:
        pytest.fail("could not start the test SLURM cluster (tests/slurm/cluster.sh); set AFFECTFLOW_SKIP_SLURM=1 "
                    f"to skip these tests on a machine without root/apt:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}",
                    pytrace=False)
    return True


def start(workdir: Path) -> None:
    """Mark when a test began in ``workdir``: :func:`sacct` ignores older jobs (reused temp paths)."""
    (workdir / ".t0").touch()


def cancel_jobs(workdir: Path) -> None:
    """Cancel whatever a test left in the queue (a stalled job of a failed test)."""
    queue = subprocess.run(["squeue", "--noheader", "--format=%i|%Z"], capture_output=True, text=True).stdout
    ids = [line.split("|")[0] for line in queue.splitlines()
           if os.path.realpath(line.split("|")[-1]) == os.path.realpath(workdir)]
    if ids:
        subprocess.run(["scancel", *ids], check=False)


def write_config(path: Path, sample: Path, shards: int) -> Path:
    start(path.parent)
    cfg = {"results": str(path.parent / "results"), "logs": str(path.parent / "logs"),
           "instagram": {"root": str(sample / "instagram"), "shards": shards}}
    path.write_text(yaml.safe_dump(cfg))
    (path.parent / "config.json").write_text(json.dumps(cfg))  # read back by assert_same_results
    return path


def snakemake_cmd(workdir: Path, *args: str, profiles=(SLURM_PROFILE, FAST), snakefile: Path = REPO / "Snakefile",
                  configfile: Path | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir)]
    for p in profiles:
        cmd += ["--profile", str(p)]
    cmd += list(args)
    if configfile:
        cmd += ["--configfile", str(configfile)]
    return cmd


def run_env(stall: str | None = None) -> dict[str, str]:
    """The environment of a test run: tests/slurm/hooks on the path (steady polling, optional stalls)."""
    env = dict(os.environ, AFFECTFLOW_TEST_STEADY_POLL="1")
    env["PYTHONPATH"] = os.pathsep.join([str(HOOKS), *filter(None, [env.get("PYTHONPATH")])])
    if stall:
        env["AFFECTFLOW_TEST_STALL"] = stall
    return env


def slurm_run(workdir: Path, *args: str, configfile: Path | None = None, check: bool = True, stall: str | None = None,
              **kw) -> subprocess.CompletedProcess:
    cmd = snakemake_cmd(workdir, *args, configfile=configfile, **kw)
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=run_env(stall), timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def sacct(workdir: Path) -> list[dict[str, str]]:
    """This working directory's SLURM jobs since :func:`start`, in submission order (JobID is
    ``<array>_<task>`` for the tasks of a job array)."""
    fields = ["JobID", "JobIDRaw", "JobName", "State", "Timelimit", "ReqMem", "ReqCPUS", "AllocTRES", "Comment", "WorkDir",
              "Submit"]
    out = subprocess.run(["sacct", "-X", "-P", "-n", "-a", "-S", "now-3hours", "-o", ",".join(fields)],
                         capture_output=True, text=True, check=True).stdout
    rows = [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]
    wd = os.path.realpath(workdir)
    since = datetime.fromtimestamp(int((workdir / ".t0").stat().st_mtime))
    return sorted((r for r in rows if os.path.realpath(r["WorkDir"]) == wd
                   and datetime.fromisoformat(r["Submit"]) >= since), key=lambda r: int(r["JobIDRaw"]))


def jobs_by_comment(workdir: Path) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for r in sacct(workdir):
        out.setdefault(r["Comment"], []).append(r)
    return out


def affectflow_status(workdir: Path, configfile: Path, *extra: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "affectflow", "status", "--configfile", str(configfile),
                           "--directory", str(workdir), "--profile", str(SLURM_PROFILE), "--json", *extra],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def states(status: dict, rule: str) -> dict[str, str]:
    for stage in status["stages"]:
        for r in stage["rules"]:
            if r["rule"] == rule:
                return {(" ".join(j["wildcards"].values()) or "-"): j["state"] for j in r["jobs"]}
    raise KeyError(rule)


def ingest_done(status: dict) -> bool:
    """Every ingest job done and nothing to resume (the models stage is simply not started here)."""
    stage = next(s for s in status["stages"] if s["name"] == "ingest")
    return all(j["state"] == "done" for r in stage["rules"] for j in r["jobs"]) and status["resume"] == []


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, interval: float = 0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"snakemake exited ({proc.returncode}) while waiting for {what}:\n{out[-3000:]}\n{err[-4000:]}")
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def table(path: Path, sample_root: str):
    """The table without its provenance, with the sample's location (in some errors) masked."""
    import polars as pl

    df = pl.read_parquet(path).with_columns(pl.col("error").str.replace_all(sample_root, "<sample>", literal=True))
    return df.to_arrow().replace_schema_metadata(None)


def assert_same_results(results: Path, reference: Path, shards: int) -> None:
    """Posts shards equal row for row and column for column; summary counts equal."""
    roots = [json.loads((r.parent / "config.json").read_text())["instagram"]["root"] for r in (results, reference)]
    for i in range(shards):
        name = f"instagram/posts/shard-{i:05d}.parquet"
        assert table(results / name, roots[0]).equals(table(reference / name, roots[1])), name
    got = json.loads((results / "instagram/ingest_summary.json").read_text())
    ref = json.loads((reference / "instagram/ingest_summary.json").read_text())
    assert {k: got[k] for k in SUMMARY_KEYS} == {k: ref[k] for k in SUMMARY_KEYS}


@pytest.fixture(scope="module")
def sample24(tmp_path_factory) -> Path:
    """A larger sample (24 influencers, five volumes): with 4 shards, volume .z01 is read by shard 0 only."""
    from affectflow.ops.sample import SampleSpec, make_sample

    out = tmp_path_factory.mktemp("sample24")
    make_sample(out, SampleSpec(influencers=24))
    return out


class LocalReference:
    """``ingest`` with profiles/local on a sample, started at once and awaited when first compared."""

    def __init__(self, sample: Path, shards: int, workdir: Path):
        cfg = write_config(workdir / "config.yaml", sample, shards)
        cmd = snakemake_cmd(workdir, "ingest", profiles=(REPO / "profiles" / "local",), configfile=cfg)
        self.proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.results = workdir / "results"
        self.lock = threading.Lock()

    def __call__(self) -> Path:
        with self.lock:  # scenarios in several threads wait on the same run
            out, err = self.proc.communicate(timeout=300)
        assert self.proc.returncode == 0, f"local reference run failed:\n{out[-2000:]}\n{err[-4000:]}"
        return self.results


class Context:
    """What the scenarios share: the samples and the local reference runs."""

    def __init__(self, sample_dir: Path, sample24: Path, tmp_factory):
        self.sample_dir, self.sample24 = sample_dir, sample24
        self.reference = {"sample-3": LocalReference(sample_dir, 3, tmp_factory.mktemp("local-3")),
                          "sample24-4": LocalReference(sample24, 4, tmp_factory.mktemp("local24-4"))}


SCENARIOS: dict[str, callable] = {}


def scenario(fn):
    """Register ``fn(workdir, ctx)`` as the body of ``test_<name>``."""
    SCENARIOS[fn.__name__.removeprefix("scenario_")] = fn
    return fn


@pytest.fixture(scope="module")
def scenarios(request, slurm_cluster, sample_dir, sample24, tmp_path_factory) -> dict[str, Future]:
    """Start the scenarios of the selected tests side by side; each test collects its own."""
    selected = {item.name.removeprefix("test_") for item in request.session.items}
    ctx = Context(sample_dir, sample24, tmp_path_factory)
    pool = ThreadPoolExecutor(max_workers=len(SCENARIOS))
    workdirs = {name: tmp_path_factory.mktemp(name) for name in SCENARIOS if name in selected}
    futures = {name: pool.submit(SCENARIOS[name], wd, ctx) for name, wd in workdirs.items()}
    yield futures
    pool.shutdown(wait=True)
    for wd in workdirs.values():  # whatever a failed scenario left in the queue
        cancel_jobs(wd)


# -- tests ---------------------------------------------------------------------------------------------


@scenario
def scenario_ingest_through_slurm_equals_local_run(tmp_path: Path, ctx: Context):
    cfg = write_config(tmp_path / "config.yaml", ctx.sample_dir, 3)
    slurm_run(tmp_path, "ingest", configfile=cfg)

    jobs = jobs_by_comment(tmp_path)
    # Every job rule went through the scheduler, once, with the profile's resources; the summary
    # (a localrule) and the target ran on the submit host.
    assert sorted(jobs) == ["rule_instagram_ingest_wildcards_00000", "rule_instagram_ingest_wildcards_00001",
                            "rule_instagram_ingest_wildcards_00002", "rule_instagram_plan"]
    assert all(len(v) == 1 and v[0]["State"] == "COMPLETED" for v in jobs.values())
    plan = jobs["rule_instagram_plan"][0]
    assert (plan["ReqCPUS"], plan["ReqMem"], plan["Timelimit"]) == ("2", "8000M", "01:00:00")
    shard = jobs["rule_instagram_ingest_wildcards_00001"][0]
    assert (shard["ReqCPUS"], shard["ReqMem"], shard["Timelimit"]) == ("1", "2000M", "01:00:00")
    assert not any("gres/gpu" in r["AllocTRES"] for v in jobs.values() for r in v)  # CPU rules ask for no GPU

    assert_same_results(tmp_path / "results", ctx.reference["sample-3"](), 3)
    # Per rule and shard logs; SLURM's own job logs are removed for successful jobs.
    assert (tmp_path / "logs/instagram/ingest/shard-00002.log").read_text().strip()
    assert not list((tmp_path / "logs/slurm").rglob("*.log"))
    status = affectflow_status(tmp_path, cfg)
    assert ingest_done(status)

    again = slurm_run(tmp_path, "ingest", configfile=cfg)  # a second run submits nothing
    assert "Nothing to be done" in again.stdout + again.stderr
    assert len(sacct(tmp_path)) == 4


@scenario
def scenario_failed_shard_reruns_alone(tmp_path: Path, ctx: Context):
    sample = tmp_path / "sample"
    shutil.copytree(ctx.sample24, sample)
    cfg = write_config(tmp_path / "config.yaml", sample, 4)
    plan = tmp_path / "results/instagram/plan/plan.json"

    # The volume shard 0 needs becomes unreadable once the plan is made, while the shards run (a
    # flaky mount, a volume being replaced): shard 0 fails; the other shards finish. (--retries 0
    # saves two identical failures; test_time_limit_retried_with_more_time covers the retries.)
    volume = sample / "instagram/Post_metadata/posts_info.z01"
    hidden = tmp_path / "posts_info.z01"
    run = subprocess.Popen(snakemake_cmd(tmp_path, "ingest", "--retries", "0", configfile=cfg), cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=run_env())
    wait_for(lambda: plan.exists() and plan.stat().st_size > 0, 120, "the plan", run, interval=0.05)
    volume.rename(hidden)  # shard jobs start seconds later: submission and job start-up come first
    out, err = run.communicate(timeout=300)
    assert run.returncode != 0, out + err
    assert json.loads(plan.read_text())["shard_volumes"]["0"][0] == "posts_info.z01"
    assert all("posts_info.z01" not in v for s, v in json.loads(plan.read_text())["shard_volumes"].items() if s != "0")
    posts = tmp_path / "results/instagram/posts"
    assert sorted(p.name for p in posts.glob("*.parquet")) == [f"shard-0000{i}.parquet" for i in (1, 2, 3)]
    assert [r["State"] for r in jobs_by_comment(tmp_path)["rule_instagram_ingest_wildcards_00000"]] == ["FAILED"]

    status = affectflow_status(tmp_path, cfg)
    assert states(status, "instagram_ingest") == {"00000": "failed", "00001": "done", "00002": "done", "00003": "done"}
    assert states(status, "instagram_ingest_summary") == {"-": "missing"}
    job0 = next(j for s in status["stages"] for r in s["rules"] for j in r["jobs"]
                if r["rule"] == "instagram_ingest" and j["wildcards"] == {"shard": "00000"})
    assert "posts_info.z01 is missing" in job0["reason"] and job0["log"].endswith("ingest/shard-00000.log")
    assert job0["slurm_log"] and Path(tmp_path, job0["slurm_log"]).is_file()  # SLURM logs kept for failed jobs
    # The run's working directory is not the repository, so the command names the Snakefile.
    assert status["resume"] == [f"snakemake -s {SNAKEFILE} --profile {SLURM_PROFILE} --rerun-incomplete ingest --configfile {cfg}"]

    # Fixed: the rerun runs shard 0 alone (plus the summary); finished shards are untouched.
    before = {p.name: p.stat().st_mtime_ns for p in posts.glob("*.parquet")}
    n_jobs = len(sacct(tmp_path))
    hidden.rename(volume)
    slurm_run(tmp_path, "ingest", configfile=cfg)
    new = sacct(tmp_path)[n_jobs:]
    assert [(r["Comment"], r["State"]) for r in new] == [("rule_instagram_ingest_wildcards_00000", "COMPLETED")]
    assert all(posts.joinpath(n).stat().st_mtime_ns == t for n, t in before.items())
    assert_same_results(tmp_path / "results", ctx.reference["sample24-4"](), 4)
    assert ingest_done(affectflow_status(tmp_path, cfg))


@scenario
def scenario_killed_snakemake_and_job_resume(tmp_path: Path, ctx: Context):
    """Everything dies at once (a login-node session and a compute node lost): the main Snakemake
    is SIGKILLed while the jobs of shards 1 and 2 are both mid-write; then every process of shard
    1's job is SIGKILLed too, and shard 2's job is let go: it finishes without its Snakemake."""
    cfg = write_config(tmp_path / "config.yaml", ctx.sample_dir, 3)
    posts = tmp_path / "results/instagram/posts"
    m1, m2 = tmp_path / "stalled-1", tmp_path / "stalled-2"
    stall = f"posts/shard-00001.parquet:600:{m1};posts/shard-00002.parquet:600:{m2}"
    proc = subprocess.Popen(snakemake_cmd(tmp_path, "ingest", configfile=cfg), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=run_env(stall), start_new_session=True)
    try:
        wait_for(lambda: m1.exists() and m2.exists(), 120, "shards 1 and 2 to be mid-write", proc)
        os.kill(proc.pid, signal.SIGKILL)  # the main Snakemake only: its SLURM jobs keep running
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (posts / "shard-00002.parquet").exists()  # shard 2's job outlives its Snakemake
    queue = subprocess.run(["squeue", "--noheader", "--format=%i|%k|%Z"], capture_output=True, text=True).stdout
    job1 = next(line.split("|")[0] for line in queue.splitlines()
                if line.endswith(f"|rule_instagram_ingest_wildcards_00001|{tmp_path}"))
    assert str(posts / "shard-00001.parquet") in incomplete_markers(tmp_path / ".snakemake")
    listed = subprocess.run(["scontrol", "listpids", job1], capture_output=True, text=True, check=True).stdout
    pids = [line.split()[0] for line in listed.splitlines()[1:] if line.strip()]
    assert int(m1.read_text()) in map(int, pids)
    for pid in pids:  # the node is lost: every process of the job dies at once
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    Path(f"{m2}.release").touch()  # shard 2's job, now without its Snakemake, finishes
    wait_for(lambda: all(r["State"] not in ("RUNNING", "PENDING", "COMPLETING") for r in sacct(tmp_path)), 90,
             "the jobs to end")

    # No partial Parquet under the final name; the killed writer's temporary file is all that is left.
    assert not (posts / "shard-00001.parquet").exists()
    leftovers = list(posts.glob(".shard-00001.parquet.tmp-*"))
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0
    assert (posts / "shard-00002.parquet").exists()  # the orphaned job finished and was recorded

    status = affectflow_status(tmp_path, cfg)
    assert states(status, "instagram_ingest") == {"00000": "done", "00001": "incomplete", "00002": "done"}
    assert status["locked"] and not status["snakemake_pids"]
    assert status["leftovers"] == [str(leftovers[0])]  # reported while the shard is unfinished
    assert status["resume"] == [f"snakemake -s {SNAKEFILE} --profile {SLURM_PROFILE} --unlock ingest --configfile {cfg}",
                                f"snakemake -s {SNAKEFILE} --profile {SLURM_PROFILE} --rerun-incomplete ingest --configfile {cfg}"]

    # Resume exactly as status says: unlock, then rerun. Only shard 1 is submitted again.
    before = {n: (posts / n).stat().st_mtime_ns for n in ("shard-00000.parquet", "shard-00002.parquet")}
    n_jobs = len(sacct(tmp_path))
    slurm_run(tmp_path, "--unlock", "ingest", configfile=cfg)
    slurm_run(tmp_path, "--rerun-incomplete", "ingest", configfile=cfg)
    new = sacct(tmp_path)[n_jobs:]
    assert [(r["Comment"], r["State"]) for r in new] == [("rule_instagram_ingest_wildcards_00001", "COMPLETED")]
    assert all((posts / n).stat().st_mtime_ns == t for n, t in before.items())
    assert not list(posts.glob(".shard-00001.parquet.tmp-*"))  # the rerun swept the killed writer's temp file
    assert_same_results(tmp_path / "results", ctx.reference["sample-3"](), 3)
    after = affectflow_status(tmp_path, cfg)
    assert ingest_done(after) and not after["locked"]
    assert after["leftovers"] == []  # the rerun's successful write swept it


@scenario
def scenario_gpu_rules_get_a_gpu_cpu_rules_none(tmp_path: Path, ctx: Context):
    """The profile's per-rule resources reach sbatch: a GPU (seen inside the job), cpus, memory."""
    start(tmp_path)
    slurm_run(tmp_path, "probe_all", snakefile=REPO / "tests/slurm/resources_probe.smk")
    profile = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    gpu = json.loads((tmp_path / "probe/sentiment.json").read_text())
    cpu = json.loads((tmp_path / "probe/instagram_plan.json").read_text())
    assert gpu["SLURM_GPUS_ON_NODE"] == "1" and gpu["CUDA_VISIBLE_DEVICES"] == "0"
    assert cpu["SLURM_GPUS_ON_NODE"] is None and cpu["CUDA_VISIBLE_DEVICES"] is None
    jobs = jobs_by_comment(tmp_path)
    alloc = {rule: dict(kv.split("=") for kv in jobs[f"rule_{rule}"][0]["AllocTRES"].split(","))
             for rule in ("sentiment", "instagram_plan")}
    for rule in alloc:
        assert alloc[rule]["cpu"] == str(profile["set-threads"][rule])
        assert alloc[rule]["mem"] == f"{eval(profile['set-resources'][rule]['mem_mb'], {'attempt': 1})}M"
    assert alloc["sentiment"]["gres/gpu"] == "1" and "gres/gpu" not in alloc["instagram_plan"]


@scenario
def scenario_time_limit_retried_with_more_time(wd: Path, ctx: Context):
    """Shard 1's first attempt outlives its time limit; SLURM kills it; the retry gets more time.

    The overlay profile keeps every key of profiles/slurm and only gives instagram_ingest a
    runtime of ``attempt`` minutes instead of the profile's ``60 * attempt``: attempt 1 gets 1
    minute and stalls past it, SLURM kills it (TIMEOUT), the profile's retries resubmit it with
    2 minutes (and, by the same expressions, twice the memory), and attempt 2 runs normally.
    """
    cfg = write_config(wd / "config.yaml", ctx.sample_dir, 3)
    profile = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    resources = profile["set-resources"]
    assert resources["instagram_ingest"]["runtime"] == "60 * attempt"  # the expression scaled down here
    resources["instagram_ingest"]["runtime"] = "1 * attempt"
    overlay = wd / "overlay"
    overlay.mkdir()
    (overlay / "config.yaml").write_text(yaml.safe_dump({**yaml.safe_load((FAST / "config.yaml").read_text()),
                                                         "set-resources": resources}))
    stall = f"posts/shard-00001.parquet:600:{wd / 'stalled'}"
    proc = slurm_run(wd, "ingest", profiles=(SLURM_PROFILE, overlay), configfile=cfg, stall=stall)

    attempts = jobs_by_comment(wd)["rule_instagram_ingest_wildcards_00001"]
    assert [(r["State"], r["Timelimit"], r["ReqMem"]) for r in attempts] == [
        ("TIMEOUT", "00:01:00", "2000M"), ("COMPLETED", "00:02:00", "4000M")]
    for other in ("00000", "00002"):
        assert [r["State"] for r in jobs_by_comment(wd)[f"rule_instagram_ingest_wildcards_{other}"]] == ["COMPLETED"]
    assert "TIMEOUT" in proc.stderr
    assert_same_results(wd / "results", ctx.reference["sample-3"](), 3)


@scenario
def scenario_whole_dag_through_slurm(wd: Path, ctx: Context):
    """Every stage through the scheduler with the tiny models: the per-shard model rules as GPU
    jobs, the sweeps' trials as submitit job arrays (``train.sweep.executor: auto`` resolves to
    slurm under this profile), and both metrics files and the report at the end."""
    start(wd)
    # The stand-in GPUs are allocated but unusable: the model stages run on the CPU on purpose
    # (with `auto` they would stop at once: see test_gpu_job_without_a_usable_gpu_fails_fast).
    overrides = {
        "instagram": {"shards": 2}, "features": {"device": "cpu"},
        "dreaddit": {"synthesis": {"steps": 1, "device": "cpu"}, "clip": {"device": "cpu"}},
        "cremad": {"audio": {"device": "cpu"}, "video": {"device": "cpu"}},
        "train": {"device": "cpu", "seeds": [0, 1, 2], "sweep": {"executor": "auto", "trials_per_job": 4, "mem_gb": 1, "timeout_min": 10},
                  "bootstrap": {"resamples": 100}, "engagement": {"epochs": 3, "grid": {"hidden": [16]}},
                  "stress": {"epochs": 3, "grid": {"lr": [0.001], "hidden": [16]}}}}
    with MODELS_BUILD:
        cfg = whole_dag_config(wd, ctx.sample_dir, overrides)
    slurm_run(wd, configfile=cfg)  # rule all

    jobs = sacct(wd)
    by_rule: dict[str, list[dict]] = {}
    for r in jobs:
        rule = r["Comment"].removeprefix("rule_").split("_wildcards_")[0] if r["Comment"] else "<submitit>"
        by_rule.setdefault(rule, []).append(r)
    assert {rule: len(v) for rule, v in by_rule.items() if rule != "<submitit>"} == {
        "instagram_plan": 1, "instagram_ingest": 2, "sentiment": 2, "text_embeddings": 2, "image_embeddings": 2,
        "engagement_caption_embeddings": 2, "engagement_dataset": 1, "train_engagement": 1,
        "synthesize_shard": 2, "dreaddit_clip": 2, "stress_text_embeddings": 1, "finetune_stress": 3,
        "cremad_clips": 1, "cremad_egemaps": 2, "cremad_video": 2, "cremad_text": 1, "cremad_train": 1}
    assert all(r["State"] == "COMPLETED" for r in jobs), [(r["Comment"] or r["JobName"], r["State"]) for r in jobs]
    gpu_rules = {"sentiment", "text_embeddings", "image_embeddings", "synthesize_shard", "dreaddit_clip", "finetune_stress",
                 "cremad_video"}
    for rule, rows in by_rule.items():
        for r in rows:
            assert ("gres/gpu=1" in r["AllocTRES"]) == (rule in gpu_rules), (rule, r["AllocTRES"])
    # Each sweep's trials ran as one SLURM job array submitted by submitit, 4 trials a task:
    # engagement 4 models x 3 seeds = 3 tasks, stress 3 models x 3 seeds = 3 tasks (``<array>_<i>``).
    tasks = sorted(r["JobID"] for r in by_rule["<submitit>"])
    assert all("_" in t for t in tasks), tasks
    assert sorted(Counter(t.split("_")[0] for t in tasks).values()) == [3, 3], tasks

    results = wd / "results"
    for task in ("engagement", "stress"):
        m = json.loads((results / f"models/{task}/metrics.json").read_text())
        assert m["selected_on"] == "val" and m["seeds"] == [0, 1, 2]
        assert json.loads((results / f"models/{task}/sweep/selection.json").read_text())
    assert "clip_finetune" in json.loads((results / "models/stress/metrics.json").read_text())["models"]
    assert (results / "report.html").stat().st_size > 100_000
    # Tiny models made these figures: the metrics and the overview page say so first.
    for task in ("engagement", "stress"):
        first_key = (results / f"models/{task}/metrics.json").read_text().splitlines()[1]
        assert first_key.strip().startswith('"DEMO_RUN_NOT_REAL_RESULTS": "DEMO RUN, NOT REAL RESULTS'), first_key
    overview = (results / "report/overview.html").read_text()
    assert "<title>DEMO RUN, NOT REAL RESULTS" in overview.splitlines()[0] and "<section id=throughput>" in overview
    status = affectflow_status(wd, cfg)
    assert status["all_done"] and not status["resume"]
    assert status["progress"]["ingest"]["rules"]["instagram_ingest"]["rows_per_s"] > 0


@scenario
def scenario_gpu_job_without_a_usable_gpu_fails_fast(wd: Path, ctx: Context):
    """SLURM gives the sentiment job a GPU (a stand-in torch cannot use, as with a driver older
    than the CUDA of the wheels): with ``device: auto`` the job stops at once with the reason,
    instead of running on the CPU until its time limit; status shows that reason."""
    start(wd)
    with MODELS_BUILD:
        cfg = whole_dag_config(wd, ctx.sample_dir, {"instagram": {"shards": 2}})
    target = str(wd / "results/instagram/sentiment/shard-00000.parquet")
    proc = slurm_run(wd, target, "--retries", "0", configfile=cfg, check=False)
    assert proc.returncode != 0
    jobs = jobs_by_comment(wd)
    (job,) = jobs["rule_sentiment_wildcards_00000"]
    assert job["State"] == "FAILED" and "gres/gpu=1" in job["AllocTRES"]
    elapsed = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job["JobIDRaw"], "-o", "ElapsedRaw"],
                             capture_output=True, text=True, check=True).stdout.split()[0]
    assert int(elapsed) < 120, elapsed  # seconds: model loading never started
    log = (wd / "logs/instagram/sentiment/shard-00000.log").read_text()
    assert "GPUUnavailable: features.device=auto: the job was given a GPU" in log, log[-2000:]
    assert re.search(r"CUDA_VISIBLE_DEVICES=\d", log)  # the stand-in GPU SLURM gave (0 or 1: scenarios run side by side)
    status = affectflow_status(wd, cfg)
    assert states(status, "sentiment")["00000"] == "failed"
    reason = next(j["reason"] for s in status["stages"] for r in s["rules"] for j in r["jobs"]
                  if r["rule"] == "sentiment" and j["wildcards"] == {"shard": "00000"})
    assert reason.startswith("GPUUnavailable: features.device=auto") and "torch" in reason


# -- the tests: one per scenario ------------------------------------------------------------------


def test_ingest_through_slurm_equals_local_run(scenarios):
    scenarios["ingest_through_slurm_equals_local_run"].result(timeout=600)


def test_failed_shard_reruns_alone(scenarios):
    scenarios["failed_shard_reruns_alone"].result(timeout=600)


def test_killed_snakemake_and_job_resume(scenarios):
    scenarios["killed_snakemake_and_job_resume"].result(timeout=600)


def test_gpu_rules_get_a_gpu_cpu_rules_none(scenarios):
    scenarios["gpu_rules_get_a_gpu_cpu_rules_none"].result(timeout=600)


def test_time_limit_retried_with_more_time(scenarios):
    scenarios["time_limit_retried_with_more_time"].result(timeout=600)


def test_whole_dag_through_slurm(scenarios):
    scenarios["whole_dag_through_slurm"].result(timeout=900)


def test_gpu_job_without_a_usable_gpu_fails_fast(scenarios):
    scenarios["gpu_job_without_a_usable_gpu_fails_fast"].result(timeout=600)
