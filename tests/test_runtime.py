"""``advlib.runtime``: device choice, the switches that change only floating-point order, and what records say."""
from __future__ import annotations

import pytest
import torch

from advlib import runtime


def test_memory_format_defaults_to_channels_last_and_can_be_switched_off(monkeypatch):
    monkeypatch.delenv(runtime.CHANNELS_LAST_ENV, raising=False)
    assert runtime.memory_format() == torch.channels_last
    monkeypatch.setenv(runtime.CHANNELS_LAST_ENV, "0")
    assert runtime.memory_format() == torch.contiguous_format
    assert runtime.settings(torch.device("cpu"))["channels_last"] is False


def test_cpu_settings_name_the_kernels_vector_instructions(monkeypatch):
    monkeypatch.delenv(runtime.ONEDNN_ISA_ENV, raising=False)
    cpu = runtime.settings(torch.device("cpu"))
    assert cpu["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and "onednn_max_cpu_isa" not in cpu
    assert cpu["cpu_model"] == runtime.cpu_model() and cpu["cpu_model"]  # e.g. "Intel(R) Xeon(R) Processor"
    monkeypatch.setenv(runtime.ONEDNN_ISA_ENV, "AVX2")
    assert runtime.settings(torch.device("cpu"))["onednn_max_cpu_isa"] == "AVX2"


def test_configure_leaves_cpu_alone_and_reports_settings(monkeypatch):
    monkeypatch.setenv(runtime.CUDNN_BENCHMARK_ENV, "1")
    before = torch.backends.cudnn.benchmark
    assert runtime.configure(torch.device("cpu")) == runtime.settings(torch.device("cpu"))
    assert torch.backends.cudnn.benchmark == before


def test_autocast_wrapper_returns_float32_logits():
    model = torch.nn.Linear(4, 3)
    out = runtime.Autocast(model)(torch.rand(2, 4))
    assert out.dtype == torch.float32 and out.shape == (2, 3)


def test_tune_allocator_is_tried_once_per_process(monkeypatch):
    calls = []

    class Libc:
        def mallopt(self, param: int, value: int) -> int:
            calls.append((param, value))
            return 1

    monkeypatch.setattr(runtime, "_TUNED", None)
    monkeypatch.setattr(runtime.ctypes, "CDLL", lambda name: Libc())
    assert runtime.tune_allocator() and runtime.tune_allocator()
    assert calls == [(-3, 1 << 30), (-1, (1 << 31) - 1)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, once

    def not_glibc(name: str):
        calls.append(name)
        raise OSError(name)

    monkeypatch.setattr(runtime, "_TUNED", None)
    monkeypatch.setattr(runtime.ctypes, "CDLL", not_glibc)
    assert not runtime.tune_allocator() and not runtime.tune_allocator()
    assert calls[2:] == ["libc.so.6"]  # a failure is not retried on every attack


def test_search_precision_is_fp32_unless_the_switch_says_otherwise(monkeypatch):
    monkeypatch.delenv(runtime.SEARCH_PRECISION_ENV, raising=False)
    assert runtime.search_precision() == "fp32"
    monkeypatch.setenv(runtime.SEARCH_PRECISION_ENV, "bf16")
    assert runtime.search_precision() == "bf16"
    monkeypatch.setenv(runtime.SEARCH_PRECISION_ENV, "fp8")
    with pytest.raises(ValueError, match="fp8.*choose one of"):
        runtime.search_precision()


def test_search_model_leaves_the_model_alone():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten())
    assert runtime.search_model(model, "fp32") is model
    fast = runtime.search_model(model, "bf16")
    assert isinstance(fast, runtime.Autocast) and fast.model is not model
    assert fast.model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model[0].weight.is_contiguous()
    x = torch.rand(2, 1, 5, 5)
    assert fast(x).dtype == torch.float32 and torch.allclose(fast(x), model(x), atol=0.05)
    with pytest.raises(ValueError, match="int8"):
        runtime.search_model(model, "int8")


def test_native_bf16_reads_the_cpu_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert runtime.native_bf16(info)
    info.write_text("flags\t\t: fpu avx2 avx512f\n")
    assert not runtime.native_bf16(info)
    assert not runtime.native_bf16(tmp_path / "missing")


def test_cpu_model_reads_the_model_name_else_falls_back_to_platform(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some Xeon(R) Processor\nflags\t\t: avx2\n")
    assert runtime.cpu_model(info) == "Some Xeon(R) Processor"
    assert runtime.cpu_model(tmp_path / "missing")  # the platform's name, never empty
