"""Device / precision / threads: one resolver, each stage's precision rule given as arguments."""

import pytest
import torch

from affectflow.inference import device as D


@pytest.fixture
def native_bf16(monkeypatch):
    monkeypatch.setattr(D, "cpu_has_bf16", lambda: True)


@pytest.fixture
def no_bf16(monkeypatch):
    monkeypatch.setattr(D, "cpu_has_bf16", lambda: False)


def test_cpu_is_fp32_unless_the_policy_allows_half(no_bf16):
    for precision in ("auto", "fp32", "fp16", "bf16"):
        p = D.place("cpu", precision)
        assert (p.device.type, p.dtype, p.precision) == ("cpu", torch.float32, "fp32")
    assert D.place("cpu", "bf16", cpu_half="native").dtype == torch.float32  # no bf16 units: refused
    assert D.place("cpu", "auto", cpu_half="native").precision == "fp32"


def test_native_bf16_cpus_run_bf16_where_the_stage_allows_it(native_bf16):
    assert D.place("cpu", "auto", cpu_half="native").dtype == torch.bfloat16  # feature stages
    assert D.place("cpu", "bf16", cpu_half="native").dtype == torch.bfloat16
    assert D.place("cpu", "fp16", cpu_half="native").dtype == torch.float32  # fp16 on CPU: never
    assert D.place("cpu", "auto", cpu_half="never").dtype == torch.float32  # Dreaddit CLIP, synthesis
    assert D.place("cpu", "fp32", cpu_half="native").dtype_name == "float32"


def test_as_asked_honours_an_explicit_precision_on_cpu(no_bf16):
    assert D.place("cpu", "auto", cpu_half="as_asked").precision == "fp32"
    assert D.place("cpu", "bf16", cpu_half="as_asked").precision == "bf16"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_cuda_named_without_a_gpu_fails_at_once():
    with pytest.raises(D.DeviceMissing, match="train.device is cuda"):
        D.place("cuda", "auto", what="train.device")
    assert D.place("auto", "auto").device.type == "cpu"


def test_unknown_names_are_refused():
    with pytest.raises(ValueError):
        D.place("cpu", "fp8")
    with pytest.raises(ValueError):
        D.place("cpu", "auto", cpu_half="sometimes")


def test_threads_size_torch_pool():
    before = torch.get_num_threads()
    try:
        p = D.place("cpu", "fp32", threads=1)
        assert p.threads == 1 and torch.get_num_threads() == 1
        assert D.place("cpu", "fp32").threads is None
    finally:
        torch.set_num_threads(before)
