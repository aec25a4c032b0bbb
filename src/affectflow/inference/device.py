"""Device, dtype, threads and autocast: one place for every model stage (features, Dreaddit, train).

Every job that loads a model resolves ``device`` (``auto | cpu | cuda | cuda:N``) and ``precision``
(``auto | fp32 | fp16 | bf16``) here, sizes its thread pools here and wraps its forward passes in
:func:`autocast`.
"""

from __future__ import annotations

import contextlib
import logging
import os

log = logging.getLogger(__name__)


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
