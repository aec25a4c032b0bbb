"""Dreaddit's own features as the stress modality ``lexical``.

The Dreaddit files carry, per row, features computed from the text alone: LIWC category rates
(``lex_liwc_*``), Dictionary of Affect in Language scores (``lex_dal_*``), readability
(``syntax_ari``, ``syntax_fk_grade``) and a sentiment score (``sentiment``); the subreddit is
known at posting time too. These make the modality, chosen by name prefix
(``train.stress.lexical.prefixes``), each column standardised with the mean and standard deviation
of the train split (a value that is missing takes the train mean, i.e. 0 after standardising), the
subreddit one-hot over the train split's subreddits.

Two kinds of column are kept out:

- ``social_*`` (karma, upvote ratio, comment count, timestamp) exist only after the post has been
  read and voted on; they come in only with ``social: true`` and are then listed in the dataset
  summary as *known only after posting*.
- ``confidence`` is the annotators' agreement, annotation metadata rather than anything about the
  post; its test-split mean differs by label, so a model reading it would learn the label from
  the labelling process. It is refused whatever the configuration says.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import polars as pl

from .arrays import DataError
from .config import LexicalConfig

# Never features: annotation metadata and the labels' own identifiers.
REFUSED = ("confidence", "label", "id", "dreaddit_id", "post_id", "reddit_post_id")
SOCIAL_PREFIX = "social_"
REFUSED_REASON = {
    "confidence": "the annotators' confidence is annotation metadata whose test mean differs by label (a leak)",
}


def lexical_columns(available: Sequence[str], lex: LexicalConfig) -> list[str]:
    """The numeric columns of the modality, in ``available`` order.

    Args:
        available: column names of the Dreaddit posts table.
        lex: the ``train.stress.lexical`` settings.

    Returns:
        Columns matching a prefix (and ``social_*`` when ``lex.social``).

    Raises:
        DataError: a prefix names a refused column (``confidence``, labels, ids), or nothing matches.
    """
    for p in lex.prefixes:
        hit = [r for r in REFUSED if r.startswith(p) or p.startswith(r)]
        if hit:
            why = REFUSED_REASON.get(hit[0], "not a feature of the post")
            raise DataError(f"train.stress.lexical.prefixes: {p!r} selects {hit[0]!r}, which is never a feature: {why}")
    prefixes = tuple(lex.prefixes) + ((SOCIAL_PREFIX,) if lex.social else ())
    cols = [c for c in available if c.startswith(prefixes) and c not in REFUSED]
    if not lex.social:
        cols = [c for c in cols if not c.startswith(SOCIAL_PREFIX)]
    if not cols:
        raise DataError(f"train.stress.lexical: no column of the posts table starts with {list(prefixes)}")
    return cols


def lexical_matrix(frame: pl.DataFrame, columns: Sequence[str], is_train: np.ndarray, subreddit: bool
                   ) -> tuple[np.ndarray, dict[str, Any]]:
    """Standardised features of every row (rows x dim, float32) and what was done.

    Args:
        frame: the rows (all splits), with ``columns`` and ``subreddit``.
        columns: numeric columns (from :func:`lexical_columns`).
        is_train: rows whose values set the means, standard deviations and subreddit categories.
        subreddit: append the subreddit one-hot.

    Returns:
        ``(x, info)``; ``info`` keys: ``columns`` (feature names, in order), ``mean``, ``std``
        (train statistics of the raw columns), ``subreddits`` (categories), ``missing_values``,
        ``known_only_after_posting`` (the ``social_*`` columns used).

    Raises:
        DataError: no train rows.
    """
    if not is_train.any():
        raise DataError("the lexical modality needs train rows to standardise on")
    raw = frame.select([pl.col(c).cast(pl.Float64) for c in columns]).to_numpy().astype(np.float64)
    raw = np.where(np.isfinite(raw), raw, np.nan)
    tr = raw[is_train]
    mean = np.nanmean(tr, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.nanstd(tr, axis=0)
    std = np.where(np.isfinite(std) & (std > 1e-9), std, 1.0)
    missing = int(np.isnan(raw).sum())
    x = (np.where(np.isnan(raw), mean, raw) - mean) / std
    names = list(columns)
    cats: list[str] = []
    if subreddit:
        sub = frame["subreddit"].fill_null("").to_numpy()
        cats = sorted({s for s in sub[is_train] if s})
        onehot = (sub[:, None] == np.array(cats, dtype=object)[None]).astype(np.float64)
        m1 = onehot[is_train].mean(0)
        s1 = onehot[is_train].std(0)
        s1 = np.where(s1 > 1e-9, s1, 1.0)
        x = np.concatenate([x, (onehot - m1) / s1], axis=1)
        names += [f"subreddit={c}" for c in cats]
    info = {"columns": names, "mean": dict(zip(columns, mean.round(6).tolist())),
            "std": dict(zip(columns, std.round(6).tolist())), "subreddits": cats, "missing_values": missing,
            "standardised_on": "train",
            "known_only_after_posting": [c for c in columns if c.startswith(SOCIAL_PREFIX)]}
    return x.astype(np.float32), info
