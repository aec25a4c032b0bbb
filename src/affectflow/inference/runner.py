"""One inference loop for every model stage: reader -> mapper -> writer, timed per batch.

In the manner of clip-retrieval's ``clip_inference``: a *reader* yields batches (decoding,
tokenising and padding happen there, in DataLoader workers where it pays), a *mapper* runs the
model on one batch, a *writer* appends the result to the output. The runner times the three
separately and logs them per batch and in total, so the bottleneck of a stage shows in its log:
a GPU stage whose read time dominates needs more decode workers, not a bigger GPU.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

log = logging.getLogger(__name__)


class Writer(Protocol):
    """What the runner writes through: anything with ``write(batch, output)``."""

    def write(self, batch: Any, output: Any) -> None:
        """Take the mapper's ``output`` for ``batch`` (rows to a file, images to disk ...)."""
        ...


@dataclass
class RunStats:
    """Timings of one run, in seconds: read, inference and write summed over batches, and wall
    time (which also holds the runner's own overhead); ``per_batch`` holds ``(items, read_s,
    inference_s, write_s)`` per batch, in order."""

    batches: int = 0
    items: int = 0
    read_s: float = 0.0
    infer_s: float = 0.0
    write_s: float = 0.0
    wall_s: float = 0.0
    per_batch: list[tuple[int, float, float, float]] = field(default_factory=list)

    @property
    def items_per_s(self) -> float:
        """Items per wall-clock second (0.0 for an empty run)."""
        return self.items / self.wall_s if self.wall_s else 0.0

    @property
    def bottleneck(self) -> str:
        """``read``, ``inference`` or ``write``: where the run spent most of its time."""
        parts = {"read": self.read_s, "inference": self.infer_s, "write": self.write_s}
        return max(parts, key=parts.get)

    def as_dict(self) -> dict[str, Any]:
        """``{"batches", "items", "read_s", "inference_s", "write_s", "wall_s", "items_per_s",
        "bottleneck"}`` (seconds rounded to 0.1 ms): what stages return and log."""
        return {"batches": self.batches, "items": self.items, "read_s": round(self.read_s, 4),
                "inference_s": round(self.infer_s, 4), "write_s": round(self.write_s, 4),
                "wall_s": round(self.wall_s, 4), "items_per_s": round(self.items_per_s, 2),
                "bottleneck": self.bottleneck}


def run(reader: Iterable[Any], mapper: Callable[[Any], Any], writer: Writer,
        size: Callable[[Any], int] = len, name: str = "stage", log_every: int = 1,
        total: int | None = None, unit: str = "items") -> RunStats:
    """Drive ``reader`` through ``mapper`` into ``writer``; return timings.

    The mapper must return something the writer understands; the runner itself knows nothing of
    models or files. Each batch is read, mapped and written before the next is read (readers
    that prefetch, such as DataLoaders, overlap reading with the other two themselves).

    Args:
        reader: an iterable of batches.
        mapper: batch -> output (the model's forward pass).
        writer: a :class:`Writer`.
        size: counts the items of a batch (for items/s); default ``len``.
        name: the run's name in the log.
        log_every: a debug line with the batch's timings every this many batches (0: none).
        total: the items the run will process, for the progress lines (done/total, rate, ETA)
            logged at a steady interval (:mod:`affectflow.ops.progress`); None: count and rate only.
        unit: what an item is (posts, images, texts), for those lines.

    Returns:
        The run's :class:`RunStats`.

    Raises:
        Whatever the reader, mapper or writer raises; the runner catches nothing.
    """
    from ..ops.progress import progress

    stats = RunStats()
    start = time.perf_counter()
    it = iter(reader)
    with progress(total, name, unit) as bar:
        _drive(it, mapper, writer, size, name, log_every, stats, bar)
    stats.wall_s = time.perf_counter() - start
    log.info("%s done: %d items in %d batches, %.1f items/s; read %.2fs, inference %.2fs, write %.2fs (bottleneck: %s)",
             name, stats.items, stats.batches, stats.items_per_s, stats.read_s, stats.infer_s, stats.write_s,
             stats.bottleneck)
    return stats


def _drive(it, mapper, writer, size, name, log_every, stats: RunStats, bar) -> None:
    """The loop of :func:`run`: read, map, write each batch, timing each part."""
    while True:
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            break
        t1 = time.perf_counter()
        output = mapper(batch)
        t2 = time.perf_counter()
        writer.write(batch, output)
        t3 = time.perf_counter()
        n = size(batch)
        stats.batches += 1
        stats.items += n
        stats.read_s += t1 - t0
        stats.infer_s += t2 - t1
        stats.write_s += t3 - t2
        stats.per_batch.append((n, t1 - t0, t2 - t1, t3 - t2))
        bar.update(n)
        if log_every and stats.batches % log_every == 0:
            log.debug("%s batch %d: %d items, read %.3fs, inference %.3fs, write %.3fs",
                      name, stats.batches, n, t1 - t0, t2 - t1, t3 - t2)
