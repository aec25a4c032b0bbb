"""The Parquet contract: atomic zstd writes with provenance in the file metadata.

Every table the pipeline writes goes through :class:`ParquetWriter` (streamed row groups) or
:func:`write_table` (one shot). Both write to a temporary file beside the target and rename it
into place, so a killed job never leaves a half-written Parquet file under its final name, and
both stamp the file with a provenance record under the ``affectflow`` metadata key.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__

PROVENANCE_KEY = b"affectflow"
COMPRESSION = "zstd"


def config_digest(cfg: Any) -> str:
    """A short stable digest of a (JSON-able) config section.

    Args:
        cfg: the section; keys are sorted, non-JSON values (paths) written as strings.

    Returns:
        The first 16 hex digits of the sha256 of its canonical JSON.
    """
    blob = json.dumps(cfg, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def provenance(table: str, cfg: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """The provenance record stored in every file: what made it, from what, with which settings.

    Args:
        table: the table's name (``instagram_sentiment``, ``dreaddit_clip`` ...).
        cfg: the config the stage ran with (stored whole, with its :func:`config_digest`), or None.
        **extra: anything else worth keeping (``shard``, ``model``, ``device``, ``source`` ...).

    Returns:
        ``{"table", "package", "package_version", "python", "created_utc"[, "config_digest",
        "config"], **extra}``, JSON-able.
    """
    rec = {
        "table": table,
        "package": "affectflow",
        "package_version": __version__,
        "python": platform.python_version(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if cfg is not None:
        rec["config_digest"] = config_digest(cfg)
        rec["config"] = cfg
    rec.update(extra)
    return rec


def _with_provenance(schema: pa.Schema, prov: Mapping[str, Any] | None) -> pa.Schema:
    if prov is None:
        return schema
    meta = dict(schema.metadata or {})
    meta[PROVENANCE_KEY] = json.dumps(prov, sort_keys=True, default=str).encode()
    return schema.with_metadata(meta)


def read_provenance(path: str | os.PathLike) -> dict[str, Any] | None:
    """The provenance record of a Parquet file (:func:`provenance`), or None when it has none.

    Raises:
        OSError: the file cannot be read; pyarrow's ``ArrowInvalid``: it is not Parquet.
    """
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(PROVENANCE_KEY)
    return json.loads(raw) if raw else None


_HOST = socket.gethostname().replace("/", "_")


def _tmp_path(path: Path) -> Path:
    """``.<name>.tmp-<host>-<pid>``: whose temporary it is, so only a gone writer's is swept."""
    return path.with_name(f".{path.name}.tmp-{_HOST}-{os.getpid()}")


def _writer_gone(tmp_name: str, prefix: str) -> bool:
    """Whether the writer that named a temporary ``tmp_name`` is known to be gone: a process of
    this host that no longer exists. A writer on another host cannot be checked from here, so its
    temporary stays (``affectflow status`` lists leftovers)."""
    tail = tmp_name[len(prefix):]
    host, _, pid = tail.rpartition("-")
    if not pid.isdigit() or (host and host != _HOST):
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False
    return False  # alive


def _publish(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` onto ``path``, then sweep temporaries of ``path`` whose writers are gone
    (killed jobs); a live writer's temporary (another run on this results folder) is left alone."""
    os.replace(tmp, path)
    prefix = f".{path.name}.tmp-"
    for stale in path.parent.glob(prefix + "*"):
        if _writer_gone(stale.name, prefix):
            stale.unlink(missing_ok=True)


@contextmanager
def atomic(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write; renamed onto ``path`` when the block
    succeeds (see :func:`_publish`), deleted when it fails: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _publish(tmp, path)


class ParquetWriter:
    """Stream record batches into ``path`` atomically.

    Use as a context manager: on a clean exit the temporary file is renamed into place; on an
    exception it is deleted and the target is left untouched.
    """

    def __init__(self, path: str | os.PathLike, schema: pa.Schema, prov: Mapping[str, Any] | None = None,
                 row_group_size: int = 65536):
        self.path = Path(path)
        self.schema = _with_provenance(schema, prov)
        self.row_group_size = row_group_size
        self.rows = 0
        self._tmp = _tmp_path(self.path)
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> "ParquetWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self._tmp, self.schema, compression=COMPRESSION)
        return self

    def write(self, data: pa.Table | pa.RecordBatch | Mapping[str, Any]) -> None:
        """Append rows (in row groups of at most ``row_group_size``).

        Args:
            data: a table, a record batch, or a mapping of column name -> values; conformed to the
                schema (:func:`conform`); an empty one writes nothing.

        Raises:
            ValueError: ``data`` lacks a column of the schema.
            pyarrow.ArrowInvalid: a column cannot be cast to the schema's type.
        """
        if isinstance(data, Mapping):
            data = pa.table(dict(data), schema=self.schema)
        elif isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        data = conform(data, self.schema)
        if data.num_rows:
            self._writer.write_table(data, row_group_size=self.row_group_size)
            self.rows += data.num_rows

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._writer is not None
        try:
            self._writer.close()
        finally:
            if exc_type is None:
                _publish(self._tmp, self.path)
            else:
                self._tmp.unlink(missing_ok=True)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast ``table`` to ``schema`` (column order and types), failing loudly on a gap.

    Args:
        table: the rows; extra columns are dropped.
        schema: the target schema (its metadata is carried over).

    Returns:
        The table with exactly ``schema``'s columns, order and types.

    Raises:
        ValueError: a column of ``schema`` is missing.
        pyarrow.ArrowInvalid: a column cannot be cast.
    """
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise ValueError(f"table lacks columns {missing} required by its schema")
    table = table.select(schema.names)
    if not table.schema.equals(schema, check_metadata=False):
        table = table.cast(schema.remove_metadata())
    return table.replace_schema_metadata(schema.metadata)


def write_table(path: str | os.PathLike, table: pa.Table, schema: pa.Schema | None = None,
                prov: Mapping[str, Any] | None = None, row_group_size: int = 65536) -> Path:
    """Write a whole table atomically (see :class:`ParquetWriter`).

    Args:
        path: the target file (its folder is created).
        table: the rows.
        schema: the table's declared schema (:mod:`affectflow.tables`); default ``table.schema``.
        prov: the provenance record (:func:`provenance`), stored under the ``affectflow`` key.
        row_group_size: rows per row group at most.

    Returns:
        ``path``.

    Raises:
        ValueError: ``table`` lacks a column of ``schema``.
    """
    with ParquetWriter(path, schema if schema is not None else table.schema, prov, row_group_size) as w:
        w.write(table)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomic JSON write (indented, keys sorted, paths as strings), for summaries and metrics.

    Returns:
        ``path``.
    """
    with atomic(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)


def parquet_files(path: str | os.PathLike) -> list[Path]:
    """A file, or the ``*.parquet`` files of a folder (recursively, hidden temporaries skipped), sorted.

    Returns:
        The paths; ``[path]`` when ``path`` is not a folder (existing or not).
    """
    p = Path(path)
    if p.is_dir():
        return sorted(f for f in p.rglob("*.parquet") if not f.name.startswith("."))
    return [p]


def iter_batches(paths: Iterable[Path], columns: list[str] | None = None, batch_size: int = 65536):
    """Record batches of ``columns`` (None: all) of each file in turn, at most ``batch_size`` rows each."""
    for p in paths:
        yield from pq.ParquetFile(p).iter_batches(batch_size=batch_size, columns=columns)


def read_partition(path: str | os.PathLike, key: str, value: Any, columns: list[str] | None = None) -> pa.Table:
    """The rows of ``path`` where ``key == value``, reading only the row groups that can hold them.

    Files written one row group per key value (the ingestion plan: one per shard) are read
    for one key without touching the other groups' pages: the footer's min/max statistics pick
    the groups, and a final filter drops any other rows a mixed group holds.

    Args:
        path: the Parquet file.
        key: the column to match (a top-level column).
        value: the value to match.
        columns: the columns to return (None: all).

    Returns:
        The matching rows, ``columns`` only, in file order.

    Raises:
        ValueError: ``key`` is not a column of the file.
    """
    pf = pq.ParquetFile(path)
    md = pf.metadata
    leaf = [md.schema.column(i).path for i in range(md.num_columns)].index(key)
    groups = []
    for g in range(md.num_row_groups):
        stats = md.row_group(g).column(leaf).statistics
        if stats is None or not stats.has_min_max or stats.min <= value <= stats.max:
            groups.append(g)
    read_cols = None if columns is None else list(dict.fromkeys([*columns, key]))
    table = pf.read_row_groups(groups, columns=read_cols) if groups else pf.schema_arrow.empty_table().select(read_cols or pf.schema_arrow.names)
    import pyarrow.compute as pc

    from .arrays import scalar

    match = pc.equal(table[key], scalar(value, table.schema.field(key).type))
    if not pc.all(match, skip_nulls=False).as_py():  # a group that also holds other keys (or null keys)
        table = table.filter(match)
    return table.select(columns) if columns is not None else table


def read_columns(path: str | os.PathLike, columns: list[str]) -> pa.Table:
    """Some columns of a whole file (every row group), without the dataset layer.

    Raises:
        pyarrow.ArrowInvalid: a column is not in the file.
    """
    return pq.ParquetFile(path).read(columns=columns)
