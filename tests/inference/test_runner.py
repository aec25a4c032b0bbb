"""The shared inference loop: every batch goes reader -> mapper -> writer, and each part is timed."""

import time

from affectflow.inference.runner import run


class ListWriter:
    def __init__(self):
        self.rows = []

    def write(self, batch, output):
        self.rows.extend(zip(batch, output))


def test_runner_joins_reader_mapper_writer_and_times_each():
    def reader():
        for i in range(0, 10, 4):
            time.sleep(0.02)  # slow reads: the bottleneck must say so
            yield list(range(i, min(i + 4, 10)))

    writer = ListWriter()
    stats = run(reader(), lambda b: [x * x for x in b], writer, name="square")
    assert writer.rows == [(x, x * x) for x in range(10)]
    assert (stats.batches, stats.items) == (3, 10)
    assert [n for n, *_ in stats.per_batch] == [4, 4, 2]
    assert stats.bottleneck == "read" and stats.read_s >= 0.05
    assert set(stats.as_dict()) >= {"read_s", "inference_s", "write_s", "items_per_s"}


def test_runner_on_empty_reader():
    stats = run(iter([]), lambda b: b, ListWriter())
    assert stats.items == 0 and stats.items_per_s == 0.0
