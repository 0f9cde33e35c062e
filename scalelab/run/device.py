"""The device a run or benchmark uses, its name in the run store, and the peak FLOP/s MFU divides by."""

from __future__ import annotations

import platform
import time

import torch

from scalelab import hardware
from scalelab.errors import ScalelabError

_PEAK: dict = {}  # measured once per process: str(device) -> FLOP/s


def pick_device(device: str = "auto", *, cpu_or_cuda: bool = False) -> torch.device:
    """The torch device for --device: auto is CUDA when torch sees it, else CPU. cpu_or_cuda refuses any
    other kind (the benchmarks time those two only); otherwise a torch device string is taken as it is."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ScalelabError("--device cuda asked for, but torch sees no CUDA device: use --device cpu")
    if cpu_or_cuda and not (device == "cpu" or device.startswith("cuda")):
        raise ScalelabError(f"--device {device!r}: use auto, cpu or cuda")
    return torch.device(device)


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu:{platform.processor() or platform.machine()}x{torch.get_num_threads()}"


def peak_flops(dev: torch.device) -> float:
    """FLOP/s that MFU divides by: CUDA from the bf16 dense peaks of scalelab.hardware (NaN if unknown); CPU
    the measured float32 matmul peak of this machine (1024^3 matmuls, best of a few; about 0.3 s once)."""
    key = str(dev)
    if key not in _PEAK:
        if dev.type == "cuda":
            peak = hardware.peak_bf16(torch.cuda.get_device_name(dev))
            _PEAK[key] = float("nan") if peak is None else peak
        else:
            _PEAK[key] = _cpu_matmul_peak()
    return _PEAK[key]


def _cpu_matmul_peak(n: int = 1024) -> float:
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best
