"""The text of every clip: its sentence through ``models.text_embedding`` (the control modality).

CREMA-D's actors say the same 12 sentences in every emotion, so the sentence carries no emotion:
a model that reads only this vector should stay at chance. It is trained and reported beside the
others as a leakage check (a text model above chance would mean the split or the labels leak),
like the image-only model on Dreaddit. The 12 sentences are encoded once; every clip gets its
sentence's L2-normalised vector, or a null with the clip's own status when its name does not parse.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import polars as pl
import pyarrow as pa

from .. import status as S
from ..io.arrays import embedding_array
from ..io.parquet import provenance, write_table
from ..layout import params as rule_params
from ..tables import cremad_text
from .config import validated

log = logging.getLogger(__name__)


def text_table(cfg: Mapping, clips: str | Path, out: str | Path, threads: int | None = None) -> dict[str, Any]:
    """Stage ``cremad_text``: one row per clip (``tables.cremad_text``).

    Returns:
        ``{clips, sentences, dim, by_status}``.
    """
    from ..features.sbert import encode_texts, load_sbert, sbert_dim
    from ..inference.device import place

    cfg = validated(cfg)
    rows = pl.read_parquet(clips, columns=["clip_id", "sentence_text", "status"])
    has = (rows["status"] == S.OK).to_numpy() & rows["sentence_text"].is_not_null().to_numpy()
    sentences = sorted(set(rows["sentence_text"].filter(pl.Series(has)).to_list()))
    where = place("auto", "fp32", threads=threads, what="cremad text encoder")
    encoder, prov = load_sbert(cfg, where.device, where.dtype)
    dim = sbert_dim(encoder)
    vectors = dict(zip(sentences, encode_texts(encoder, sentences, where.device, where.dtype,
                                               cfg["cremad"]["text"]["batch_size"], name="cremad_text")[0])) if sentences else {}
    x = np.zeros((rows.height, dim), np.float32)
    for i in np.flatnonzero(has):
        x[i] = vectors[rows["sentence_text"][int(i)]]
    status = np.where(has, S.OK, rows["status"].to_numpy()).tolist()
    write_table(out, pa.table({"clip_id": rows["clip_id"].to_arrow(), "embedding": embedding_array(x, has, dim),
                               "status": pa.array(status, pa.string())}), cremad_text(dim),
                provenance("cremad_text", rule_params("cremad_text", cfg),
                           clips=str(clips), model=prov, sentences=len(sentences)))
    summary = {"clips": rows.height, "sentences": len(sentences), "dim": dim,
               "by_status": dict(pl.Series(status).value_counts().iter_rows())}
    log.info("cremad_text: %s", summary)
    return summary
