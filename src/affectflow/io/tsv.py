"""Tab-separated inputs read as lines and split in polars, so malformed rows are counted, not fatal.

The dataset's text files (the 10M-row mapping, the influencer list) have no quoting and a fixed
number of fields. Reading them line by line in polars keeps every row, including the bad ones,
with its line number, and splits them in vectorised string operations.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

EXAMPLES = 20  # malformed rows quoted in summaries


def read_fields(path: str | Path, names: list[str], skip_prefix: str | None = None,
                header: bool = True) -> pl.DataFrame:
    """Columns ``line`` (1-based), ``fields`` (count) and one string column per name.

    A row is well-formed when it has exactly ``len(names)`` fields; extra fields stay joined in
    the last column so nothing is dropped. Blank lines and lines starting with ``skip_prefix``
    (the influencer list's ``====`` rule) are skipped.
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
    return (
        lf.filter(keep)
        .with_columns(
            (pl.col("raw").str.count_matches("\t", literal=True) + 1).alias("fields"),
            parts.alias("_parts"),
        )
        .with_columns(pl.col("_parts").struct.field(f"field_{i}").str.strip_chars().alias(name) for i, name in enumerate(names))
        .drop("_parts", "raw")
        .collect(engine="streaming")
    )


def examples(df: pl.DataFrame, path: str | Path, reason: str) -> list[str]:
    """A few ``file:line: reason`` strings for the run summary."""
    return [f"{path}:{ln}: {reason}" for ln in df["line"].head(EXAMPLES).to_list()]
