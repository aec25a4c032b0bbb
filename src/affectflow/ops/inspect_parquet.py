"""``affectflow inspect``: what a data engineer wants to know before opening a notebook."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..io.parquet import PROVENANCE_KEY, parquet_files
from .results_folder import check_folder


class UnreadableParquet(ValueError):
    """A file under a Parquet name whose footer cannot be read (cut, or not Parquet)."""


def _footer(f: Path) -> pq.FileMetaData:
    """The file's footer; raises :class:`UnreadableParquet` naming the file when it has none."""
    try:
        return pq.ParquetFile(f).metadata
    except (pa.ArrowInvalid, OSError) as exc:
        raise UnreadableParquet(f"{f}: not a readable Parquet file ({exc}); the pipeline's writes are atomic, "
                                f"so it was cut or replaced outside the workflow: delete it and rerun its job") from None


def tables_in(path: str | Path) -> list[tuple[str, list[Path]]]:
    """The Parquet tables under ``path``: ``(label, files)`` per table, in path order.

    A file is one table. In a folder, files belong to the same table when they share a folder and
    a schema (provenance metadata aside): the shards of ``posts/`` are one table, while
    ``plan/posts.parquet`` and ``plan/images.parquet`` are two. A table of several files is labelled
    by its folder, a table of one file by the file.

    Raises:
        FileNotFoundError: ``path`` does not exist or holds no Parquet file.
        UnreadableParquet: a file's footer cannot be read (named, with the remedy).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    files = parquet_files(p)
    if not files:
        raise FileNotFoundError(f"{path}: no Parquet files")
    groups: dict[tuple[Path, str], list[Path]] = {}
    for f in files:
        schema = _footer(f).schema.to_arrow_schema().remove_metadata()  # names the file when unreadable
        groups.setdefault((f.parent, schema.to_string()), []).append(f)
    per_folder: dict[Path, int] = {}
    for folder, _ in groups:
        per_folder[folder] = per_folder.get(folder, 0) + 1
    out = []
    for (folder, _), fs in groups.items():
        check_folder(folder, fs)  # shard files of another plan would be counted with this one's
        if p.is_file() or len(fs) == 1:
            label = str(fs[0])
        elif per_folder[folder] == 1:
            label = str(folder)
        else:
            label = f"{folder}/{{{','.join(f.name for f in fs)}}}"
        out.append((label, fs))
    return out


def inspect_files(label: str, files: list[Path]) -> dict[str, Any]:
    """Schema, rows (from footers), status counts (reads one column) and provenance of the first
    file, for the files of one table.

    Returns:
        dict with ``path``, ``files``, ``rows``, ``rows_per_file`` (None for one file), ``bytes``,
        ``schema`` (list of (name, type)), ``status`` (value -> count, when there is a status
        column) and ``provenance`` (the first file's record, or None).
    """
    rows = {str(f): _footer(f).num_rows for f in files}
    schema = pq.read_schema(files[0])
    report: dict[str, Any] = {
        "path": label,
        "files": len(files),
        "rows": sum(rows.values()),
        "rows_per_file": rows if len(files) > 1 else None,
        "bytes": sum(f.stat().st_size for f in files),
        "schema": [(f.name, str(f.type)) for f in schema.remove_metadata()],
    }
    if "status" in schema.names:
        counts: dict[str, int] = {}
        for f in files:
            col = pq.read_table(f, columns=["status"])["status"].value_counts()
            for item in col.to_pylist():
                key = item["values"] if item["values"] is not None else "null"
                counts[key] = counts.get(key, 0) + item["counts"]
        report["status"] = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
    raw = (schema.metadata or {}).get(PROVENANCE_KEY)
    report["provenance"] = json.loads(raw) if raw else None
    return report


def inspect(path: str | Path) -> dict[str, Any]:
    """One table's report (see :func:`inspect_files`), or for a folder of several tables
    ``{"path": path, "tables": [report, ...]}``, one report per table (see :func:`tables_in`)."""
    tables = tables_in(path)
    if len(tables) == 1:
        report = inspect_files(*tables[0])
        report["path"] = str(path)
        return report
    return {"path": str(path), "tables": [inspect_files(label, files) for label, files in tables]}


def format_report(r: dict[str, Any]) -> str:
    """The text ``affectflow inspect`` prints: per table, a header line, schema, statuses, provenance."""
    if "tables" in r:
        head = f"{r['path']}: {len(r['tables'])} tables"
        index = [f"  {t['path']}: {t['files']} file(s), {t['rows']:,} rows" for t in r["tables"]]
        return "\n\n".join(["\n".join([head, *index]), *(format_report(t) for t in r["tables"])])
    out = [f"{r['path']}: {r['files']} file(s), {r['rows']:,} rows, {r['bytes'] / 1e6:.2f} MB"]
    out.append("schema:")
    width = max(len(n) for n, _ in r["schema"])
    out += [f"  {n:<{width}}  {t}" for n, t in r["schema"]]
    if r.get("status"):
        out.append("status:")
        out += [f"  {k:<20} {v:>10,}" for k, v in r["status"].items()]
    prov = r.get("provenance")
    if prov:
        out.append("provenance:")
        prov = dict(prov)
        cfg = prov.pop("config", None)
        out += [f"  {k}: {json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in sorted(prov.items())]
        if cfg is not None:
            out.append(f"  config: {json.dumps(cfg, sort_keys=True)}")
    else:
        out.append("provenance: none recorded")
    return "\n".join(out)
