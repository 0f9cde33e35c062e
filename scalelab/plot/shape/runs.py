"""Training curves as the loss-vs-FLOPs figure draws them: which rows, which columns, each run's curve
(WSD trunk and cooldown branches) and the axis limits that keep the final points in view."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from scalelab.fit.upgrade import POINTS_FROM_RUNS
from scalelab.plot import laws
from scalelab.plot.palette import sort_variants
from scalelab.plot.shape import fitread
from scalelab.plot.shape.context import Context, Skip

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class RunCurves:
    """What fig1 draws of the runs: rows with a loss (val_loss: the loss the fit read), every row (for
    branch starts), the x column, and the limits."""

    runs: pd.DataFrame
    all_rows: pd.DataFrame
    lcol: str
    ccol: str
    variants: list
    xlim: tuple
    ylim: tuple


def fit_loss_column(ctx: Context) -> str:
    if ctx.fit is None:
        return "val_loss"
    return fitread.loss_column(ctx.fit) or "val_loss"


def run_curves(ctx: Context) -> RunCurves:
    """The runs of fig1 (run files, else a table of points read as runs); Skip when there are none."""
    runs = ctx.ok_runs()
    if runs is None:
        runs = runs_from_points(ctx)
    if runs is None:
        raise Skip("needs run files (runs/*.parquet) or a table of points for the training curves")
    lcol = fit_loss_column(ctx)
    if lcol != "val_loss" and lcol in runs.columns:  # the loss the fit read (e.g. train_loss), drawn as such
        runs = runs.assign(val_loss=runs[lcol])
    else:
        lcol = "val_loss"
    ccol = laws.flops_column(ctx.fit)
    if ccol not in runs.columns or runs[ccol].isna().all():
        ctx.note(f"run files lack column {ccol!r}: x is the 'flops' column instead")
        ccol = "flops"
    all_rows = runs
    runs = runs[runs["val_loss"].notna() & (runs[ccol] > 0)]
    if runs.empty:
        raise Skip("the run files hold no validation losses")
    finals = runs[runs["final"]]
    ref = finals if len(finals) else runs
    lo_y, hi_y = float(ref["val_loss"].min()), float(ref["val_loss"].max())
    span = max(hi_y - lo_y, 0.05 * hi_y)
    ylim = (lo_y - 0.25 * span, hi_y + 0.6 * span)
    visible = runs[runs["val_loss"] <= ylim[1]]
    xlim = (float(visible[ccol].min()) / 1.5, float(visible[ccol].max()) * 1.5)
    return RunCurves(runs, all_rows, lcol, ccol, sort_variants(runs["variant"]), xlim, ylim)


def variant_runs(rc: RunCurves, v: str):
    """Yield (size shade t in [0, 1]: 1 the largest, [(x, y)] curves, final rows) per run of variant v."""
    rv = rc.runs[rc.runs["variant"] == v]
    sizes = sorted(rv["params"].unique())
    for rid, r in rv.groupby("run_id", sort=True):
        t = sizes.index(r["params"].iloc[0]) / max(len(sizes) - 1, 1)
        yield t, curves(r, rc.all_rows[rc.all_rows["run_id"] == rid], rc.ccol), r[r["final"]]


def runs_from_points(ctx: Context):
    """Run-store-like rows from a table of points (CSV input): each run's points as its curve, its
    largest-D point as its final point. None without points."""
    pts = ctx.inputs.all_points if ctx.inputs.all_points is not None else ctx.inputs.points
    if pts is None or not len(pts) or not np.isfinite(pts["C"].to_numpy(float)).any():
        return None
    if ctx.fit is not None and ctx.fit.points_source == POINTS_FROM_RUNS:  # one point per run: no curves
        return None
    run = pts["run"].astype(str) if "run" in pts.columns and (pts["run"].astype(str) != "").all() else None
    if run is None:  # no run column: every point its own run
        run = pts["group"].astype(str) + "#" + pts.index.astype(str)
    r = pts.assign(run_id=pts["group"].astype(str) + "/" + run, variant=pts["variant"].astype(str))
    r = r.assign(params=r["N"], flops=r["C"], flops_6nd=r["C"], val_loss=r["loss"], step=r["D"], tokens=r["D"])
    r = r.drop(columns=[c for c in ("budget", "status", "config") if c in r.columns])
    r["final"] = r["D"] == r.groupby("run_id")["D"].transform("max")
    ctx.note(f"curves: the points of each run of {ctx.inputs.points_source}")
    return r


def curves(r, rows, ccol: str):
    """A run's validation curve(s): the trunk, and one short segment per cooldown branch.

    WSD runs (DESIGN.md, `budget` column) hold a trunk (the largest budget) and cooldown branches
    forked from it; each branch is drawn from the trunk's loss where it forked to its final point, so
    that trunk and branches never zigzag into one line. Without a `budget` column: one curve by step.
    """
    if "budget" not in r.columns or r["budget"].nunique() <= 1:
        r = r.sort_values(["step", "tokens"])
        return [(r[ccol].to_numpy(), r["val_loss"].to_numpy())]
    trunk_b = r["budget"].max()
    trunk = r[r["budget"] == trunk_b].sort_values(["step", "tokens"])
    out = [(trunk[ccol].to_numpy(), trunk["val_loss"].to_numpy())]
    if len(trunk) < 2:
        return out
    lx, ly = np.log(trunk[ccol].to_numpy(float)), trunk["val_loss"].to_numpy(float)
    cooldown = cooldown_fraction(r)
    for b, br in r[r["budget"] != trunk_b].groupby("budget"):
        every = rows[rows["budget"] == b]
        end = br.sort_values("step").iloc[-1]
        x0 = float(every[ccol].min()) if len(every) else float(end[ccol])
        if x0 >= end[ccol] and cooldown:  # only the final row stored: the branch forked cooldown earlier
            x0 = float(end[ccol]) * (1 - cooldown)
        if x0 >= end[ccol] or not (lx[0] <= np.log(x0) <= lx[-1]):
            continue
        y0 = float(np.interp(np.log(x0), lx, ly))
        out.append((np.array([x0, end[ccol]]), np.array([y0, end["val_loss"]])))
    return out


def cooldown_fraction(r) -> float:
    """The run's cooldown share of each budget, from its config JSON (0 when unknown)."""
    if "config" not in r.columns:
        return 0.0
    try:
        c = float(json.loads(r["config"].iloc[0])["train"]["cooldown"])
    except (ValueError, KeyError, TypeError):
        return 0.0
    return c if 0 < c < 1 else 0.0
