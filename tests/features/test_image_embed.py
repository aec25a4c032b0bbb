"""The CLIP image stage on the sample: one row per mapped image, every planted fault labelled with a
null embedding (never a placeholder), embeddings equal to open_clip's own path, pooled means."""

import io
import json

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feature_fixtures import SHARDS, feature_config, feature_models, ingested  # noqa: F401  (fixtures)

from affectflow import status as S
from affectflow.features.image_embed import _shard_images, image_embeddings_shard
from affectflow.io.parquet import read_provenance

EMBEDDED = {S.OK, S.CONVERTED}


def run_stage(cfg, ingested, out_dir, **kw):
    r = ingested / "instagram"
    reports = []
    for s in range(SHARDS):
        reports.append(image_embeddings_shard(cfg, r / f"posts/shard-{s:05d}.parquet", r / "plan/images.parquet", s,
                                              out_dir / f"images-{s}.parquet", out_dir / f"pooled-{s}.parquet",
                                              threads=1, **kw))
    images = pl.concat([pl.read_parquet(out_dir / f"images-{s}.parquet") for s in range(SHARDS)])
    pooled = pl.concat([pl.read_parquet(out_dir / f"pooled-{s}.parquet") for s in range(SHARDS)])
    return images, pooled, reports


@pytest.fixture(scope="module")
def stage(sample_dir, feature_models, ingested, tmp_path_factory):
    cfg = feature_config(sample_dir, feature_models)
    out = tmp_path_factory.mktemp("img")
    return (cfg, *run_stage(cfg, ingested, out), out)


@pytest.fixture(scope="module")
def posts(ingested):
    return pl.read_parquet(ingested / "instagram/posts")


@pytest.fixture(scope="module")
def planted(sample_dir):
    return json.loads((sample_dir / "SAMPLE.json").read_text())["instagram"]["planted"]


def member(row):
    return f"{row['post_id'].rsplit('-', 1)[0]}-{row['image_file']}"


def test_one_row_per_mapped_image_keyed_to_posts(stage, posts):
    _, images, pooled, reports, _ = stage
    expected = posts.select("post_id", (pl.col("image_files").list.len() + pl.col("missing_images").list.len()).alias("n"))
    got = images.group_by("post_id").agg(pl.len().alias("rows"), pl.col("image_index").sort().alias("idx"))
    joined = expected.filter(pl.col("n") > 0).join(got, on="post_id", how="full", coalesce=True)
    assert joined.filter(pl.col("n") != pl.col("rows")).height == 0 and joined["rows"].null_count() == 0
    assert all(idx == list(range(len(idx))) for idx in joined["idx"].to_list())  # indices 0..n-1, once each
    assert images.join(posts, on="post_id", how="anti").height == 0
    assert images.height == sum(r["images"] for r in reports)
    # the pooled table: exactly one row per post, in the posts' order per shard
    assert pooled["post_id"].to_list() == posts["post_id"].to_list()


def test_every_planted_fault_has_its_status_and_no_embedding(stage, planted):
    _, images, _, _, _ = stage
    rows = {member(r): r for r in images.iter_rows(named=True)}
    expect = {"corrupt_image": S.CORRUPT, "empty_image": S.EMPTY, "bomb_image": S.TOO_LARGE,
              "missing_images": S.MISSING}
    for key, status in expect.items():
        assert planted[key], key
        for name in planted[key]:
            assert rows[name]["status"] == status, name
            assert rows[name]["embedding"] is None and rows[name]["error"], name
    for key, (fmt, mode) in {"png_image": ("PNG", "RGBA"), "cmyk_image": ("JPEG", "CMYK"),
                             "gray_image": ("JPEG", "L")}.items():
        for name in planted[key]:
            r = rows[name]
            assert (r["status"], r["format"], r["mode"]) == (S.CONVERTED, fmt, mode), name
            assert r["embedding"] is not None
    # nulls exactly where nothing was embedded, and real vectors (unit length) elsewhere
    has = images["embedding"].is_not_null()
    assert (has == images["status"].is_in(sorted(EMBEDDED))).all()
    emb = np.stack(images.filter(has)["embedding"].to_numpy())
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert len({tuple(np.round(e, 5)) for e in emb}) == len(emb)  # no shared placeholder vector


def test_posts_that_were_not_parsed_pass_through(stage, posts):
    _, images, pooled, _, _ = stage
    unparsed = posts.filter(~pl.col("status").is_in(sorted(S.PARSED))).select("post_id", pl.col("status").alias("post_status"))
    assert unparsed.height > 0
    img = images.join(unparsed, on="post_id")
    assert img.height > 0 and (img["status"] == img["post_status"]).all() and img["embedding"].null_count() == img.height
    pool = pooled.join(unparsed, on="post_id")
    assert pool.height == unparsed.height and (pool["status"] == pool["post_status"]).all()
    assert pool["embedding"].null_count() == pool.height


def test_pooled_is_the_renormalised_mean_of_embedded_images(stage):
    _, images, pooled, _, _ = stage
    per_post = images.filter(pl.col("embedding").is_not_null()).group_by("post_id").agg("embedding")
    multi = 0
    for pid, embs in per_post.iter_rows():
        m = np.mean(np.stack(embs), axis=0)
        m /= np.linalg.norm(m)
        row = pooled.filter(pl.col("post_id") == pid).row(0, named=True)
        assert row["status"] == S.OK and row["n_embedded"] == len(embs)
        assert np.allclose(row["embedding"], m, atol=1e-5)
        multi += len(embs) > 1
    assert multi > 0  # the sample has sidecar posts with several images
    none = pooled.filter(pl.col("status") == S.NO_IMAGE)
    assert none.height > 0 and none["embedding"].null_count() == none.height and (none["n_embedded"] == 0).all()


def test_embeddings_equal_open_clip_own_preprocess_and_encoder(stage, sample_dir):
    import torch
    from PIL import Image

    from affectflow.io.multizip import MultiVolumeZip
    from affectflow.models import load_clip

    cfg, images, _, _, _ = stage
    net, preprocess, _, _ = load_clip(cfg)
    zf = MultiVolumeZip(sample_dir / "instagram/Post_images/posts_image.zip")
    by_name = {m.name: m for m in zf.members()}
    ok = images.filter(pl.col("status") == S.OK).head(6)
    x = torch.stack([preprocess(Image.open(io.BytesIO(zf.read(by_name["image/" + member(r)]))))
                     for r in ok.iter_rows(named=True)])
    with torch.inference_mode():
        ref = torch.nn.functional.normalize(net.encode_image(x), dim=-1).numpy()
    ours = np.stack(ok["embedding"].to_numpy())
    assert (ours * ref).sum(axis=1).min() > 0.9999


def test_provenance_and_schema(stage):
    _, _, _, reports, out = stage
    for name in ("images-0.parquet", "pooled-0.parquet"):
        prov = read_provenance(out / name)
        assert prov["model"]["arch"] == "ViT-B-32" and prov["model"]["model_name"] == "affectflow-tiny-clip"
        assert len(prov["model"]["digest"]) == 64 and prov["dtype"] == "float32" and prov["device"] == "cpu"
        assert pq.read_schema(out / name).field("embedding").type == pa.list_(pa.float32(), 32)
    assert reports[0]["dim"] == 32


def test_worker_processes_give_the_same_table(stage, ingested, tmp_path):
    import copy

    cfg, images = copy.deepcopy(stage[0]), stage[1]
    cfg["features"]["image_embedding"].update(workers=2, batch_size=5)
    again, _, reports = run_stage(cfg, ingested, tmp_path)
    assert reports[0]["workers"] == 2
    key = ["post_id", "image_index"]
    a, b = images.sort(key), again.sort(key)
    assert a.drop("embedding").equals(b.drop("embedding"))
    assert (a["embedding"].is_null() == b["embedding"].is_null()).all()
    has = a["embedding"].is_not_null()
    ea, eb = (np.stack(t.filter(has)["embedding"].to_numpy()) for t in (a, b))
    assert np.allclose(ea, eb, atol=1e-5)


def test_missing_images_take_the_free_mapping_positions(tmp_path):
    plan = pa.table({
        "post_id": ["u-1", "u-1"], "shard": pa.array([0, 0], pa.int32()), "image_index": pa.array([0, 2], pa.int16()),
        "image_file": ["1_0.jpg", "1_2.jpg"], "member": ["image/u-1_0.jpg", "image/u-1_2.jpg"],
        "disk": pa.array([0, 0], pa.int32()), "offset": pa.array([0, 10], pa.int64()),
        "compressed_size": pa.array([1, 1], pa.int64()), "uncompressed_size": pa.array([1, 1], pa.int64()),
        "method": pa.array([0, 0], pa.int16()), "crc": pa.array([0, 0], pa.uint32()), "flags": pa.array([0, 0], pa.uint16()),
    })
    pq.write_table(plan, tmp_path / "images.parquet")
    posts = pl.DataFrame({"post_id": ["u-1", "u-2"], "status": ["ok", "ok"], "username": ["u", "u"],
                          "image_files": [["1_0.jpg", "1_2.jpg"], []], "missing_images": [["1_1.jpg", "1_3.jpg"], ["2.jpg"]]}
                         ).with_row_index("post_row")
    present, missing = _shard_images(posts, tmp_path / "images.parquet", 0)
    assert present["image_index"].to_list() == [0, 2]
    got = dict(zip(missing["image_file"].to_list(), missing["image_index"].to_list()))
    assert got == {"1_1.jpg": 1, "1_3.jpg": 3, "2.jpg": 0}
