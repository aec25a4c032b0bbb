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
    def write(self, batch: Any, output: Any) -> None: ...


@dataclass
class RunStats:
    batches: int = 0
    items: int = 0
    read_s: float = 0.0
    infer_s: float = 0.0
    write_s: float = 0.0
    wall_s: float = 0.0
    per_batch: list[tuple[int, float, float, float]] = field(default_factory=list)

    @property
    def items_per_s(self) -> float:
        return self.items / self.wall_s if self.wall_s else 0.0

    @property
    def bottleneck(self) -> str:
        parts = {"read": self.read_s, "inference": self.infer_s, "write": self.write_s}
        return max(parts, key=parts.get)

    def as_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "items": self.items, "read_s": round(self.read_s, 4),
                "inference_s": round(self.infer_s, 4), "write_s": round(self.write_s, 4),
                "wall_s": round(self.wall_s, 4), "items_per_s": round(self.items_per_s, 2),
                "bottleneck": self.bottleneck}


def run(reader: Iterable[Any], mapper: Callable[[Any], Any], writer: Writer,
        size: Callable[[Any], int] = len, name: str = "stage", log_every: int = 1,
        total: int | None = None, unit: str = "items") -> RunStats:
    """Drive ``reader`` through ``mapper`` into ``writer``; return timings.

    ``size(batch)`` counts the items in a batch (for items/s). The mapper must return something
    the writer understands; the runner itself knows nothing of models or files. Progress
    (``total`` items of ``unit``: done/total, rate, ETA) goes to the log at a steady interval
    (:mod:`affectflow.ops.progress`); the per-batch timings are debug lines every ``log_every`` batches.
    """
    from ..ops.progress import progress

    stats = RunStats()
    start = time.perf_counter()
    it = iter(reader)
    bar = progress(total, name, unit)
    try:
        _drive(it, mapper, writer, size, name, log_every, stats, bar)
    finally:
        bar.close()
    stats.wall_s = time.perf_counter() - start
    log.info("%s done: %d items in %d batches, %.1f items/s; read %.2fs, inference %.2fs, write %.2fs (bottleneck: %s)",
             name, stats.items, stats.batches, stats.items_per_s, stats.read_s, stats.infer_s, stats.write_s,
             stats.bottleneck)
    return stats


def _drive(it, mapper, writer, size, name, log_every, stats: RunStats, bar) -> None:
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
