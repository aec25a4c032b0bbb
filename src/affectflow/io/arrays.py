"""Arrow arrays and scalars built from numpy buffers and Python lists, for the ingest hot path.

``pa.array`` and ``pa.scalar`` first ask whether their input is a pandas object, and that
question imports pandas: ~0.3 s of CPU and ~40 MB per process, as much as a shard job of 10k
posts spends on its posts. Building from buffers (``Array.from_buffers``) asks nothing, so a
shard job that stays on these helpers never imports pandas (``tests/instagram/test_ingest.py`` checks).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa


def _validity(mask: np.ndarray | None) -> pa.Buffer | None:
    """A validity bitmap from a boolean *null* mask (True = null), or None when nothing is null."""
    if mask is None or not mask.any():
        return None
    return pa.py_buffer(np.packbits(~mask, bitorder="little"))


def numbers(values: np.ndarray, type: pa.DataType, mask: np.ndarray | None = None) -> pa.Array:
    """A fixed-width numeric array from numpy values (cast to ``type``'s width), nulls where ``mask``.

    Args:
        values: ``(n,)`` numbers.
        type: a fixed-width Arrow type (``pa.int64()``, ``pa.float32()`` ...).
        mask: ``(n,)`` bool, True = null; None: no nulls.

    Returns:
        An Arrow array of length ``n``.
    """
    data = np.ascontiguousarray(values, dtype=type.to_pandas_dtype())
    return pa.Array.from_buffers(type, len(data), [_validity(mask), pa.py_buffer(data)])


def booleans(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """A boolean array from ``(n,)`` truthy values, nulls where ``mask`` (True = null)."""
    data = np.packbits(np.asarray(values, dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(values), [_validity(mask), pa.py_buffer(data)])


def strings(values: Sequence[str | None]) -> pa.Array:
    """A ``string`` array from Python strings and Nones (None: null)."""
    encoded = [b"" if v is None else v.encode() for v in values]
    lengths = np.fromiter((len(b) for b in encoded), np.int64, len(encoded))
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    mask = np.fromiter((v is None for v in values), bool, len(encoded))
    return pa.Array.from_buffers(pa.large_string(), len(encoded),
                                 [_validity(mask), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]).cast(pa.string())


def string_lists(values: Sequence[Sequence[str] | None]) -> pa.Array:
    """A ``list<string>`` array from Python lists of strings (None: a null list)."""
    lengths = np.fromiter((len(v) if v is not None else 0 for v in values), np.int64, len(values))
    offsets = np.zeros(len(values) + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = strings([s for v in values if v is not None for s in v])
    mask = np.fromiter((v is None for v in values), bool, len(values))
    return pa.Array.from_buffers(pa.list_(pa.string()), len(values), [_validity(mask), pa.py_buffer(offsets)], children=[flat])


def scalar(value, type: pa.DataType) -> pa.Scalar:
    """``pa.scalar(value, type)`` for numbers, booleans, strings and None (a null of ``type``).

    Returns:
        An Arrow scalar of ``type``.
    """
    if value is None:
        return pa.nulls(1, type)[0]
    if pa.types.is_boolean(type):
        return booleans(np.array([value]))[0]
    if pa.types.is_string(type):
        return strings([value])[0]
    return numbers(np.array([value]), type)[0]


def to_numpy(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The values of a fixed-width or boolean array as numpy, ignoring nulls (``Array.to_numpy``
    imports pandas too). Callers fill nulls first where they matter.

    Args:
        arr: a fixed-width numeric or boolean array (chunked arrays are combined).

    Returns:
        ``(len(arr),)`` numpy array of the type's dtype (bool for booleans); a zero-copy view of
        the Arrow buffer for numbers; whatever the buffer holds under a null.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    buf = arr.buffers()[1]
    if pa.types.is_boolean(arr.type):
        if buf is None:
            return np.zeros(len(arr), bool)
        bits = np.unpackbits(np.frombuffer(buf, np.uint8), bitorder="little")
        return bits[arr.offset : arr.offset + len(arr)].astype(bool)
    dtype = np.dtype(arr.type.to_pandas_dtype())
    if buf is None:
        return np.zeros(len(arr), dtype)
    return np.frombuffer(buf, dtype, count=len(arr), offset=arr.offset * dtype.itemsize)


def embedding_array(values: np.ndarray | None, valid: np.ndarray, dim: int) -> pa.Array:
    """A fixed-size list column of float32 vectors (rows of ``values``), null where ``valid`` is
    false; ``values=None`` gives an all-null column.

    Args:
        values: ``(n, dim)`` numbers (cast to float32), or None.
        valid: ``(n,)`` bool, False = a null vector (its row of ``values`` is ignored).
        dim: the vector width.

    Returns:
        A ``fixed_size_list<float32>[dim]`` array of length ``n``.

    Raises:
        ValueError: ``values`` does not have ``n * dim`` elements.
    """
    n = len(valid)
    flat = np.zeros((n, dim), np.float32) if values is None else np.ascontiguousarray(values, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(numbers(flat.reshape(-1), pa.float32()), dim,
                                             mask=booleans(~np.asarray(valid, bool)))


def take_or_null(table: pa.Table, index: np.ndarray) -> pa.Table:
    """Rows ``index`` of ``table``, an all-null row where the index is negative.

    Args:
        table: the rows to take from.
        index: ``(m,)`` int row numbers, -1 (any negative) for "no row".

    Returns:
        A table of ``m`` rows with ``table``'s schema.
    """
    mask = index < 0
    return table.take(numbers(np.where(mask, 0, index), pa.int64(), mask))
