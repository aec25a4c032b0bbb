"""Device, dtype, threads and autocast: one place for every model stage (features, Dreaddit, train).

Every job that loads a model resolves ``device`` (``auto | cpu | cuda | cuda:N``) and ``precision``
(``auto | fp32 | fp16 | bf16``) here, sizes its thread pools here and wraps its forward passes in
:func:`autocast`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Mapping

log = logging.getLogger(__name__)


class GPUUnavailable(RuntimeError):
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


def require_visible_gpu(requested: str, key: str, env: Mapping[str, str] | None = None) -> None:
    """Stop a job at once when it was promised a GPU that torch cannot see, instead of letting it
    crawl on the CPU until its time limit (and be retried to crawl again).

    Args:
        requested: the stage's ``device`` setting (``auto | cpu | cuda | cuda:N``).
        key: its config key (``features.device``), named in the error.
        env: the job's environment (default ``os.environ``).

    Raises:
        GPUUnavailable: one message with the reason: torch's CUDA build, the driver's version
            (``nvidia-smi``), ``CUDA_VISIBLE_DEVICES``, and what to change.
    """
    import torch

    env = os.environ if env is None else env
    why = gpu_promised(requested, env)
    if why is None or torch.cuda.is_available():
        return
    built = torch.version.cuda
    torch_side = f"torch {torch.__version__} built for CUDA {built}" if built else f"torch {torch.__version__} is a CPU-only build"
    driver = nvidia_driver() or "nvidia-smi not found (no NVIDIA driver on this node?)"
    raise GPUUnavailable(
        f"{key}={requested}: {why}, but torch sees no GPU: {torch_side}; {driver}; "
        f"CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES', '<unset>')}. The NVIDIA driver must support "
        f"CUDA {built or '12+'} (see README, Troubleshooting); to run on the CPU on purpose set {key}: cpu.")


def setup_torch(fcfg, threads: int):
    """``(device, dtype)`` for a stage job, with the CPU thread pool sized to the job's cores.

    Args:
        fcfg: any object with ``device`` and ``precision`` attributes (a stage's typed config).
        threads: the job's cores; torch's intra-op pool and the Rust tokenizer's pool get this many.

    Returns:
        ``(torch.device, torch.dtype)`` as :func:`device_and_dtype` resolves them (bf16 on CPUs
        with native bf16 units).
    """
    import torch

    threads = max(int(threads), 1)
    torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true" if threads > 1 else "false")
    # the Rust tokenizer's pool would otherwise size itself to the whole node, not the job's cores
    os.environ.setdefault("RAYON_NUM_THREADS", str(threads))
    os.environ.setdefault("RAYON_RS_NUM_CPUS", str(threads))
    require_visible_gpu(fcfg.device, "features.device")
    device, dtype = device_and_dtype(fcfg.device, fcfg.precision, cpu_bf16=True)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    log.info("device %s, dtype %s, %d threads", device, str(dtype).replace("torch.", ""), threads)
    return device, dtype


def autocast(device, dtype):
    """Mixed precision where it pays: autocast on the device in half precision, nothing in fp32."""
    import torch

    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def prepare_model(net, device, dtype):
    """Weights on the device, in half precision when the stage runs in it (autocast alone would
    recast every weight on every call), eval mode."""
    import torch

    net = net.to(device)
    if dtype != torch.float32:
        net = net.to(dtype)
    return net.eval()


def to_device(t, device, pin: bool = True):
    """Host -> device copy that overlaps with compute: pinned source, non-blocking copy."""
    if device.type != "cuda":
        return t
    if pin and not t.is_pinned():
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX): there bf16 is 2-5x fp32."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, p, lambda: False)() for p in probes)


def device_and_dtype(requested: str = "auto", precision: str = "auto", cpu_bf16: bool = False):
    """``(torch.device, dtype)``: CUDA with fp16/bf16 when present, CPU with fp32 otherwise.

    ``cpu_bf16=True`` lets a CPU run bf16 where it has native bf16 units: ``auto`` picks it
    there, and an explicit ``bf16`` is honoured (elsewhere it falls back to fp32, with a warning).
    """
    import torch

    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if precision == "auto":
        if device.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "bf16" if cpu_bf16 and cpu_has_bf16() else "fp32"
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    if device.type == "cpu" and dtype != torch.float32 and not (cpu_bf16 and dtype == torch.bfloat16 and cpu_has_bf16()):
        log.warning("%s requested on a CPU without native support; using fp32", precision)
        dtype = torch.float32
    return device, dtype
