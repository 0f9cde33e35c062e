"""`scalelab plan --flops 1e21 ...`: the one-command form, every mode's options at once (as before the
subcommands), each mode chosen by the options given: --suggest, --sweep, else a plan at a budget (with
--emit-grid, its grid); a fit without a loss law gives the lr per swept size."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from scalelab.commands import _plan_options as O
from scalelab.commands._common import user_errors
from scalelab.commands.plan_budget import Budget, Emit, fit_path, lr_only, number, run_budget, run_sweep
from scalelab.commands.plan_suggest import Ask, run_suggest


@user_errors
def classic(
    flops: Optional[str] = O.FLOPS,
    fit: Optional[Path] = O.FIT,
    variant: Optional[List[str]] = O.VARIANT,
    gpu_hours: Optional[float] = O.GPU_HOURS,
    gpu: str = O.GPU,
    mfu: Optional[float] = O.MFU,
    inference_tokens: Optional[str] = O.INFERENCE_TOKENS,
    target_loss: Optional[float] = O.TARGET_LOSS,
    multiple: Optional[int] = O.MULTIPLE,
    depth: Optional[int] = O.DEPTH,
    unique_tokens: Optional[str] = O.UNIQUE_TOKENS,
    sweep: Optional[str] = O.SWEEP,
    sweep_points: int = O.SWEEP_POINTS,
    as_json: bool = O.JSON,
    emit_grid: Optional[Path] = O.EMIT_GRID,
    emit_sizes: int = O.EMIT_SIZES,
    emit_spread: float = O.EMIT_SPREAD,
    suggest_k: Optional[int] = O.SUGGEST,
    suggest_flops: Optional[str] = O.SUGGEST_FLOPS,
    suggest_for: str = O.SUGGEST_FOR,
    suggest_variant: Optional[str] = O.SUGGEST_VARIANT,
    versus: str = O.VERSUS,
    at: Optional[str] = O.AT,
    suggest_boot: int = O.SUGGEST_BOOT,
) -> None:
    """Compute-optimal N, D, shape and predicted loss per variant at a FLOPs budget, with bootstrap intervals.

    Every bootstrap sample is pushed through the optimisation: intervals are percentiles of the optimum, not
    the plug-in point. Fits of scalelab runs use each variant's real FLOPs per token (attention, logits,
    structure, self-guided overhead); plain (N, D) fits use C = 6 N D.

    Examples: scalelab plan --flops 1e21 | scalelab plan --gpu-hours 1000 --gpu h100 |
    scalelab plan --sweep 1e19:1e23 --json
    """
    path = fit_path(fit)
    T = number(inference_tokens, "--inference-tokens") or 0.0
    if suggest_k is not None:
        ask = Ask(suggest_k, suggest_flops, suggest_for, suggest_variant, versus, at, suggest_boot)
        return run_suggest(path, ask, as_json)
    sweeps = lr_only(path, variant, emit_grid is not None, as_json)
    if sweeps is None:  # no loss law: the lr per swept size was the answer
        return
    if sweep is not None:
        return run_sweep(path, variant, sweep, sweep_points, T, as_json)
    b = Budget(flops, gpu_hours, gpu, mfu, inference_tokens, target_loss, multiple, depth, unique_tokens)
    run_budget(path, variant, b, sweeps, as_json, Emit(emit_grid, emit_sizes, emit_spread) if emit_grid else None)
