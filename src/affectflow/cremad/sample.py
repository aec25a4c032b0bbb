"""A small CREMA-D-layout set, written locally: emotion planted in the voice and in the picture.

Layout as published (``AudioWAV/*.wav`` 16 kHz mono, ``VideoFlash/*.flv``, ``VideoDemographics.csv``,
``SentenceFilenames.csv``, ``processedResults/tabulatedVotes.csv``), names
``ActorID_Sentence_Emotion_Level``. The planted signal:

* audio: a harmonic tone in syllable-like bursts whose pitch (F0), loudness, syllable rate and
  jitter depend on the emotion (an actor shifts the pitch by a few semitones), plus noise;
* video: a grey frame (the actor's shade) with a centred "face" patch whose colour depends on the
  emotion and whose brightness varies in time;
* text: the sentence, the same 12 for every emotion, so a text-only model can only guess.

Planted faults (``planted`` in the returned dict names them): an audio file of garbage bytes
(``unreadable``), a zero-byte WAV (``empty``), an all-zero WAV (``silent``), a 50 ms WAV
(``too_short``), a clip without its WAV and one without its video (``missing``), a corrupt and a
zero-byte video, a clip named in the CSVs with no file at all, a file with an unknown emotion
code (``bad_name``), and one video as MP4 instead of FLV. Deterministic by seed.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np

EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
SENTENCES = {
    "IEO": "It's eleven o'clock", "TIE": "That is exactly what happened", "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about", "TAI": "The airplane is almost full", "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock", "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket", "ITS": "I think I've seen this before", "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
VOTE_LETTERS = ("A", "D", "F", "H", "N", "S")  # tabulatedVotes' columns, in EMOTIONS order
VOTE_COLUMNS = ["", "A", "D", "F", "H", "N", "S", "fileName", "numResponses", "agreement", "emoVote", "meanEmoResp",
                "meanAngerResp", "meanDisgustResp", "meanFearResp", "meanHappyResp", "meanNeutralResp", "meanSadResp",
                "medianEmoResp", "meanEmoRespNorm", "meanAngerRespNorm", "meanDisgustRespNorm", "meanFearRespNorm",
                "meanHappyRespNorm", "meanNeutralRespNorm", "meanSadRespNorm", "medianEmoRespNorm"]
# Planted signal per emotion: F0 factor, amplitude, syllables/s, jitter; RGB of the face patch.
VOICE = {"ANG": (1.45, 0.70, 5.0, 0.010), "DIS": (0.90, 0.30, 3.0, 0.030), "FEA": (1.75, 0.40, 6.0, 0.050),
         "HAP": (1.25, 0.55, 4.5, 0.005), "NEU": (1.00, 0.25, 3.5, 0.002), "SAD": (0.80, 0.12, 2.0, 0.020)}
FACE = {"ANG": (220, 30, 30), "DIS": (60, 170, 40), "FEA": (150, 60, 200), "HAP": (240, 220, 40),
        "NEU": (128, 128, 128), "SAD": (40, 70, 220)}
SR = 16000
FPS = 10
W, H = 80, 64  # wider than tall, as the real 480x360 videos: the centre crop matters
# Human recognition of the intended emotion in the dataset paper: audio-only, video-only, audio-visual.
CROWD_HIT = {1: 0.41, 2: 0.58, 3: 0.64}


def _wav(path: Path, x: np.ndarray) -> None:
    import soundfile as sf

    sf.write(str(path), x, SR, subtype="PCM_16")


def voice(rng: np.random.Generator, emotion: str, base_f0: float, seconds: float) -> np.ndarray:
    """float32 mono samples at 16 kHz: the emotion's pitch, loudness, syllable rate and jitter."""
    f0_factor, amp, rate, jitter = VOICE[emotion]
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = base_f0 * f0_factor * (1 + jitter * rng.standard_normal(n).cumsum() / np.sqrt(np.arange(1, n + 1)))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    tone = sum((0.6 ** k) * np.sin((k + 1) * phase) for k in range(4))
    envelope = np.clip(np.sin(np.pi * rate * t + rng.uniform(0, np.pi)), 0, None) ** 0.7
    x = amp * 0.5 * tone * envelope + 0.003 * rng.standard_normal(n)
    return np.clip(x, -1, 1).astype(np.float32)


def write_video(path: Path, rng: np.random.Generator, emotion: str, shade: int, seconds: float, codec: str = "flv1",
                width: int = W, height: int = H, fps: int = FPS) -> None:
    """A clip with the emotion's colour in a centred patch (half the height, 0.4 of the width) that
    moves a little and brightens and dims over time, on the actor's grey, with noise."""
    import av

    frames = max(1, int(seconds * fps))
    colour = np.array(FACE[emotion], np.float32)
    top, left, ph, pw = height // 4, int(width * 0.3), height // 2, int(width * 0.4)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            img = np.full((height, width, 3), shade, np.float32)
            gain = 0.8 + 0.2 * np.sin(2 * np.pi * i / frames + rng.uniform(0, 1))
            dx, dy = rng.integers(-3, 4, size=2)
            img[top + dy: top + ph + dy, left + dx: left + pw + dx] = colour * gain
            img += rng.normal(0, 6, img.shape)
            frame = av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _votes(rng: random.Random, emotion: str, query: int) -> dict:
    n = rng.randint(6, 12)
    intended = VOTE_LETTERS[EMOTIONS.index(emotion)]
    # the crowd perceives the intended emotion at the paper's rate for this presentation, another one
    # otherwise; each rater names the perceived emotion more often than not
    perceived = intended if rng.random() < CROWD_HIT[query] else rng.choice([k for k in VOTE_LETTERS if k != intended])
    letters = [perceived if rng.random() < 0.6 else rng.choice(VOTE_LETTERS) for _ in range(n)]
    counts = {k: letters.count(k) for k in VOTE_LETTERS}
    top = max(counts.values())
    winners = [k for k in VOTE_LETTERS if counts[k] == top]
    row = {**counts, "numResponses": n, "agreement": round(top / n, 6), "emoVote": ":".join(winners),
           "meanEmoResp": round(rng.uniform(40, 80), 3)}
    for name in ("Anger", "Disgust", "Fear", "Happy", "Neutral", "Sad"):
        k = name[0]
        row[f"mean{name}Resp"] = round(rng.uniform(20, 90), 3) if counts[k] else -1
        row[f"mean{name}RespNorm"] = round(rng.uniform(10, 90), 3) if counts[k] else -1
    row["medianEmoResp"] = row["medianEmoRespNorm"] = round(rng.uniform(40, 80), 1)
    row["meanEmoRespNorm"] = round(rng.uniform(40, 80), 3)
    return row


def make_cremad(out: str | Path, actors: int = 10, sentences_per_actor: int = 2, seed: int = 0) -> dict:
    """Write the CREMA-D-layout sample to ``out``; return ``{clips, actors, planted}``.

    Args:
        out: the dataset folder to write (``AudioWAV/``, ``VideoFlash/``, the CSVs).
        actors: actors 1001, 1002, ...; each says ``sentences_per_actor`` sentences in all 6 emotions.
        sentences_per_actor: sentences per actor (rotating over the 12, so all appear).
        seed: everything is a function of it.

    Returns:
        ``{"clips": names written to the CSVs, "actors": n, "planted": {fault: [clip names]}}``.
    """
    out = Path(out)
    (out / "AudioWAV").mkdir(parents=True, exist_ok=True)
    (out / "VideoFlash").mkdir(parents=True, exist_ok=True)
    (out / "processedResults").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    prng = random.Random(seed)
    codes = list(SENTENCES)
    names, demo = [], []
    for a in range(actors):
        actor = 1001 + a
        sex = "Female" if a % 2 else "Male"
        demo.append((actor, 20 + (a * 7) % 50, sex, ["Caucasian", "African American", "Asian"][a % 3],
                     "Hispanic" if a % 4 == 3 else "Not Hispanic"))
        base_f0 = (165.0 if sex == "Female" else 140.0) * float(np.exp(rng.uniform(-0.05, 0.05)))
        shade = int(rng.integers(70, 190))
        for j in range(sentences_per_actor):
            sentence = codes[(a * sentences_per_actor + j) % len(codes)]
            for emotion in EMOTIONS:
                # as published, only IEO is recorded at levels; names do not depend on the seed
                level = ("LO", "MD", "HI")[(a + EMOTIONS.index(emotion)) % 3] if sentence == "IEO" and emotion != "NEU" else "XX"
                name = f"{actor}_{sentence}_{emotion}_{level}"
                names.append(name)
                seconds = float(rng.uniform(0.6, 0.9))
                _wav(out / "AudioWAV" / f"{name}.wav", voice(rng, emotion, base_f0, seconds))
                write_video(out / "VideoFlash" / f"{name}.flv", rng, emotion, shade, seconds)
    planted: dict[str, list[str]] = {}

    def plant(kind: str, name: str) -> str:
        planted.setdefault(kind, []).append(name)
        return name

    if len(names) >= 40:
        wav = lambda i: out / "AudioWAV" / f"{names[i]}.wav"  # noqa: E731
        flv = lambda i: out / "VideoFlash" / f"{names[i]}.flv"  # noqa: E731
        wav(3).write_bytes(bytes(prng.getrandbits(8) for _ in range(3000)))
        plant("audio_unreadable", names[3])
        wav(8).write_bytes(b"")
        plant("audio_empty", names[8])
        _wav(wav(14), np.zeros(SR, np.float32))
        plant("audio_silent", names[14])
        _wav(wav(21), voice(rng, names[21].split("_")[2], 150.0, 0.05))
        plant("audio_too_short", names[21])
        wav(27).unlink()
        plant("audio_missing", names[27])
        flv(33).unlink()
        plant("video_missing", names[33])
        flv(38).write_bytes(b"FLV\x01\x05" + bytes(prng.getrandbits(8) for _ in range(2000)))
        plant("video_unreadable", names[38])
        flv(5).write_bytes(b"")
        plant("video_empty", names[5])
        wav(16).unlink()
        flv(16).unlink()
        plant("both_missing", names[16])
        flv(10).unlink()  # the same clip as MP4: both containers are read
        write_video(out / "VideoFlash" / f"{names[10]}.mp4", rng, names[10].split("_")[2], 128, 1.0, codec="mpeg4")
        plant("video_mp4", names[10])
        bad = f"{1001}_DFA_XYZ_XX"
        _wav(out / "AudioWAV" / f"{bad}.wav", voice(rng, "NEU", 150.0, 1.0))
        plant("bad_name", bad)
    with open(out / "VideoDemographics.csv", "w", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_NONNUMERIC)
        w.writerow(["ActorID", "Age", "Sex", "Race", "Ethnicity"])
        w.writerows(demo)
    with open(out / "SentenceFilenames.csv", "w", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_NONNUMERIC)
        w.writerow(["Stimulus_Number", "Filename"])
        w.writerows((i + 1, n) for i, n in enumerate(names))
    with open(out / "processedResults" / "tabulatedVotes.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=VOTE_COLUMNS, quoting=csv.QUOTE_NONNUMERIC)
        w.writeheader()
        for query in (1, 2, 3):  # voice, face, audio-visual: row key 100000 * query + clip number
            for i, n in enumerate(names):
                w.writerow({"": str(100000 * query + i + 1), "fileName": n, **_votes(prng, n.split("_")[2], query)})
    return {"clips": len(names), "actors": actors, "planted": planted}
