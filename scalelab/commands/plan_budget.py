"""`scalelab plan budget | sweep | emit-grid | lr`: the plan at a budget, over budgets, the IsoFLOP grid
around it, and the lr per swept size of a fit without a loss law. Parse, call scalelab.plan, print."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer

from scalelab.commands._render import print_summary
from scalelab.errors import ScalelabError
from scalelab.report.hints import after_plan


def number(text: Optional[str], option: str) -> Optional[float]:
    """A positive finite number given as text ("1e21", "3_000"); None when not given."""
    if text is None:
        return None
    try:
        x = float(text.replace("_", ""))
    except ValueError:
        raise ScalelabError(f"{option} {text!r} is not a number: write e.g. 1e21 or 3.2e20") from None
    if not (x > 0 and math.isfinite(x)):
        raise ScalelabError(f"{option} {text} must be a positive finite number, e.g. 1e21")
    return x


def fit_path(fit: Optional[Path]) -> Path:
    from scalelab.plan import newest_fit

    return fit if fit is not None else newest_fit("fits")


@dataclass
class Budget:
    """What a plan at a budget was asked: the budget (FLOPs, GPU-hours or a target loss) and the shape rules."""

    flops: Optional[str] = None
    gpu_hours: Optional[float] = None
    gpu: str = "h100"
    mfu: Optional[float] = None
    inference_tokens: Optional[str] = None
    target_loss: Optional[float] = None
    multiple: Optional[int] = None
    depth: Optional[int] = None
    unique_tokens: Optional[str] = None


@dataclass
class Emit:
    path: Path
    sizes: int = 5
    spread: float = 4.0
    names: tuple[str, str] = ("--emit-sizes", "--emit-spread")  # the options as the command spells them

    def check(self) -> None:
        """Before any planning: the grid's sizes and spread, named as the user typed them."""
        if not 3 <= self.sizes <= 7:
            raise ScalelabError(f"{self.names[0]} {self.sizes}: give 3 to 7 sizes per variant to bracket the optimum")
        if not (self.spread > 1 and math.isfinite(self.spread)):
            raise ScalelabError(f"{self.names[1]} {self.spread:g} must be > 1 (e.g. 4: N_opt / 4 .. 4 N_opt)")


def _check_emit_source(fit) -> None:
    """An emitted grid builds its runs from the fitted runs' configs: a fit of tables (CSV) has none."""
    paths = [str(i.path) for i in fit.info.inputs]
    if paths and not any(p.endswith(".parquet") for p in paths):
        raise ScalelabError(
            f"fit {fit.path} was fitted from tables ({', '.join(paths[:2])}), not scalelab runs: an emitted grid "
            "takes its shapes and settings from the runs' configs, so it needs a fit of run-store Parquet "
            "(`scalelab fit runs/*.parquet`)"
        )


def lr_only(path: Path, variants, emit: bool, as_json: bool) -> Optional[list]:
    """The groups with an lr law but no loss law. When no group planned has a loss law, print the lr per swept
    size (the only plan there is) and return None; else return them to print beside the plan."""
    from scalelab.fit.results import load_fit
    from scalelab.plan.planner import has_loss_law, sweep_recommendations

    fitted = load_fit(path)
    sweeps = sweep_recommendations(fitted, variants or None)
    if sweeps and not has_loss_law(fitted, variants or None):
        if emit:
            refusals = "; ".join(f"{s['variant']}: loss law not fitted: {s['why']}" for s in sweeps)
            raise ScalelabError(f"--emit-grid needs a loss law: {refusals}; plan without it for the lr per size")
        print_lr(sweeps, path, as_json)
        return None
    return sweeps


def print_lr(sweeps, path: Path, as_json: bool) -> None:
    from scalelab.plan import _jsonable
    from scalelab.plan.summary import lr_summary

    if as_json:
        typer.echo(json.dumps({"fit": str(path), "plans": [], "sweeps": _jsonable(sweeps)}, indent=1))
    else:
        print_summary(lr_summary(sweeps, path))


def run_sweep(path: Path, variants, text: str, points: int, inference_tokens: float, as_json: bool) -> None:
    """The allocation over log-spaced budgets C_MIN:C_MAX."""
    from scalelab import plan as P
    from scalelab.plan.summary import budgets_summary

    try:
        lo, hi = (float(x) for x in text.split(":"))
    except ValueError:
        raise ScalelabError(f"--sweep {text!r} must be C_MIN:C_MAX, e.g. 1e19:1e23") from None
    if not 1 <= points <= 1000:  # each budget is a planner solve: a million would take hours
        raise ScalelabError(f"--sweep-points {points} must be between 1 and 1000, e.g. 9")
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise ScalelabError(f"--sweep {text}: give finite budgets 0 < C_MIN <= C_MAX, e.g. 1e19:1e23")
    df = P.sweep(path, lo, hi, points, variants=variants or None, inference_tokens=inference_tokens)
    if as_json:
        typer.echo(json.dumps({"fit": str(path), "rows": P._jsonable(df.to_dict(orient="records"))}, indent=1))
    else:
        print_summary(budgets_summary(df, path))


def run_budget(path: Path, variants, b: Budget, sweeps: list, as_json: bool, emit: Optional[Emit] = None) -> None:
    """The plan at a budget (with the lr per swept size of groups without a loss law), and its grid."""
    from scalelab import plan as P

    C = number(b.flops, "--flops")
    if C is None and b.gpu_hours is None and b.target_loss is None:
        raise ScalelabError("give a budget: --flops 1e21, --gpu-hours H, --target-loss L or --sweep 1e19:1e23")
    if b.mfu is not None and not 0 < b.mfu <= 1:
        raise ScalelabError(f"--mfu {b.mfu} must be in (0, 1], e.g. 0.4")
    if emit is not None:
        if C is None:
            raise ScalelabError("--emit-grid needs a FLOPs budget: plan with --flops C")
        from scalelab.commands._common import check_out_file

        check_out_file(emit.path, "--emit-grid")
        emit.check()
    planner = P.Planner(path, variants or None, b.multiple, b.depth)
    if emit is not None:
        _check_emit_source(planner.fit)
    result = P.plan_budget(
        planner,
        C,
        gpu_hours=b.gpu_hours,
        gpu=b.gpu,
        mfu=b.mfu,
        inference_tokens=number(b.inference_tokens, "--inference-tokens") or 0.0,
        target_loss=b.target_loss,
        multiple=b.multiple,
        depth=b.depth,
        unique_tokens=number(b.unique_tokens, "--unique-tokens"),
    )
    from scalelab.plan.schedule_advice import schedule_assumed

    assumed = {p.variant: schedule_assumed(planner.fit, p.group) for p in result.plans}
    if as_json:
        out = {**result.to_dict(), **({"sweeps": P._jsonable(sweeps)} if sweeps else {}), "schedule": assumed}
        if planner.constrained:  # repetition-law groups with --unique-tokens: the data-constrained optima
            out["data_constrained"] = {k: cp.to_dict() for k, cp in planner.constrained.items()}
        typer.echo(json.dumps(out, indent=1))
    else:
        print_summary(result.summary())
        for line in assumed.values():
            typer.echo(f"schedule: {line}")
        if sweeps:
            print_lr(sweeps, path, False)
        typer.echo(after_plan(planner.fit, path, C))
    if emit is not None:
        _emit(planner, result, emit)


def _emit(planner, result, emit: Emit) -> None:
    """Write the IsoFLOP grid (scalelab.loop.emit), check it loads and spends the budget, say so on stderr."""
    from scalelab.loop.emit import check_emitted, emit_grid

    e = emit_grid(planner, result, emit.path, sizes=emit.sizes, spread=emit.spread)
    try:
        rows = check_emitted(e)
    except Exception:
        emit.path.unlink(missing_ok=True)  # never leave a grid that would mislead
        raise
    worst = max(abs(r["flops"] / e.flops - 1) for r in rows)
    typer.echo(
        f"wrote {emit.path}: {len(rows)} runs at widths {', '.join(map(str, e.widths))}, each within {worst:.1%} of "
        f"{e.flops:.3g} FLOPs; train with `scalelab run --grid {emit.path}`",
        err=True,
    )
    for n in e.notes:
        typer.echo(f"note: {n}", err=True)
