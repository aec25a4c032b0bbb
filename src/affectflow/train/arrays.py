"""The training data on disk: one folder per split, memory-mapped arrays plus a rows table.

Why not Parquet all the way: training reads random mini-batches, many epochs over, and ten million
posts of 768 + 512 float32 features do not fit in memory. A split folder holds

- ``x_<modality>.npy``   (rows x dim; float16 for L2-normalised embeddings, float32 for metadata)
- ``mask_<modality>.npy`` (rows; False where the modality is missing: no caption, no readable image)
- ``y.npy``              (rows; float32 target or int64 label)
- ``rows.parquet``       (tables.TRAIN_ROWS: post_id, split, group, category, target)
- ``meta.json``          (modalities, dims, counts, a content digest)

written in one streaming pass into preallocated ``.npy`` memmaps, and opened with ``mmap_mode="r"``
so the page cache, not the process, holds the data. The digest is a hash of every byte written, in
order, so metrics and checkpoints name exactly the data they came from.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import polars as pl
import pyarrow as pa

from .. import tables
from ..io.parquet import ParquetWriter, provenance, write_json

SPLITS = ("train", "val", "test")

# Every split folder opened in this process, in order: (split, folder). Tests use it to prove that
# model selection never opened the test split.
ACCESS_LOG: list[tuple[str, str]] = []


class DataError(ValueError):
    """Input data the training stage refuses, with the file and rows at fault."""


@dataclass(frozen=True)
class Modality:
    name: str
    dim: int
    dtype: str  # numpy dtype name


class SplitWriter:
    """Fill one split folder chunk by chunk; ``rows`` must be known up front (a counting pass)."""

    def __init__(self, folder: str | os.PathLike, split: str, rows: int, modalities: list[Modality],
                 label_dtype: str, task: str, prov: Mapping[str, Any]):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        self.folder, self.split, self.rows, self.task = Path(folder), split, int(rows), task
        self.modalities = list(modalities)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._x = {m.name: np.lib.format.open_memmap(self.folder / f"x_{m.name}.npy", mode="w+", dtype=m.dtype,
                                                     shape=(self.rows, m.dim)) for m in self.modalities}
        self._mask = {m.name: np.lib.format.open_memmap(self.folder / f"mask_{m.name}.npy", mode="w+", dtype=np.bool_,
                                                        shape=(self.rows,)) for m in self.modalities}
        self._y = np.lib.format.open_memmap(self.folder / "y.npy", mode="w+", dtype=label_dtype, shape=(self.rows,))
        self._rows = ParquetWriter(self.folder / "rows.parquet", tables.TRAIN_ROWS, prov)
        self._rows.__enter__()
        self._hash = hashlib.blake2b(digest_size=16)
        self._hash.update(f"{task}/{split}".encode())
        self.n = 0

    def write(self, x: Mapping[str, np.ndarray], mask: Mapping[str, np.ndarray], y: np.ndarray,
              rows: pa.Table) -> None:
        k = len(y)
        if self.n + k > self.rows:
            raise RuntimeError(f"{self.folder}: more rows than counted ({self.n + k} > {self.rows})")
        sl = slice(self.n, self.n + k)
        for m in self.modalities:
            xm = np.ascontiguousarray(x[m.name], dtype=m.dtype)
            mm = np.ascontiguousarray(mask[m.name], dtype=np.bool_)
            if xm.shape != (k, m.dim):
                raise DataError(f"{m.name}: chunk of shape {xm.shape}, expected ({k}, {m.dim})")
            self._x[m.name][sl] = xm
            self._mask[m.name][sl] = mm
            self._hash.update(xm.tobytes())
            self._hash.update(mm.tobytes())
        yy = np.ascontiguousarray(y, dtype=self._y.dtype)
        self._y[sl] = yy
        self._hash.update(yy.tobytes())
        self._hash.update(pl.from_arrow(rows.column("post_id")).str.join("\n").item().encode())
        self._rows.write(rows)
        self.n += k

    def close(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if self.n != self.rows:
            self._rows.__exit__(RuntimeError, None, None)
            raise RuntimeError(f"{self.folder}: wrote {self.n} rows, counted {self.rows}")
        for arr in [*self._x.values(), *self._mask.values(), self._y]:
            arr.flush()
        self._rows.__exit__(None, None, None)
        meta = {
            "task": self.task, "split": self.split, "rows": self.n, "digest": self._hash.hexdigest(),
            "label_dtype": str(self._y.dtype),
            "modalities": {m.name: {"dim": m.dim, "dtype": m.dtype,
                                    "present": int(np.count_nonzero(self._mask[m.name]))} for m in self.modalities},
            **(extra or {}),
        }
        write_json(self.folder / "meta.json", meta)
        return meta


class SplitData:
    """One split folder, opened read-only; arrays are memmaps (nothing is loaded until indexed)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        meta_path = self.folder / "meta.json"
        if not meta_path.is_file():
            raise DataError(f"{self.folder}: not a split folder (no meta.json); run the dataset rule first")
        self.meta = json.loads(meta_path.read_text())
        self.split: str = self.meta["split"]
        self.task: str = self.meta["task"]
        self.n: int = int(self.meta["rows"])
        self.digest: str = self.meta["digest"]
        self.modalities = {k: Modality(k, v["dim"], v["dtype"]) for k, v in self.meta["modalities"].items()}
        self.x = {k: np.load(self.folder / f"x_{k}.npy", mmap_mode="r") for k in self.modalities}
        self.mask = {k: np.load(self.folder / f"mask_{k}.npy", mmap_mode="r") for k in self.modalities}
        self.y = np.load(self.folder / "y.npy", mmap_mode="r")
        ACCESS_LOG.append((self.split, str(self.folder)))

    def __len__(self) -> int:
        return self.n

    def rows(self, columns: list[str] | None = None):
        import polars as pl

        return pl.read_parquet(self.folder / "rows.parquet", columns=columns)

    def batch(self, idx: np.ndarray, modalities: list[str]) -> tuple[dict, dict, np.ndarray]:
        """Features, masks and targets of rows ``idx`` (sorted indices read memmaps in order)."""
        x = {m: np.asarray(self.x[m][idx], dtype=np.float32) for m in modalities}
        mask = {m: np.asarray(self.mask[m][idx]) for m in modalities}
        return x, mask, np.asarray(self.y[idx])


def open_split(folder: str | os.PathLike, expect: str | None = None) -> SplitData:
    """Open a split folder, checking that it is the split the caller means to read."""
    data = SplitData(folder)
    if expect is not None and data.split != expect:
        raise DataError(f"{folder} holds the {data.split!r} split, expected {expect!r}")
    return data


def split_provenance(task: str, cfg: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return provenance(f"{task}_rows", cfg, **extra)


def vectors(col: pa.ChunkedArray | pa.Array, source: str, ids: pa.ChunkedArray | pa.Array | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """A fixed-size-list column as (rows x dim float32, valid mask).

    A null vector is a missing modality (no text, no readable image: the contract's way to say so)
    and comes back as zeros with ``valid`` False. A vector holding a null or a non-finite value is
    a fault upstream and raises, naming the file and the first posts affected: training on it
    would turn the loss into NaN several hours later.
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if not pa.types.is_fixed_size_list(col.type):
        raise DataError(f"{source}: embedding column has type {col.type}, expected a fixed-size list of float32")
    dim = col.type.list_size
    n = len(col)
    valid = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    flat = col.values.slice(col.offset * dim, n * dim)
    x = np.array(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(n, dim)  # a writable copy
    bad = valid & ~np.isfinite(x).all(axis=1)
    if bad.any():
        where = np.flatnonzero(bad)
        names = ids.take(pa.array(where[:5])).to_pylist() if ids is not None else where[:5].tolist()
        raise DataError(f"{source}: {len(where)} embedding(s) hold null/NaN/inf values, e.g. posts {names}")
    x[~valid] = 0.0
    return x, valid


def embedding_dim(path: str | os.PathLike, column: str) -> int:
    """The width of a fixed-size-list column, from the file's schema alone."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    if column not in schema.names:
        raise DataError(f"{path}: no column {column!r} (columns: {schema.names})")
    t = schema.field(column).type
    if not pa.types.is_fixed_size_list(t):
        raise DataError(f"{path}: column {column!r} has type {t}, expected a fixed-size list")
    return t.list_size
