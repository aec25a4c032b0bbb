"""Per-shard CREMA-D features: eGeMAPS, the speech encoder, video frames through CLIP, the sentence."""

import json

import numpy as np
import polars as pl
import pytest
from cremad_support import cremad_config, cremad_models, cremad_run  # noqa: F401  (fixtures)

from affectflow import status as S
from affectflow.cremad.video import center_crop, sample_frames
from affectflow.io.parquet import read_provenance


def _joined(run, key):
    clips = pl.read_parquet(run["clips"], columns=["clip_id", "audio_status", "video_status", "sentence"])
    feats = pl.concat([pl.read_parquet(p) for p in run[key]])
    return clips.join(feats, on="clip_id", how="left")


def test_egemaps_one_row_per_clip_with_the_clip_status(cremad_run):
    j = _joined(cremad_run, "audio")
    assert j.height == pl.read_parquet(cremad_run["clips"]).height and j["status"].is_not_null().all()
    assert (j["status"] == j["audio_status"]).all()  # the sample's faults are all found by the probe
    ok = j.filter(pl.col("status") == S.OK)
    x = np.stack(ok["egemaps"].to_list())
    assert x.shape[1] == 88 and np.isfinite(x).all()
    assert j.filter(pl.col("status") != S.OK)["egemaps"].is_null().all()  # never a placeholder vector
    prov = read_provenance(cremad_run["audio"][0])
    assert prov["feature_set"] == "eGeMAPSv02" and len(prov["feature_names"]) == 88
    assert prov["feature_names"][0].startswith("F0semitone")


def test_egemaps_sees_the_planted_pitch(cremad_run):
    """F0 mean (semitones) orders the emotions as planted: FEA > ANG > HAP > NEU > SAD."""
    j = _joined(cremad_run, "audio").filter(pl.col("status") == S.OK)
    clips = pl.read_parquet(cremad_run["clips"], columns=["clip_id", "emotion"])
    j = j.join(clips, on="clip_id").with_columns(f0=pl.col("egemaps").arr.get(0))
    means = dict(j.group_by("emotion").agg(pl.col("f0").mean()).iter_rows())
    assert means["FEA"] > means["ANG"] > means["HAP"] > means["NEU"] > means["SAD"]


def test_video_pooled_per_clip_statuses_and_frames(cremad_run):
    j = _joined(cremad_run, "video")
    assert (j["status"] == j["video_status"]).all()
    ok = j.filter(pl.col("status") == S.OK)
    mean, std = np.stack(ok["embedding_mean"].to_list()), np.stack(ok["embedding_std"].to_list())
    assert mean.shape[1] == std.shape[1] == 32  # the tiny CLIP's width
    assert (ok["n_frames"] >= 3).all()  # ~0.6-0.9 s at 5 frames/s
    assert (std >= 0).all() and std.max() > 0  # the face patch's brightness varies in time
    assert np.allclose(np.linalg.norm(mean, axis=1) <= 1 + 1e-5, True)
    bad = j.filter(pl.col("status") != S.OK)
    assert bad["embedding_mean"].is_null().all() and (bad["n_frames"] == 0).all()
    prov = read_provenance(cremad_run["video"][0])
    assert prov["config"]["cremad"]["video"]["fps"] == 5 and prov["model"]["key"] == "clip"


def test_text_is_the_sentence_alone(cremad_run):
    j = _joined(cremad_run, "text").filter(pl.col("status") == S.OK)
    assert cremad_run["runs"]["text"]["sentences"] == j["sentence"].n_unique()
    for _, group in j.group_by("sentence"):
        v = np.stack(group["embedding"].to_list())
        assert np.allclose(v, v[0])  # every emotion of a sentence: the same vector
    assert j["sentence"].n_unique() > 1


def test_sample_frames_rate_cap_and_crop(tmp_path):
    import av

    path = tmp_path / "t.flv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("flv1", rate=25)
        s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
        for i in range(50):  # 2 s
            img = np.full((64, 96, 3), i * 5, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    frames = sample_frames(str(path), fps=4, max_frames=100, crop_fraction=0.5)
    assert len(frames) == 8 and frames[0].size == (32, 32)
    levels = [np.asarray(f).mean() for f in frames]
    assert levels == sorted(levels) and levels[-1] - levels[0] > 150  # spread over the whole clip
    assert len(sample_frames(str(path), fps=25, max_frames=6)) == 6
    from PIL import Image

    assert center_crop(Image.new("RGB", (80, 60)), 1.0).size == (60, 60)


def test_video_stage_records_a_file_that_fails_to_decode(sample_dir, cremad_models, tmp_path):
    """The probe opens only the header: a file whose frames do not decode is caught by the video stage."""
    import shutil

    from affectflow.cremad.clips import build_clips
    from affectflow.cremad.video import video_shard

    root = tmp_path / "data"
    shutil.copytree(sample_dir / "cremad", root)
    victim = sorted((root / "VideoFlash").glob("*.flv"))[-1]
    data = victim.read_bytes()
    victim.write_bytes(data[:13] + bytes(len(data) - 13))  # FLV header intact, every frame zeroed
    cfg = cremad_config(tmp_path, sample_dir, cremad_models, root=str(root), shards=1)
    build_clips(cfg, tmp_path / "clips.parquet", tmp_path / "s.json")
    summary = video_shard(cfg, tmp_path / "clips.parquet", 0, tmp_path / "v.parquet", threads=1)
    row = pl.read_parquet(tmp_path / "v.parquet").filter(pl.col("clip_id") == victim.stem).row(0, named=True)
    assert row["status"] in (S.UNREADABLE, S.TOO_SHORT) and row["error"] and row["embedding_mean"] is None
    assert sum(summary["by_status"].values()) == pl.read_parquet(tmp_path / "clips.parquet").height


def test_speech_encoder_shard(cremad_run, cremad_models, tmp_path):
    from affectflow.cremad.audio import speech_shard

    cfg = json.loads(json.dumps(cremad_run["cfg"]))
    cfg["cremad"]["audio"] = {"speech": True, "speech_batch_size": 8, "speech_max_seconds": 0.7}
    summary = speech_shard(cfg, cremad_run["clips"], 1, tmp_path / "s.parquet", threads=1)
    t = pl.read_parquet(tmp_path / "s.parquet")
    ok = t.filter(pl.col("status") == S.OK)
    assert summary["dim"] == 32 and ok.height == summary["by_status"][S.OK] > 0
    assert np.isfinite(np.stack(ok["embedding"].to_list())).all()
    assert ok["truncated"].any() and (ok["seconds_used"] <= 0.7 + 1e-6).all()
    assert read_provenance(tmp_path / "s.parquet")["model"]["key"] == "speech"


def test_speech_needs_a_model(cremad_run, tmp_path):
    from affectflow.cremad.audio import speech_shard

    cfg = json.loads(json.dumps(cremad_run["cfg"]))
    del cfg["models"]["speech"]
    with pytest.raises(ValueError, match="models.speech"):
        speech_shard(cfg, cremad_run["clips"], 0, tmp_path / "s.parquet")
