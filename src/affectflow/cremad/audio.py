"""Audio features of one shard of clips, read where they lie.

* ``egemaps_shard``: the eGeMAPS v02 functionals (88 parameters per clip: pitch, loudness,
  jitter, shimmer, formants, spectral balance, rates of voiced segments; Eyben et al., IEEE Trans.
  Affective Computing 2016), computed by openSMILE through the ``opensmile`` package. No weights.
* ``speech_shard``: an optional learned speech encoder (``models.speech``, a wav2vec2-class
  transformers model): its last hidden state averaged over the valid frames.

A clip whose audio the clips stage did not find usable keeps that status and a null vector; a
fault found here (the decoder refuses the file after all) gets ``unreadable`` with the error.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from .. import status as S
from ..io.arrays import embedding_array
from ..io.parquet import provenance, write_table
from ..layout import params as rule_params
from ..tables import cremad_egemaps, cremad_speech
from .clips import read_shard
from .config import CremadConfig, validated

log = logging.getLogger(__name__)
_SMILE = None


def _smile():
    global _SMILE
    if _SMILE is None:
        import opensmile

        _SMILE = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                 feature_level=opensmile.FeatureLevel.Functionals)
    return _SMILE


def read_mono(path: str) -> tuple[np.ndarray, int]:
    """``(samples float32 [n], rate Hz)``; several channels are averaged."""
    import soundfile as sf

    x, sr = sf.read(path, dtype="float32", always_2d=True)
    return x.mean(axis=1), int(sr)


def egemaps_one(path: str) -> tuple[np.ndarray | None, str | None]:
    """eGeMAPS v02 functionals of one file: ``(float32 [88], None)`` or ``(None, error)``."""
    try:
        x, sr = read_mono(path)
        v = _smile().process_signal(x, sr).to_numpy(np.float32).reshape(-1)
    except Exception as exc:  # a file the probe accepted but the decoder or openSMILE refuses
        return None, f"{path}: {exc}"
    if not np.isfinite(v).all():
        return None, f"{path}: {int((~np.isfinite(v)).sum())} non-finite eGeMAPS values"
    return v, None


def egemaps_names() -> list[str]:
    return list(_smile().feature_names)


def egemaps_shard(cfg: Mapping, clips: str | Path, shard: int, out: str | Path, workers: int | None = None) -> dict[str, Any]:
    """Stage ``cremad_egemaps``: one row per clip of the shard (``tables.cremad_egemaps``).

    Args:
        cfg: the stage's config sections; ``cremad.audio.workers`` processes unless ``workers`` (the
            rule passes the job's cores).
        clips: the clips table; shard: which of its shards; out: the Parquet file to write.

    Returns:
        ``{clips, by_status, clips_per_s, seconds}``.
    """
    import opensmile

    cfg = validated(cfg)
    cc = CremadConfig.from_config(cfg)
    t0 = time.perf_counter()
    rows = read_shard(clips, shard, ["clip_id", "audio_path", "audio_status", "audio_error"])
    names = egemaps_names()
    ok = np.flatnonzero((rows["audio_status"] == S.OK).to_numpy())
    paths = rows["audio_path"].gather(ok).to_list()
    workers = workers or cc.audio.workers
    if workers > 1 and len(paths) > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(egemaps_one, paths, chunksize=max(1, len(paths) // (4 * workers))))
    else:
        results = [egemaps_one(p) for p in paths]
    x = np.zeros((rows.height, len(names)), np.float32)
    valid = np.zeros(rows.height, bool)
    status = rows["audio_status"].to_list()
    error = rows["audio_error"].to_list()
    for i, (v, err) in zip(ok, results):
        if v is None:
            status[i], error[i] = S.UNREADABLE, err
            log.warning("%s", err)
        else:
            x[i], valid[i] = v, True
    compute_s = time.perf_counter() - t0
    table = pa.table({"clip_id": rows["clip_id"].to_arrow(), "egemaps": embedding_array(x, valid, len(names)),
                      "status": pa.array(status, pa.string()), "error": pa.array(error, pa.string())})
    write_table(out, table, cremad_egemaps(len(names)),
                provenance("cremad_egemaps", rule_params("cremad_egemaps", cfg), shard=shard, clips=str(clips), feature_set="eGeMAPSv02",
                           feature_level="Functionals", opensmile=opensmile.__version__, feature_names=names))
    return _summary("cremad_egemaps", shard, status, len(ok), compute_s, t0, workers=workers)


def _summary(stage: str, shard: int, status: list[str], computed: int, compute_s: float, t0: float,
             **extra: Any) -> dict[str, Any]:
    """A shard's counts by status and its rate (clips computed per second of compute), logged."""
    by_status: dict[str, int] = {}
    for s in status:
        by_status[s] = by_status.get(s, 0) + 1
    summary = {"clips": len(status), "by_status": by_status, **extra,
               "clips_per_s": round(computed / compute_s, 2) if compute_s > 0 else None,
               "seconds": round(time.perf_counter() - t0, 3)}
    log.info("%s shard %d: %s", stage, shard, summary)
    return summary


def load_speech(cfg: Mapping, device, dtype):
    """``(model, feature_extractor, provenance)`` of ``models.speech`` (a transformers audio encoder), offline."""
    from transformers import AutoFeatureExtractor, AutoModel

    from ..models import HFModel, provenance_of, resolve

    model = HFModel.from_config(cfg, "speech")
    path = resolve(cfg, model)
    net = AutoModel.from_pretrained(str(path)).to(device=device, dtype=dtype).eval()
    return net, AutoFeatureExtractor.from_pretrained(str(path)), provenance_of(cfg, model, path)


def speech_shard(cfg: Mapping, clips: str | Path, shard: int, out: str | Path, threads: int | None = None) -> dict[str, Any]:
    """Stage ``cremad_speech``: ``models.speech``'s last hidden state, mean over valid frames, per clip.

    Clips are batched by length (``cremad.audio.speech_batch_size``), resampled to the encoder's
    rate where they differ (linear interpolation), cut at ``speech_max_seconds`` (``truncated``).

    Returns:
        ``{clips, by_status, dim, clips_per_s, seconds}``.
    """
    import torch

    from ..inference.device import place

    cfg = validated(cfg)
    cc = CremadConfig.from_config(cfg)
    if "speech" not in cfg["models"]:
        raise ValueError("cremad.audio.speech is true but models.speech names no model")
    t0 = time.perf_counter()
    where = place(cc.audio.device, cc.audio.precision, threads=threads, what="cremad.audio.device")
    device, dtype = where.device, where.dtype
    net, fe, prov = load_speech(cfg, device, dtype)
    rate = int(getattr(fe, "sampling_rate", 16000))
    dim = int(net.config.hidden_size)
    rows = read_shard(clips, shard, ["clip_id", "audio_path", "audio_status", "audio_error"])
    status, error = rows["audio_status"].to_list(), rows["audio_error"].to_list()
    x = np.zeros((rows.height, dim), np.float32)
    valid = np.zeros(rows.height, bool)
    used = [None] * rows.height
    truncated = [None] * rows.height
    waves = {}
    for i in np.flatnonzero((rows["audio_status"] == S.OK).to_numpy()):
        path = rows["audio_path"][int(i)]
        try:
            w, sr = read_mono(path)
        except Exception as exc:
            status[i], error[i] = S.UNREADABLE, f"{path}: {exc}"
            continue
        if sr != rate:
            n = int(round(len(w) * rate / sr))
            w = np.interp(np.linspace(0, len(w) - 1, n), np.arange(len(w)), w).astype(np.float32)
        cap = int(cc.audio.speech_max_seconds * rate)
        truncated[i] = len(w) > cap
        waves[int(i)] = w[:cap]
        used[i] = len(waves[int(i)]) / rate
    order = sorted(waves, key=lambda i: len(waves[i]))
    bs = cc.audio.speech_batch_size
    with torch.inference_mode():
        for a in range(0, len(order), bs):
            idx = order[a:a + bs]
            feats = fe([waves[i] for i in idx], sampling_rate=rate, return_tensors="pt", padding=True)
            h = net(feats["input_values"].to(device, dtype)).last_hidden_state.float()
            lengths = net._get_feat_extract_output_lengths(torch.tensor([len(waves[i]) for i in idx]))
            mask = (torch.arange(h.shape[1])[None] < lengths[:, None]).to(h.device, h.dtype)
            pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
            x[idx] = pooled.cpu().numpy()
            valid[idx] = True
    compute_s = time.perf_counter() - t0
    table = pa.table({"clip_id": rows["clip_id"].to_arrow(), "embedding": embedding_array(x, valid, dim),
                      "seconds_used": pa.array(used, pa.float32()), "truncated": pa.array(truncated, pa.bool_()),
                      "status": pa.array(status, pa.string()), "error": pa.array(error, pa.string())})
    write_table(out, table, cremad_speech(dim), provenance("cremad_speech", rule_params("cremad_speech", cfg), shard=shard, clips=str(clips),
                                                           model={**prov, "device": str(device), "dtype": str(dtype)}))
    return _summary("cremad_speech", shard, status, len(order), compute_s, t0, dim=dim)
