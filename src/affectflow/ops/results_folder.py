"""A results folder holds one run's truth: shard files outside the current plan, and a second
checkout writing the same folder, are refused or removed.

* :func:`foreign_shard_files` lists per-shard outputs whose shard number the current config does
  not have (``shard-00005`` after re-planning with 3 shards); the plan job removes them
  (:func:`prune_foreign_shards`), ``affectflow inspect`` and ``affectflow status`` refuse or name
  them, so no reader of ``posts/*.parquet`` sees rows of another plan.
* :func:`hold_lock` takes an exclusive lock on ``{results}/.affectflow.lock`` for the life of the
  Snakemake process that runs the workflow (its ``onstart``), so two checkouts cannot write one
  results folder at once (one would sweep the other's temporaries, or read a plan made for
  another shard count).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
from pathlib import Path
from typing import Mapping

from .. import layout

SHARD_FILE = re.compile(r"^shard-(\d{5})\.parquet$")
LOCK_NAME = ".affectflow.lock"


class ResultsLocked(RuntimeError):
    """Another run holds the results folder."""


def _sharded_folders(cfg: Mapping) -> dict[str, set[str]]:
    """Folder -> the shard ids the config plans there, for every per-shard output of the layout
    whose dataset section (``instagram``/``dreaddit``/``cremad``) is in ``cfg``."""
    folders: dict[str, set[str]] = {}
    for rule in layout.RULES.values():
        for pattern in rule.outputs.values():
            if not pattern.endswith("shard-{shard}.parquet"):
                continue
            head = pattern.split("/")[1]  # {results}/<dataset>/...; the training folders follow Instagram's shards
            dataset = head if head in ("dreaddit", "cremad") else "instagram"
            if dataset not in cfg or "results" not in cfg:
                continue
            folder = str(Path(layout.fill(pattern, cfg)).parent)
            folders[folder] = set(layout.shard_ids(cfg, dataset))
    return folders


def foreign_shard_files(cfg: Mapping) -> list[Path]:
    """Per-shard output files the current config's plan does not have (a shard number past its
    ``shards``), in every per-shard folder of the layout under ``cfg["results"]``.

    Args:
        cfg: the config (``results`` and the ``instagram``/``dreaddit`` sections; a missing
            section is not checked).

    Returns:
        The paths, sorted.
    """
    out = []
    for folder, ids in _sharded_folders(cfg).items():
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        out += [Path(folder) / n for n in names if (m := SHARD_FILE.match(n)) and m.group(1) not in ids]
    return sorted(out)


def prune_foreign_shards(cfg: Mapping) -> list[str]:
    """Remove :func:`foreign_shard_files` (the plan job calls this when it writes a new plan).

    Returns:
        The removed paths.
    """
    removed = []
    for p in foreign_shard_files(cfg):
        p.unlink(missing_ok=True)
        removed.append(str(p))
    return removed


def planned_shards(folder: str | Path) -> int | None:
    """The shard count of the Instagram plan beside a table folder (``{results}/instagram/<table>``),
    or None when there is none."""
    plan = Path(folder).parent / "plan" / "plan.json"
    try:
        return int(json.loads(plan.read_text())["shards"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_folder(folder: str | Path, files: list[Path]) -> None:
    """Refuse to read a shard folder holding files outside the plan beside it.

    Raises:
        ValueError: naming the foreign files and the remedy.
    """
    shards = planned_shards(folder)
    if shards is None:
        return
    foreign = [f for f in files if (m := SHARD_FILE.match(f.name)) and int(m.group(1)) >= shards]
    if foreign:
        raise ValueError(f"{folder}: {len(foreign)} shard file(s) are not in the current plan of {shards} shards "
                         f"({', '.join(f.name for f in foreign[:5])}{' …' if len(foreign) > 5 else ''}): left by a run "
                         "with more shards. Reading them would mix two runs; rerun the plan (it removes them) or delete them.")


def holder(results: str | Path) -> str:
    """Who holds the lock, as written in the lock file (empty when unknown)."""
    try:
        return (Path(results) / LOCK_NAME).read_text().strip()
    except OSError:
        return ""


def hold_lock(results: str | Path, what: str = "") -> int:
    """Take the results folder's lock for the life of this process; returns the open descriptor
    (keep it open: closing it releases the lock).

    Args:
        results: the results folder (created if absent).
        what: words naming this run in the lock file (e.g. the checkout's path).

    Raises:
        ResultsLocked: another live process holds it; the message names it and the remedy.
    """
    import fcntl

    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    fd = os.open(results / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ResultsLocked(f"{results} is in use by another run ({holder(results) or 'holder unknown'}). Two runs "
                            "writing one results folder sweep each other's files and mix plans: wait for that run, "
                            "or give this one its own `results:` folder.") from None
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp} {what}\n".encode())
    return fd
