"""CLIP text + image embeddings of every Dreaddit post, with the long-text rule, on tiny models."""

import os

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import torch
from dreaddit_support import dd_config, dd_models, posts_path  # noqa: F401  (fixture)

from affectflow import status as S
from affectflow.dreaddit.clip import clip_shard, text_windows, window_tensor
from affectflow.dreaddit.posts import shard_bounds
from affectflow.dreaddit.synthesize import synthesize_shard
from affectflow.models import load_clip
from affectflow.tables import dreaddit_clip


def _synth_and_clip(cfg, shard=0, **clip):
    cfg["dreaddit"]["clip"].update(clip)
    root = os.path.join(cfg["results"], "dreaddit")
    synth = os.path.join(root, "synth", f"shard-{shard:05d}.parquet")
    if not os.path.exists(synth):
        synthesize_shard(cfg, posts_path(cfg), shard, synth)
    out = os.path.join(root, "clip", f"shard-{shard:05d}.parquet")
    summary = clip_shard(cfg, posts_path(cfg), synth, shard, out)
    return pl.read_parquet(out), pl.read_parquet(synth), summary


def _encode(cfg, tokens):
    net, _, _, _ = load_clip(cfg)
    with torch.no_grad():
        return torch.nn.functional.normalize(net.encode_text(tokens).float(), dim=-1).numpy()


def test_every_post_gets_a_row_joined_to_the_index(tmp_path, sample_dir, dd_models):
    cfg = dd_config(tmp_path, sample_dir, dd_models, shards=4)
    statuses = pl.read_parquet(posts_path(cfg), columns=["status"])["status"].to_list()
    row = statuses.index(S.TEXT_MISSING)
    shard = next(k for k in range(4) if shard_bounds(len(statuses), k, 4)[0] <= row < shard_bounds(len(statuses), k, 4)[1])
    emb, synth, summary = _synth_and_clip(cfg, shard=shard)  # the shard with the sample's empty text
    out = os.path.join(cfg["results"], "dreaddit", "clip", f"shard-{shard:05d}.parquet")
    assert pq.read_schema(out).remove_metadata().equals(dreaddit_clip(32).remove_metadata())
    assert emb["post_id"].to_list() == synth["post_id"].to_list()
    ok = emb.filter(pl.col("status") == S.OK)
    assert ok.height == synth.filter(pl.col("status") == S.OK).height > 0
    for col in ("text_embedding", "image_embedding"):
        vecs = np.stack(ok[col].to_list())
        assert vecs.shape == (ok.height, 32) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    missing = emb.filter(pl.col("status") == S.TEXT_MISSING)
    assert missing.height == 1 and missing["text_embedding"].null_count() == 1
    assert missing["image_embedding"].null_count() == 1


def test_window_mean_covers_the_whole_text_and_truncate_flags_the_cut(tmp_path, sample_dir, dd_models):
    cfg = dd_config(tmp_path, sample_dir, dd_models)
    _, _, tok, _ = load_clip(cfg)
    long = " ".join(f"word{i}" for i in range(120))
    windows, n = text_windows(tok, long, "window_mean")
    assert n == len(tok.encode(long)) > 150 and [len(w) for w in windows][:-1] == [75] * (len(windows) - 1)
    assert sum(windows, []) == tok.encode(long)  # nothing dropped, nothing repeated
    cut, n2 = text_windows(tok, long, "truncate")
    assert n2 == n and len(cut) == 1 and cut[0] == windows[0]
    row = window_tensor(tok, cut)[0].tolist()
    assert row[0] == tok.sot_token_id and row[76] == tok.eot_token_id  # open_clip's own layout
    assert torch.equal(window_tensor(tok, cut), tok([long]))  # truncate == open_clip's tokenizer


def test_long_text_embedding_is_the_token_weighted_mean_of_its_windows(tmp_path, sample_dir, dd_models):
    cfg = dd_config(tmp_path, sample_dir, dd_models, shards=12)
    posts = pl.read_parquet(posts_path(cfg))
    long_text = " ".join(["My landlord keeps calling about the rent and I cannot sleep at all."] * 12)
    posts = posts.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(long_text)).otherwise(pl.col("text")).alias("text"))
    posts.write_parquet(posts_path(cfg))
    emb, _, summary = _synth_and_clip(cfg, shard=0)
    first = emb.row(0, named=True)
    assert first["text_windows"] > 1 and first["text_truncated"] is False
    _, _, tok, _ = load_clip(cfg)
    windows, n = text_windows(tok, long_text, "window_mean")
    assert first["text_tokens"] == n and first["text_windows"] == len(windows)
    per = _encode(cfg, window_tensor(tok, windows))
    expected = (per * np.array([len(w) for w in windows])[:, None]).sum(0)
    assert np.allclose(first["text_embedding"], expected / np.linalg.norm(expected), atol=1e-5)

    cut, _, _ = _synth_and_clip(cfg, shard=0, long_text="truncate")
    head = cut.row(0, named=True)
    assert head["text_truncated"] is True and head["text_windows"] == 1
    assert np.allclose(head["text_embedding"], per[0], atol=1e-5)
    short = emb.filter(pl.col("text_windows") == 1)
    same = cut.filter(pl.col("post_id").is_in(short["post_id"].implode()))
    assert short.height > 0 and np.allclose(short["text_embedding"].to_list(), same["text_embedding"].to_list(), atol=1e-6)


def test_unusable_images_get_a_status_and_no_embedding(tmp_path, sample_dir, dd_models):
    cfg = dd_config(tmp_path, sample_dir, dd_models, shards=12)
    _, synth, _ = _synth_and_clip(cfg)
    paths = synth.drop_nulls("image_path")["image_path"].to_list()
    with open(paths[0], "wb") as fh:
        fh.write(b"not a png")
    emb, _, summary = _synth_and_clip(cfg)
    row = emb.filter(pl.col("post_id") == synth.drop_nulls("image_path")["post_id"][0]).row(0, named=True)
    assert row["status"] == S.IMAGE_UNREADABLE and row["image_embedding"] is None and row["text_embedding"] is not None
    assert summary["by_status"][S.IMAGE_UNREADABLE] == 1


def test_blocked_images_carry_their_status_into_the_clip_table(tmp_path, sample_dir, dd_models):
    cfg = dd_config(tmp_path, sample_dir, dd_models, shards=12, safety_checker=True)
    cfg["models"]["safety_checker"] = {"id": str(dd_models / "safety_flag_all")}
    emb, _, _ = _synth_and_clip(cfg)
    with_text = emb.filter(pl.col("text_embedding").is_not_null())
    assert (with_text["status"] == S.BLOCKED).all() and with_text["image_embedding"].null_count() == with_text.height


def test_stale_index_is_refused(tmp_path, sample_dir, dd_models):
    cfg = dd_config(tmp_path, sample_dir, dd_models, shards=12)
    _synth_and_clip(cfg, shard=0)
    root = os.path.join(cfg["results"], "dreaddit")
    with pytest.raises(RuntimeError, match="stale"):
        clip_shard(cfg, posts_path(cfg), os.path.join(root, "synth", "shard-00000.parquet"), 1,
                   os.path.join(root, "clip", "x.parquet"))
