"""Device, precision, threads and autocast: the one place every model stage sets torch up.

Every job that loads a model (the Instagram feature stages, Dreaddit synthesis and CLIP, the
training stage's sentence encoder, the heads and the CLIP fine-tuning) calls :func:`place`
with the ``device`` (``auto | cpu | cuda | cuda:N``) and ``precision`` (``auto | fp32 | fp16 |
bf16``) its config names and the cores its job was given. The stages differ only in their
precision *policy*, which they pass as arguments, never as a second function:

=================  ============  ===========================  ================  ===============
stage              ``gpu_auto``  ``cpu_half``                 ``cuda_fast``     where
=================  ============  ===========================  ================  ===============
Instagram features ``best``      ``native`` (bf16 units)      True (TF32)       features/*
Dreaddit CLIP      ``best``      ``never``                    False             dreaddit/clip
Dreaddit synthesis ``fp16``      ``never``                    False             dreaddit/synthesize
sentence encoder   (fp32)        ``never``                    False             train/text_features
heads              (fp32)        ``never``                    False             train/trainer
CLIP fine-tuning   ``bf16``      ``as_asked``                 False             train/finetune
=================  ============  ===========================  ================  ===============

A run's forward passes then go through :func:`prepare_model` (weights on the device, in the
stage's dtype, eval mode), :func:`to_device` (pinned, non-blocking copies) and :func:`autocast`.

Failing fast: a device that names CUDA when no GPU is visible raises :class:`DeviceMissing`
here, before any model loads, and so does ``auto`` in a job the scheduler gave a GPU that torch
cannot use (:func:`require_visible_gpu`: :class:`GPUUnavailable`, naming torch's CUDA build, the
driver and ``CUDA_VISIBLE_DEVICES``), so every stage stops at once instead of crawling on a CPU.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "bf16")  # the config's names; ``auto`` resolves to one of them
GPU_AUTO = ("best", "fp16", "bf16")
CPU_HALF = ("never", "native", "as_asked")


class DeviceMissing(RuntimeError):
    """The config names a device this machine does not have (``cuda`` without a visible GPU)."""


class GPUUnavailable(DeviceMissing):
    """A GPU was promised to this job (by SLURM, or by the config) but torch cannot use it."""


# Variables SLURM sets in a job that was allocated GPUs (--gpus, --gres=gpu:N, --gpus-per-task):
# the indices of its GPUs, and their counts (where "0" means none).
SLURM_GPU_INDEX_VARS = ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS")
SLURM_GPU_COUNT_VARS = ("SLURM_GPUS", "SLURM_GPUS_ON_NODE", "SLURM_GPUS_PER_TASK", "SLURM_GPUS_PER_NODE")


def gpu_promised(requested: str, env: Mapping[str, str] | None = None) -> str | None:
    """Why this job should have a GPU, or None: the config asks for ``cuda``, or (``auto``) SLURM
    allocated one (its ``SLURM_*GPUS*`` variables, or ``CUDA_VISIBLE_DEVICES`` naming a device in a
    SLURM job)."""
    env = os.environ if env is None else env
    if str(requested).startswith("cuda"):
        return f"the config asks for device {requested}"
    if requested != "auto":
        return None
    given = [f"{k}={env[k]}" for k in SLURM_GPU_INDEX_VARS if env.get(k)]
    given += [f"{k}={env[k]}" for k in SLURM_GPU_COUNT_VARS if env.get(k) not in (None, "", "0")]
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    if env.get("SLURM_JOB_ID") and cvd not in (None, "", "-1", "NoDevFiles"):  # SLURM set it for this job
        given.append(f"CUDA_VISIBLE_DEVICES={cvd}")
    return f"the job was given a GPU ({', '.join(given)})" if given else None


def nvidia_driver() -> str | None:
    """The NVIDIA driver version and the CUDA version it supports, from ``nvidia-smi`` (None without it)."""
    import re
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"nvidia-smi failed ({exc})"
    text = out.stdout + out.stderr
    drv = re.search(r"Driver Version:\s*([\d.]+)", text)
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", text)
    if drv:
        return f"driver {drv.group(1)}" + (f" (supports CUDA up to {cuda.group(1)})" if cuda else "")
    return (text.strip().splitlines() or ["no output"])[0][:200]


def gpu_diagnosis(env: Mapping[str, str] | None = None) -> str:
    """Why torch may see no GPU, in one line: torch's CUDA build, the driver (``nvidia-smi``) and
    ``CUDA_VISIBLE_DEVICES``."""
    import torch

    env = os.environ if env is None else env
    built = torch.version.cuda
    torch_side = f"torch {torch.__version__} built for CUDA {built}" if built else f"torch {torch.__version__} is a CPU-only build"
    driver = nvidia_driver() or "nvidia-smi not found (no NVIDIA driver on this node?)"
    return f"{torch_side}; {driver}; CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES', '<unset>')}"


def require_visible_gpu(requested: str, key: str, env: Mapping[str, str] | None = None) -> None:
    """Stop a job at once when it was promised a GPU that torch cannot see, instead of letting it
    crawl on the CPU until its time limit (and be retried to crawl again). :func:`place` calls it
    for every stage.

    Args:
        requested: the stage's ``device`` setting (``auto | cpu | cuda | cuda:N``).
        key: its config key (``features.device``), named in the error.
        env: the job's environment (default ``os.environ``).

    Raises:
        GPUUnavailable: one message with the reason (:func:`gpu_diagnosis`) and what to change.
    """
    import torch

    env = os.environ if env is None else env
    why = gpu_promised(requested, env)
    if why is None or torch.cuda.is_available():
        return
    raise GPUUnavailable(
        f"{key}={requested}: {why}, but torch sees no GPU: {gpu_diagnosis(env)}. The NVIDIA driver must support "
        f"CUDA {torch.version.cuda or '12+'} (see README, Troubleshooting); to run on the CPU on purpose set {key}: cpu.")


@dataclass(frozen=True)
class Placement:
    """Where and how a stage's model runs, as :func:`place` decided it.

    Attributes:
        device: the ``torch.device`` (``cpu``, ``cuda`` or ``cuda:N``).
        dtype: the ``torch.dtype`` the model runs in (``torch.float32``, ``float16`` or ``bfloat16``).
        threads: torch's intra-op threads (the job's cores), or None when the stage left them alone.
    """

    device: Any
    dtype: Any
    threads: int | None = None

    @property
    def precision(self) -> str:
        """The config's name of :attr:`dtype`: ``fp32``, ``fp16`` or ``bf16``."""
        import torch

        return {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[self.dtype]

    @property
    def dtype_name(self) -> str:
        """``float32``, ``float16`` or ``bfloat16`` (what provenance records)."""
        return dtype_name(self.dtype)

    @property
    def cuda(self) -> bool:
        """Whether the stage runs on a GPU (pinned memory, non-blocking copies pay there)."""
        return self.device.type == "cuda"


def place(device: str = "auto", precision: str = "auto", *, threads: int | None = None,
            gpu_auto: str = "best", cpu_half: str = "never", cuda_fast: bool = False,
            what: str = "device") -> Placement:
    """Resolve a stage's device and precision, size its thread pools; the single entry point.

    Args:
        device: ``auto`` (the first GPU when one is visible, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``auto``, ``fp32``, ``fp16`` or ``bf16``.
        threads: the job's cores: torch's intra-op pool and the Rust tokenizers' pool get this many
            (:func:`set_threads`); None leaves them as they are.
        gpu_auto: what ``auto`` means on a GPU: ``best`` (bf16 where the GPU has it, else fp16),
            ``fp16`` (Stable Diffusion's published weights) or ``bf16``.
        cpu_half: what half precision means on a CPU: ``never`` (always fp32; an explicit fp16/bf16
            falls back with a warning), ``native`` (bf16 on CPUs with native bf16 units, which
            ``auto`` then picks; anything else falls back to fp32 with a warning) or ``as_asked``
            (``auto`` is fp32, an explicit precision is honoured: CPU autocast for training).
        cuda_fast: on CUDA, allow TF32 matmuls and cuDNN autotuning (inference only: both trade
            bit-reproducibility for speed).
        what: the config key that named ``device``, for error messages.

    Returns:
        A :class:`Placement` (``device``, ``dtype``, ``threads``, ``precision``).

    Raises:
        ValueError: an unknown precision or policy name.
        DeviceMissing: ``device`` names CUDA but no GPU is visible.
    """
    import torch

    if precision != "auto" and precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected auto or one of {PRECISIONS}")
    if gpu_auto not in GPU_AUTO or cpu_half not in CPU_HALF:
        raise ValueError(f"gpu_auto {gpu_auto!r} / cpu_half {cpu_half!r}: expected one of {GPU_AUTO} / {CPU_HALF}")
    if threads:
        set_threads(threads)
    if device == "auto":
        require_visible_gpu(device, what)  # SLURM gave this job a GPU that torch cannot use: stop now
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceMissing(f"{what} is {device} but no GPU is visible (set it to auto or cpu, or run on a GPU node): "
                            f"{gpu_diagnosis()}")
    if dev.type == "cuda":
        if precision == "auto":
            precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if gpu_auto == "best" else gpu_auto
        if cuda_fast:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
    else:
        precision = _cpu_precision(precision, cpu_half)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    place = Placement(dev, dtype, int(threads) if threads else None)
    log.info("device %s, dtype %s, %s threads", dev, place.dtype_name, threads or "default")
    return place


def _cpu_precision(precision: str, cpu_half: str) -> str:
    """The precision a CPU runs for ``precision`` under the policy ``cpu_half`` (see :func:`place`)."""
    if cpu_half == "as_asked":
        return "fp32" if precision == "auto" else precision
    native = cpu_half == "native" and cpu_has_bf16()
    if precision == "auto":
        return "bf16" if native else "fp32"
    if precision == "fp32" or (precision == "bf16" and native):
        return precision
    log.warning("%s requested on a CPU without native support; using fp32", precision)
    return "fp32"


def set_threads(threads: int) -> int:
    """Size torch's intra-op pool and the Rust tokenizers' pool to the job's cores.

    Args:
        threads: the job's cores (values below 1 count as 1).

    Returns:
        The thread count set. The tokenizers' settings (``TOKENIZERS_PARALLELISM``,
        ``RAYON_NUM_THREADS``) are environment defaults: a value the user exported wins.
    """
    import torch

    threads = max(int(threads), 1)
    torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true" if threads > 1 else "false")
    # the Rust tokenizer's pool would otherwise size itself to the whole node, not the job's cores
    os.environ.setdefault("RAYON_NUM_THREADS", str(threads))
    os.environ.setdefault("RAYON_RS_NUM_CPUS", str(threads))
    return threads


def autocast(device, dtype):
    """Mixed precision where it pays: ``torch.autocast`` on the device in half precision, no-op in fp32.

    Args:
        device: the ``torch.device`` the forward pass runs on.
        dtype: the stage's dtype; ``torch.float32`` gives a null context.

    Returns:
        A context manager.
    """
    import torch

    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def prepare_model(net, device, dtype):
    """A model ready for inference: on ``device``, cast to ``dtype`` when half (autocast alone would
    recast every weight on every call), in eval mode.

    Args:
        net: a ``torch.nn.Module``.
        device: target ``torch.device``.
        dtype: the stage's dtype.

    Returns:
        The same module, moved and switched to eval mode.
    """
    import torch

    net = net.to(device)
    if dtype != torch.float32:
        net = net.to(dtype)
    return net.eval()


def to_device(t, device, pin: bool = True):
    """Host -> device copy that overlaps with compute: pinned source, non-blocking copy.

    Args:
        t: a CPU tensor.
        device: the target ``torch.device``; on the CPU ``t`` comes back unchanged.
        pin: pin ``t`` first when it is not pinned yet.

    Returns:
        The tensor on ``device``.
    """
    if device.type != "cuda":
        return t
    if pin and not t.is_pinned():
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def dtype_name(dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"`` (the name provenance records)."""
    return str(dtype).replace("torch.", "")


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX): there bf16 is 2-5x fp32."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, p, lambda: False)() for p in probes)
