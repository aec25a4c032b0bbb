"""The CREMA-D benchmark's clips have the published form, and both frame paths give the same frames."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_cremad  # noqa: E402


def test_clips_have_the_published_form_and_both_paths_agree(tmp_path):
    import av
    import soundfile as sf
    from open_clip.transform import image_transform

    wavs, videos = bench_cremad.write_clips(tmp_path, 2)
    info = sf.info(wavs[0])
    assert (info.samplerate, info.channels) == (16000, 1) and info.duration == pytest.approx(2.5)
    with av.open(videos[0]) as c:
        v = c.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height, int(v.average_rate)) == (480, 360, 30)
    assert bench_cremad.egemaps_ours(wavs) == bench_cremad.egemaps_files(wavs) == 2
    pre = image_transform(224, is_train=False)
    ours = bench_cremad.frames_ours(videos, 5.0, pre)
    assert ours == 2 * 13  # 2.5 s at 5 frames/s: t = 0, 0.2, ..., 2.4
    if shutil.which("ffmpeg"):
        assert abs(bench_cremad.frames_ffmpeg(videos, 5.0, pre, tmp_path) - ours) <= 2  # ffmpeg's fps filter rounds the ends
