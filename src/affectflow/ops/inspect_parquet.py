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


def inspect(path: str | Path) -> dict[str, Any]:
    """Schema, rows (from footers), status counts (reads one column) and provenance of the first file."""
    files = parquet_files(path)
    if not files or not files[0].exists():
        raise FileNotFoundError(f"{path}: no Parquet files")
    if Path(path).is_dir():
        check_folder(path, files)  # shard files of another plan would be counted with this one's
    footers = {f: _footer(f) for f in files}
    rows = {str(f): m.num_rows for f, m in footers.items()}
    schema = pq.read_schema(files[0])
    report: dict[str, Any] = {
        "path": str(path),
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


def format_report(r: dict[str, Any]) -> str:
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
        cfg = prov.pop("config", None)
        out += [f"  {k}: {json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in sorted(prov.items())]
        if cfg is not None:
            out.append(f"  config: {json.dumps(cfg, sort_keys=True)}")
    else:
        out.append("provenance: none recorded")
    return "\n".join(out)
