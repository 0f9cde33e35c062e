"""The figures. Each takes a Context and returns a matplotlib Figure, or raises Skip(reason)
when its inputs cannot support it (no fit, one variant, no throughput column): a note, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from scalelab.errors import ScalelabError
from scalelab.fit import laws as fit_laws
from scalelab.fit.results import FitResults
from scalelab.plot import laws, style
from scalelab.plot.inputs import FIT_RUNS_SOURCE, Inputs


class Skip(Exception):
    """The inputs cannot support this figure; the message says why (goes to index.md and stdout)."""


@dataclass
class Context:
    inputs: Inputs
    width: str = "double"
    style: str = "paper"
    colors: dict = field(default_factory=dict)
    markers: dict = field(default_factory=dict)
    linestyles: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)  # per-figure remarks, reset by the driver
    _alloc_cache: dict = field(default_factory=dict)  # (c_min, c_max, n) -> planner sweep or its refusal
    _planner: object = None  # scalelab.plan.Planner on the fit, built by the first allocation
    allocation_source: str = ""

    @property
    def fit(self) -> Optional[FitResults]:
        return self.inputs.fit

    def variant_of(self, group: str) -> str:
        return self.fit.groups[group].variant

    @property
    def runs(self):
        return self.inputs.runs

    def note(self, msg: str) -> None:
        if msg not in self.notes:
            self.notes.append(msg)

    def single(self) -> bool:
        return self.width == "single"

    def ok_runs(self):
        """Rows of runs that did not diverge."""
        r = self.runs
        if r is None:
            return None
        if "status" in r.columns:
            bad = r.loc[r["status"].astype(str) != "ok", "run_id"].unique()
            if len(bad):
                self.note(f"{len(bad)} diverged/failed run(s) left out")
            r = r[~r["run_id"].isin(bad)]
        return r

    def groups(self, forms=None, fitted: bool = True) -> list[str]:
        """Fit groups (optionally of the given forms), in legend order. With `fitted`, only groups whose law
        has its parameters: each group left out for the lack of them gets a note saying why."""
        if self.fit is None:
            return []
        gs = []
        for g in self.fit:
            why = law_missing(g)
            if fitted and why:
                self.note(f"group {g.name} left out: {why}")
            elif forms is None or g.form in forms:
                gs.append(g.name)
        order = {v: i for i, v in enumerate(style.sort_variants(self.variant_of(g) for g in gs))}
        return sorted(gs, key=lambda g: (order[self.variant_of(g)], g))


# ---------------------------------------------------------------------------------------------- helpers

NOT_FITTED = "loss law not fitted"  # the fit's warning on a group whose loss law was refused


def law_missing(grp) -> Optional[str]:
    """Why a fit group has no law to draw (None: it has one): its parameters missing, empty or not finite,
    as in a group whose loss law was refused (the fit's warning "loss law not fitted: REASON" says why)."""
    if grp.form in fit_laws.FORMS:
        need = fit_laws.FORMS[grp.form].params
    elif grp.form == "allocation":
        need = fit_laws.ALLOCATION
    else:
        need = None
    p = grp.params if isinstance(grp.params, dict) else {}
    if need is not None and all(_finite(p.get(k)) for k in need):
        return None
    said = next((str(w) for w in grp.warnings or [] if NOT_FITTED in str(w)), None)
    if said:
        return said[said.index(NOT_FITTED) :]
    why = (grp.extra.get("loss_law") or {}).get("why") if isinstance(grp.extra, dict) else None
    if why:
        return f"{NOT_FITTED}: {why}"
    return f"no fitted parameters of its {grp.form} law"


def _finite(v) -> bool:
    try:
        return bool(np.isfinite(float(v)))
    except (TypeError, ValueError):
        return False


def variant_handle(ctx: Context, v: str):
    """A group's legend entry: its colour, marker and line style."""
    from matplotlib.lines import Line2D

    ls = ctx.linestyles.get(v, "-")
    return Line2D(
        [],
        [],
        color=ctx.colors[v],
        marker=ctx.markers[v],
        ls=ls,
        lw=1.0,
        markersize=4,
        label=style.literal(v),
        gid=f"variant:{v}",
    )


def _panel_grid(n: int, single: bool) -> tuple[int, int]:
    ncols = min(n, 2 if single else 3)
    return (n + ncols - 1) // ncols, ncols


def _c_span(ctx: Context, groups: list[str]) -> tuple[float, float]:
    lo = [ctx.fit.groups[g].range.get("C", [np.nan, np.nan])[0] for g in groups]
    hi = [ctx.fit.groups[g].range.get("C", [np.nan, np.nan])[1] for g in groups]
    lo, hi = np.nanmin(np.asarray(lo, float)), np.nanmax(np.asarray(hi, float))
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise Skip("the fit file gives no FLOPs range (range.C) for its groups")
    return float(lo), float(hi)


def allocation(ctx: Context, group: str, c_min: float, c_max: float, n: int = 60):
    """Compute-optimal N, D, L over budgets for one chinchilla group, with bootstrap bands (NaN without
    samples): the planner's sweep (scalelab.plan.sweep, real FLOPs per token), one Planner per figure set.
    Columns as the sweep's: C, N_opt, N_lo, N_hi, D_opt, D_lo, D_hi, L_opt, L_lo, L_hi, extrapolated.
    Raises Skip with the planner's reason when it cannot plan from this fit.
    """
    from scalelab.plan import Planner, sweep

    key = (c_min, c_max, n)
    if key not in ctx._alloc_cache:
        try:
            if ctx._planner is None:  # one Planner on the fit for every figure
                # groups without a law (e.g. loss law not fitted) are not the planner's to allocate
                ok = [g.name for g in ctx.fit if law_missing(g) is None]
                some = ok if len(ok) < len(ctx.fit.groups) else None
                ctx._planner = Planner(ctx.fit, variants=some, require_samples=False)
            ctx._alloc_cache[key] = sweep(ctx._planner, c_min, c_max, n)
        except ScalelabError as e:
            ctx._alloc_cache[key] = e
        except (KeyError, ValueError, TypeError) as e:  # a fit the planner was not written for: skip, say why
            ctx._alloc_cache[key] = ScalelabError(f"{type(e).__name__}: {e}")
    planned = ctx._alloc_cache[key]
    if isinstance(planned, ScalelabError):
        raise Skip(f"the planner cannot allocate from this fit: {planned}")
    ctx.allocation_source = "scalelab.plan.sweep (the planner, real FLOPs per token)"
    a = planned[planned["variant"].astype(str) == ctx.variant_of(group)].sort_values("C").reset_index(drop=True)
    a["extrapolated"] = a["extrapolated"].astype(bool) | _outside(ctx, group, a)
    return a


def _outside(ctx: Context, group: str, a) -> np.ndarray:
    """Budgets where the allocation leaves the data: C, N_opt or D_opt outside the fitted runs' range
    (the planner itself flags only C > 10x the largest run). Drawn dashed."""
    rng = ctx.fit.groups[group].range
    out = np.zeros(len(a), bool)
    for col, key in (("C", "C"), ("N_opt", "N"), ("D_opt", "D")):
        r = rng.get(key)
        if r and len(r) == 2:
            x = a[col].to_numpy(float)
            out |= (x > r[1] * 1.02) | (x < r[0] / 1.02)
    return out


def _draws(g, names=None):
    """A group's bootstrap samples of `names` (default its form's), or None when it has none."""
    d = g.sample_arrays(names)
    return d if len(next(iter(d.values()))) else None


def frontier(ctx: Context, group: str, C: np.ndarray):
    """L*(C) for a group: compute-optimal loss (chinchilla) or the fitted frontier. (point, lo, hi)."""
    g = ctx.fit.groups[group]
    if g.form == "chinchilla":
        a = allocation(ctx, group, float(C.min()), float(C.max()), len(C))
        return (
            a["C"].to_numpy(),
            a["L_opt"].to_numpy(),
            a["L_lo"].to_numpy(),
            a["L_hi"].to_numpy(),
            a["extrapolated"].to_numpy(bool),
        )
    if g.form == "frontier":
        draws = _draws(g)
        lo = hi = np.full_like(C, np.nan)
        if draws is not None:
            lo, hi = laws.band(fit_laws.predict("frontier", draws, C=C), ctx.fit.level)
        rng = g.range.get("C") or [C.min(), C.max()]
        return C, g.predict(C=C), lo, hi, (C > rng[1] * 1.02) | (C < rng[0] / 1.02)
    return None


def _split_extrapolated(ax, x, y, lo, hi, extrap, color, gid=None, lw=None, band_alpha=0.15, ls="-", marker=None):
    """The group's line style (`ls`, solid by default) inside the fitted range, dashed and lighter outside
    (style.EXTRAPOLATION); band shaded throughout; `marker` every few points of the inside part."""
    extrap = np.asarray(extrap, bool)
    if np.isfinite(lo).any():
        ax.fill_between(x, lo, hi, color=color, alpha=band_alpha, lw=0, zorder=1)
    inside = ~extrap
    # Let the two pieces touch: extend the inside mask by one point on each side.
    grow = inside.copy()
    grow[1:] |= inside[:-1]
    grow[:-1] |= inside[1:]
    for mask, line, alpha in ((grow, ls, 1.0), (extrap, style.EXTRAPOLATION, 0.6)):
        if mask.any():
            yy = np.where(mask, y, np.nan)
            kw = {}
            if marker:  # every sixth of the curve, on whichever piece holds it
                every = np.arange(len(x))[:: max(len(x) // 6, 1)]
                idx = [int(i) for i in every if (inside[i] if line is ls else extrap[i])]
                kw = dict(marker=marker, markevery=idx, markersize=3.5) if idx else {}
            ax.plot(x, yy, ls=line, color=color, lw=lw, zorder=3, gid=gid, alpha=alpha, **kw)


def _legend_extras(band_label: str, with_extrap: bool = True):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    h = [Line2D([], [], color="0.3", lw=1.2, label="fitted law"), Patch(facecolor="0.3", alpha=0.25, label=band_label)]
    if with_extrap:
        h.append(Line2D([], [], color="0.3", lw=1.2, ls=style.EXTRAPOLATION, alpha=0.6, label="extrapolation"))
    return h


def _band_label(ctx: Context) -> str:
    return f"{ctx.fit.level:.0%} bootstrap band" if ctx.fit else "band"


def _finish_legend(fig, handles):
    style.figure_legend(fig, handles, [h.get_label() for h in handles])


# ---------------------------------------------------------------------------------------------- 1


def loss_vs_flops(ctx: Context):
    """Every run's validation curve against training FLOPs, final points, fitted frontier L*(C)."""
    runs = ctx.ok_runs()
    if runs is None:
        runs = _runs_from_points(ctx)
    if runs is None:
        raise Skip("needs run files (runs/*.parquet) or a table of points for the training curves")
    lcol = _fit_loss_column(ctx)
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
    fig, axs = style.new_figure(ctx.width, 0.85 if ctx.single() else 0.5)
    ax = axs[0, 0]
    variants = style.sort_variants(runs["variant"])
    for v in variants:
        rv = runs[runs["variant"] == v]
        sizes = sorted(rv["params"].unique())
        for rid, r in rv.groupby("run_id", sort=True):
            t = sizes.index(r["params"].iloc[0]) / max(len(sizes) - 1, 1)
            c = style.shade(ctx.colors[v], t)
            for x, y in _curves(r, all_rows[all_rows["run_id"] == rid], ccol):
                ax.plot(x, y, color=c, lw=0.5, alpha=0.9, zorder=2)
            fin = r[r["final"]]
            ax.scatter(
                fin[ccol],
                fin["val_loss"],
                marker=ctx.markers[v],
                s=14,
                facecolor=c,
                edgecolor=ctx.colors[v],
                linewidths=0.5,
                zorder=4,
            )
    finals = runs[runs["final"]]
    ref = finals if len(finals) else runs
    lo_y, hi_y = float(ref["val_loss"].min()), float(ref["val_loss"].max())
    span = max(hi_y - lo_y, 0.05 * hi_y)
    ylim = (lo_y - 0.25 * span, hi_y + 0.6 * span)
    visible = runs[runs["val_loss"] <= ylim[1]]
    xlim = (float(visible[ccol].min()) / 1.5, float(visible[ccol].max()) * 1.5)

    handles = [variant_handle(ctx, v) for v in variants]
    drawn = False
    if ctx.fit is not None:
        for g in ctx.groups(("chinchilla", "frontier")):
            v = ctx.variant_of(g)
            # from a little below the group's fitted FLOPs range: further left is early-checkpoint land
            c0 = ctx.fit.groups[g].range.get("C", [xlim[0]])[0] / 3
            C = np.logspace(np.log10(max(xlim[0], c0)), np.log10(xlim[1]), 80)
            try:
                fr = frontier(ctx, g, C)
            except Skip as e:  # the planner refused: the curves still stand, without this L*(C)
                ctx.note(f"{v}: no L*(C) drawn: {e}")
                continue
            if fr is None:
                continue
            x, y, lo, hi, extrap = fr
            _split_extrapolated(
                ax, x, y, lo, hi, extrap, ctx.colors[v], gid=f"variant:{v}", lw=1.3, ls=ctx.linestyles.get(v, "-")
            )
            drawn = True
            if v not in variants:
                handles.append(variant_handle(ctx, v))
        if not drawn:
            ctx.note("no chinchilla or frontier group in the fit: no L*(C) drawn")
    else:
        ctx.note("no fit given: curves and final points only (add --fit for L*(C))")
    if drawn:
        handles += _legend_extras(_band_label(ctx))
        if ctx.allocation_source:
            ctx.note(f"L*(C) of L(N, D) fits: compute-optimal loss from {ctx.allocation_source}")
    ax.set_ylim(*ylim)
    ax.set_xlim(*xlim)
    style.log_axis(ax, "x")
    style.ensure_decade_labels(ax, "x")
    tc = ctx.inputs.table_columns if ctx.fit is None and ctx.runs is None else None
    if tc is not None:  # a CSV without a fit: its own columns name the axes
        ax.set_xlabel(f"training compute C ({style.literal(tc.c)})" if tc.c else "training compute C = 6ND (FLOPs)")
        ax.set_ylabel(laws.loss_label(tc.loss))
    else:
        ax.set_xlabel(c_label(ctx))
        ax.set_ylabel(laws.loss_label(lcol))
    from matplotlib.lines import Line2D

    handles.append(
        Line2D(
            [],
            [],
            color="0.55",
            lw=0.6,
            marker="o",
            markersize=3,
            markerfacecolor="0.8",
            markeredgecolor="0.3",
            label="runs (lighter = smaller), final points",
        )
    )
    _finish_legend(fig, handles)
    return fig


def c_label(ctx: Context) -> str:
    """The FLOPs axis label in the fit's convention; a table's own FLOPs column by its name."""
    if ctx.fit is None:
        return laws.convention_label("flops")
    raw = ctx.fit.meta.get("flop_convention") or (ctx.fit.columns or {}).get("flops")
    if raw and str(raw) not in ("flops", "flops_6nd") and str(raw).upper() != "6ND":
        return f"training compute C (FLOPs, column {style.literal(raw)})"
    return laws.convention_label(ctx.fit.convention)


def _fit_loss_column(ctx: Context) -> str:
    if ctx.fit is None:
        return "val_loss"
    spec = ctx.fit.spec
    return (spec.loss_col if spec is not None else ctx.fit.columns.get("loss")) or "val_loss"


def _runs_from_points(ctx: Context):
    """Run-store-like rows from a table of points (CSV input): each run's points as its curve, its
    largest-D point as its final point. None without points."""
    pts = ctx.inputs.points
    if pts is None or not len(pts) or not np.isfinite(pts["C"].to_numpy(float)).any():
        return None
    if ctx.inputs.points_source == FIT_RUNS_SOURCE:  # one point per run: no curves to draw
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


def _curves(r, rows, ccol: str):
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
    cooldown = _cooldown_fraction(r)
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


def _cooldown_fraction(r) -> float:
    """The run's cooldown share of each budget, from its config JSON (0 when unknown)."""
    import json

    if "config" not in r.columns:
        return 0.0
    try:
        c = float(json.loads(r["config"].iloc[0])["train"]["cooldown"])
    except (ValueError, KeyError, TypeError):
        return 0.0
    return c if 0 < c < 1 else 0.0


# ---------------------------------------------------------------------------------------------- 2


def _final_points(ctx: Context):
    """(points, source, by): every fitted point per fit group (inputs.points: group, variant, N, D, C,
    loss, run), else, without a fit, the run files' final rows per variant."""
    pts = ctx.inputs.points
    if pts is not None and len(pts):
        for n in ctx.inputs.points_notes:
            ctx.note(n)
        return pts, ctx.inputs.points_source, "group"
    runs = ctx.ok_runs()
    if runs is not None:
        f = runs[runs["final"] & runs["val_loss"].notna()].copy()
        if len(f):
            f["loss"] = f["val_loss"]
            f["group"] = f["variant"]
            f["N"] = f["params"]
            return f, "run files' final rows", "variant"
    raise Skip("needs points: run files with `final` rows, a CSV table, or a fit file listing its runs")


def loss_label(ctx: Context) -> str:
    """The loss axis label, from the loss column the fit read (run files without a fit: val_loss)."""
    col = None
    if ctx.fit is not None:
        spec = ctx.fit.spec
        col = spec.loss_col if spec is not None else ctx.fit.columns.get("loss")
    if col is None and ctx.runs is None and ctx.inputs.table_columns is not None:
        col = ctx.inputs.table_columns.loss
    return laws.loss_label(col or ("val_loss" if ctx.runs is not None else "loss"))


def _loss_label_of(ctx: Context, lcol: str) -> str:
    return laws.loss_label(lcol)


def use_log_loss(spans) -> bool:
    """A log loss axis when any panel's values span more than a factor of 2 (LOG_LOSS_SPAN)."""
    return any(hi > LOG_LOSS_SPAN * lo for lo, hi in spans if lo > 0)


LOG_LOSS_SPAN = 2.0


def _loss_limits(lo: float, hi: float, log: bool, pad: float = 0.08) -> tuple[float, float]:
    if log:
        r = (hi / lo) ** pad if hi > lo else 1.05
        return lo / r, hi * r
    d = (hi - lo) * pad or 0.05 * hi
    return lo - d, hi + d


@dataclass
class Slices:
    """How final points split into slices: fixed tokens per parameter (D = r N', with N' the
    parameter count the grid's budgets were set in) or IsoFLOP (C fixed)."""

    kind: str  # ratio | iso
    rcol: str  # ratio: the parameter column of the budget rule
    values: list  # slice values (ratio r or budget C), ascending
    labels: list
    index: object  # pd.Series: slice number of each point (-1: none)


def _slices(pts, ncol: str) -> Slices:
    """One slicing for all variants (one shared legend), chosen to match how the grid was built."""
    import pandas as pd

    for col in dict.fromkeys([ncol, "params_nonembed", "params"]):
        if col in pts.columns and pts[col].notna().all():
            vals, idx = _cluster((pts["tokens"] / pts[col]).to_numpy(float))
            if len(vals) <= 6:
                what = "D/N" + (" (non-embedding)" if col == "params_nonembed" and ncol != col else "")
                return Slices("ratio", col, vals, [f"{what} = {x:.2g}" for x in vals], pd.Series(idx, index=pts.index))
    if "flops" in pts.columns:
        vals, idx = _cluster(pts["flops"].to_numpy(float))
        if len(vals) <= 6:
            return Slices("iso", ncol, vals, [f"C = {x:.1e} FLOPs" for x in vals], pd.Series(idx, index=pts.index))
        by = pts.groupby("group")["flops"] if "group" in pts.columns else [(None, pts["flops"])]
        if all(_looks_isoflop(c.to_numpy(float)) for _, c in by):  # each group's budgets: an IsoFLOP design
            return _iso_slices(pts.assign(C=pts["flops"]))
    # Neither: at most 4 log-spaced bins of the tokens-per-parameter ratio.
    lr = np.log(pts["tokens"] / pts[ncol])
    edges = np.quantile(lr, np.linspace(0, 1, 5))
    idx = np.clip(np.searchsorted(edges, lr, side="right") - 1, 0, 3)
    vals, labels, index = [], [], np.full(len(pts), -1)
    for i in sorted(set(idx)):
        m = idx == i
        vals.append(float(np.exp(lr[m].mean())))
        labels.append(f"D/N ~ {vals[-1]:.2g}")
        index[m] = len(vals) - 1
    return Slices("ratio", ncol, vals, labels, pd.Series(index, index=pts.index))


def _looks_isoflop(c: np.ndarray) -> bool:
    """Budgets of an IsoFLOP design: few distinct values (within 5%), several points each, and apart from
    one another (at least 15%), unlike the spread of budgets of training curves."""
    vals, idx = _cluster(c, tol=1.05)
    if len(vals) > 40 or len(c) < 3 * len(vals):
        return False
    v = np.sort(np.asarray(vals))
    return bool(np.all(v[1:] / v[:-1] >= 1.15))


def _cluster(x: np.ndarray, tol: float = 1.1):
    """Group values within `tol` (ratio) of their neighbour: budgets rounded to whole batches differ by
    a few percent across sizes. Returns (cluster centres (geometric means), cluster index per value)."""
    order = np.argsort(x)
    idx = np.empty(len(x), int)
    k, start = 0, None
    for i in order:
        if start is not None and x[i] > start * tol:
            k += 1
            start = x[i]
        start = x[i] if start is None else start
        idx[i] = k
    centres = [float(np.exp(np.log(x[idx == j]).mean())) for j in range(k + 1)]
    return centres, idx


def loss_vs_params(ctx: Context):
    """Loss vs parameters at fixed token budgets (or IsoFLOP slices), one panel per fit group (per variant
    without a fit), every fitted point, the law solid over each slice's points and dashed beyond; each
    panel's own y range (the data's), a log loss axis when a panel's loss spans more than 2x."""
    from matplotlib.lines import Line2D

    pts, src, by = _final_points(ctx)
    law_groups = set(ctx.groups(("chinchilla", "frontier"))) if ctx.fit is not None else set()
    if by == "group" and ctx.fit is not None:
        panels = [g for g in ctx.groups(fitted=False) if g in set(pts["group"])]
    else:
        panels = style.sort_variants(pts["group"])
    if not panels:
        raise Skip("no fitted points for the fit's groups")
    variant = {p: (ctx.variant_of(p) if by == "group" and ctx.fit is not None else p) for p in panels}
    nrows, ncols = _panel_grid(len(panels), ctx.single())
    aspect = (1.0 if ctx.single() else 0.42) * nrows
    if ncols == 1 and not ctx.single():
        aspect = 0.5
    fig, axs = style.new_figure(ctx.width, aspect, nrows, ncols)
    ncol_all = "N"
    iso_fit = ctx.fit is not None and _optima_approach(ctx) == 2  # IsoFLOP slices are what approach 2 fitted
    sl = _iso_slices(pts) if iso_fit else _slices(pts, ncol_all)
    nsl = len(sl.values)
    optimum_drawn = False
    spans = [(float(pts[pts["group"] == p]["loss"].min()), float(pts[pts["group"] == p]["loss"].max())) for p in panels]
    log = use_log_loss(spans)
    law_drawn = extrap_drawn = False
    for i, (panel, (ylo, yhi)) in enumerate(zip(panels, spans)):
        ax = axs[i // ncols, i % ncols]
        pv = pts[pts["group"] == panel]
        v = variant[panel]
        g = panel if panel in law_groups else None
        nmin, nmax = float(pv[ncol_all].min()), float(pv[ncol_all].max())
        Ngrid = np.logspace(np.log10(nmin / 1.3), np.log10(nmax * 1.3), 60)
        for j, val in enumerate(sl.values):
            p = pv[sl.index[pv.index] == j]
            if p.empty:
                continue
            c = style.shade(ctx.colors[v], 0.25 + 0.75 * j / max(nsl - 1, 1), lightest=0.7)
            ax.scatter(
                p[ncol_all], p["loss"], marker=ctx.markers[v], s=12, facecolor=c, edgecolor=ctx.colors[v],
                linewidths=0.5, zorder=4, gid=f"points:{panel}",
            )  # fmt: skip
            if sl.kind == "iso" and g is None and len(p) > 1:  # an IsoFLOP slice reads as a curve
                ps = p.sort_values(ncol_all)
                ax.plot(ps[ncol_all], ps["loss"], color=c, lw=0.6, alpha=0.8, zorder=2)
            if iso_fit and panel in ctx.fit.groups:
                optimum_drawn |= _slice_optimum(ctx, ax, panel, p, val, c)
            if g is None:
                continue
            # D along the slice as a function of the plotted N
            if sl.kind == "ratio":
                D = val * _param_map(pv, ncol_all, sl.rcol)(Ngrid)
            else:
                D = val / (laws.flops_per_param_token(ctx.fit, g) * Ngrid)
            curve = _law_along(ctx, g, Ngrid, D)
            if curve is None:
                continue
            y, lo, hi = curve
            inside = (Ngrid >= float(p[ncol_all].min()) / 1.02) & (Ngrid <= float(p[ncol_all].max()) * 1.02)
            if np.isfinite(lo).any():
                ax.fill_between(Ngrid, np.where(inside, lo, np.nan), np.where(inside, hi, np.nan), color=c,
                                alpha=0.15, lw=0, zorder=1)  # fmt: skip
            _split_extrapolated(ax, Ngrid, y, lo * np.nan, hi * np.nan, ~inside, c, gid=f"law:{panel}")
            law_drawn = True
            extrap_drawn |= bool((~inside).any())
        ax.set_title(style.literal(panel) + ("" if g or ctx.fit is None else _no_law_title(ctx, panel)), color="black")
        style.log_axis(ax, "x")
        ax.set_xlim(Ngrid[0], Ngrid[-1])
        style.ensure_decade_labels(ax, "x")
        # the panel's own range: its points decide it, the law beyond them is clipped, never stretches it
        if log:
            style.log_axis(ax, "y")
        ax.set_ylim(*_loss_limits(ylo, yhi, log))
        if log:
            style.ensure_decade_labels(ax, "y")
        ax.set_xlabel("parameters N" + (" (non-embedding)" if _n_is_nonembed(ctx) else ""))
        ax.set_ylabel(loss_label(ctx) + (" (log scale)" if log else ""))
    spare = [axs[j // ncols, j % ncols] for j in range(len(panels), nrows * ncols)]
    for ax in spare:
        ax.axis("off")  # the first spare panel holds the legend; the rest stay blank
    if ctx.fit is None:
        ctx.note("no fit given: points only, no law overlaid")
    handles = [variant_handle(ctx, v) for v in dict.fromkeys(variant.values())]
    if nsl <= MAX_SLICE_LABELS:
        for j, label in enumerate(sl.labels):
            grey = style.shade("#000000", 0.25 + 0.75 * j / max(nsl - 1, 1), lightest=0.7)
            handles.append(Line2D([], [], color=grey, ls="", marker="o", markersize=3, label=label))
    else:  # one entry for the whole ramp
        what = "IsoFLOP slices" if sl.kind == "iso" else "D/N slices"
        handles.append(Line2D([], [], color="0.4", ls="", marker="o", markersize=3,
                              label=f"{nsl} {what}, {sl.labels[0]} to {sl.labels[-1]} (darker = larger)"))  # fmt: skip
    if optimum_drawn:
        handles.append(
            Line2D(
                [],
                [],
                ls="",
                marker="*",
                markersize=7,
                color="0.6",
                mec="black",
                mew=0.5,
                label="slice minimum N_opt (the fit's, on the points' line)",
            )  # fmt: skip
        )
    if law_drawn:
        from matplotlib.patches import Patch

        handles.append(Line2D([], [], color="0.3", lw=1.0, label="law over the slice's points"))
        if extrap_drawn:
            handles.append(
                Line2D([], [], color="0.3", lw=1.0, ls=style.EXTRAPOLATION, alpha=0.6, label="law beyond them")
            )
        handles.append(Patch(facecolor="0.3", alpha=0.25, label=_band_label(ctx)))
    if spare:
        spare[0].legend(handles, [h.get_label() for h in handles], loc="center", frameon=True)
    else:
        _finish_legend(fig, handles)
    kind = "fixed tokens-per-parameter budgets" if sl.kind == "ratio" else "IsoFLOP slices"
    ctx.note(
        f"{len(pts)} points from {src}, in {kind}" + ("; lines: the fitted law along each slice" if law_drawn else "")
    )
    if optimum_drawn:
        ctx.note("stars: each IsoFLOP slice's minimum N_opt as the fit found it, placed on the line through the points")
    return fig


MAX_SLICE_LABELS = 6  # more slices: one legend entry for the shade ramp


def _no_law_title(ctx: Context, panel: str) -> str:
    grp = ctx.fit.groups.get(panel)
    if grp is not None and grp.form == "allocation":
        return ""
    return " (no L(N, D) law)"


def _optima_approach(ctx: Context):
    """1 or 2 when the fit is an approach-1/2 allocation fit, else None."""
    if not any(g.form == "allocation" for g in ctx.fit):
        return None
    spec = ctx.fit.spec
    a = spec.approach if spec is not None else ctx.fit.meta.get("approach")
    return a if a in (1, 2) else None


def _iso_slices(pts) -> Slices:
    """IsoFLOP slices: points grouped by budget C (within 10% of a neighbour), any number of them."""
    import pandas as pd

    vals, idx = _cluster(pts["C"].to_numpy(float))
    return Slices("iso", "N", vals, [f"C = {x:.1e}" for x in vals], pd.Series(idx, index=pts.index))


def _slice_optimum(ctx: Context, ax, group: str, p, c_val: float, color) -> bool:
    """Star the fit's minimum N_opt of the slice at budget c_val (diagnostics.optima), at the loss of the
    line through the slice's points there. False when the fit recorded none for this slice."""
    o = _optima(ctx, group)
    if o is None or len(p) < 2:
        return False
    hit = o[np.abs(np.log(o["C"].to_numpy(float) / c_val)) < np.log(1.1)]
    if hit.empty:
        return False
    n_opt = float(hit["N_opt"].iloc[0])
    ps = p.sort_values("N")
    y = float(np.interp(np.log(n_opt), np.log(ps["N"].to_numpy(float)), ps["loss"].to_numpy(float)))
    ax.plot([n_opt], [y], ls="", marker="*", ms=7, color=color, mec="black", mew=0.5, zorder=5, gid=f"optimum:{group}")
    return True


def _n_is_nonembed(ctx: Context) -> bool:
    return ctx.fit is not None and any(g.n_column == "params_nonembed" for g in ctx.fit)


def _param_map(pv, xcol: str, ycol: str):
    """N' as a function of N within one variant (log-log line through its runs), for D = r N'."""
    if xcol == ycol:
        return lambda n: n
    x, y = np.log(pv[xcol].to_numpy(float)), np.log(pv[ycol].to_numpy(float))
    if np.ptp(x) == 0:
        return lambda n: n * float(np.exp(y.mean() - x.mean()))
    slope, icpt = np.polyfit(x, y, 1)
    return lambda n: np.exp(icpt + slope * np.log(n))


def _law_along(ctx: Context, g: str, N: np.ndarray, D: np.ndarray):
    """The fitted law along a slice, (point, lo, hi); None for forms without an (N, D) reading."""
    grp = ctx.fit.groups[g]
    if grp.form == "chinchilla":
        at = dict(N=N, D=D)
    elif grp.form == "frontier":
        at = dict(C=laws.flops_per_param_token(ctx.fit, g) * N * D)
    else:
        return None
    lo = hi = np.full_like(N, np.nan)
    draws = _draws(grp)
    if draws is not None:  # (S, len(N)): every sample along the slice
        lo, hi = laws.band(fit_laws.predict(grp.form, draws, **at), ctx.fit.level)
    return grp.predict(**at), lo, hi


# ---------------------------------------------------------------------------------------------- 3


def compute_optimal(ctx: Context):
    """N_opt(C) and D_opt(C) per variant with bands; data range shaded; extrapolation dashed. For
    approach-1/2 (allocation) fits the fitted power laws, and as points the optima they were fitted to."""
    if ctx.fit is None:
        raise Skip("needs a fit (--fit fits/NAME.json)")
    groups = ctx.groups(("chinchilla", "allocation"))
    if not groups:
        raise Skip(
            "no L(N, D) (chinchilla-form) or approach-1/2 allocation group in the fit: N_opt and D_opt are not "
            "identified (e.g. one tokens-per-parameter ratio per group)"
        )
    c_lo, c_hi = _c_span(ctx, groups)
    c_min, c_max = c_lo / 3, c_hi * 1e3
    has_optima = False
    single = ctx.single()
    fig, axs = style.new_figure(ctx.width, 1.45 if single else 0.45, 2 if single else 1, 1 if single else 2)
    axN, axD = axs.flat
    for ax in (axN, axD):
        ax.axvspan(c_lo, c_hi, color="0.85", alpha=0.6, lw=0, zorder=0)
    for g in groups:
        v = ctx.variant_of(g)
        a = allocation(ctx, g, c_min, c_max)
        x = a["C"].to_numpy()
        for ax, q in ((axN, "N"), (axD, "D")):
            _split_extrapolated(
                ax,
                x,
                a[f"{q}_opt"].to_numpy(),
                a[f"{q}_lo"].to_numpy(),
                a[f"{q}_hi"].to_numpy(),
                a["extrapolated"].to_numpy(),
                ctx.colors[v],
                gid=f"variant:{v}",
                lw=1.3,
                ls=ctx.linestyles.get(v, "-"),
                marker=ctx.markers[v],
            )
        optima = _optima(ctx, g)
        if optima is not None:
            for ax, q in ((axN, "N_opt"), (axD, "D_opt")):
                ax.scatter(optima["C"], optima[q], marker=ctx.markers[v], s=14, facecolor="white",
                           edgecolor=ctx.colors[v], linewidths=0.8, zorder=4, gid=f"optima:{v}")  # fmt: skip
            has_optima = True
    for ax, lab in ((axN, r"compute-optimal parameters $N_{\rm opt}$"), (axD, r"compute-optimal tokens $D_{\rm opt}$")):
        style.log_axis(ax, "x")
        style.log_axis(ax, "y")
        ax.set_xlim(c_min, c_max)
        style.ensure_decade_labels(ax, "y")
        ax.set_xlabel(c_label(ctx))
        ax.set_ylabel(lab)
    from matplotlib.patches import Patch

    handles = [variant_handle(ctx, ctx.variant_of(g)) for g in groups]
    handles += _legend_extras(_band_label(ctx))
    handles.append(Patch(facecolor="0.85", alpha=0.6, label="range of fitted runs"))
    if has_optima:
        from matplotlib.lines import Line2D

        what = _optima_label(ctx)
        handles.append(Line2D([], [], ls="", marker="o", markerfacecolor="white", markeredgecolor="0.3", label=what))
        ctx.note(f"points: {what}, to which N_opt = kN C^a and D_opt = kD C^b were fitted")
    _finish_legend(fig, handles)
    ctx.note(f"allocation from {ctx.allocation_source}")
    return fig


def _optima(ctx: Context, group: str):
    """The (C, N_opt, D_opt) an approach-1/2 fit recorded for a group (diagnostics.optima), else None."""
    import pandas as pd

    o = (ctx.fit.groups[group].diagnostics or {}).get("optima")
    if not isinstance(o, dict):
        return None
    try:
        df = pd.DataFrame({k: np.asarray(o[k], float) for k in ("C", "N_opt", "D_opt")})
    except (KeyError, TypeError, ValueError):
        return None
    df = df[np.isfinite(df).all(axis=1) & (df > 0).all(axis=1)]
    return df if len(df) else None


def _optima_label(ctx: Context) -> str:
    approach = (ctx.fit.spec.approach if ctx.fit.spec is not None else None) or ctx.fit.meta.get("approach")
    if approach == 1:
        return "envelope optima (approach 1)"
    if approach == 2:
        return "IsoFLOP slice minima (approach 2)"
    return "optima the allocation was fitted to"


# ---------------------------------------------------------------------------------------------- 4


def _estimate(ctx: Context, g: str, name: str):
    """(estimate, lo, hi) of alpha, beta or a (N_opt ~ C^a: beta/(alpha+beta) of an L(N, D) law, fitted
    directly by approaches 1 and 2) for a group; None where the group's law has no such exponent."""
    grp = ctx.fit.groups[g]
    p = grp.params or {}
    if name in ("alpha", "beta"):
        if not _finite(p.get(name)):
            return None
        est = float(p[name])
        ci = grp.conf_int.get(name)
    elif grp.form == "allocation":
        if not _finite(p.get("a")):
            return None
        est = float(p["a"])
        ci = grp.conf_int.get("a") or grp.derived_conf_int.get("a")
    else:
        if not (_finite(p.get("alpha")) and _finite(p.get("beta"))):
            return None
        al, be = float(p["alpha"]), float(p["beta"])
        est = float(grp.derived.get("a", be / (al + be)))
        ci = grp.derived_conf_int.get("a")
    if ci is None:
        names = ("a",) if grp.form == "allocation" else ("alpha", "beta")
        draws = _draws(grp, names) if all(n in grp.form_params for n in names) else None
        if draws is not None:
            x = draws[name] if name in draws else draws["beta"] / (draws["alpha"] + draws["beta"])
            ci = laws.band(x[:, None], ctx.fit.level)
            ci = (float(ci[0][0]), float(ci[1][0]))
    lo, hi = (float(ci[0]), float(ci[1])) if ci is not None and None not in ci[:2] else (np.nan, np.nan)
    return est, lo, hi


PARAM_LABELS = {"alpha": r"$\alpha$ (params)", "beta": r"$\beta$ (tokens)", "a": r"$a=\beta/(\alpha+\beta)$"}
A_ALLOCATION_LABEL = r"$a$ ($N_{\rm opt}\propto C^a$)"  # the same exponent, fitted directly (approaches 1, 2)


def _differences(ctx: Context, groups: list[str]):
    """Differences (variant - dense) from the fit's comparisons, oriented by the point estimates."""
    dense = [g for g in groups if ctx.variant_of(g) == "dense"]
    out = {}
    if not dense:
        return out
    d = dense[0]
    for comp in ctx.fit.comparisons:
        a, b = comp.get("a"), comp.get("b")
        if d not in (a, b) or a not in ctx.fit.groups or b not in ctx.fit.groups:
            continue
        other = b if a == d else a
        rows = {}
        for name in ("alpha", "beta", "a"):
            val = comp.get(f"d_{name}")
            if not val or len(val) < 3:
                continue
            est, lo, hi = (float(x) for x in val[:3])
            # Orient as (other - dense): the sign the point estimates imply.
            eo, ed = _estimate(ctx, other, name), _estimate(ctx, d, name)
            if eo is None or ed is None:
                continue
            want = eo[0] - ed[0]
            if abs(-est - want) < abs(est - want):
                est, lo, hi = -est, -hi, -lo
            rows[name] = (est, lo, hi)
        if rows:
            out[ctx.variant_of(other)] = rows
    return out


def _interval(ax, est, lo, hi, y, color, marker, gid, horizontal=True):
    """A point estimate with its interval drawn as a bar from lo to hi: a percentile bootstrap interval
    need not contain the point estimate, so the bar is not drawn as +/- errors around it."""
    if np.isfinite(lo) and np.isfinite(hi):
        seg = ([lo, hi], [y, y]) if horizontal else ([y, y], [lo, hi])
        ax.plot(*seg, color=color, lw=1.0, zorder=2, gid=gid, solid_capstyle="butt")
        cap = "|" if horizontal else "_"
        ax.plot(
            *(([lo, hi], [y, y]) if horizontal else ([y, y], [lo, hi])), ls="", marker=cap, ms=4, color=color, zorder=2
        )
    if np.isfinite(est):
        xy = ([est], [y]) if horizontal else ([y], [est])
        ax.plot(*xy, ls="", marker=marker, ms=4, color=color, zorder=3, gid=gid)


def _multipliers(ctx: Context) -> list:
    """The fit's compute multipliers per comparison (docs/interfaces.md "Fit file", comparisons[].multiplier):
    [(b group, a group, rows)], rows as recorded: {C, est, lo, hi, extrapolated, frac_unreachable}."""
    out = []
    for comp in ctx.fit.comparisons:
        rows = comp.get("multiplier")
        a, b = comp.get("a"), comp.get("b")
        if isinstance(rows, list) and rows and a in ctx.fit.groups and b in ctx.fit.groups:
            out.append((b, a, [r for r in rows if isinstance(r, dict) and r.get("C")]))
    return [m for m in out if m[2]]


def _multiplier_panel(ctx: Context, ax, mults: list) -> None:
    """Multiplier of each variant vs its reference at each recorded budget, with its interval; 1 = parity.
    Hollow: extrapolated budget; a triangle at the top: the variant never reaches the reference's loss."""
    budgets = sorted({float(r["C"]) for _, _, rows in mults for r in rows})
    nb = len(mults)
    unreachable, open_top, finite = [], [], [1.0]
    for i, (b, a, rows) in enumerate(mults):
        v = ctx.variant_of(b)
        for r in rows:
            C = float(r["C"])
            x = C * 10 ** ((i - (nb - 1) / 2) * 0.06)  # side by side at each budget (log x)
            est, lo, hi = (np.nan if r.get(k) is None else float(r[k]) for k in ("est", "lo", "hi"))
            if not np.isfinite(est):
                unreachable.append(f"{v} at {C:.1e}")
                continue
            finite += [y for y in (est, lo, hi) if np.isfinite(y) and y > 0]
            if not np.isfinite(hi):  # "never" inside the interval: drawn up to the top edge, arrow-headed
                open_top.append((x, lo, ctx.colors[v]))
                hi = np.nan
            _interval(ax, est, lo, hi, x, ctx.colors[v], ctx.markers[v], f"variant:{v}", horizontal=False)
            if r.get("extrapolated"):
                ax.plot([x], [est], ls="", marker=ctx.markers[v], ms=4, mfc="white", mec=ctx.colors[v], zorder=4)
    ax.axhline(1.0, color="0.3", lw=0.8, zorder=1)
    style.log_axis(ax, "x")
    style.log_axis(ax, "y")
    ax.set_xlim(budgets[0] / 3, budgets[-1] * 3)
    top = max(finite) * 2
    ax.set_ylim(min(finite) / 2, top)
    for x, lo, color in open_top:
        ax.plot([x, x], [lo if np.isfinite(lo) else top, top], color=color, lw=1.0, zorder=3)
        ax.plot([x], [top], marker="^", color=color, ms=4, clip_on=False, zorder=4)
    if open_top:
        ctx.note("an arrow at the top: the interval reaches 'never' (some resamples never reach the loss)")
    style.ensure_decade_labels(ax, "x")
    style.ensure_decade_labels(ax, "y")
    refs = sorted({ctx.variant_of(a) for _, a, _ in mults})
    ax.set_xlabel("budget " + c_label(ctx).replace("training compute ", ""))
    ax.set_ylabel(f"compute multiplier vs {style.literal(', '.join(refs))}\n(< 1: reaches its loss with less)")
    if unreachable:
        ctx.note(f"never reaches the reference's loss (no multiplier): {', '.join(unreachable)}")
    if any(r.get("extrapolated") for _, _, rows in mults for r in rows):
        ctx.note("multipliers at budgets outside the fitted FLOPs range drawn hollow (extrapolated)")


def exponents(ctx: Context):
    """Forest plot of alpha, beta, a per variant; differences against dense when compared; the compute
    multiplier of each variant vs its reference at each budget where the fit records them."""
    if ctx.fit is None:
        raise Skip("needs a fit (--fit fits/NAME.json)")
    groups = ctx.groups(("chinchilla", "allocation"))
    mults = _multipliers(ctx)
    forest_ok = len({ctx.variant_of(g) for g in groups}) >= 2
    if not forest_ok and not mults:
        only = ", ".join(ctx.variant_of(g) for g in groups) or "none"
        raise Skip(
            f"a forest plot compares variants; the fit has fewer than two L(N, D) or allocation variants ({only}) "
            "and no compute multipliers: read the exponents from `scalelab fit`'s table"
        )
    if not mults:
        ctx.note("no compute multipliers in the fit's comparisons (refit with a scalelab that records them)")
    diffs = _differences(ctx, groups) if forest_ok else {}
    names = [n for n in ("alpha", "beta", "a") if any(_estimate(ctx, g, n) is not None for g in groups)] or ["a"]
    labels = dict(PARAM_LABELS)
    if groups and all(ctx.fit.groups[g].form == "allocation" for g in groups):
        labels["a"] = A_ALLOCATION_LABEL
        ctx.note("approach-1/2 fits estimate the allocation exponent a only (no alpha, beta)")
    variants = [ctx.variant_of(g) for g in groups] if forest_ok else []
    nv = max(len(variants), 1)
    kinds = (["forest"] if forest_ok else []) + (["diff"] if diffs else []) + (["mult"] if mults else [])
    npan = len(kinds)
    single = ctx.single()
    rows_h = max(0.3 + 0.085 * nv * max(len(names), 3), 1.6 if "mult" in kinds else 0)
    fig, axs = style.new_figure(
        ctx.width,
        (rows_h * npan) / 3.5 if single else rows_h / 7 * 1.6 * (1 if npan < 3 else 0.8),
        npan if single else 1,
        1 if single else npan,
    )
    panel = dict(zip(kinds, axs.flat))
    step = 0.8 / max(nv, 1)

    def forest(ax, est_of, vs, xlabel):
        for pi, name in enumerate(names):
            for vi, v in enumerate(vs):
                e = est_of(v, name)
                if e is None:
                    continue
                est, lo, hi = e
                y = pi + (vi - (len(vs) - 1) / 2) * step
                _interval(ax, est, lo, hi, y, ctx.colors[v], ctx.markers[v], f"variant:{v}")
        ax.set_yticks(range(len(names)), [labels[n] for n in names])
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("exponent")
        ax.grid(axis="y", visible=False)
        for k in range(len(names) - 1):
            ax.axhline(k + 0.5, color="0.85", lw=0.5, zorder=0)

    by_v = dict(zip(variants, groups))
    if forest_ok:
        forest(
            panel["forest"],
            lambda v, n: _estimate(ctx, by_v[v], n),
            variants,
            f"estimate ({ctx.fit.level:.0%} bootstrap interval)",
        )
    if diffs:
        ax2 = panel["diff"]
        dv = [v for v in variants if v in diffs]
        forest(ax2, lambda v, n: diffs[v].get(n), dv, "difference vs dense (variant - dense)")
        ax2.axvline(0, color="0.3", lw=0.8, zorder=1)
    elif forest_ok and any(ctx.fit.groups[g].extra.get("shared_exponents") for g in groups):
        ctx.note(
            "exponents shared by a joint fit (--share-exponents): their differences are 0 by construction, not drawn"
        )
    elif forest_ok:
        ctx.note("no comparison against dense in the fit: differences not drawn")
    if mults:
        _multiplier_panel(ctx, panel["mult"], mults)
    shown = list(dict.fromkeys(variants + [ctx.variant_of(x) for m in mults for x in m[:2]]))
    _finish_legend(fig, [variant_handle(ctx, v) for v in style.sort_variants(shown)])
    return fig


# ---------------------------------------------------------------------------------------------- 5


def _predict(form: str, p: dict, N, D, C):
    """Point prediction of a fitted form (scalelab.fit.laws); None for a form without one (allocation)."""
    try:
        return fit_laws.predict(form, p, N=N, D=D, C=C)
    except (KeyError, ValueError):
        return None


def _group_points(ctx: Context, g: str, runs):
    """A group's (N, D, C, loss) points: every fitted point (inputs.points: read through the fit's columns
    from the data files, else the fit file's runs list, one point per run)."""
    pts = ctx.inputs.points
    if pts is None:
        return None
    p = pts[pts["group"] == g]
    if p.empty:
        return None
    return p[["N", "D", "C", "loss", "run"]].rename(columns={"run": "run_id"}).reset_index(drop=True)


def diagnostics(ctx: Context):
    """Observed vs predicted loss, and relative residual vs size. Held-out points (the fit's
    `--holdout largest` check) drawn hollow at the prediction of the refit that did not see them."""
    import pandas as pd

    if ctx.fit is None:
        raise Skip("needs a fit (--fit fits/NAME.json)")
    frames = []
    for n in ctx.inputs.points_notes:
        ctx.note(n)
    groups = ctx.groups()
    if not groups:
        raise Skip("no group of the fit has a loss law to compare the points with (the notes say why)")
    if all(ctx.fit.groups[g].form == "allocation" for g in groups):
        raise Skip(
            "an approach-1/2 fit is an allocation N_opt(C), D_opt(C), not a loss law: no predicted loss to compare "
            "with the points (fit with --approach 3 for these diagnostics)"
        )
    for g in groups:
        grp = ctx.fit.groups[g]
        pts = _group_points(ctx, g, None)
        if pts is None or pts.empty:
            ctx.note(f"group {g}: no points to compare with")
            continue
        pred = _predict(grp.form, grp.params, pts["N"].to_numpy(), pts["D"].to_numpy(), pts["C"].to_numpy())
        if pred is None:
            ctx.note(f"group {g}: form {grp.form!r} has no point predictor here")
            continue
        pts = pts.assign(pred=pred, variant=grp.variant, held_out=False)
        frames.append(pts)
        h = grp.extra.get("holdout")
        if isinstance(h, dict) and h.get("params") and h.get("value") is not None:
            what = str(h.get("rule", "largest N")).split()[-1]
            col = {"N": "N", "D": "D", "C": "C"}.get(what, "N")
            held = pts[pts[col] >= float(h["value"]) * (1 - 1e-6)]
            hp = _predict(grp.form, h["params"], held["N"].to_numpy(), held["D"].to_numpy(), held["C"].to_numpy())
            if len(held) and hp is not None:
                frames.append(held.assign(pred=hp, held_out=True))
                err = h.get("mean_rel_error")
                ctx.note(
                    f"{g}: {len(held)} held-out point(s) ({h.get('rule')}) predicted by the refit without them"
                    + (f", mean |rel err| {100 * err:.2f}%" if err is not None else "")
                )
    if not frames:
        raise Skip("no fitted points to compare with (give the run files, or a fit file listing its runs)")
    d = pd.concat(frames, ignore_index=True)
    d["rel"] = 100 * (d["loss"] - d["pred"]) / d["pred"]
    single = ctx.single()
    fig, axs = style.new_figure(ctx.width, 1.6 if single else 0.42, 2 if single else 1, 1 if single else 2)
    ax1, ax2 = axs.flat
    lim = [min(d["loss"].min(), d["pred"].min()), max(d["loss"].max(), d["pred"].max())]
    log = use_log_loss([lim])
    lim = _loss_limits(lim[0], lim[1], log, pad=0.06)
    ax1.plot(lim, lim, color="0.5", lw=0.8, ls="--", zorder=1)
    ax2.axhline(0, color="0.5", lw=0.8, ls="--", zorder=1)
    variants = style.sort_variants(d["variant"])
    dense_cloud = len(d) > 200  # many points: smaller, translucent markers so that groups stay visible
    for v in variants:
        dv = d[d["variant"] == v]
        for held, sub in dv.groupby("held_out"):
            kw = dict(
                marker=ctx.markers[v],
                s=(14 if dense_cloud else 24) if held else (5 if dense_cloud else 14),
                alpha=0.6 if dense_cloud and not held else 1.0,
                linewidths=0.9 if held else 0.4,
                edgecolor=ctx.colors[v],
                facecolor="white" if held else ctx.colors[v],
                zorder=4 if held else 3,
                gid=f"{'held' if held else 'fitted'}:{v}",
            )
            ax1.scatter(sub["pred"], sub["loss"], **kw)
            ax2.scatter(sub["N"], sub["rel"], **kw)
    if log:
        style.log_axis(ax1, "x")
        style.log_axis(ax1, "y")
    ax1.set_xlim(*lim)
    ax1.set_ylim(*lim)
    if log:
        style.ensure_decade_labels(ax1, "x")
        style.ensure_decade_labels(ax1, "y")
    ax1.set_aspect("equal", adjustable="box")
    label = loss_label(ctx)
    ax1.set_xlabel(f"predicted {label}" + (" (log scale)" if log else ""))
    ax1.set_ylabel(f"observed {label}" + (" (log scale)" if log else ""))
    style.log_axis(ax2, "x")
    style.ensure_decade_labels(ax2, "x")
    ax2.set_xlabel("parameters N")
    ax2.set_ylabel("relative residual (obs - pred) / pred (%)")
    from matplotlib.lines import Line2D

    handles = [variant_handle(ctx, v) for v in variants]
    n_fit = int((~d["held_out"]).sum())
    handles.append(Line2D([], [], ls="", marker="o", color="0.3", markersize=4, label=f"fitted points ({n_fit})"))
    if d["held_out"].any():
        handles.append(
            Line2D(
                [],
                [],
                ls="",
                marker="o",
                markerfacecolor="white",
                markeredgecolor="0.3",
                markersize=4.5,
                label="held out (refit without them)",
            )
        )
    else:
        ctx.note("no held-out check in the fit (refit with `scalelab fit --holdout largest` to draw one)")
    _finish_legend(fig, handles)
    return fig


# ---------------------------------------------------------------------------------------------- 6


def throughput(ctx: Context):
    """Training tokens/s (and MFU where known) per variant against width."""
    import pandas as pd

    if ctx.inputs.bench is not None:
        t = ctx.inputs.bench.copy()
        src = "bench files"
    else:
        runs = ctx.ok_runs()
        if runs is None:
            raise Skip("needs run files or bench/*.json files for throughput")
        need = [c for c in ("tokens_per_s", "d_model") if c not in runs.columns]
        if need:
            raise Skip(f"the run files lack column {need[0]!r}")
        r = runs[runs["tokens_per_s"].notna() & (runs["tokens_per_s"] > 0)]
        if r.empty:
            raise Skip("the run files record no throughput (tokens_per_s)")
        mfu = r["mfu"] if "mfu" in r.columns else pd.Series(np.nan, index=r.index)
        r = r.assign(mfu=mfu)
        t = (
            r.groupby(["run_id"])
            .agg(
                variant=("variant", "first"),
                d_model=("d_model", "first"),
                tokens_per_s=("tokens_per_s", "median"),
                mfu=("mfu", "median"),
            )
            .reset_index()
        )
        src = "run files (median over each run's evaluations)"
        if "device" in runs.columns and runs["device"].nunique() > 1:
            ctx.note(
                f"runs from {runs['device'].nunique()} devices pooled: "
                f"{', '.join(map(str, runs['device'].unique()[:4]))}"
            )
    has_mfu = t["mfu"].notna().any() and (t["mfu"] > 0).any()
    single = ctx.single()
    npan = 2 if has_mfu else 1
    fig, axs = style.new_figure(
        ctx.width,
        (1.4 if single else 0.42) if has_mfu else (0.8 if single else 0.45),
        npan if single else 1,
        1 if single else npan,
    )
    variants = style.sort_variants(t["variant"])
    widths = sorted(t["d_model"].unique())
    panels = [("tokens_per_s", "training throughput (tokens/s)", 1.0)]
    if has_mfu:
        panels.append(("mfu", "model FLOPs utilisation, MFU (%)", 100.0))
    else:
        ctx.note("no MFU recorded: tokens/s only")
    for ax, (col, label, scale) in zip(axs.flat, panels):
        for v in variants:
            s = t[(t["variant"] == v) & t[col].notna()].groupby("d_model")[col].agg(["median", "min", "max"])
            if s.empty:
                continue
            x = s.index.to_numpy(float)
            y = s["median"].to_numpy() * scale
            err = [y - s["min"].to_numpy() * scale, s["max"].to_numpy() * scale - y]
            ax.errorbar(
                x, y, yerr=err, color=ctx.colors[v], marker=ctx.markers[v], ms=4, lw=1.0, capsize=2, gid=f"variant:{v}"
            )
        ax.set_xscale("log", base=2)
        from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

        ax.xaxis.set_major_locator(FixedLocator(widths))
        ax.xaxis.set_major_formatter(lambda x, _: f"{x:g}")
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        if len(widths) == 1:
            ax.set_xlim(widths[0] / 1.5, widths[0] * 1.5)
        ax.set_xlabel("width d_model")
        ax.set_ylabel(label)
        if col == "tokens_per_s":
            style.log_axis(ax, "y")
            style.ensure_decade_labels(ax, "y")
    _finish_legend(fig, [variant_handle(ctx, v) for v in variants])
    ctx.note(f"from {src}; bars: min to max over runs of one width")
    return fig


def lr_transfer(ctx: Context):
    """Loss against peak learning rate, one curve per width, one panel per variant (rows: sp, mup when both
    are present): the muTransfer plot. Each width's optimum (fit/hyper.py: parabola in log lr) is starred."""
    from types import SimpleNamespace

    from matplotlib import colormaps

    from scalelab.fit import hyper

    curves, src = [], ""
    runs = ctx.ok_runs()
    if runs is not None and "final" in runs.columns:
        fin = runs[runs["final"].astype(bool)]
        loss = _fit_loss_column(ctx)
        loss = loss if loss in fin.columns else "val_loss"
        spec = SimpleNamespace(
            n_col="params", d_col="tokens", c_col="flops", run_col="run_id", by=("variant",), loss_col=loss, seed=0
        )
        if not fin.empty and "lr" in hyper.swept(fin, spec):
            curves = hyper.sweep_curves(fin, spec)
            width = dict(zip(fin["params"].astype(float), fin["d_model"])) if "d_model" in fin.columns else {}
            for c in curves:
                c["d_model"] = width.get(c["N"])
            src = "run files"
    if not curves and ctx.fit is not None:
        for g in ctx.fit:
            for p in ((g.extra.get("hyper") or {}).get("lr") or {}).get("per_size", []):
                curves.append({**p, "group": g.name, "d_model": None})
        src = "the fit's lr law (per-size sweeps)"
    if not curves:
        raise Skip("no learning-rate sweep in the inputs (a grid's [sweep] lr = [...]): nothing to draw")
    groups = list(dict.fromkeys(c["group"] for c in curves))
    base = {g: g.replace("+mup", "") for g in groups}
    params = [p for p in ("sp", "mup") if any(("+mup" in g) == (p == "mup") for g in groups)]
    cols = style.sort_variants(dict.fromkeys(base.values()))
    fig, axs = style.new_figure(ctx.width, 0.36 * len(params) * (2 if ctx.single() else 1), len(params), len(cols))

    def key(c):  # one colour per width across panels (variants at one width differ in N)
        return c.get("d_model") or c["N"]

    sizes = sorted({key(c) for c in curves})
    cmap = colormaps["viridis"]
    color = {n: cmap(0.85 * i / max(len(sizes) - 1, 1)) for i, n in enumerate(sizes)}
    swept = sorted({x for c in curves for x in c["lrs"]})
    for ax in axs.flat:
        ax.set_visible(False)
    for g in groups:
        r = params.index("mup" if "+mup" in g else "sp")
        ax = axs[r, cols.index(base[g])]
        ax.set_visible(True)
        mine = [c for c in curves if c["group"] == g]
        several_d = len({(c["N"], c.get("D")) for c in mine}) > len({c["N"] for c in mine})
        for c in sorted(mine, key=lambda c: (c["N"], c.get("D") or 0)):
            lab = f"d {c['d_model']}" if c.get("d_model") else f"N {c['N']:.3g}"
            if several_d and c.get("D"):  # one curve per (size, tokens): say which
                lab += f", D {c['D']:.2g}"
            ax.plot(c["lrs"], c["losses"], "-o", color=color[key(c)], ms=3, lw=1.0, label=lab, gid=f"{g}:{c['N']:g}")
            ax.plot(
                [c["lr_opt"]], [min(c["losses"])], marker="*", ms=9, color=color[key(c)], mec="black", mew=0.5, ls=""
            )
        _clip_divergent(ctx, ax, [y for c in mine for y in c["losses"]])
        title = style.literal(g)
        law = ctx.fit[g].extra.get("hyper", {}).get("lr") if ctx.fit is not None and g in ctx.fit.groups else None
        if law:
            ci = (law.get("conf_int") or {}).get("exp")
            title += f": lr_opt ~ N^{law['exp']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
        ax.set_title(title, fontsize="small")
        ax.set_xscale("log")
        from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

        if len(swept) <= 8:  # the swept values as the ticks
            ax.xaxis.set_major_locator(FixedLocator(swept))
            ax.xaxis.set_major_formatter(lambda x, _: f"{x:.2g}")
            ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("peak learning rate")
        ax.set_ylabel(loss_label(ctx))
        ax.legend(fontsize="x-small", frameon=False)
    edge = sorted({c["group"] for c in curves if c["at_edge"]})
    if edge:
        ctx.note(f"optimum at the edge of the sweep for some width of: {', '.join(edge)} (widen the sweep)")
    per_d = len({(c["group"], c["N"], c.get("D")) for c in curves}) > len({(c["group"], c["N"]) for c in curves})
    what = "one curve per size and token budget" if per_d else "each width's loss at its largest budget"
    ctx.note(f"from {src}; {what}; stars: the optimum (parabola in log lr)")
    return fig


def _clip_divergent(ctx: Context, ax, losses) -> None:
    """Keep a panel's y range on the basin: losses of diverged learning rates (far above the others) would
    flatten every curve into a line; they are clipped off the top, with a note."""
    y = np.asarray([v for v in losses if v is not None and np.isfinite(v)], float)
    if len(y) < 4:
        return
    lo, q = float(y.min()), float(np.quantile(y, 0.75))
    top = max(lo + 3.0 * (q - lo), 1.3 * lo)  # 30% above the best loss at least: a basin, not a divergence
    if q > lo and y.max() > top:
        ax.set_ylim(lo - 0.1 * (top - lo), top)
        ctx.note(f"{int((y > top).sum())} loss(es) far above the rest (diverged rates) clipped off the top")


FIGURES = [
    (
        "fig1_loss_vs_flops",
        loss_vs_flops,
        "Validation loss against training FLOPs: every run's curve (lighter = smaller model), final points "
        "as markers, each variant's fitted compute frontier L*(C) with its bootstrap band (for L(N, D) fits the "
        "law's compute-optimal loss, dashed where C, N_opt or D_opt leave the fitted runs' range).",
    ),
    (
        "fig2_loss_vs_params",
        loss_vs_params,
        "Final loss against parameters at fixed tokens-per-parameter budgets (or IsoFLOP slices), one panel "
        "per variant, with the fitted law overlaid along each slice.",
    ),
    (
        "fig3_compute_optimal",
        compute_optimal,
        "Compute-optimal N_opt(C) and D_opt(C) per variant with bootstrap bands; the fitted runs' FLOPs "
        "range shaded, dashed where C, N_opt or D_opt leave the fitted runs' range (extrapolation).",
    ),
    (
        "fig4_exponents",
        exponents,
        "Forest plot of alpha, beta and a = beta/(alpha+beta) per variant with bootstrap intervals, and the "
        "differences against dense where the fit compared them.",
    ),
    (
        "fig5_fit_diagnostics",
        diagnostics,
        "Fit diagnostics: observed vs predicted loss and relative residual vs size; held-out points (the "
        "fit's `--holdout largest` check) hollow, at the prediction of the refit that did not see them.",
    ),
    (
        "fig6_throughput",
        throughput,
        "Training throughput (tokens/s, and MFU where recorded) per variant against width.",
    ),
    (
        "fig7_lr_transfer",
        lr_transfer,
        "Loss against peak learning rate, one curve per width, one panel per variant (and per parametrisation, "
        "sp / mup): the muTransfer plot. Stars: each width's optimum; titles: the fitted lr_opt = c N^k exponent.",
    ),
]
