"""The Parquet contract's writer: atomic publication, provenance, and no debris from killed writers."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from affectflow.io.parquet import ParquetWriter, read_provenance, write_json, write_table

SCHEMA = pa.schema([("post_id", pa.string()), ("x", pa.int32())])


def test_failed_write_leaves_neither_target_nor_temp(tmp_path):
    out = tmp_path / "t.parquet"
    with pytest.raises(RuntimeError):
        with ParquetWriter(out, SCHEMA) as w:
            w.write({"post_id": ["a"], "x": [1]})
            raise RuntimeError("killed")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_success_sweeps_temp_files_of_killed_writers(tmp_path):
    out = tmp_path / "t.parquet"
    (tmp_path / ".t.parquet.tmp-4242").write_bytes(b"PAR1 half a file")  # SIGKILLed earlier attempt
    (tmp_path / ".other.parquet.tmp-1").write_bytes(b"x")  # another target's: not ours to remove
    write_table(out, pa.table({"post_id": ["a", "b"], "x": [1, 2]}), SCHEMA, {"table": "t"})
    assert pq.read_table(out).num_rows == 2 and read_provenance(out) == {"table": "t"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.parquet.tmp-1", "t.parquet"]
    write_json(tmp_path / "s.json", {"a": 1})
    assert (tmp_path / "s.json").read_text().strip().startswith("{")
