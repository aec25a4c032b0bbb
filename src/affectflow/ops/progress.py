"""Progress an operator can read in a job's log: done/total, rate and ETA at a steady interval.

Jobs write their log to a file (the rules redirect stderr), where a terminal progress bar's
carriage returns would pile up into one unreadable line. :func:`progress` is a tqdm bar whose
output goes through :mod:`logging`, one line per update, at most one update every
``AFFECTFLOW_PROGRESS_SECONDS`` seconds (default 30; tests set 0)::

    2026-11-30 06:40:01,002 INFO affectflow.progress: ingest shard 3:  45%|####5     | 18000/40000 [00:09<00:11, 1987.12 posts/s]
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("affectflow.progress")
DEFAULT_SECONDS = 30.0


class _LogFile:
    """A file-like object for tqdm that sends each finished bar line to the log."""

    def write(self, text: str) -> None:
        line = text.strip("\r\n ")
        if line:
            log.info("%s", line)

    def flush(self) -> None:
        pass


def interval() -> float:
    """Seconds between progress lines (``AFFECTFLOW_PROGRESS_SECONDS``, default 30)."""
    try:
        return max(float(os.environ.get("AFFECTFLOW_PROGRESS_SECONDS", DEFAULT_SECONDS)), 0.0)
    except ValueError:
        return DEFAULT_SECONDS


def progress(total: int | None, desc: str, unit: str = "items"):
    """A tqdm bar over ``total`` units that logs ``desc: pct|bar| n/total [elapsed<ETA, rate unit/s]``.

    Args:
        total: the units the job will process (None: counts and rate without ETA).
        desc: what the job is, e.g. ``"ingest shard 3"``.
        unit: the unit of ``total`` (posts, images, texts).

    Returns:
        a ``tqdm.tqdm``; call ``update(n)`` as work is done and ``close()`` (or use ``with``) at
        the end, which logs the final line.
    """
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=f" {unit}", file=_LogFile(), mininterval=interval(),
                maxinterval=max(interval(), 1.0), miniters=1, ascii=True, ncols=100, dynamic_ncols=False,
                disable=False, leave=True)
