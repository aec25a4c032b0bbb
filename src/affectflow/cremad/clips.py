"""The CREMA-D clips table: one row per clip a file or a CSV names, nothing dropped.

A clip is the file stem ``ActorID_Sentence_Emotion_Level`` (``1001_DFA_ANG_XX``) shared by its WAV
and its video. The table is the union of the stems found in ``AudioWAV/`` and ``VideoFlash/`` and
the names listed in ``SentenceFilenames.csv`` and ``tabulatedVotes.csv``, so a clip the dataset
names but whose files are gone is a row with ``missing`` statuses, and a file whose name does not
parse is a row with status ``bad_name``.

Each modality is probed where it lies: the WAV is read whole (soundfile; duration, rate, channels,
peak level), the video's container header is opened with PyAV (duration, frame rate, size, codec;
frames are decoded later, by the video stage, which records a decoding fault itself). Status per
modality, first that applies: ``missing``, ``empty`` (zero bytes), ``unreadable`` (the decoder
refuses it), ``too_short`` (audio under ``min_duration_s``), ``silent`` (peak under
``silence_dbfs``), ``ok``.

The split is by actor (train / val / test, a keyed hash of the actor id orders the actors, so the
same seed gives the same split on any machine and as the dataset grows): no actor is on two sides,
since the same voice and face on both sides of a split inflate every figure (published
random-split results on CREMA-D run 15-20 points above speaker-independent ones). Shards are
contiguous runs of clips in ``clip_id`` order.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import polars as pl
import pyarrow as pa

from .. import status as S
from ..io.parquet import provenance, write_json, write_table
from ..layout import params as rule_params
from ..tables import CREMAD_CLIPS
from ..train.splits import assign_groups
from .config import CremadConfig, validated
from .sample import EMOTIONS, SENTENCES

log = logging.getLogger(__name__)

NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
LEVELS = ("LO", "MD", "HI", "XX")
QUERIES = {1: "voice", 2: "face", 3: "av"}  # tabulatedVotes row key = 100000 * query + clip number


def parse_name(name: str) -> tuple[dict[str, Any] | None, str | None]:
    """``ActorID_Sentence_Emotion_Level`` -> fields, or ``(None, why)`` when it does not parse."""
    m = NAME.match(name)
    if not m:
        return None, f"{name}: not ActorID_Sentence_Emotion_Level"
    actor, sentence, emotion, level = m.groups()
    bad = [f"{what} {code}" for what, code, known in (("sentence", sentence, SENTENCES), ("emotion", emotion, EMOTIONS),
                                                       ("level", level, LEVELS)) if code not in known]
    if bad:
        return None, f"{name}: unknown {', '.join(bad)}"
    return {"actor_id": int(actor), "sentence": sentence, "sentence_text": SENTENCES[sentence], "emotion": emotion,
            "emotion_index": EMOTIONS.index(emotion), "level": level}, None


def _read_csv(path: Path, what: str, problems: list[str]) -> list[dict[str, str]]:
    if not path.is_file():
        problems.append(f"{what}: {path} not found")
        return []
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        return list(csv.DictReader(fh))


def read_votes(path: Path, problems: list[str]) -> dict[str, dict[str, Any]]:
    """``clip_id -> {voice_vote, voice_agreement, voice_responses, face_..., av_...}`` from tabulatedVotes.csv."""
    out: dict[str, dict[str, Any]] = {}
    rows = _read_csv(path, "votes", problems)
    for i, r in enumerate(rows, start=2):
        key = r.get("") or r.get("X") or next(iter(r.values()), "")
        name = (r.get("fileName") or "").strip()
        try:
            query = QUERIES[int(float(key)) // 100000]
        except (KeyError, ValueError):
            problems.append(f"votes {path}:{i}: row key {key!r} is not 100000 x query + clip number")
            continue
        try:
            agreement, responses = float(r["agreement"]), int(float(r["numResponses"]))
        except (KeyError, ValueError, TypeError):
            agreement, responses = None, None
        out.setdefault(name, {})
        out[name].update({f"{query}_vote": (r.get("emoVote") or "").strip() or None,
                          f"{query}_agreement": agreement, f"{query}_responses": responses})
    return out


def _files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """stem -> file, preferring the earlier suffix when a stem has several."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    rank = {s: i for i, s in enumerate(suffixes)}
    for p in sorted(folder.iterdir()):
        suf = p.suffix.lstrip(".").lower()
        if p.is_file() and suf in rank:
            old = found.get(p.stem)
            if old is None or rank[suf] < rank[old.suffix.lstrip(".").lower()]:
                found[p.stem] = p
    return found


def probe_audio(path: Path | None, min_seconds: float, silence_dbfs: float) -> dict[str, Any]:
    """Status and facts of one WAV (read whole).

    Returns:
        ``audio_bytes, audio_seconds, audio_sample_rate, audio_channels, audio_peak_dbfs`` (null
        where unknown), ``audio_status``, ``audio_error``.
    """
    import soundfile as sf

    rec: dict[str, Any] = {"audio_path": None if path is None else str(path), "audio_bytes": None, "audio_seconds": None,
                           "audio_sample_rate": None, "audio_channels": None, "audio_peak_dbfs": None, "audio_error": None}
    if path is None:
        return {**rec, "audio_status": S.MISSING, "audio_error": "no WAV for this clip"}
    rec["audio_bytes"] = path.stat().st_size
    if rec["audio_bytes"] == 0:
        return {**rec, "audio_status": S.EMPTY, "audio_error": f"{path}: zero bytes"}
    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, ValueError ...
        return {**rec, "audio_status": S.UNREADABLE, "audio_error": f"{path}: {exc}"}
    peak = float(np.abs(x).max()) if x.size else 0.0
    rec.update(audio_seconds=len(x) / sr, audio_sample_rate=int(sr), audio_channels=int(x.shape[1]),
               audio_peak_dbfs=20 * math.log10(peak) if peak > 0 else -math.inf)
    if rec["audio_seconds"] < min_seconds:
        return {**rec, "audio_status": S.TOO_SHORT, "audio_error": f"{path}: {rec['audio_seconds']:.3f} s < {min_seconds} s"}
    if rec["audio_peak_dbfs"] < silence_dbfs:
        return {**rec, "audio_status": S.SILENT, "audio_error": f"{path}: peak {rec['audio_peak_dbfs']:.1f} dBFS < {silence_dbfs}"}
    return {**rec, "audio_status": S.OK}


def probe_video(path: Path | None) -> dict[str, Any]:
    """Status and header facts of one video (PyAV opens the container; no frame is decoded)."""
    import av

    rec: dict[str, Any] = {"video_path": None if path is None else str(path), "video_bytes": None, "video_seconds": None,
                           "video_fps": None, "video_width": None, "video_height": None, "video_codec": None,
                           "video_error": None}
    if path is None:
        return {**rec, "video_status": S.MISSING, "video_error": "no video for this clip"}
    rec["video_bytes"] = path.stat().st_size
    if rec["video_bytes"] == 0:
        return {**rec, "video_status": S.EMPTY, "video_error": f"{path}: zero bytes"}
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                return {**rec, "video_status": S.UNREADABLE, "video_error": f"{path}: no video stream"}
            v = c.streams.video[0]
            seconds = (float(v.duration * v.time_base) if v.duration else None) or (c.duration / 1e6 if c.duration else None)
            rec.update(video_seconds=seconds, video_fps=float(v.average_rate) if v.average_rate else None,
                       video_width=v.codec_context.width or None, video_height=v.codec_context.height or None,
                       video_codec=v.codec_context.name)
    except Exception as exc:  # av.error.InvalidDataError and kin
        return {**rec, "video_status": S.UNREADABLE, "video_error": f"{path}: {exc}"}
    return {**rec, "video_status": S.OK}


def shard_of(n_rows: int, shards: int) -> np.ndarray:
    """Contiguous, balanced shards: row i of n goes to shard floor(i * shards / n)."""
    return (np.arange(n_rows) * shards // max(n_rows, 1)).astype(np.int32)


def build_clips(cfg: Mapping, out: str | Path, summary_out: str | Path) -> dict[str, Any]:
    """Stage ``cremad_clips``: the clips table and its summary.

    Args:
        cfg: the stage's config sections (``cremad``, ``results``); defaults filled here.
        out: ``clips.parquet`` (``tables.CREMAD_CLIPS``), one row per clip, sorted by ``clip_id``.
        summary_out: JSON with the counts per modality status, split and problem.

    Returns:
        The summary dict (``clips``, ``by_status``, ``audio``, ``video``, ``by_split``, ``actors``,
        ``problems``, ``only_in_csv``, ``only_on_disk``).
    """
    cfg = validated(cfg)
    cc = CremadConfig.from_config(cfg)
    problems: list[str] = []
    for folder in (cc.audio_dir, cc.video_dir):
        if not folder.is_dir():
            problems.append(f"{folder} not found: every clip's file there is missing")
    audio = _files(cc.audio_dir, ("wav",))
    video = _files(cc.video_dir, cc.video_extensions)
    listed = {r.get("Filename", "").strip() for r in _read_csv(cc.sentences, "sentences", problems)} - {""}
    votes = read_votes(cc.votes, problems)
    demo = {}
    for r in _read_csv(cc.demographics, "demographics", problems):
        try:
            demo[int(r["ActorID"])] = r
        except (KeyError, ValueError):
            problems.append(f"demographics: row {r} has no integer ActorID")
    names = sorted(set(audio) | set(video) | listed | (set(votes) - {""}))
    rows = []
    for name in names:
        fields, why = parse_name(name)
        row: dict[str, Any] = {"clip_id": name, "in_sentence_list": name in listed, **(fields or {})}
        d = demo.get(row.get("actor_id"), {})
        age = d.get("Age", "")
        row.update(age=int(age) if age.strip().isdigit() else None, sex=d.get("Sex") or None,
                   race=d.get("Race") or None, ethnicity=d.get("Ethnicity") or None)
        row.update(probe_audio(audio.get(name), cc.min_duration_s, cc.silence_dbfs))
        row.update(probe_video(video.get(name)))
        row.update(votes.get(name, {}))
        row["status"], row["error"] = (S.OK, None) if fields else (S.CLIP_BAD_NAME, why)
        rows.append(row)
    table = pa.Table.from_pylist(rows, schema=CREMAD_CLIPS) if rows else CREMAD_CLIPS.empty_table()
    actors = sorted({r["actor_id"] for r in rows if r.get("actor_id") is not None})
    split_of = {}
    if actors:
        groups = assign_groups([str(a) for a in actors], cc.split_val, cc.split_test, cc.split_seed)
        split_of = {int(g): s for g, s in groups.iter_rows()}
    table = table.set_column(table.schema.get_field_index("split"), "split",
                             pa.array([split_of.get(r.get("actor_id")) for r in rows], pa.string()))
    table = table.set_column(table.schema.get_field_index("shard"), "shard", pa.array(shard_of(len(rows), cc.shards)))
    write_table(out, table, CREMAD_CLIPS, provenance("cremad_clips", rule_params("cremad_clips", cfg), root=str(cc.root)))

    def counts(col: str) -> dict[str, int]:
        return dict(sorted(pl.Series(table.column(col).to_pylist()).fill_null("null").value_counts().iter_rows()))

    by_split = counts("split")
    summary = {
        "clips": len(rows), "by_status": counts("status"), "audio": counts("audio_status"), "video": counts("video_status"),
        "by_split": by_split,
        "actors": {s: sorted({r["actor_id"] for r in rows if split_of.get(r.get("actor_id")) == s}) for s in ("train", "val", "test")},
        "with_votes": {q: int(sum(r.get(f"{q}_vote") is not None for r in rows)) for q in QUERIES.values()},
        "only_in_csv": [n for n in names if n not in audio and n not in video][:50],
        "only_on_disk": [n for n in names if n not in listed and (n in audio or n in video)][:50] if listed else [],
        "problems": problems,
    }
    write_json(summary_out, summary)
    log.info("cremad clips: %d rows, audio %s, video %s", len(rows), summary["audio"], summary["video"])
    return summary


def read_shard(clips: str | Path, shard: int, columns: list[str]) -> pl.DataFrame:
    """The clips of one shard (the ``shard`` column the clips stage wrote), in ``clip_id`` order."""
    return (pl.read_parquet(clips, columns=list(dict.fromkeys(["clip_id", "shard", *columns])))
            .filter(pl.col("shard") == shard).select(columns))
