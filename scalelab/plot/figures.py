"""The six figures. Each takes a Context and returns a matplotlib Figure, or raises Skip(reason)
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
from scalelab.plot.inputs import Inputs

LOSS_LABEL = "validation loss (nats/token)"


class Skip(Exception):
    """The inputs cannot support this figure; the message says why (goes to index.md and stdout)."""


@dataclass
class Context:
    inputs: Inputs
    width: str = "double"
    style: str = "paper"
    colors: dict = field(default_factory=dict)
    markers: dict = field(default_factory=dict)
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

    def groups(self, forms=None) -> list[str]:
        """Fit groups (optionally of the given forms), in legend order."""
        if self.fit is None:
            return []
        gs = [g.name for g in self.fit if forms is None or g.form in forms]
        order = {v: i for i, v in enumerate(style.sort_variants(self.variant_of(g) for g in gs))}
        return sorted(gs, key=lambda g: (order[self.variant_of(g)], g))


# ---------------------------------------------------------------------------------------------- helpers


def variant_handle(ctx: Context, v: str):
    from matplotlib.lines import Line2D

    return Line2D([], [], color=ctx.colors[v], marker=ctx.markers[v], lw=1.0, markersize=4, label=v, gid=f"variant:{v}")


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
                ctx._planner = Planner(ctx.fit, require_samples=False)
            ctx._alloc_cache[key] = sweep(ctx._planner, c_min, c_max, n)
        except ScalelabError as e:
            ctx._alloc_cache[key] = e
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


def _split_extrapolated(ax, x, y, lo, hi, extrap, color, gid=None, lw=None, band_alpha=0.15):
    """Solid inside the fitted range, dashed outside; band shaded throughout."""
    extrap = np.asarray(extrap, bool)
    if np.isfinite(lo).any():
        ax.fill_between(x, lo, hi, color=color, alpha=band_alpha, lw=0, zorder=1)
    inside = ~extrap
    # Let the two pieces touch: extend the inside mask by one point on each side.
    grow = inside.copy()
    grow[1:] |= inside[:-1]
    grow[:-1] |= inside[1:]
    for mask, ls in ((grow, "-"), (extrap, "--")):
        if mask.any():
            yy = np.where(mask, y, np.nan)
            ax.plot(x, yy, ls=ls, color=color, lw=lw, zorder=3, gid=gid)


def _legend_extras(band_label: str, with_extrap: bool = True):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    h = [Line2D([], [], color="0.3", lw=1.2, label="fitted law"), Patch(facecolor="0.3", alpha=0.25, label=band_label)]
    if with_extrap:
        h.append(Line2D([], [], color="0.3", lw=1.2, ls="--", label="extrapolation"))
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
        raise Skip("needs run files (runs/*.parquet) for the training curves")
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
            _split_extrapolated(ax, x, y, lo, hi, extrap, ctx.colors[v], gid=f"variant:{v}", lw=1.3)
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
    ax.set_xlabel(laws.convention_label(ctx.fit.convention if ctx.fit else "flops"))
    ax.set_ylabel(LOSS_LABEL)
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
    """Final (N, D, C, loss) points per variant: run-store finals, else the fit file's runs."""
    import pandas as pd

    runs = ctx.ok_runs()
    if runs is not None:
        f = runs[runs["final"] & runs["val_loss"].notna()].copy()
        if len(f):
            f["loss"] = f["val_loss"]
            return f, "run files"
    if ctx.fit is not None:
        frames = []
        for g in ctx.fit:
            r = pd.DataFrame(g.runs)
            if len(r):
                r["variant"] = g.variant
                frames.append(r)
        if frames:
            return pd.concat(frames, ignore_index=True), "fit file runs"
    raise Skip("needs final points: run files with `final` rows, or a fit file listing its runs")


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
    """Loss vs parameters at fixed token budgets (or IsoFLOP slices), fitted law overlaid."""
    from matplotlib.lines import Line2D

    pts, src = _final_points(ctx)
    variants = style.sort_variants(pts["variant"])
    nrows, ncols = _panel_grid(len(variants), ctx.single())
    aspect = (0.8 if ctx.single() else 0.42) * nrows
    if ncols == 1 and not ctx.single():
        aspect = 0.5
    fig, axs = style.new_figure(ctx.width, aspect, nrows, ncols, sharey=True)
    group_of = {}
    if ctx.fit is not None:
        for g in ctx.groups(("chinchilla", "frontier")):
            group_of.setdefault(ctx.variant_of(g), g)
    ncol_all = ctx.fit.groups[next(iter(group_of.values()))].n_column if group_of else "params"
    if ncol_all not in pts.columns:
        ncol_all = "params"
    sl = _slices(pts, ncol_all)
    nsl = len(sl.values)
    law_drawn = False
    for i, v in enumerate(variants):
        ax = axs[i // ncols, i % ncols]
        pv = pts[pts["variant"] == v]
        g = group_of.get(v)
        nmin, nmax = float(pv[ncol_all].min()), float(pv[ncol_all].max())
        Ngrid = np.logspace(np.log10(nmin / 1.3), np.log10(nmax * 1.3), 50)
        for j, (label, val) in enumerate(zip(sl.labels, sl.values)):
            p = pv[sl.index[pv.index] == j]
            if p.empty:
                continue
            t = j / max(nsl - 1, 1)
            c = style.shade(ctx.colors[v], 0.25 + 0.75 * t, lightest=0.7)
            ls = style.LINESTYLES[j % len(style.LINESTYLES)]
            ax.scatter(
                p[ncol_all],
                p["loss"],
                marker=ctx.markers[v],
                s=16,
                facecolor=c,
                edgecolor=ctx.colors[v],
                linewidths=0.5,
                zorder=4,
            )
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
            if np.isfinite(lo).any():
                ax.fill_between(Ngrid, lo, hi, color=c, alpha=0.12, lw=0, zorder=1)
            ax.plot(Ngrid, y, color=c, ls=ls, lw=1.0, zorder=3)
            law_drawn = True
        ax.set_title(v + ("" if g else " (no fit)"), color="black")
        style.log_axis(ax, "x")
        ax.set_xlim(Ngrid[0], Ngrid[-1])
        style.ensure_decade_labels(ax, "x")
        ax.set_xlabel("parameters N" + (" (non-embedding)" if ncol_all == "params_nonembed" else ""))
        ax.set_ylabel(LOSS_LABEL)
        ax.tick_params(labelleft=True)
    spare = [axs[j // ncols, j % ncols] for j in range(len(variants), nrows * ncols)]
    for ax in spare:
        ax.axis("off")  # the first spare panel holds the legend; the rest stay blank
    if ctx.fit is None:
        ctx.note("no fit given: points only, no law overlaid")
    handles = [variant_handle(ctx, v) for v in variants]
    for j, label in enumerate(sl.labels):
        grey = style.shade("#000000", 0.25 + 0.75 * j / max(nsl - 1, 1), lightest=0.7)
        handles.append(
            Line2D(
                [],
                [],
                color=grey,
                ls=style.LINESTYLES[j % len(style.LINESTYLES)],
                lw=1.0,
                marker="o",
                markersize=3,
                label=label,
            )
        )
    if law_drawn:
        from matplotlib.patches import Patch

        handles.append(Patch(facecolor="0.3", alpha=0.25, label=_band_label(ctx)))
    if spare:
        spare[0].legend(handles, [h.get_label() for h in handles], loc="center", frameon=True)
    else:
        _finish_legend(fig, handles)
    kind = "fixed tokens-per-parameter budgets" if sl.kind == "ratio" else "IsoFLOP slices"
    ctx.note(f"points from the {src}, in {kind}; lines: the fitted law along each slice")
    return fig


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
    """N_opt(C) and D_opt(C) per variant with bands; data range shaded; extrapolation dashed."""
    if ctx.fit is None:
        raise Skip("needs a fit (--fit fits/NAME.json)")
    groups = ctx.groups(("chinchilla",))
    if not groups:
        raise Skip(
            "no L(N, D) (chinchilla-form) group in the fit: N_opt and D_opt are not identified "
            "(e.g. one tokens-per-parameter ratio per group)"
        )
    c_lo, c_hi = _c_span(ctx, groups)
    c_min, c_max = c_lo / 3, c_hi * 1e3
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
            )
    for ax, lab in ((axN, r"compute-optimal parameters $N_{\rm opt}$"), (axD, r"compute-optimal tokens $D_{\rm opt}$")):
        style.log_axis(ax, "x")
        style.log_axis(ax, "y")
        ax.set_xlim(c_min, c_max)
        style.ensure_decade_labels(ax, "y")
        ax.set_xlabel(laws.convention_label(ctx.fit.convention))
        ax.set_ylabel(lab)
    from matplotlib.patches import Patch

    handles = [variant_handle(ctx, ctx.variant_of(g)) for g in groups]
    handles += _legend_extras(_band_label(ctx))
    handles.append(Patch(facecolor="0.85", alpha=0.6, label="range of fitted runs"))
    _finish_legend(fig, handles)
    ctx.note(f"allocation from {ctx.allocation_source}")
    return fig


# ---------------------------------------------------------------------------------------------- 4


def _estimate(ctx: Context, g: str, name: str):
    """(estimate, lo, hi) of alpha, beta or a = beta/(alpha+beta) for a group."""
    grp = ctx.fit.groups[g]
    if name in ("alpha", "beta"):
        est = float(grp.params[name])
        ci = grp.conf_int.get(name)
    else:
        al, be = float(grp.params["alpha"]), float(grp.params["beta"])
        est = float(grp.derived.get("a", be / (al + be)))
        ci = grp.derived_conf_int.get("a")
    if ci is None:
        draws = _draws(grp, ("alpha", "beta"))
        if draws is not None:
            x = draws[name] if name != "a" else draws["beta"] / (draws["alpha"] + draws["beta"])
            ci = laws.band(x[:, None], ctx.fit.level)
            ci = (float(ci[0][0]), float(ci[1][0]))
    lo, hi = (float(ci[0]), float(ci[1])) if ci is not None else (np.nan, np.nan)
    return est, lo, hi


PARAM_LABELS = {"alpha": r"$\alpha$ (params)", "beta": r"$\beta$ (tokens)", "a": r"$a=\beta/(\alpha+\beta)$"}


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
            want = _estimate(ctx, other, name)[0] - _estimate(ctx, d, name)[0]
            if abs(-est - want) < abs(est - want):
                est, lo, hi = -est, -hi, -lo
            rows[name] = (est, lo, hi)
        if rows:
            out[ctx.variant_of(other)] = rows
    return out


def exponents(ctx: Context):
    """Forest plot of alpha, beta, a per variant; differences against dense when compared."""
    if ctx.fit is None:
        raise Skip("needs a fit (--fit fits/NAME.json)")
    groups = ctx.groups(("chinchilla",))
    if len({ctx.variant_of(g) for g in groups}) < 2:
        only = ", ".join(ctx.variant_of(g) for g in groups) or "none"
        raise Skip(
            f"a forest plot compares variants; the fit has fewer than two L(N, D) variants ({only}): "
            "read the exponents from `scalelab fit`'s table"
        )
    diffs = _differences(ctx, groups)
    names = ["alpha", "beta", "a"]
    variants = [ctx.variant_of(g) for g in groups]
    nv = len(variants)
    two = bool(diffs)
    single = ctx.single()
    rows_h = 0.3 + 0.085 * nv * 3
    fig, axs = style.new_figure(
        ctx.width,
        (rows_h * (2 if two else 1)) / 3.5 if single else rows_h / 7 * 1.6,
        2 if (two and single) else 1,
        2 if (two and not single) else 1,
    )
    ax = axs.flat[0]
    step = 0.8 / max(nv, 1)

    def forest(ax, est_of, vs, xlabel):
        for pi, name in enumerate(names):
            for vi, v in enumerate(vs):
                e = est_of(v, name)
                if e is None:
                    continue
                est, lo, hi = e
                y = pi + (vi - (len(vs) - 1) / 2) * step
                err = None if not np.isfinite(lo) else [[est - lo], [hi - est]]
                ax.errorbar(
                    [est],
                    [y],
                    xerr=err,
                    fmt=ctx.markers[v],
                    color=ctx.colors[v],
                    ms=4,
                    elinewidth=1.0,
                    capsize=2,
                    zorder=3,
                    gid=f"variant:{v}",
                )
        ax.set_yticks(range(len(names)), [PARAM_LABELS[n] for n in names])
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("exponent")
        ax.grid(axis="y", visible=False)
        for k in range(len(names) - 1):
            ax.axhline(k + 0.5, color="0.85", lw=0.5, zorder=0)

    by_v = dict(zip(variants, groups))
    forest(ax, lambda v, n: _estimate(ctx, by_v[v], n), variants, f"estimate ({ctx.fit.level:.0%} bootstrap interval)")
    if two:
        ax2 = axs.flat[1]
        dv = [v for v in variants if v in diffs]
        forest(ax2, lambda v, n: diffs[v].get(n), dv, "difference vs dense (variant - dense)")
        ax2.axvline(0, color="0.3", lw=0.8, zorder=1)
    else:
        ctx.note("no comparison against dense in the fit: differences not drawn")
    _finish_legend(fig, [variant_handle(ctx, v) for v in variants])
    return fig


# ---------------------------------------------------------------------------------------------- 5


def _predict(form: str, p: dict, N, D, C):
    """Point prediction of a fitted form (scalelab.fit.laws); None for a form without one (allocation)."""
    try:
        return fit_laws.predict(form, p, N=N, D=D, C=C)
    except (KeyError, ValueError):
        return None


def _group_points(ctx: Context, g: str, runs):
    """A group's (N, D, C, loss) points: the run files' final rows of the group's key when given
    (every WSD branch), else the fit file's runs list (one point per run)."""
    import pandas as pd

    grp = ctx.fit.groups[g]
    ncol = grp.n_column
    ccol = laws.flops_column(ctx.fit)
    if runs is not None:
        key = grp.key or {"variant": grp.variant}
        m = runs["final"] & runs["val_loss"].notna()
        for col, val in key.items():
            if col in runs.columns:
                m &= runs[col].astype(str) == str(val)
        r = runs[m]
        if len(r) and {ncol, "tokens", ccol} <= set(r.columns):
            return pd.DataFrame(
                {
                    "N": r[ncol].to_numpy(float),
                    "D": r["tokens"].to_numpy(float),
                    "C": r[ccol].to_numpy(float),
                    "loss": r["val_loss"].to_numpy(float),
                    "run_id": r["run_id"].astype(str).to_numpy(),
                }
            )
    f = pd.DataFrame(grp.runs)
    if f.empty or "loss" not in f.columns:
        return None
    return pd.DataFrame(
        {
            "N": f["params"].astype(float),
            "D": f["tokens"].astype(float),
            "C": f["flops"].astype(float) if "flops" in f else np.nan,
            "loss": f["loss"].astype(float),
            "run_id": f["run_id"].astype(str) if "run_id" in f else "",
        }
    )


def diagnostics(ctx: Context):
    """Observed vs predicted loss, and relative residual vs size. Held-out points (the fit's
    `--holdout largest` check) drawn hollow at the prediction of the refit that did not see them."""
    import pandas as pd

    if ctx.fit is None:
        raise Skip("needs a fit (--fit fits/NAME.json)")
    runs = ctx.ok_runs()
    frames = []
    for g in ctx.groups():
        grp = ctx.fit.groups[g]
        pts = _group_points(ctx, g, runs)
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
    pad = 0.07 * (lim[1] - lim[0] or 1)
    ax1.plot([lim[0] - pad, lim[1] + pad], [lim[0] - pad, lim[1] + pad], color="0.5", lw=0.8, ls="--", zorder=1)
    ax2.axhline(0, color="0.5", lw=0.8, ls="--", zorder=1)
    variants = style.sort_variants(d["variant"])
    for v in variants:
        dv = d[d["variant"] == v]
        for held, sub in dv.groupby("held_out"):
            kw = dict(
                marker=ctx.markers[v],
                s=24 if held else 14,
                linewidths=0.9 if held else 0.4,
                edgecolor=ctx.colors[v],
                facecolor="white" if held else ctx.colors[v],
                zorder=4 if held else 3,
            )
            ax1.scatter(sub["pred"], sub["loss"], **kw)
            ax2.scatter(sub["N"], sub["rel"], **kw)
    ax1.set_xlim(lim[0] - pad, lim[1] + pad)
    ax1.set_ylim(lim[0] - pad, lim[1] + pad)
    ax1.set_aspect("equal", adjustable="box")
    ax1.set_xlabel("predicted loss (nats/token)")
    ax1.set_ylabel("observed loss (nats/token)")
    style.log_axis(ax2, "x")
    style.ensure_decade_labels(ax2, "x")
    ax2.set_xlabel("parameters N")
    ax2.set_ylabel("relative residual (obs - pred) / pred (%)")
    from matplotlib.lines import Line2D

    handles = [variant_handle(ctx, v) for v in variants]
    handles.append(Line2D([], [], ls="", marker="o", color="0.3", markersize=4, label="fitted point"))
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
]
