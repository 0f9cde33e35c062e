"""What `scalelab run` prints: the dry run's table and totals, and the grid's outcome after training."""

from __future__ import annotations

import json

import typer

from scalelab import numfmt
from scalelab.commands._run_estimate import CPU_EFFICIENCY, Estimate
from scalelab.report.hints import after_run

STATES = ("trained", "skipped", "busy", "diverged", "interrupted", "failed")


def print_dry_run(g, est: Estimate, as_json: bool, console) -> None:
    """The dry run's table (one row per run) and its totals; the rows as JSON with --json."""
    if as_json:
        typer.echo(json.dumps(est.rows, indent=1))
        return
    console.print(_dry_run_table(g, est))
    rows = est.rows
    tot = sum(r["est_s"] for r in rows)
    finals = sum(len(r["budgets"]) for r in rows)
    head = (
        f"total: {len(rows)} runs, {finals} final points, {sum(r['tokens'] for r in rows):,} tokens, "
        f"{est.total_flops:.3g} FLOPs; "
    )
    if not est.gpu:
        console.print(
            head + f"about {tot / 60:.1f} min at {CPU_EFFICIENCY:.0%} of {est.peak / 1e9:.0f} GFLOP/s (this CPU, "
            "measured now)",
            soft_wrap=True,
        )
        return
    console.print(
        head + f"about {_hours(tot / 3600)} GPU-hours on one {est.gpu.upper()} ({est.peak / 1e12:.0f} TFLOP/s bf16 "
        f"peak, {est.basis})",
        soft_wrap=True,
        markup=False,
    )
    if not est.why[0].startswith("--gpu"):
        console.print(
            f"this grid is for GPUs ({'; '.join(est.why)}); --gpu h100|h200|a100 names the accelerator",
            soft_wrap=True,
            markup=False,
        )


def _dry_run_table(g, est: Estimate):
    from rich import box
    from rich.table import Table

    col = "GPU-h" if est.gpu else "est. s"
    t = Table(
        title=f"grid {g.name}: {len(est.rows)} runs (dry run; nothing trained)", box=box.SIMPLE_HEAD, pad_edge=False
    )
    for c in ("run_id", "variant", "d x L", "params", "lr", "tokens", "FLOPs", col):
        t.add_column(c, justify="left" if c in ("run_id", "variant") else "right", no_wrap=True)
    for r in est.rows:
        t.add_row(
            r["run_id"],
            r["variant"],
            f"{r['d_model']}x{r['n_layers']}",
            numfmt.count(r["params"]),
            f"{r['lr']:.2g}",
            numfmt.count(r["tokens"]),
            f"{r['flops']:.2g}",
            f"{r['est_gpu_hours']:.3g}" if est.gpu else f"{r['est_s']:.0f}",
        )
    return t


def print_outcome(g, out: str, ex, sums, as_json: bool, console) -> None:
    """After training: each run's outcome (JSON with --json). Trained here: loss, tokens and wall time, then
    the count per state; by workers or a scheduler: state and where to look."""
    from scalelab.run import executors

    if not isinstance(ex, executors.InProcess):
        rows = [
            dict(
                run_id=s.run.run_id, variant=s.run.variant, d_model=s.run.model.d_model, state=s.state, detail=s.detail
            )
            for s in sums
        ]
        if as_json:
            typer.echo(json.dumps(rows, indent=1))
            return
        console.print(_states_table(g, out, rows))
        return
    if as_json:
        typer.echo(json.dumps([_trained_row(s) for s in sums], indent=1))
        return
    console.print(_trained_table(g, out, sums))
    n = {k: sum(1 for s in sums if s.state == k) for k in STATES}
    nxt = f". Next: scalelab fit {out}/*.parquet, then {after_run(out)}"
    console.print(", ".join(f"{v} {k}" for k, v in n.items() if v) + nxt)


def _states_table(g, out: str, rows: list):
    from rich.table import Table

    t = Table(title=f"grid {g.name}: {len(rows)} runs -> {out}/")
    for c in ("run", "variant", "d", "state", "detail"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["run_id"], r["variant"], str(r["d_model"]), r["state"], r["detail"])
    return t


def _trained_row(s) -> dict:
    return dict(
        run_id=s.run.run_id,
        variant=s.run.variant,
        d_model=s.run.model.d_model,
        state=s.state,
        path=s.path,
        final_val_loss=s.final_val,
        wall_s=s.wall_s,
        tokens=s.tokens,
    )


def _trained_table(g, out: str, sums):
    from rich.table import Table

    t = Table(title=f"grid {g.name}: {len(sums)} runs -> {out}/")
    for c in ("run", "variant", "d", "finals", "tokens", "val", "wall s", "state"):
        t.add_column(c, justify="right" if c not in ("run", "variant", "state") else "left", no_wrap=True)
    for s in sums:
        t.add_row(
            s.run.run_id,
            s.run.variant,
            str(s.run.model.d_model),
            str(len(s.run.train.budgets)),
            f"{s.tokens:,}",
            "-" if s.final_val is None else f"{s.final_val:.4f}",
            f"{s.wall_s:.1f}",
            s.state,
        )
    return t


def exit_if_failed(sums) -> None:
    """Exit 1 after the grid when any run failed, naming each and its log (or error), so that scripts and
    job schedulers can tell a grid with a crashed run from a finished one."""
    failed = [s for s in sums if s.state == "failed"]
    if failed:
        where = "; ".join(f"{s.run.run_id} ({s.run.variant} d{s.run.model.d_model}): {s.detail}" for s in failed)
        typer.echo(f"error: {len(failed)} of {len(sums)} run(s) failed: {where}", err=True)
        raise typer.Exit(1)


def _hours(h: float) -> str:
    """1091.4 -> 1,091; 3.456 -> 3.46 (hours for the dry run's total)."""
    return f"{h:,.0f}" if h >= 100 else f"{h:.3g}"
