"""``affectflow status``: where a run stands, stage by stage and shard by shard, and how to resume.

The operator's question the morning after ("what finished, what failed and why, what do I type
now") is answered from what is on disk, without building Snakemake's DAG (which needs the raw
data and the whole workflow to load) and in well under a second:

* the expected jobs come from the config (shard counts) through :data:`STAGES`, stage -> rules
  -> output and log patterns, built from :data:`affectflow.layout.RULES` (the table the rules
  read their paths from);
* a job is *done* when all its outputs exist and Snakemake has no incomplete marker for them
  (``.snakemake/incomplete``: a job was running when it or Snakemake was killed);
* *failed* when its log ends in an error (the CLI's last ``ERROR`` line, or a traceback), when
  the SLURM log of its job says SLURM killed it (time limit, memory, node failure), or when a
  Snakemake run log (``.snakemake/log``) records the job's error although its own log holds none
  (a local job killed by a signal: ``kill -9``, the kernel's out-of-memory killer);
* *running*/*queued* when ``squeue`` lists its job (the plugin's ``--comment`` names rule and
  wildcards; jobs are matched by working directory), or, locally, when its ``affectflow`` command
  is still alive in the working directory after its Snakemake was killed;
* *incomplete* when Snakemake marked its outputs incomplete, or a temporary file from the atomic
  Parquet writer was left behind by a killed job;
* *missing* otherwise (not run yet, or waiting for an upstream job).

The resume command names the targets of the stages that have begun but not finished; stages with
no job run yet are listed apart (a run of ``ingest`` alone is not asked to fetch models). When a
stage's final outputs exist but some of its intermediate ones do not (deleted by hand), Snakemake
would not rebuild those for the stage target, so the command names them as file targets too.

Adding a rule or a stage: declare it in :data:`affectflow.layout.RULES` (its outputs, log, jobs,
stage; a new stage's target in ``STAGE_TARGETS``) and take its paths from there in the ``.smk``
file; it is tracked here with no further change. ``tests/ops/test_run_status.py`` checks every
registered rule against a dry-run of the real workflow.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from base64 import urlsafe_b64decode
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .. import layout

Wildcards = dict[str, str]

# -- the registry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One rule: its outputs and log, and its jobs' wildcard values.

    Patterns are ``str.format`` templates over the config and the wildcards, as in
    :mod:`affectflow.layout`: ``{results}``, ``{logs}``, ``{models[dir]}``, ``{shard}``.
    """

    rule: str
    outputs: tuple[str, ...]
    log: str
    jobs: Callable[[Mapping], list[Wildcards]] = layout.once

    @classmethod
    def of(cls, rule: str) -> "Step":
        """The step of a rule of :data:`affectflow.layout.RULES`."""
        r = layout.RULES[rule]
        return cls(rule, tuple(r.outputs.values()), r.log, r.jobs)


@dataclass(frozen=True)
class Stage:
    """A stage is reported as a unit and resumed through its target rule."""

    name: str
    target: str
    steps: tuple[Step, ...]


#: Every rule of the layout, grouped by stage (each stage's final rule last).
STAGES: tuple[Stage, ...] = tuple(
    Stage(stage, target, tuple(Step.of(r.rule) for r in layout.RULES.values() if r.stage == stage))
    for stage, target in layout.STAGE_TARGETS.items()
)

# -- states ----------------------------------------------------------------------------------------

DONE, RUNNING, QUEUED, FAILED, INCOMPLETE, MISSING = "done", "running", "queued", "failed", "incomplete", "missing"
STATES = (DONE, RUNNING, QUEUED, FAILED, INCOMPLETE, MISSING)


@dataclass
class JobStatus:
    rule: str
    wildcards: Wildcards
    state: str
    outputs: list[str]
    log: str
    reason: str | None = None
    slurm_job: str | None = None
    slurm_log: str | None = None
    leftovers: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return " ".join(f"{v}" for v in self.wildcards.values()) or "-"


@dataclass
class RunStatus:
    workdir: str
    results: str
    logs: str
    stages: dict[str, dict[str, list[JobStatus]]]
    locked: bool
    snakemake_pids: list[int]
    orphan_jobs: list[dict[str, str]]
    unregistered_rules: list[str]
    last_run_log: str | None
    resume: list[str]
    not_started: list[str] = field(default_factory=list)  # targets of stages with no job run yet
    writers: list[dict[str, Any]] = field(default_factory=list)  # processes of a killed run still writing
    run_from: str | None = None       # where the resume command's profile and config files come from
    progress: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # one line each: the run cannot start as it is
    foreign_files: list[str] = field(default_factory=list)  # shard files outside the current plan

    def counts(self, stage: str, rule: str) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for j in self.stages[stage][rule]:
            out[j.state] += 1
        return out

    @property
    def leftovers(self) -> list[str]:
        """Temporary files of killed writers, beside outputs of any state."""
        return [t for rules in self.stages.values() for jobs in rules.values() for j in jobs for t in j.leftovers]

    @property
    def all_done(self) -> bool:
        return not self.foreign_files and all(
            j.state == DONE for rules in self.stages.values() for jobs in rules.values() for j in jobs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workdir": self.workdir, "results": self.results, "logs": self.logs,
            "all_done": self.all_done,
            "stages": [{"name": s, "rules": [{"rule": r, "counts": self.counts(s, r), "jobs": [asdict(j) for j in jobs]}
                                             for r, jobs in rules.items()]}
                       for s, rules in self.stages.items()],
            "locked": self.locked, "snakemake_pids": self.snakemake_pids, "orphan_jobs": self.orphan_jobs,
            "leftovers": self.leftovers,
            "unregistered_rules": self.unregistered_rules, "last_run_log": self.last_run_log,
            "resume": self.resume, "not_started": self.not_started, "foreign_files": self.foreign_files,
            "writers": self.writers, "run_from": self.run_from, "progress": self.progress, "problems": self.problems,
        }


# -- evidence on disk -------------------------------------------------------------------------------

_ERROR_LINE = re.compile(r"^\S+ \S+ ERROR \S+: (?P<msg>.+)$")  # the CLI's last line: "<date> <time> ERROR affectflow: X: msg"
_EXC_LINE = re.compile(r"^(?:[\w.]+\.)?(?P<msg>\w*(?:Error|Exception|Exit|Interrupt)\b.*)$")
_SLURM_KILLS = (
    (re.compile(r"DUE TO TIME LIMIT"), "killed by SLURM at its time limit (runtime)"),
    (re.compile(r"oom[-_ ]kill|Out Of Memory|OUT_OF_MEMORY|exceeded memory limit", re.I), "killed by SLURM: out of memory (mem_mb)"),
    (re.compile(r"DUE TO NODE FAILURE|NODE_FAIL", re.I), "lost with its node (node failure)"),
    (re.compile(r"DUE TO PREEMPTION"), "preempted"),
    (re.compile(r"CANCELLED AT"), "cancelled (scancel)"),
)


def _tail(path: Path, nbytes: int = 65536) -> list[str]:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - nbytes))
        return f.read().decode("utf-8", "replace").splitlines()


def log_error(path: str | Path) -> str | None:
    """The error a job's log ends with: the CLI's last ERROR line, else a traceback's last line."""
    p = Path(path)
    if not p.is_file():
        return None
    lines = [ln.rstrip() for ln in _tail(p) if ln.strip()]
    for ln in reversed(lines):
        m = _ERROR_LINE.match(ln)
        if m:
            return m.group("msg")
    if any(ln.startswith("Traceback (most recent call last)") for ln in lines):
        for ln in reversed(lines):
            m = _EXC_LINE.match(ln)
            if m and not ln.startswith(" "):
                return m.group("msg")
        return lines[-1]
    return None


_RUN_LOG_ERROR_LOG = re.compile(r"^    log: (?P<log>.+?) \(check log file\(s\) for error details\)$")


def run_log_failures(log_dir: Path, last: int = 5) -> dict[str, Path]:
    """The jobs Snakemake saw fail, from its newest ``last`` run logs (``<date>.snakemake.log``).

    Args:
        log_dir: ``.snakemake/log`` of the working directory.
        last: how many of the newest run logs to read.

    Returns:
        The job's log path exactly as its rule names it (what Snakemake prints in its
        ``Error in rule ...`` block) -> the newest run log that records that failure.
    """
    out: dict[str, Path] = {}
    for run_log in sorted(log_dir.glob("*.snakemake.log"))[::-1][:last]:
        try:
            lines = run_log.read_text(errors="replace").splitlines()
        except OSError:
            continue
        in_error = False
        for ln in lines:
            if ln.startswith("Error in rule "):
                in_error = True
            elif in_error and not ln.startswith(" "):
                in_error = False
            elif in_error and (m := _RUN_LOG_ERROR_LOG.match(ln)):
                out.setdefault(m.group("log"), run_log)
    return out


def last_progress(path: str | Path) -> str | None:
    """The last progress line of a job's log (``affectflow.ops.progress``: done/total, rate, ETA)."""
    p = Path(path)
    if not p.is_file():
        return None
    for ln in reversed(_tail(p, 8192)):
        if " affectflow.progress: " in ln:
            return ln.split(" affectflow.progress: ", 1)[1].strip()
    return None


def slurm_kill_reason(path: str | Path) -> str | None:
    """Why SLURM ended a job, from slurmstepd's line in the job's output (``*** JOB n ... ***``)."""
    try:
        text = "\n".join(_tail(Path(path), 16384))
    except OSError:
        return None
    for pattern, reason in _SLURM_KILLS:
        if pattern.search(text):
            return reason
    return None


def incomplete_markers(persistence: Path) -> dict[str, str | None]:
    """Snakemake's incomplete markers: output path (as in the rule) -> SLURM job id (or None).

    Snakemake names each marker by the urlsafe-base64 of the output path, split into path segments
    of at most NAME_MAX characters, every segment but the last prefixed with ``@``.
    """
    root = persistence / "incomplete"
    out: dict[str, str | None] = {}
    if not root.is_dir():
        return out
    for dirpath, _, files in os.walk(root):
        rel = Path(dirpath).relative_to(root).parts
        for name in files:
            if name == "migration_underway":
                continue
            b64 = "".join(part.lstrip("@") for part in (*rel, name))
            try:
                key = urlsafe_b64decode(b64.encode()).decode()
            except (ValueError, UnicodeDecodeError):
                continue
            try:
                jobid = json.loads(Path(dirpath, name).read_text() or "{}").get("external_jobid")
            except (OSError, ValueError):
                jobid = None
            out[key] = jobid
    return out


def leftover_temp_files(output: str, workdir: Path, listings: dict[Path, list[str]] | None = None) -> list[str]:
    """Temporary files the atomic writers (``io.parquet``) leave only when their job was killed,
    named like ``output`` (relative to the working directory, or absolute). ``listings`` caches
    each folder's hidden temporary files, so thousands of shards in one folder cost one scan."""
    d = workdir / Path(output).parent
    listings = {} if listings is None else listings
    if d not in listings:
        try:
            listings[d] = sorted(e.name for e in os.scandir(d) if e.name.startswith(".") and ".tmp-" in e.name)
        except OSError:
            listings[d] = []
    prefix = f".{Path(output).name}.tmp-"
    return [str(Path(output).parent / n) for n in listings[d] if n.startswith(prefix)]


def slurm_queue(workdir: Path) -> dict[str, tuple[str, str]]:
    """This workflow's jobs in the SLURM queue: plugin comment -> (job id, state). Empty without SLURM."""
    if not shutil.which("squeue"):
        return {}
    try:
        out = subprocess.run(["squeue", "--me", "--noheader", "--format=%i|%T|%k|%Z"], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    jobs: dict[str, tuple[str, str]] = {}
    wd = os.path.realpath(workdir)
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4 and os.path.realpath(parts[3]) == wd:
            jobs[parts[2]] = (parts[0], parts[1])
    return jobs


def slurm_comment(rule: str, wildcards: Wildcards) -> str:
    """The ``--comment`` snakemake-executor-plugin-slurm gives a job (``rule_<rule>_wildcards_<v1_v2>``)."""
    wc = "_".join(wildcards.values()).replace("/", "_")
    return f"rule_{rule}_wildcards_{wc}" if wc else f"rule_{rule}"


def processes_in(workdir: Path) -> list[tuple[int, list[str]]]:
    """Every process (but this one) whose working directory is ``workdir``: ``(pid, argv)``.

    The one scan of the process table that :func:`snakemake_processes`, :func:`local_job_processes`
    and :func:`live_writers` each read their own view from.
    """
    import psutil

    wd = os.path.realpath(workdir)
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if p.info["pid"] != os.getpid() and os.path.realpath(p.cwd()) == wd:
                out.append((p.info["pid"], list(p.info["cmdline"] or [])))
        except (psutil.Error, OSError):
            continue
    return out


def snakemake_processes(workdir: Path) -> list[int]:
    """Main Snakemake processes running in ``workdir`` (not the ones inside SLURM jobs)."""
    return sorted(pid for pid, cmd in processes_in(workdir)
                  if any("snakemake" in c for c in cmd[:3])
                  and not ("remote" in cmd or "slurm-jobstep" in cmd or "--unlock" in cmd))


def local_job_processes(workdir: Path) -> dict[str, int]:
    """Jobs of a local run still alive in ``workdir``: each argument of a running ``affectflow``
    command (its output paths among them, as the rule wrote them) -> the process id. After a
    local Snakemake is killed (``kill -9``), its jobs go on running without it."""
    args: dict[str, int] = {}
    for pid, cmd in processes_in(workdir):
        if any(c == "affectflow" or c.endswith("/affectflow") for c in cmd[:5]):
            args.update(dict.fromkeys(cmd, pid))
    return args


def workflow_rules(repo: Path) -> dict[str, bool]:
    """Rules declared in the workflow (Snakefile + workflow/rules/*.smk) -> whether they have outputs."""
    rules: dict[str, bool] = {}
    files = [repo / "Snakefile", *sorted((repo / "workflow" / "rules").glob("*.smk"))]
    for f in files:
        if not f.is_file():
            continue
        chunks = re.split(r"^rule\s+", f.read_text(), flags=re.M)[1:]
        for chunk in chunks:
            m = re.match(r"(\w+)\s*:", chunk)
            if m:
                rules[m.group(1)] = bool(re.search(r"^\s+output\s*:", chunk, flags=re.M))
    return rules


def profile_setting(profile: str | Path | None, key: str) -> str | None:
    """A top-level key of a Snakemake profile (``<profile>/config.yaml``), if set."""
    if not profile:
        return None
    import yaml

    from ..config import REPO_ROOT

    for p in (Path(profile), REPO_ROOT / profile):  # as given, else a profile of this repository
        path = p if p.is_file() else p / "config.yaml"
        if path.is_file():
            break
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    val = data.get(key) if isinstance(data, dict) else None
    return None if val is None else str(val)


_NOT_A_RUN = {"-n", "--dry-run", "--dryrun", "--unlock", "--lint", "--report", "--list", "-l", "--list-rules",
              "--summary", "-S", "--detailed-summary", "-D", "--dag", "--rulegraph", "--filegraph", "--cleanup-metadata",
              "--list-untracked", "--delete-all-output", "--delete-temp-output", "--version", "-h", "--help"}
_MULTI_VALUE = {"--configfile", "--configfiles", "--config", "-C"}


@dataclass
class LastRun:
    """How the last Snakemake run here was started: what a resume command must repeat."""

    source: str                      # the log file, or "pid N" for a running Snakemake
    profile: str | None
    configfiles: list[str]
    argv: list[str]


def parse_snakemake_argv(argv: Sequence[str]) -> LastRun | None:
    """Profile and config files of a Snakemake command line; None for a dry-run, --unlock, --lint, ...

    ``--configfile a.yaml b.yaml`` (several values after one flag, Snakemake's form), repeated
    flags and ``--flag=value`` are all understood.
    """
    profile, configfiles = None, []
    i, args = 0, list(argv)
    while i < len(args):
        tok = args[i]
        flag, eq, val = tok.partition("=")
        if flag in _NOT_A_RUN:
            return None
        if flag == "--profile":
            profile = val if eq else (args[i + 1] if i + 1 < len(args) else None)
            i += 1 if eq else 2
            continue
        if flag in _MULTI_VALUE:
            vals = [val] if eq else []
            j = i + 1
            if not eq:
                while j < len(args) and not args[j].startswith("-"):
                    vals.append(args[j])
                    j += 1
            if flag in ("--configfile", "--configfiles"):
                configfiles += vals
            i = j
            continue
        i += 1
    return LastRun(source="", profile=profile, configfiles=configfiles, argv=list(argv))


def last_run(workdir: Path, pids: Sequence[int] = ()) -> LastRun | None:
    """The running Snakemake's command line, else the newest ``.snakemake/log/*.snakemake.log`` of a
    real run (its ``Command:`` line; dry-runs, --unlock and the like skipped). None if neither."""
    import psutil

    for pid in pids:
        try:
            run = parse_snakemake_argv(psutil.Process(pid).cmdline()[1:])
        except (psutil.Error, OSError):
            continue
        if run:
            run.source = f"pid {pid}"
            return run
    for log in sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"), reverse=True):
        try:
            with open(log, encoding="utf-8", errors="replace") as fh:
                head = [next(fh, "") for _ in range(40)]
        except OSError:
            continue
        cmd = next((ln.split("Command:", 1)[1].strip() for ln in head if ln.strip().startswith("Command:")), None)
        if not cmd:
            continue
        try:
            run = parse_snakemake_argv(shlex.split(cmd)[1:])
        except ValueError:
            continue
        if run:
            run.source = str(log)
            return run
    return None


def display_path(path: str, workdir: Path) -> str:
    """``path`` relative to the working directory (or to this repository for a profile of it) when
    inside it, so the resume command reads as one would type it."""
    from ..config import REPO_ROOT

    p = Path(path)
    if not p.is_absolute():
        return path
    for base in (Path(workdir).resolve(), REPO_ROOT):
        try:
            return str(p.resolve().relative_to(base))
        except ValueError:
            continue
    return path


def live_writers(workdir: Path, exclude: Sequence[int] = ()) -> list[dict[str, Any]]:
    """Processes still working in ``workdir`` with no main Snakemake: jobs of a killed run
    (``affectflow`` commands, Snakemake's in-job processes). Returns ``{"pid", "cmd"}`` per process."""
    me = {os.getppid(), *exclude}
    return [{"pid": pid, "cmd": " ".join(cmd)[:160]} for pid, cmd in processes_in(workdir)
            if pid not in me and any(("affectflow" in c or "snakemake" in c) for c in cmd[:4])
            and not (" status" in " ".join(cmd[:5]) or "--unlock" in cmd)]


def slurm_plugin_problem(profile: str | Path | None) -> str | None:
    """One line when the profile runs on SLURM but snakemake-executor-plugin-slurm is not installed."""
    import importlib.util

    if profile_setting(profile, "executor") != "slurm":
        return None
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is not None:
        return None
    return (f"profile {profile} runs on SLURM, but snakemake-executor-plugin-slurm is not installed: "
            "pip install -c requirements/constraints.txt snakemake-executor-plugin-slurm")


def job_seconds_and_rows(job: "JobStatus", workdir: Path, cfg: Mapping) -> tuple[float | None, int | None]:
    """(wall seconds from the job's benchmark file, rows of its first Parquet output) for a done job."""
    seconds = rows = None
    try:
        lines = (workdir / layout.benchmark(job.rule, cfg, job.wildcards)).read_text().splitlines()
        if len(lines) >= 2:
            seconds = float(lines[-1].split("\t")[0])
    except (OSError, ValueError):
        pass
    first = job.outputs[0] if job.outputs else ""
    if first.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq

            rows = pq.ParquetFile(workdir / first).metadata.num_rows
        except Exception:
            rows = None
    return seconds, rows


def stage_progress(status: "RunStatus", workdir: Path, cfg: Mapping) -> dict[str, dict[str, Any]]:
    """Per stage: jobs done of total, and per per-shard rule the rows it wrote per job-second.

    Returns stage -> ``{"done", "total", "rules": {rule: {"done", "total", "rows", "seconds",
    "rows_per_s"}}}``; ``rows_per_s`` is rows / benchmark seconds summed over the rule's done jobs
    (None where no benchmark or no Parquet output is known).
    """
    out: dict[str, dict[str, Any]] = {}
    for stage, rules in status.stages.items():
        entry: dict[str, Any] = {"done": 0, "total": 0, "rules": {}}
        for rule, jobs in rules.items():
            done = [j for j in jobs if j.state == DONE]
            entry["done"] += len(done)
            entry["total"] += len(jobs)
            if len(jobs) < 2:
                continue
            rows = secs = 0.0
            for j in done:
                s_, r_ = job_seconds_and_rows(j, workdir, cfg) if j.rule in layout.RULES else (None, None)
                if s_ is not None and r_ is not None:
                    secs += s_
                    rows += r_
            unit = {"shard": "shards", "seed": "seeds", "key": "models"}.get(next(iter(jobs[0].wildcards), ""), "jobs")
            entry["rules"][rule] = {"done": len(done), "total": len(jobs), "unit": unit, "rows": int(rows),
                                    "seconds": round(secs, 1), "rows_per_s": round(rows / secs, 1) if secs > 0 else None}
        out[stage] = entry
    return out


# -- assembling the picture -------------------------------------------------------------------------


def _fmt(pattern: str, cfg: Mapping, wildcards: Wildcards) -> str:
    return layout.fill(pattern, cfg, wildcards)


def job_status(step: Step, cfg: Mapping, wildcards: Wildcards, workdir: Path, markers: Mapping[str, str | None],
               queue: Mapping[str, tuple[str, str]], slurm_logdir: Path, snakemake_running: bool,
               listings: dict[Path, list[str]] | None = None,
               run_failures: Mapping[str, Path] | None = None,
               local_jobs: Mapping[str, int] | None = None) -> JobStatus:
    """The state of one job of ``step`` (see the module docstring for the rules).

    ``run_failures`` is :func:`run_log_failures` of the working directory (job log -> run log);
    ``local_jobs`` is :func:`local_job_processes` (argument -> pid) when no Snakemake runs there.
    """
    outputs = [_fmt(o, cfg, wildcards) for o in step.outputs]
    log = _fmt(step.log, cfg, wildcards)
    j = JobStatus(step.rule, dict(wildcards), MISSING, outputs, log)
    paths = [workdir / o for o in outputs]
    present = [p.exists() for p in paths]
    j.leftovers = [t for o in outputs for t in leftover_temp_files(o, workdir, listings)]
    marked = [o for o in outputs if o in markers]
    queued = queue.get(slurm_comment(step.rule, wildcards))
    slurm_logs = sorted((slurm_logdir / f"rule_{step.rule}" / "_".join(wildcards.values())).glob("*.log"),
                        key=lambda p: p.stat().st_mtime)
    if slurm_logs:
        j.slurm_log = str(slurm_logs[-1])
    if queued:
        j.slurm_job, st = queued
        j.state = QUEUED if st in ("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "SUSPENDED") else RUNNING
        if j.state == RUNNING:
            j.reason = last_progress(workdir / log)
        return j
    if marked:
        j.slurm_job = markers[marked[0]]
        alive = [(local_jobs or {}).get(o) for o in outputs]
        if snakemake_running:
            j.state = RUNNING
            j.reason = last_progress(workdir / log)
        elif any(alive):
            j.state = RUNNING
            j.reason = (f"still running (pid {next(a for a in alive if a)}) after its Snakemake was killed: "
                        "let it finish, or kill it, before resuming")
        else:
            j.state = INCOMPLETE
            j.reason = ("was running when Snakemake or its job was killed; "
                        "its outputs are redone by --rerun-incomplete")
        return j
    if all(present):
        j.state = DONE
        return j
    error = log_error(workdir / log)
    killed = slurm_kill_reason(slurm_logs[-1]) if slurm_logs else None
    if any(present):
        j.state, j.reason = INCOMPLETE, f"only some outputs exist: missing {[o for o, ok in zip(outputs, present) if not ok]}"
    elif killed or error:
        j.state, j.reason = FAILED, killed or error
    elif (run_log := (run_failures or {}).get(log)) and _not_older(run_log, workdir / log):
        j.state, j.reason = FAILED, (f"ended with no error in its log (killed by a signal: kill -9, out of memory?); "
                                     f"Snakemake recorded the failure in {run_log}")
    elif j.leftovers:
        j.state, j.reason = INCOMPLETE, "a killed job left a temporary file (safe to delete)"
    return j


def _not_older(run_log: Path, job_log: Path) -> bool:
    """Whether ``run_log`` was written after ``job_log`` (so it speaks of that attempt of the job)."""
    try:
        return run_log.stat().st_mtime >= job_log.stat().st_mtime
    except OSError:
        return True  # the job's log is gone: the run log is the only evidence


def collect(cfg: Mapping, workdir: str | Path = ".", profile: str | Path | None = "profiles/slurm",
            configfiles: Sequence[str] = (), stages: Iterable[Stage] = STAGES, repo: Path | None = None,
            queue: Mapping[str, tuple[str, str]] | None = None, run_from: str | None = None,
            writers: Sequence[dict[str, Any]] | None = None) -> RunStatus:
    """Everything ``affectflow status`` reports, from the config and what is on disk.

    Args:
        profile, configfiles: what the resume command names (see :func:`last_run` for finding them).
        run_from: where they were read from (a log file, a running pid), shown beside the command.
        queue, writers: the SLURM queue and live writer processes (looked up when None; tests pass them).
    """
    from ..config import REPO_ROOT

    workdir = Path(workdir)
    declared = workflow_rules(repo or REPO_ROOT)
    markers = incomplete_markers(workdir / ".snakemake")
    run_failures = run_log_failures(workdir / ".snakemake" / "log")
    queue = slurm_queue(workdir) if queue is None else queue
    pids = snakemake_processes(workdir)
    local_jobs = {} if pids else local_job_processes(workdir)
    slurm_logdir = workdir / (profile_setting(profile, "slurm-logdir") or ".snakemake/slurm_logs")
    result: dict[str, dict[str, list[JobStatus]]] = {}
    listings: dict[Path, list[str]] = {}
    registered: set[str] = set()
    targets: list[str] = []  # stages begun and not finished: the run to resume
    not_started: list[str] = []
    for stage in stages:
        registered.update(s.rule for s in stage.steps)
        steps = [s for s in stage.steps if s.rule in declared]
        if not steps:
            continue
        result[stage.name] = {
            s.rule: [job_status(s, cfg, wc, workdir, markers, queue, slurm_logdir, bool(pids), listings,
                                  run_failures, local_jobs)
                     for wc in s.jobs(cfg)]
            for s in steps
        }
        jobs = [j for js in result[stage.name].values() for j in js]
        if not jobs:  # e.g. no models configured
            del result[stage.name]
        elif all(j.state == MISSING for j in jobs):
            not_started.append(stage.target)
        elif any(j.state != DONE for j in jobs):
            last = result[stage.name].get(stage.steps[-1].rule, [])
            if last and all(j.state == DONE for j in last):
                # The stage's final outputs exist, so Snakemake would not rebuild the missing
                # intermediate ones for the stage target alone (outputs deleted by hand): name them.
                targets += [o for j in jobs if j.state != DONE for o in j.outputs]
            targets.append(stage.target)
    orphans = [] if pids else [{"comment": c, "job": jid, "state": st} for c, (jid, st) in sorted(queue.items())]
    locked = any((workdir / ".snakemake" / "locks").glob("*.lock"))
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    status = RunStatus(
        workdir=str(workdir.resolve()), results=str(cfg["results"]), logs=str(cfg["logs"]), stages=result,
        locked=locked, snakemake_pids=pids, orphan_jobs=orphans,
        unregistered_rules=sorted(r for r, has_out in declared.items() if has_out and r not in registered),
        last_run_log=str(logs[-1]) if logs else None, resume=[], not_started=not_started, run_from=run_from)
    from .results_folder import foreign_shard_files

    in_workdir = {**cfg, "results": str(workdir / cfg["results"])}  # a relative results folder is the working directory's
    status.foreign_files = [os.path.relpath(p, workdir) if not Path(cfg["results"]).is_absolute() else str(p)
                            for p in foreign_shard_files(in_workdir)]
    if not pids:
        status.writers = list(live_writers(workdir) if writers is None else writers)
    status.progress = stage_progress(status, workdir, cfg)
    plugin = slurm_plugin_problem(profile)
    status.problems = [plugin] if plugin else []
    root = Path(repo or REPO_ROOT)
    snakefile = None if workdir.resolve() == root.resolve() else root / "Snakefile"
    status.resume = resume_commands(status, targets, profile, configfiles, snakefile)
    return status


def resume_commands(status: RunStatus, targets: Sequence[str], profile: str | Path | None,
                    configfiles: Sequence[str], snakefile: str | Path | None = None) -> list[str]:
    """The commands that pick the run up: unlock if a killed Snakemake left its lock, then rerun.

    ``snakefile`` is named (``-s``) when the working directory is not the repository root, where
    Snakemake would not find it.
    """
    if not targets:
        return []
    tail = " ".join(shlex.quote(t) for t in targets)
    if configfiles:
        tail += " --configfile " + " ".join(shlex.quote(str(c)) for c in configfiles)
    prof = f"--profile {shlex.quote(str(profile))} " if profile else ""
    if snakefile:
        prof = f"-s {shlex.quote(str(snakefile))} " + prof
    cmds = []
    # Unlocking while jobs of the killed run still write would let a second Snakemake race them.
    if status.locked and not status.snakemake_pids and not status.orphan_jobs and not status.writers:
        cmds.append(f"snakemake {prof}--unlock {tail}")
    cmds.append(f"snakemake {prof}--rerun-incomplete {tail}")
    return cmds


# -- the report ------------------------------------------------------------------------------------


def format_status(s: RunStatus, max_lines: int = 20) -> str:
    """A table per rule, the jobs that need attention, and the commands to resume."""
    out = [f"workdir {s.workdir}   results {s.results}   logs {s.logs}", ""]
    header = ("stage", "rule", "jobs", *STATES)
    rows = [(st, r, str(len(jobs)), *(str(s.counts(st, r)[k]) for k in STATES))
            for st, rules in s.stages.items() for r, jobs in rules.items()]
    if not rows:
        out.append("no registered stage has rules in this workflow")
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    for i, row in enumerate([header, *rows]):
        out.append("  ".join(c.ljust(w) if k < 2 else c.rjust(w) for k, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    if s.progress:
        out += ["", "Progress:"]
        for stage, p in s.progress.items():
            line = f"  {stage:<9} {p['done']}/{p['total']} jobs done"
            rates = [f"{rule} {r['done']}/{r['total']} {r['unit']}"
                     + (f", {r['rows_per_s']:,.{0 if r['rows_per_s'] >= 100 else 1}f} rows/s per job" if r["rows_per_s"] else "")
                     for rule, r in p["rules"].items()]
            out.append(line + (": " + "; ".join(rates) if rates else ""))
    jobs = [j for rules in s.stages.values() for js in rules.values() for j in js]
    for state, title in ((FAILED, "Failed"), (INCOMPLETE, "Incomplete (redone on resume)"),
                         (RUNNING, "Running"), (QUEUED, "Queued")):
        sel = [j for j in jobs if j.state == state]
        if not sel:
            continue
        out += ["", f"{title}:"]
        for j in sel[:max_lines]:
            head = f"  {j.rule} {j.label}"
            if j.slurm_job:
                head += f"  (SLURM job {j.slurm_job})"
            out.append(head + (f": {j.reason}" if j.reason else ""))
            if state in (FAILED, INCOMPLETE):
                out.append(f"      log: {j.log}" + (f"   SLURM log: {j.slurm_log}" if j.slurm_log else ""))
        if len(sel) > max_lines:
            out.append(f"  ... and {len(sel) - max_lines} more (--json lists every job)")
    if s.foreign_files:
        out += ["", f"Shard files outside the current plan ({len(s.foreign_files)}; left by a run with more shards, "
                    "they would be read with this run's): rerun the plan (it removes them) or delete them:"]
        out += [f"  {t}" for t in s.foreign_files[:max_lines]]
    if s.leftovers:
        out += ["", f"Temporary files left by killed jobs ({len(s.leftovers)}; never read, safe to delete):"]
        out += [f"  {t}" for t in s.leftovers[:max_lines]]
    if s.orphan_jobs:
        out += ["", "SLURM jobs of an earlier run are still in the queue (no Snakemake is watching them):"]
        out += [f"  {o['job']} {o['state']} {o['comment']}" for o in s.orphan_jobs[:max_lines]]
        ids = " ".join(o["job"] for o in s.orphan_jobs)
        out.append(f"  let them finish (outputs are kept), or cancel them first: scancel {ids}")
    if s.snakemake_pids:
        out += ["", f"Snakemake is running here (pid {', '.join(map(str, s.snakemake_pids))}): let it finish, or stop it "
                "with one Ctrl-C (it cancels its SLURM jobs) before resuming."]
    elif s.writers:
        out += ["", "Jobs of a Snakemake that is no longer running are still writing here: let them finish "
                "(or stop them: kill " + " ".join(str(w["pid"]) for w in s.writers) + ") before unlocking or resuming:"]
        out += [f"  pid {w['pid']}: {w['cmd']}" for w in s.writers[:max_lines]]
    elif s.locked and s.orphan_jobs:
        out += ["", "The working directory is locked, and the SLURM jobs above are still running: "
                "let them finish or scancel them, then run this again for the unlock command."]
    elif s.locked:
        out += ["", "The working directory is locked by a Snakemake that is no longer running: unlock it first."]
    if s.problems:
        out += ["", *s.problems]
    if s.unregistered_rules:
        out += ["", "Rules not tracked by `affectflow status` (declare them in affectflow.layout.RULES): "
                + ", ".join(s.unregistered_rules)]
    out.append("")
    if s.last_run_log:
        out.append(f"Last Snakemake run log: {s.last_run_log}")
    if s.resume:
        src = f" (profile and config files as in {s.run_from})" if s.run_from else ""
        out.append(f"Resume (only missing, failed and incomplete jobs run){src}:")
        out += [f"  {c}" for c in s.resume]
    if s.not_started:
        out.append(f"Not started yet (their targets): {', '.join(s.not_started)}")
    if not s.resume and not s.not_started and s.stages:
        out.append("Everything is done.")
    return "\n".join(out)
