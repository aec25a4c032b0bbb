"""Tab-separated inputs read as lines and split in polars, so malformed rows are counted, not fatal.

The dataset's text files (the 10M-row mapping, the influencer list) have no quoting and a fixed
number of fields. Reading them line by line in polars keeps every row, including the bad ones,
with its line number, and splits them in vectorised string operations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import polars as pl

EXAMPLES = 20  # malformed rows quoted in summaries


class InputFileError(ValueError):
    """An input file does not have the structure it claims (no header, wrong header, no rows)."""


def check_header(path: str | Path, names: list[str], looks_like_data: Callable[[list[str]], bool]) -> None:
    """Check line 1 of a tab-separated file is a header of ``len(names)`` fields, not a data row.

    Without this check a file whose header line was lost would silently give its first row up
    as the header (a post without its images, an influencer without category).

    Args:
        path: the file.
        names: the columns the header stands for (quoted in the error).
        looks_like_data: given line 1's fields, whether they are a data row.

    Raises:
        InputFileError: naming ``file:line``: the file is empty, line 1 is blank or a data row, or
            the header has another number of fields.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        first = fh.readline()
        rest = fh.read(1 << 16)
    want = f"a header line of {len(names)} tab-separated fields ({', '.join(names)})"
    if not first.strip() and not rest.strip():
        raise InputFileError(f"{path}: the file is empty; expected {want} and one row per line")
    if not first.strip():
        raise InputFileError(f"{path}:1: line 1 is blank; expected {want}")
    fields = first.decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r\n").split("\t")
    if looks_like_data(fields):
        raise InputFileError(f"{path}:1: the header line is missing: line 1 is a data row ({first[:80].decode('utf-8', 'replace')!r}); "
                             f"expected {want}. Put the header back as line 1 (else line 1 would be taken for it and its row lost).")
    if len(fields) != len(names):
        raise InputFileError(f"{path}:1: the header has {len(fields)} tab-separated fields; expected {want}")


def read_fields(path: str | Path, names: list[str], skip_prefix: str | None = None,
                header: bool = True) -> pl.DataFrame:
    """Columns ``line`` (1-based), ``fields`` (count) and one string column per name.

    A row is well-formed when it has exactly ``len(names)`` fields; extra fields stay joined in
    the last column so nothing is dropped. Blank lines and lines starting with ``skip_prefix``
    (the influencer list's ``====`` rule) are skipped. With ``header``, line 1 is skipped: check it
    first with :func:`check_header`.

    Raises:
        FileNotFoundError: no such file.
        InputFileError: the file holds no data row.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    n = len(names)
    lf = pl.scan_lines(path, name="raw", row_index_name="line", row_index_offset=1)
    lf = lf.with_columns(pl.col("raw").str.strip_chars_end("\r"))
    if header:
        lf = lf.filter(pl.col("line") > 1)
    keep = pl.col("raw").str.strip_chars() != ""
    if skip_prefix:
        keep = keep & ~pl.col("raw").str.starts_with(skip_prefix)
    parts = pl.col("raw").str.splitn("\t", n)
    df = (
        lf.filter(keep)
        .with_columns(
            (pl.col("raw").str.count_matches("\t", literal=True) + 1).alias("fields"),
            parts.alias("_parts"),
        )
        .with_columns(pl.col("_parts").struct.field(f"field_{i}").str.strip_chars().alias(name) for i, name in enumerate(names))
        .drop("_parts", "raw")
        .collect(engine="streaming")
    )
    if df.height == 0:
        raise InputFileError(f"{path}: no data rows" + (" after the header line" if header else ""))
    return df


def examples(df: pl.DataFrame, path: str | Path, reason: str) -> list[str]:
    """A few ``file:line: reason`` strings for the run summary."""
    return [f"{path}:{ln}: {reason}" for ln in df["line"].head(EXAMPLES).to_list()]
