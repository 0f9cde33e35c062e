"""The time `scalelab run --dry-run` estimates for a grid: GPU-hours on one accelerator for a GPU grid,
minutes of this CPU for a CPU grid."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Optional

# A rough training efficiency (achieved / peak FLOP/s) for --dry-run's time estimate. CPU: the demo grid
# spent 335 s of CPU time on 7.6e12 FLOPs (23 GFLOP/s) on one thread whose measured fp32 matmul peak is
# about 80-90 GFLOP/s on the 2-core development machine.
CPU_EFFICIENCY = 0.25
# GPU estimates: GPU-hours on a named accelerator (--gpu) at its bf16 dense peak (plan's table) times the MFU
# that `scalelab bench train` measured on that accelerator (bench/train.json, its device naming it), else
# an assumed MFU, said so in the output.
GPUS = ("h100", "h200", "a100")
ASSUMED_MFU = 0.4
BENCH_TRAIN = os.path.join("bench", "train.json")
CPU_GRID_HOURS = 24.0  # a grid that would take longer than this on this CPU is a GPU grid


@dataclass
class Estimate:
    """The dry run's rows (describe's, with est_s; GPU: est_gpu_hours, accelerator, mfu, mfu_basis) and what
    the estimate assumed."""

    rows: list
    gpu: Optional[str]  # the accelerator of GPU-hours; None: minutes of this CPU
    why: list = field(default_factory=list)  # why a GPU: --gpu, this machine's GPU, or gpu_grid_reasons
    peak: float = 0.0  # FLOP/s: the accelerator's bf16 peak, or this CPU's measured matmul peak
    basis: str = ""  # where the MFU comes from (GPU)

    @property
    def total_flops(self) -> float:
        return sum(r["flops"] for r in self.rows)


def estimate(g, device: str, gpu: Optional[str]) -> Estimate:
    """The runs with params, tokens, FLOPs and an estimated time. A GPU grid (--gpu, a visible GPU, or
    gpu_grid_reasons) gets GPU-hours on one accelerator at its bf16 peak and the measured (else assumed) MFU;
    a CPU grid gets seconds of this CPU at CPU_EFFICIENCY of its measured matmul peak."""
    from scalelab.run.grid import describe, estimate_seconds

    est = _accelerator(g, Estimate(describe(g), gpu, [f"--gpu {gpu}"] if gpu else []), device)
    if est.gpu:
        _gpu_hours(est)
    else:
        for r in est.rows:
            r["est_s"] = estimate_seconds(r["flops"], est.peak, CPU_EFFICIENCY)
    return est


def _accelerator(g, est: Estimate, device: str) -> Estimate:
    """Pick the accelerator when --gpu names none: this machine's GPU, else an H100 for a GPU grid, else this
    CPU (its measured peak)."""
    from scalelab.run.grid import estimate_seconds

    if est.gpu is None and device != "cpu":
        import torch

        if torch.cuda.is_available():
            name = torch.cuda.get_device_name()
            est.gpu = next((k for k in GPUS if k.upper() in name.upper()), "h100")
            est.why = [f"this machine's {name}" + ("" if est.gpu.upper() in name.upper() else ", estimated as an H100")]
    if est.gpu is None:
        import torch

        from scalelab.run.device import peak_flops

        est.peak = peak_flops(torch.device("cpu"))
        est.why = gpu_grid_reasons(g, estimate_seconds(est.total_flops, est.peak, CPU_EFFICIENCY))
        if est.why:
            est.gpu = "h100"
    return est


def _gpu_hours(est: Estimate) -> None:
    """GPU-hours per run on est.gpu at its bf16 peak and the measured (else assumed) MFU."""
    from scalelab.hardware import peak_bf16
    from scalelab.run.grid import estimate_seconds

    gpu = est.gpu
    assert gpu is not None  # estimate() calls this only with an accelerator
    peak = peak_bf16(gpu)
    assert peak is not None  # gpu is one of GPUS (run.py refuses any other --gpu), all in hardware.PEAK_BF16
    est.peak = peak
    measured = bench_mfu(gpu)
    mfu, est.basis = measured or (
        ASSUMED_MFU,
        f"assumed {ASSUMED_MFU:.0%} MFU: no {BENCH_TRAIN} measured on an {gpu.upper()}; "
        "`scalelab bench train --device cuda` measures it",
    )
    for r in est.rows:
        r["est_s"] = estimate_seconds(r["flops"], est.peak, mfu)
        r["est_gpu_hours"] = r["est_s"] / 3600
        r.update(accelerator=est.gpu, mfu=mfu, mfu_basis="measured" if measured else "assumed")


def gpu_grid_reasons(g, cpu_seconds: Optional[float] = None) -> list[str]:
    """Why a grid is for GPUs (empty: a CPU grid): seed-preset-size models (d_model at least seed-s's), an
    [optimizer] dtype of bfloat16 or compile = true (both CUDA settings), or more than CPU_GRID_HOURS of
    this CPU by the dry run's estimate."""
    from scalelab.presets import PRESETS

    runs = g.runs()
    why = []
    d_seed = PRESETS["seed-s"].d_model
    if max(r.model.d_model for r in runs) >= d_seed:
        why.append(f"seed-size models (d_model {d_seed} and up)")
    if any(r.train.dtype == "bfloat16" for r in runs):
        why.append("[optimizer] dtype = bfloat16")
    if any(r.train.compile for r in runs):
        why.append("[optimizer] compile = true")
    if cpu_seconds is not None and cpu_seconds > CPU_GRID_HOURS * 3600:
        why.append(f"about {cpu_seconds / 3600:,.0f} h of this CPU")
    return why


def bench_mfu(gpu: str, path: str = BENCH_TRAIN) -> Optional[tuple[float, str]]:
    """(MFU, where it comes from) measured by `scalelab bench train` on this accelerator (the file's device
    names it), relative to its bf16 peak; None when there is no such file or it was measured elsewhere."""
    from scalelab.hardware import peak_bf16

    peak = peak_bf16(gpu)
    if peak is None:  # no bf16 peak to relate a measured rate to (GPUS all have one)
        return None
    try:
        with open(path) as f:
            b = json.load(f)
        device = str(b.get("device", ""))
        if gpu.upper() not in device.upper():
            return None
        rows = [r for r in b.get("rows", []) if isinstance(r, dict)]
        dense = [r for r in rows if r.get("variant") == "dense"] or rows
        vals = []
        for r in dense:
            if r.get("tokens_per_s") and r.get("flops_per_token"):
                vals.append(float(r["tokens_per_s"]) * float(r["flops_per_token"]) / peak)
            elif r.get("mfu") is not None:
                vals.append(float(r["mfu"]))
        vals = sorted(v for v in vals if math.isfinite(v) and 0 < v <= 1)
        if not vals:
            return None
        m = vals[len(vals) // 2]
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    what = f": {b['shape']}" if b.get("shape") else ""
    return m, f"{m:.0%} MFU measured on {device} in {path}{what}"
