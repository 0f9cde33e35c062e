"""`scalelab plan`: compute-optimal width, depth, rank and tokens per variant from a fit, with intervals.

One subcommand per question: `budget` (the plan at a budget), `sweep` (over budgets), `emit-grid` (the plan and
an IsoFLOP grid around it), `lr` (the lr per swept size of a fit without a loss law), `suggest` (the next runs),
`schedule` (which lr schedule, by a curve law).
`scalelab plan --flops 1e21 ...` (no subcommand: every option of every mode, plan_classic.py) still works."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperGroup

from scalelab.commands import _plan_options as O
from scalelab.commands._common import user_errors
from scalelab.commands.plan_budget import Budget, Emit, fit_path, lr_only, number, print_lr, run_budget, run_sweep
from scalelab.commands.plan_classic import classic
from scalelab.commands.plan_suggest import Ask, run_suggest
from scalelab.numfmt import si as _si  # noqa: F401  (tests read the table's number format here)

CLASSIC = "classic"


class _PlanGroup(TyperGroup):
    """Arguments that do not start with a subcommand go to the one-command form (`plan --flops 1e21`)."""

    def parse_args(self, ctx, args):
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = [CLASSIC, *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_PlanGroup,
    help="Compute-optimal N, D, shape and predicted loss per variant from a fit, with bootstrap intervals.\n\n"
    "Every bootstrap sample is pushed through the optimisation: intervals are percentiles of the optimum, not the "
    "plug-in point. Examples: scalelab plan budget --flops 1e21 | scalelab plan sweep 1e19:1e23 --json | "
    "scalelab plan suggest 4. The one-command form `scalelab plan --flops 1e21` takes every mode's options "
    "(`scalelab plan classic --help`).",
    pretty_exceptions_enable=False,
)
app.command(CLASSIC, hidden=True)(classic)


@app.command("budget")
@user_errors
def budget(
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
    as_json: bool = O.JSON,
) -> None:
    """The compute-optimal plan at a budget: FLOPs, GPU-hours, or the compute a target loss needs."""
    path = fit_path(fit)
    b = Budget(flops, gpu_hours, gpu, mfu, inference_tokens, target_loss, multiple, depth, unique_tokens)
    sweeps = lr_only(path, variant, False, as_json)
    if sweeps is not None:
        run_budget(path, variant, b, sweeps, as_json)


@app.command("emit-grid")
@user_errors
def emit_grid(
    out: Path = typer.Argument(..., help="Grid TOML to write.", show_default=False),
    flops: str = typer.Option(..., "--flops", "-C", help="The budget every run of the grid spends (FLOPs)."),
    fit: Optional[Path] = O.FIT,
    variant: Optional[List[str]] = O.VARIANT,
    sizes: int = O.SIZES,
    spread: float = O.SPREAD,
    multiple: Optional[int] = O.MULTIPLE,
    depth: Optional[int] = O.DEPTH,
    as_json: bool = O.JSON,
) -> None:
    """The plan at --flops and a grid that trains, per variant, the planned shape and sizes around it at that
    budget (an IsoFLOP set bracketing the optimum), with the fitted runs' data and training settings."""
    path = fit_path(fit)
    sweeps = lr_only(path, variant, True, as_json)
    assert sweeps is not None  # with emit, a fit without a loss law is refused in lr_only
    b = Budget(flops=flops, multiple=multiple, depth=depth)
    run_budget(path, variant, b, sweeps, as_json, Emit(out, sizes, spread, ("--sizes", "--spread")))


@app.command("sweep")
@user_errors
def sweep(
    budgets: str = typer.Argument(..., help="C_MIN:C_MAX, e.g. 1e19:1e23.", show_default=False),
    points: int = typer.Option(9, "--points", help="Number of log-spaced budgets."),
    fit: Optional[Path] = O.FIT,
    variant: Optional[List[str]] = O.VARIANT,
    inference_tokens: Optional[str] = O.INFERENCE_TOKENS,
    as_json: bool = O.JSON,
) -> None:
    """The compute-optimal allocation over log-spaced budgets (shapes are not chosen)."""
    path = fit_path(fit)
    T = number(inference_tokens, "--inference-tokens") or 0.0
    if lr_only(path, variant, False, as_json) is not None:
        run_sweep(path, variant, budgets, points, T, as_json)


@app.command("lr")
@user_errors
def lr(fit: Optional[Path] = O.FIT, variant: Optional[List[str]] = O.VARIANT, as_json: bool = O.JSON) -> None:
    """The recommended learning rate (and batch size) per swept size, from the sweep's own laws, for the groups
    whose loss law was not fitted."""
    from scalelab.errors import ScalelabError

    path = fit_path(fit)
    sweeps = lr_only(path, variant, False, as_json)
    if sweeps is None:  # no group planned has a loss law: printed
        return
    if not sweeps:
        raise ScalelabError(
            f"fit {path} has no group with an lr law but no loss law: `scalelab plan budget` gives the lr per plan"
        )
    print_lr(sweeps, path, as_json)


@app.command("share")
@user_errors
def share(
    flops: Optional[str] = typer.Option(None, "--flops", "-C", help="Training budget in FLOPs (the fit's convention)."),
    gpu_hours: Optional[float] = O.SHARE_GPU_HOURS,
    throughput: Optional[List[Path]] = O.THROUGHPUT,
    fit: Optional[Path] = O.FIT,
    variant: Optional[List[str]] = O.VARIANT,
    multiple: Optional[int] = O.MULTIPLE,
    depth: Optional[int] = O.DEPTH,
    as_json: bool = O.JSON,
) -> None:
    """Width, FFN share and tokens chosen together at a budget (FLOPs, or device-hours at a measured throughput),
    on a law across shares (fit --share-col): the shape (d_model, depth, rank or blocks) and tokens of least
    predicted loss, with intervals."""
    from scalelab.errors import ScalelabError
    from scalelab.fit import load_fit
    from scalelab.plan import throughput_model
    from scalelab.plan.share import plan_share, plan_share_time

    if (flops is None) == (gpu_hours is None):
        raise ScalelabError("give one budget: --flops C (FLOPs) or --gpu-hours H (device-hours)")
    if gpu_hours is None and throughput:
        raise ScalelabError("--throughput is for a time budget: give --gpu-hours H with it, or drop it")
    model = None
    if gpu_hours is not None:
        files = list(throughput or [])
        if not files and not Path("bench/train.json").is_file():
            raise ScalelabError(
                "--gpu-hours needs measured throughput and there is no bench/train.json: measure it with "
                f"`{throughput_model.measure('lowrank')}` (a preset per width) and pass the files with --throughput"
            )
        model = throughput_model.load(files or [Path("bench/train.json")])
    res = load_fit(fit_path(fit))
    kinds = variant or [g.name for g in res if g.form == "share"] or [next(iter(res.groups))]
    if model is not None:
        assert gpu_hours is not None
        plans = [plan_share_time(res, k, gpu_hours, model, multiple=multiple, depth=depth) for k in kinds]
    else:
        C = number(flops, "--flops")
        assert C is not None  # one budget was given
        plans = [plan_share(res, k, C, multiple=multiple, depth=depth) for k in kinds]
    if as_json:
        import json

        typer.echo(json.dumps([p.to_dict() for p in plans], indent=2))
        return
    for p in plans:
        typer.echo("\n".join(p.lines()))


@app.command("schedule")
@user_errors
def schedule(
    flops: str = typer.Option(..., "--flops", "-C", help="Training budget in FLOPs (the fit's convention)."),
    fit: Optional[Path] = O.FIT,
    variant: Optional[List[str]] = O.VARIANT,
    cooldowns: Optional[str] = typer.Option(
        None, "--cooldowns", help="WSD cooldown fractions to compare, comma-separated (default 0.1,0.2,0.3)."
    ),
    shapes: Optional[str] = typer.Option(
        None, "--shapes", help="WSD cooldown shapes to compare: 1-sqrt, linear (default both)."
    ),
    no_cosine: bool = typer.Option(False, "--no-cosine", help="Leave cosine (to the fitted runs' min lr) out."),
    as_json: bool = O.JSON,
) -> None:
    """Which lr schedule for the plan at --flops: WSD cooldown fractions and shapes, and cosine, compared by the
    curve law's predicted final loss at the planned shape and tokens, with intervals over its resamples.

    Needs a fit derived from a curve law: `scalelab fit runs/*.parquet --curves --derive`."""
    from scalelab.plan import schedule_advice as SA

    C = number(flops, "--flops")
    assert C is not None  # a required option
    cds = SA.parse_list(cooldowns, "--cooldowns", SA.COOLDOWNS)
    shs = SA.parse_list(shapes, "--shapes", SA.SHAPES, allowed=SA.SHAPES)
    advice = SA.advise_plan(fit_path(fit), variant, C, cds, shs, cosine=not no_cosine)
    if as_json:
        import json

        typer.echo(json.dumps({"flops": C, "advice": [a.to_dict() for a in advice]}, indent=1))
        return
    for a in advice:
        typer.echo("\n".join(a.lines()))


@app.command("suggest")
@user_errors
def suggest(
    k: int = typer.Argument(..., help="How many runs to suggest.", show_default=False),
    fit: Optional[Path] = O.FIT,
    max_flops: Optional[str] = O.MAX_FLOPS,
    quantity: str = O.FOR,
    variant: Optional[str] = typer.Option(None, "--variant", "-v", help="Variant whose quantity to narrow."),
    versus: str = O.VERSUS,
    at: Optional[str] = O.AT,
    n_boot: int = O.BOOTSTRAP,
    as_json: bool = O.JSON,
) -> None:
    """The K new runs (shape, tokens) that most narrow a quantity's interval per FLOP.

    Found by refitting the fit's points (with its bootstrap) with each candidate's predicted loss. Where N_opt is
    not identified: the K cheapest runs that make the design identify it."""
    run_suggest(fit_path(fit), Ask(k, max_flops, quantity, variant, versus, at, n_boot, k_name="K"), as_json)
