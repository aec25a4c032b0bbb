"""The clips table: one row per clip a file or CSV names, a status per modality, the split by actor."""

import json

import polars as pl
import pytest

from affectflow import status as S
from affectflow.cremad.clips import build_clips, parse_name, probe_audio, shard_of
from affectflow.cremad.sample import EMOTIONS, make_cremad
from affectflow.tables import CREMAD_CLIPS


@pytest.fixture(scope="module")
def clips(sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("clips")
    cfg = {"results": str(out), "cremad": {"root": str(sample_dir / "cremad"), "shards": 3}}
    summary = build_clips(cfg, out / "clips.parquet", out / "summary.json")
    planted = json.loads((sample_dir / "SAMPLE.json").read_text())["cremad"]["planted"]
    return pl.read_parquet(out / "clips.parquet"), summary, planted


def test_every_named_clip_is_a_row_and_nothing_is_dropped(clips, sample_dir):
    frame, summary, planted = clips
    root = sample_dir / "cremad"
    on_disk = {p.stem for p in (root / "AudioWAV").iterdir()} | {p.stem for p in (root / "VideoFlash").iterdir()}
    listed = set(pl.read_csv(root / "SentenceFilenames.csv")["Filename"])
    assert set(frame["clip_id"]) == on_disk | listed
    assert frame.height == frame["clip_id"].n_unique() == summary["clips"]
    assert frame["clip_id"].to_list() == sorted(frame["clip_id"])
    assert frame.columns == CREMAD_CLIPS.names
    assert planted["both_missing"][0] in summary["only_in_csv"]


def test_planted_faults_get_their_status(clips):
    frame, _, planted = clips
    by_id = {r["clip_id"]: r for r in frame.iter_rows(named=True)}
    expect = {"audio_unreadable": ("audio", S.UNREADABLE), "audio_empty": ("audio", S.EMPTY),
              "audio_silent": ("audio", S.SILENT), "audio_too_short": ("audio", S.TOO_SHORT),
              "audio_missing": ("audio", S.MISSING), "video_missing": ("video", S.MISSING),
              "video_unreadable": ("video", S.UNREADABLE), "video_empty": ("video", S.EMPTY)}
    for kind, (modality, status) in expect.items():
        row = by_id[planted[kind][0]]
        assert row[f"{modality}_status"] == status, (kind, row)
        assert row[f"{modality}_error"], kind
        assert row["status"] == S.OK  # the label still parses: the clip stays, other modalities usable
    both = by_id[planted["both_missing"][0]]
    assert (both["audio_status"], both["video_status"]) == (S.MISSING, S.MISSING)
    bad = by_id[planted["bad_name"][0]]
    assert bad["status"] == S.CLIP_BAD_NAME and bad["emotion"] is None and bad["split"] is None
    assert "emotion XYZ" in bad["error"]
    mp4 = by_id[planted["video_mp4"][0]]
    assert mp4["video_path"].endswith(".mp4") and mp4["video_status"] == S.OK
    faulty = {c for v in planted.values() for c in v}
    clean = frame.filter(~pl.col("clip_id").is_in(list(faulty)))
    assert (clean["audio_status"] == S.OK).all() and (clean["video_status"] == S.OK).all()
    assert set(frame["audio_status"]) | set(frame["video_status"]) <= set(S.CLIP_STATUSES)


def test_fields_demographics_and_crowd_votes(clips):
    frame, summary, _ = clips
    ok = frame.filter(pl.col("status") == S.OK)
    assert set(ok["emotion"]) == set(EMOTIONS)
    row = ok.filter(pl.col("clip_id").str.contains("_IEO_")).row(0, named=True)
    assert row["sentence_text"] == "It's eleven o'clock" and row["level"] in ("LO", "MD", "HI", "XX")
    assert ok["sex"].is_in(["Male", "Female"]).all() and ok["age"].is_not_null().all()
    good = ok.filter(pl.col("audio_status") == S.OK)
    assert (good["audio_sample_rate"] == 16000).all() and (good["audio_channels"] == 1).all()
    assert good["audio_seconds"].min() >= 0.5 and good["video_fps"].drop_nulls().min() == 10
    for q in ("voice", "face", "av"):  # three presentations per clip in tabulatedVotes.csv
        assert summary["with_votes"][q] == ok.height
        assert ok[f"{q}_vote"].str.contains(r"^[ADFHNS](:[ADFHNS])*$").all()


def test_split_is_by_actor_and_seeded(clips, sample_dir, tmp_path):
    frame, summary, _ = clips
    sides = frame.filter(pl.col("split").is_not_null()).group_by("actor_id").agg(pl.col("split").n_unique())
    assert (sides["split"] == 1).all()  # no actor on two sides
    assert all(summary["actors"][s] for s in ("train", "val", "test"))
    again = build_clips({"results": str(tmp_path), "cremad": {"root": str(sample_dir / "cremad"), "shards": 1}},
                        tmp_path / "c.parquet", tmp_path / "s.json")
    assert again["actors"] == summary["actors"]  # the shard count does not move the split
    other = build_clips({"results": str(tmp_path), "cremad": {"root": str(sample_dir / "cremad"),
                                                              "split": {"seed": 7}}}, tmp_path / "d.parquet", tmp_path / "t.json")
    assert other["actors"] != summary["actors"]


def test_shards_are_contiguous_and_balanced():
    s = shard_of(10, 3)
    assert s.tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert shard_of(2, 4).tolist() == [0, 2]


def test_parse_name():
    fields, why = parse_name("1001_DFA_ANG_XX")
    assert why is None and fields["actor_id"] == 1001 and fields["emotion_index"] == EMOTIONS.index("ANG")
    for bad in ("1001_DFA_ANG", "x1001_DFA_ANG_XX", "1001_ABC_ANG_XX", "1001_DFA_ANG_ZZ"):
        assert parse_name(bad)[0] is None


def test_missing_folders_and_csvs_are_reported_not_fatal(tmp_path):
    info = make_cremad(tmp_path / "d", actors=3, sentences_per_actor=1)
    (tmp_path / "d" / "VideoDemographics.csv").unlink()
    import shutil

    shutil.rmtree(tmp_path / "d" / "VideoFlash")
    s = build_clips({"results": str(tmp_path), "cremad": {"root": str(tmp_path / "d"), "split": {"val": 0.3, "test": 0.3}}},
                    tmp_path / "c.parquet", tmp_path / "s.json")
    assert s["clips"] == info["clips"] and s["video"] == {S.MISSING: info["clips"]}
    assert any("demographics" in p for p in s["problems"]) and any("VideoFlash" in p for p in s["problems"])


def test_probe_audio_levels(tmp_path):
    import numpy as np
    import soundfile as sf

    p = tmp_path / "quiet.wav"
    sf.write(p, np.full(16000, 1e-4, np.float32), 16000)  # -80 dBFS: silent at the default -60
    assert probe_audio(p, 0.3, -60.0)["audio_status"] == S.SILENT
    assert probe_audio(p, 0.3, -90.0)["audio_status"] == S.OK
    assert probe_audio(p, 2.0, -90.0)["audio_status"] == S.TOO_SHORT


def test_cremad_shards_are_not_foreign_to_the_instagram_plan(tmp_path):
    """The plan job prunes shard files its config does not plan: CREMA-D's count is cremad.shards."""
    from affectflow.ops.results_folder import foreign_shard_files

    cfg = {"results": str(tmp_path), "instagram": {"shards": 2}, "dreaddit": {"shards": 2}, "cremad": {"shards": 4}}
    (tmp_path / "cremad" / "egemaps").mkdir(parents=True)
    for k in (3, 4):
        (tmp_path / "cremad" / "egemaps" / f"shard-{k:05d}.parquet").write_bytes(b"")
    assert foreign_shard_files(cfg) == [tmp_path / "cremad" / "egemaps" / "shard-00004.parquet"]
