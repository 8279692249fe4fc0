"""Small runtime helpers: the default device, a CPU allocator tweak, the channels_last layout, the precision of
AutoAttack's search."""
from __future__ import annotations

import copy
import ctypes
import logging
import os
from pathlib import Path

import torch
from torch import Tensor, nn

log = logging.getLogger("advlib")
_TUNED: bool | None = None  # None: not tried yet


def default_device() -> torch.device:
    """CUDA if available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def tune_allocator() -> bool:
    """Stop glibc from mapping and unmapping big activation buffers on every call (CPU only).

    Same effect as ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` set before start-up; measured
    10-25 % faster attacks on the 2-core CPU machine. Tried once per process (``run_attack`` calls it on a CPU);
    returns whether it took effect.
    """
    global _TUNED
    if _TUNED is not None:
        return _TUNED
    try:
        libc = ctypes.CDLL("libc.so.6")
        _TUNED = bool(libc.mallopt(-3, 1 << 30)) and bool(libc.mallopt(-1, (1 << 31) - 1))
    except (OSError, AttributeError):  # not glibc
        _TUNED = False
    return _TUNED


#: Environment switches of the run-time choices that do not change the mathematics (only floating-point
#: summation order), each recorded in every result record by ``settings``: the memory format of images and
#: models in ``reproduce`` (default channels_last) and cuDNN's per-shape algorithm search (default off).
CHANNELS_LAST_ENV, CUDNN_BENCHMARK_ENV = "ADVLIB_CHANNELS_LAST", "ADVLIB_CUDNN_BENCHMARK"
#: The precision of AutoAttack's search (its own model calls; ``strong.autoattack``): "fp32" (default) or "bf16".
#: The verdict is fp32 either way; a bf16 search is faster where the CPU has native bf16 (``native_bf16``) but can
#: miss adversarial examples, so it is an opt-in switch (benchmarks/aa_speed.py measures both effects).
SEARCH_PRECISION_ENV = "ADVLIB_SEARCH_PRECISION"
#: oneDNN's (and, as ``ATEN_CPU_CAPABILITY``, ATen's) ceiling on the vector instructions of CPU kernels. Set both
#: to AVX2 on an AVX-512 machine to train as a machine without AVX-512 does (``settings`` records them).
ONEDNN_ISA_ENV, ATEN_CAPABILITY_ENV = "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"
_PRECISIONS = {"bf16": torch.bfloat16, "fp32": torch.float32}


def memory_format() -> torch.memory_format:
    """The memory format ``reproduce`` uses: channels_last unless ``ADVLIB_CHANNELS_LAST=0``."""
    return torch.contiguous_format if os.environ.get(CHANNELS_LAST_ENV, "1") == "0" else torch.channels_last


#: Linux's description of the processor, read by ``native_bf16`` and ``cpu_model``.
CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo(path: str | Path) -> str:
    """The text of ``path`` (``CPUINFO``), "" where it cannot be read (not Linux)."""
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def native_bf16(cpuinfo: str | Path = CPUINFO) -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); False where that cannot be read."""
    flags = _cpuinfo(cpuinfo).split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _precision(precision: str, what: str) -> str:
    if precision not in _PRECISIONS:
        raise ValueError(f"{what}={precision!r}: choose one of {sorted(_PRECISIONS)}")
    return precision


def search_precision() -> str:
    """``ADVLIB_SEARCH_PRECISION`` ("fp32" or "bf16"; ``ValueError`` otherwise), "fp32" if unset."""
    return _precision(os.environ.get(SEARCH_PRECISION_ENV, "fp32"), SEARCH_PRECISION_ENV)


def search_model(model: nn.Module, precision: str) -> nn.Module:
    """``model`` as an attack's search should call it: itself for "fp32"; for "bf16" a channels_last copy under
    bf16 autocast that returns float32 logits (``model`` is left as it is)."""
    if _precision(precision, "precision") == "fp32":
        return model
    return Autocast(copy.deepcopy(model).to(memory_format=torch.channels_last), _PRECISIONS[precision])


def configure(device: torch.device) -> dict:
    """Apply the run-time switches for ``device`` (cuDNN benchmark mode if ``ADVLIB_CUDNN_BENCHMARK=1``) and
    return them with the precision settings in force, for the record."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = os.environ.get(CUDNN_BENCHMARK_ENV, "0") == "1"
    return settings(device)


def cpu_model(cpuinfo: str | Path = CPUINFO) -> str:
    """The processor's model name (``CPUINFO``; else what ``platform`` knows): two CPUs with the same vector
    instructions (e.g. an AMD EPYC and an Intel Xeon, both AVX-512) may still run different oneDNN kernels."""
    import platform
    for line in _cpuinfo(cpuinfo).splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def settings(device: torch.device) -> dict:
    """The run-time settings that can change results in the last bits: memory format, cuDNN modes, TF32; on a CPU
    the processor (``cpu_model``) and the vector instructions its kernels use (ATen's ``cpu_capability``, and
    oneDNN's ceiling if ``ONEDNN_MAX_CPU_ISA`` sets one): training on AVX2 and on AVX-512 kernels ends at different
    weights."""
    from advlib import graphs
    out = {"channels_last": memory_format() == torch.channels_last}
    if device.type == "cpu":
        out["cpu_model"] = cpu_model()
        out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        if os.environ.get(ONEDNN_ISA_ENV):
            out["onednn_max_cpu_isa"] = os.environ[ONEDNN_ISA_ENV]
    if device.type == "cuda":
        out.update(cudnn_benchmark=torch.backends.cudnn.benchmark, cudnn_tf32=torch.backends.cudnn.allow_tf32,
                   matmul_tf32=torch.backends.cuda.matmul.allow_tf32, cuda_graphs=graphs.enabled(device))
    return out


def channels_last(model: nn.Module, *tensors: Tensor) -> tuple:
    """Move a conv model and 4-D image tensors to channels_last (faster convolutions; the same results up to float
    rounding: other kernels sum in another order)."""
    model.to(memory_format=torch.channels_last)
    return (model, *(t.contiguous(memory_format=torch.channels_last) for t in tensors))


def device_name(device: torch.device) -> str:
    """A readable device name for result records."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


class Autocast(nn.Module):
    """Run ``model`` under bf16 autocast and return float32 logits (wrap a model to make attacks use bf16).

    Use only where it keeps robust accuracy within 0.3 points of fp32 (benchmarks/bench.py checks and records it).
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(device_type=x.device.type, dtype=self.dtype):
            return self.model(x).float()
