"""Shared plumbing for every stage: split zip archives read in place, the Parquet contract, arrays, TSV."""
