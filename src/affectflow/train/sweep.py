"""Sweeps: every (model, grid point, seed) trial as job arrays through submitit; pick by ``val``.

A trial trains on ``train`` and is scored on ``val``; its checkpoint and a ``result.json`` land in
``<sweep>/trials/<trial_id>/``. The trial id hashes the data digests and every setting that
changes the outcome, so a rerun after a crash (or a SLURM time limit) runs only the missing
trials, and a change of data or settings never reuses a stale one.

:func:`launch` is the one place that knows about submitit: a list of picklable items in, one array
task per item, results out in order. ``executor`` is ``local`` (processes on this machine),
``slurm`` (a job array), or ``debug`` (in this process, for tests and debuggers).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa

from .. import tables
from ..io.parquet import config_digest, provenance, write_json, write_table
from .arrays import DataError, open_split
from .config import HeadConfig, SweepConfig, TrainConfig
from .evaluation import sort_key, summarize_seeds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trial:
    task: str
    model: str
    params: tuple[tuple[str, Any], ...]
    seed: int

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def trial_id(self, data_key: str) -> str:
        blob = json.dumps([data_key, self.task, self.model, self.params, self.seed], sort_keys=True, default=str)
        return f"{self.model}-s{self.seed}-{hashlib.blake2b(blob.encode(), digest_size=6).hexdigest()}"


def plan_trials(head: HeadConfig, seeds: Sequence[int]) -> list[Trial]:
    return [Trial(head.task, m, tuple(sorted(p.items())), int(s))
            for m in head.models for p in head.grid_points() for s in seeds]


# -- the launcher --------------------------------------------------------------------------------------
def launch(fn: Callable[[Any], Any], items: Sequence[Any], sweep: SweepConfig, folder: str | Path,
           name: str = "affectflow") -> list[Any]:
    """Run ``fn(item)`` for every item, as one submitit job array; return the results in order.

    Failed items raise one error at the end naming each failed task and its log, after every
    other task has finished (their results are kept by ``fn``'s own side effects).
    """
    items = list(items)
    if not items:
        return []
    sweep = sweep.resolved()
    if sweep.executor == "debug":
        results, errors = [], []
        for k, it in enumerate(items):
            try:
                results.append(fn(it))
            except Exception as exc:  # noqa: BLE001 - same contract as the submitit path
                results.append(None)
                errors.append(f"task {k}: {type(exc).__name__}: {exc}")
        if errors:
            raise RuntimeError(f"{len(errors)} of {len(items)} sweep task(s) failed:\n  " + "\n  ".join(errors))
        return results
    ex = make_executor(sweep, folder, name)
    jobs = ex.map_array(fn, items)
    log.info("submitted %d %s task(s): %s", len(jobs), sweep.executor, ", ".join(j.job_id for j in jobs[:5]))
    results, errors = [], []
    for job in jobs:
        try:
            results.append(job.result())
        except Exception as exc:  # noqa: BLE001 - reported below with the task's log
            results.append(None)
            errors.append(f"task {job.job_id}: {_cause(exc)} (log: {job.paths.stderr})")
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(jobs)} sweep task(s) failed:\n  " + "\n  ".join(errors))
    return results


def make_executor(sweep: SweepConfig, folder: str | Path, name: str = "affectflow"):
    """The submitit executor for ``sweep`` (``local`` or ``slurm``), its resources set from config."""
    import submitit

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ex = submitit.AutoExecutor(folder=folder / "%j", cluster=sweep.executor)
    params: dict[str, Any] = dict(name=name, timeout_min=sweep.timeout_min, mem_gb=sweep.mem_gb,
                                  cpus_per_task=sweep.cpus_per_job, gpus_per_node=sweep.gpus_per_job)
    if sweep.executor == "slurm":
        params.update(slurm_array_parallelism=sweep.max_parallel_jobs,
                      slurm_partition=sweep.slurm_partition, slurm_account=sweep.slurm_account,
                      slurm_additional_parameters=dict(sweep.slurm_additional) or None)
    ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return ex


def _cause(exc: BaseException) -> str:
    """The job's own exception line out of submitit's FailedJobError (which wraps the trace)."""
    import re

    lines = [ln.strip() for ln in str(exc).splitlines()]
    found = [ln for ln in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b", ln)]
    return found[-1] if found else f"{type(exc).__name__}: {lines[-1] if lines else ''}"


def chunk(items: Sequence[Any], sweep: SweepConfig) -> list[list[Any]]:
    """Group trials into array tasks: ``trials_per_job`` each, but on ``local`` never more tasks
    than ``max_parallel_jobs`` (local tasks all start at once). Round-robin, so chunks are balanced."""
    n = len(items)
    if n == 0:
        return []
    tasks = math.ceil(n / sweep.trials_per_job)
    if sweep.executor != "slurm":
        tasks = min(tasks, sweep.max_parallel_jobs)
    return [list(items[i::tasks]) for i in range(tasks)]


# -- one array task ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrialBatch:
    """What one array task needs: picklable, small; the data is read from the split folders."""

    trials: tuple[Trial, ...]
    trial_ids: tuple[str, ...]
    head: dict
    train_dir: str
    val_dir: str
    out_dir: str
    device: str
    threads: int
    meta: dict


def run_batch(batch: TrialBatch) -> list[dict[str, Any]]:
    """Train and score every trial of ``batch`` on val, one after the other; keep each on disk."""
    from .trainer import fit, save_checkpoint, train_device

    head = HeadConfig(**{**batch.head, "models": tuple(batch.head["models"]),
                         "grid": {k: tuple(v) for k, v in batch.head["grid"].items()}})
    train, val = open_split(batch.train_dir, "train"), open_split(batch.val_dir, "val")
    device = train_device(batch.device)
    out = []
    for trial, tid in zip(batch.trials, batch.trial_ids):
        folder = Path(batch.out_dir) / "trials" / tid
        done = folder / "result.json"
        if done.is_file():
            out.append(json.loads(done.read_text()))
            continue
        r = fit(head, trial.model, trial.param_dict, trial.seed, train, val, device=device, threads=batch.threads)
        meta = {**batch.meta, "task": trial.task, "model": trial.model, "params": trial.param_dict, "seed": trial.seed,
                "trial_id": tid, "dims": {m: train.modalities[m].dim for m in train.modalities},
                "modality_dropout": head.modality_dropout, "best_epoch": r.best_epoch,
                "select_metric": head.select_metric, "val_score": r.val_score, "selected_on": "val",
                "data_digests": {"train": train.digest, "val": val.digest}, "device": str(device)}
        ckpt = save_checkpoint(folder / "model.safetensors", r.model, meta)
        result = {"trial_id": tid, "task": trial.task, "model": trial.model, "seed": trial.seed,
                  "params": trial.param_dict, "select_metric": head.select_metric, "val_score": r.val_score,
                  "val_metrics": r.val_metrics, "best_epoch": r.best_epoch, "epochs_run": r.epochs_run,
                  "seconds": round(r.seconds, 3), "checkpoint": str(ckpt), "history": r.history}
        write_json(done, result)
        log.info("trial %s: val %s %.4f (epoch %d of %d, %.1fs)", tid, head.select_metric, r.val_score,
                 r.best_epoch, r.epochs_run, r.seconds)
        out.append(result)
    return out


# -- the sweep ---------------------------------------------------------------------------------------
def select(results: Sequence[Mapping[str, Any]], metric: str) -> dict[str, dict[str, Any]]:
    """Per model kind: the grid point with the best mean validation score over seeds.

    Only ``val_score`` is consulted; ties go to the earlier grid point.
    """
    by_model: dict[str, dict[str, list]] = {}
    order: dict[str, list[str]] = {}
    for r in results:
        key = json.dumps(r["params"], sort_keys=True)
        by_model.setdefault(r["model"], {}).setdefault(key, []).append(r)
        order.setdefault(r["model"], [])
        if key not in order[r["model"]]:
            order[r["model"]].append(key)
    chosen = {}
    for model, points in by_model.items():
        grid = []
        for key in order[model]:
            val = summarize_seeds([{"val": t["val_score"]} for t in points[key]], ["val"])["val"]
            grid.append({"params": json.loads(key), "val_mean": val["mean"], "val_std": val["std"],
                         "seeds": len(points[key])})
        best = min(range(len(grid)), key=lambda i: (sort_key(metric, grid[i]["val_mean"]), i))
        trials = sorted(points[order[model][best]], key=lambda t: t["seed"])
        chosen[model] = {**grid[best], "grid": grid,
                         "trials": [{k: t[k] for k in ("trial_id", "seed", "checkpoint", "val_score", "best_epoch")}
                                    for t in trials]}
    return chosen


def _target_summary(y: np.ndarray, kind: str) -> dict[str, float]:
    """What a constant baseline needs from train: the mean score, or the majority label."""
    if kind == "regression":
        return {"mean": float(y.mean()), "std": float(y.std())}
    rate = float(y.mean())
    return {"positive_rate": rate, "majority_label": int(rate >= 0.5)}


def run_sweep(cfg: Mapping[str, Any], task: str, train_dir: str | Path, val_dir: str | Path, out_dir: str | Path,
              threads: int = 1, executor: str | None = None) -> dict[str, Any]:
    """Plan, run (resuming) and select; write ``trials.parquet`` and ``selection.json`` under ``out_dir``.

    Reads the train and val split folders only: the test split is not an argument. ``executor``
    (the rule passes Snakemake's own) resolves ``train.sweep.executor: auto``.
    """
    t0 = time.perf_counter()
    tc = TrainConfig.from_config(cfg)
    tc = dataclasses.replace(tc, sweep=tc.sweep.resolved(executor))
    head = tc.head(task)
    out_dir = Path(out_dir)
    train, val = open_split(train_dir, "train"), open_split(val_dir, "val")
    if train.task != task:
        raise DataError(f"{train_dir} holds {train.task!r} data, not {task!r}")
    # what a trial's outcome depends on besides its own model, grid point and seed: the data and the
    # training budget (adding a model, a grid value or a seed leaves the finished trials valid)
    budget = {k: v for k, v in asdict(head).items() if k not in ("models", "grid")}
    data_key = json.dumps({"train": train.digest, "val": val.digest, "head": budget}, sort_keys=True, default=str)
    trials = plan_trials(head, tc.seeds)
    ids = [t.trial_id(data_key) for t in trials]
    pending = [(t, i) for t, i in zip(trials, ids) if not (out_dir / "trials" / i / "result.json").is_file()]
    log.info("%s sweep: %d trials (%d models x %d grid points x %d seeds), %d to run on %s",
             task, len(trials), len(head.models), len(head.grid_points()), len(tc.seeds), len(pending), tc.sweep.executor)
    meta = {"config_digest": config_digest(cfg.get("train", {})), "data_key": hashlib.blake2b(data_key.encode(), digest_size=8).hexdigest()}
    cpus = tc.sweep.cpus_per_job if tc.sweep.executor != "debug" else threads
    batches = [TrialBatch(tuple(t for t, _ in c), tuple(i for _, i in c), asdict(head), str(train_dir), str(val_dir),
                          str(out_dir), tc.device, cpus, meta) for c in chunk(pending, tc.sweep)]
    launch(run_batch, batches, tc.sweep, out_dir / "submitit", name=f"affectflow-{task}-sweep")
    results = []
    for t, i in zip(trials, ids):
        f = out_dir / "trials" / i / "result.json"
        if not f.is_file():
            raise RuntimeError(f"trial {i} left no result ({f})")
        results.append(json.loads(f.read_text()))
    chosen = select(results, head.select_metric)
    table = pa.table({
        "trial_id": [r["trial_id"] for r in results], "task": [task] * len(results),
        "model": [r["model"] for r in results], "seed": pa.array([r["seed"] for r in results], pa.int32()),
        "params": [json.dumps(r["params"], sort_keys=True) for r in results],
        "select_metric": [r["select_metric"] for r in results], "val_score": [float(r["val_score"]) for r in results],
        "best_epoch": pa.array([r["best_epoch"] for r in results], pa.int32()),
        "epochs_run": pa.array([r["epochs_run"] for r in results], pa.int32()),
        "seconds": [float(r["seconds"]) for r in results], "checkpoint": [r["checkpoint"] for r in results],
        "val_metrics": [json.dumps(r["val_metrics"], default=str) for r in results]})
    write_table(out_dir / "trials.parquet", table, tables.SWEEP_TRIALS,
                provenance(f"{task}_sweep", {"train": cfg.get("train", {})}, data_digests={"train": train.digest, "val": val.digest}))
    selection = {
        "task": task, "selected_on": "val", "select_metric": head.select_metric, "seeds": list(tc.seeds),
        "executor": tc.sweep.executor, "trials": len(trials), "trials_run_now": len(pending),
        "data_digests": {"train": train.digest, "val": val.digest},
        "data_rows": {"train": train.n, "val": val.n},
        "train_target": _target_summary(np.asarray(train.y), head.kind),
        "config_digest": meta["config_digest"], "models": chosen,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    write_json(out_dir / "selection.json", selection)
    return selection
