"""What the curve-law figure draws (no matplotlib here): every evaluated point of the run files with the
curve law's prediction at it, and the law along each run's whole schedule (its trunk and each WSD branch's
cooldown), rebuilt from the runs' recorded configs as `scalelab fit --curves` rebuilds them.

The curve law is the one given to `plot` (`inputs.curves`, a fits/NAME.curves.json), else the curves file
beside the fit (fits/NAME.curves.json next to fits/NAME.json).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from scalelab.fit import curves
from scalelab.plot.shape.context import Context, Skip

TRUNK_STEPS = 80  # points per trunk line (log-spaced): smooth at any width
BRANCH_STEPS = 30  # points per cooldown line (linear over the cooldown)


@dataclass
class CurvePanels:
    """`points`: group, run, N, budget, step, loss, pred, rel (%), held_out, unseen (a run the law did not
    fit), early (before the fit's cut), trunk (on its run's trunk); `lines`: group, run, N, budget, step, pred,
    one row per drawn step; `law`: the curves file."""

    points: pd.DataFrame
    lines: pd.DataFrame
    law: curves.CurvesFile
    cut: float


def curve_law(ctx: Context) -> curves.CurvesFile:
    """The curve law given to plot, else the one beside the fit; Skip when there is none."""
    given = getattr(ctx.inputs, "curves", None)
    if given is not None:
        return given if isinstance(given, curves.CurvesFile) else curves.load_curves(given)
    fit = ctx.fit
    path = str(fit.path) if fit is not None and getattr(fit, "path", None) else ""
    beside = path[: -len(".json")] + ".curves.json" if path.endswith(".json") else ""
    if beside and os.path.isfile(beside):
        return curves.load_curves(beside)
    raise Skip(
        "needs a curve law (`scalelab fit RUNS --curves` writes fits/NAME.curves.json; give it with --fit, "
        "or keep it beside fits/NAME.json)"
    )


def _run_files(ctx: Context) -> list[str]:
    return [s.path for s in ctx.inputs.sources if s.kind == "runs"]


def curve_panels(ctx: Context, cf: Optional[curves.CurvesFile] = None) -> CurvePanels:
    """The points and law lines of every run of the curve law's groups among the run files (or the CSV
    tables of a law fitted on a CSV)."""
    from scalelab.fit.io import CHECKPOINT_MIN_FRACTION

    cf = cf or curve_law(ctx)
    by = next((f.by for f in cf.fits.values() if f.by), None)
    if by is None:  # fitted on a CSV: its rows and schedule description rebuild the same points
        pts, terms, schedules = _csv_points(ctx, cf)
    else:
        paths = _run_files(ctx)
        if not paths:
            raise Skip("needs the run files (runs/*.parquet) the curve law is drawn through")
        pts, terms = curves.read_curves(paths, by)
        schedules = _store_schedules(paths)
    keep = pts["group"].isin(list(cf.fits)).to_numpy()
    if not keep.any():
        raise Skip(f"no run of the curve law's groups ({', '.join(sorted(cf.fits))}) among the run files")
    if not keep.all():
        ctx.note(f"{pts['run'][~keep].nunique()} run(s) of groups without a curve law left out")
    pts, terms = pts[keep].reset_index(drop=True), [t for t, k in zip(terms, keep) if k]
    cut = float(cf.settings.get("min_fraction", CHECKPOINT_MIN_FRACTION))
    pts["pred"], pts["held_out"], pts["unseen"] = np.nan, False, False
    pts["early"] = pts["step"] < cut * pts.groupby("run")["step"].transform("max")  # the fit's cut, as it made it
    for name, idx in pts.groupby("group").indices.items():
        f = cf.fits[name]
        g = curves.GroupData(pts.iloc[idx], [terms[i] for i in idx], f.n_ref, f.lr_unit, "A_N" in f.params)
        pts.loc[idx, "pred"] = curves.predict(f.form, f.params, g.design())
        if f.fitted_on != "all points":  # the fit held out branches among the points past its cut
            late = idx[~pts["early"].to_numpy()[idx]]
            pts.loc[late, "held_out"] = curves.held_out_branches(pts.loc[late])
        pts.loc[idx, "unseen"] = ~g.pts["run"].isin(f.runs).to_numpy() if f.runs else False
    pts["rel"] = 100 * (pts["loss"] / pts["pred"] - 1)
    sizes = pts.groupby(["run", "budget"]).size().rename("n").reset_index().sort_values(["n", "budget"])
    trunk = sizes.groupby("run")["budget"].last()  # a run's trunk: its schedule with the most points
    pts["trunk"] = pts["budget"].to_numpy() == trunk.reindex(pts["run"]).to_numpy()
    return CurvePanels(pts, _lines(cf, pts, schedules, cut), cf, cut)


def _store_schedules(paths: list[str]):
    """run, budgets -> {budget: (lr per step, warmup)} from each run file's recorded config."""
    from scalelab import store

    cfg = store.read_runs(paths, columns=["config"], ok_only=True).groupby("run_id")["config"].first()
    return lambda run, budgets: (curves.run_schedules(run, str(cfg[run]), budgets), max(budgets))


def _csv_points(ctx: Context, cf: curves.CurvesFile):
    """A CSV-fitted law's points rebuilt as `fit --curves` built them (its recorded schedule, branch and
    column options), from the CSV tables given to plot (else the fit's recorded inputs), and the schedules
    along which to draw it (None with --lr-col: the law is then drawn through the points only)."""
    from scalelab.fit import curves_csv as cc

    st = cf.settings
    from pathlib import Path

    paths = [Path(s.path) for s in ctx.inputs.sources if s.kind == "table"]
    paths = paths or [Path(i["path"]) for i in cf.inputs if os.path.isfile(str(i.get("path", "")))]
    if not paths:
        raise Skip(f"{cf.path} was fitted on a CSV: give that CSV ({', '.join(str(i.get('path')) for i in cf.inputs)})")
    cols = cc.Columns(
        n=st.get("n_col") or "N", loss=st.get("loss_col") or "loss", run=st.get("run_col"),
        step=st.get("step_col") or "step", tokens=st.get("d_col") or "D", lr=st.get("lr_col"),
        by=(st["group_col"],) if st.get("group_col") else (),
    )  # fmt: skip
    sched = cc.parse_schedule(st["schedule"]) if st.get("schedule") else None
    branch = cc.parse_branch_col(st.get("branch_col"))
    pts, terms = cc.csv_curves(paths, cols, sched, branch)
    if sched is None:
        ctx.note("lr from the CSV's lr column: the law drawn through the points only")
        return pts, terms, None
    rows = cc.read_rows(paths, cols, sched, branch)  # the trunk's last step: its schedule's length (as fitted)
    trunk_rows = rows[rows["branch"] == cc.TRUNK]
    total = trunk_rows.groupby("run")["step"].max().combine_first(rows.groupby("run")["step"].max())

    def schedules(run, budgets):
        t = int(total[run])
        return {b: (sched.lr(t, None if b == t else b), sched.warmup_for(t)) for b in budgets}, t

    return pts, terms, schedules


def _lines(cf: curves.CurvesFile, pts: pd.DataFrame, schedules, cut: float) -> pd.DataFrame:
    """The law along each run's trunk (from the cut to its end) and each branch's cooldown; without the
    schedules, through the points of each (run, budget)."""
    rows = []
    for run, p in pts.groupby("run", sort=True):
        f = cf.fits[str(p["group"].iloc[0])]
        N, budgets = float(p["N"].iloc[0]), sorted(int(b) for b in p["budget"].unique())
        if schedules is None:
            rows += [dict(group=f.name, run=str(run), N=N, budget=int(r.budget), step=int(r.step), pred=float(r.pred))
                     for r in p.sort_values("step").itertuples()]  # fmt: skip
            continue
        sched, trunk = schedules(str(run), budgets)
        for b in budgets:
            lr, warmup = sched[b]
            n = len(lr)
            if b == trunk:
                steps = np.unique(np.geomspace(max(1, cut * n), n, TRUNK_STEPS).round().astype(int))
            elif n < cut * p["step"].max():
                continue  # a branch ending before the fit's cut: its point is drawn grey, not fitted
            else:  # a branch is drawn from its first lr drop after warmup (its cooldown) to its end
                drops = np.flatnonzero(lr[warmup + 1 :] < lr[warmup:-1] * (1 - 1e-9))
                start = warmup + 1 + int(drops[0]) if drops.size else n
                steps = np.unique(np.linspace(max(1, start - 1), n, BRANCH_STEPS).round().astype(int))
            pred = f.predict(N * 1.0, lr, steps, warmup)
            rows += [dict(group=f.name, run=str(run), N=N, budget=b, step=int(s), pred=float(y))
                     for s, y in zip(steps, pred)]  # fmt: skip
    return pd.DataFrame(rows)


def size_shade(pts: pd.DataFrame) -> dict:
    """Per run its size rank in [0, 1] within its group (1: the largest), for lighter-is-smaller shading."""
    out = {}
    for _, p in pts.groupby("group"):
        sizes = np.unique(p["N"].to_numpy(float))
        for run, n in p.groupby("run")["N"].first().items():
            out[run] = float(np.searchsorted(sizes, n) / max(len(sizes) - 1, 1))
    return out
