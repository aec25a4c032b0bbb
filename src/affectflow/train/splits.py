"""Group-disjoint splits: all posts of one influencer land in the same split.

A random post-level split lets the model learn the account (its audience, style, typical numbers)
and score it on the account's other posts; that measures memory, not prediction. Influencers are
ranked by a keyed hash (stable across machines, library versions and dataset growth for a given
seed) and cut into test, val and train by count, so every split holds at least one influencer.
"""

from __future__ import annotations

import hashlib

import polars as pl

from .arrays import DataError


def _rank_key(seed: int, group: str) -> str:
    return hashlib.blake2b(f"{seed}\x1f{group}".encode(), digest_size=8).hexdigest()


def assign_groups(groups, val: float, test: float, seed: int) -> pl.DataFrame:
    """``group -> split`` for the distinct ``groups``; at least one group per split."""
    uniq = sorted({g for g in groups if g is not None})
    n = len(uniq)
    n_test = max(1, round(test * n))
    n_val = max(1, round(val * n))
    if n - n_test - n_val < 1:
        raise DataError(f"{n} influencer(s) with usable posts cannot fill train, val and test splits "
                        f"(need at least 3; the split is by influencer so that no account is on both sides)")
    ranked = sorted(uniq, key=lambda g: _rank_key(seed, g))
    split = ["test"] * n_test + ["val"] * n_val + ["train"] * (n - n_test - n_val)
    return pl.DataFrame({"group": ranked, "split": split}).sort("group")


def check_disjoint(frame: pl.DataFrame, key: str, split_col: str = "split") -> None:
    """Raise when any ``key`` value appears in more than one split."""
    shared = frame.group_by(key).agg(pl.col(split_col).n_unique().alias("n")).filter(pl.col("n") > 1)
    if shared.height:
        raise DataError(f"{shared.height} {key} value(s) appear in more than one split, "
                        f"e.g. {shared[key].head(5).to_list()}")
