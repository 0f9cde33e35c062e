"""How fitted points split into slices (fixed tokens per parameter, or IsoFLOP budgets), where D runs along
a slice, and where a slice's fitted minimum lies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from scalelab.plot import laws
from scalelab.plot.palette import sort_variants
from scalelab.plot.shape import fitread
from scalelab.plot.shape.context import Context, Skip
from scalelab.plot.shape.points import final_points, use_log_loss

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Slices:
    """How final points split into slices: fixed tokens per parameter (D = r N', with N' the
    parameter count the grid's budgets were set in) or IsoFLOP (C fixed)."""

    kind: str  # ratio | iso
    rcol: str  # ratio: the parameter column of the budget rule
    values: list  # slice values (ratio r or budget C), ascending
    labels: list
    index: pd.Series  # slice number of each point (-1: none)


def slices(pts, ncol: str) -> Slices:
    """One slicing for all variants (one shared legend), chosen to match how the grid was built."""
    import pandas as pd

    for col in dict.fromkeys([ncol, "params_nonembed", "params"]):
        if col in pts.columns and pts[col].notna().all():
            vals, idx = cluster((pts["tokens"] / pts[col]).to_numpy(float))
            if len(vals) <= 6:
                what = "D/N" + (" (non-embedding)" if col == "params_nonembed" and ncol != col else "")
                return Slices("ratio", col, vals, [f"{what} = {x:.2g}" for x in vals], pd.Series(idx, index=pts.index))
    if "flops" in pts.columns:
        vals, idx = cluster(pts["flops"].to_numpy(float))
        if len(vals) <= 6:
            return Slices("iso", ncol, vals, [f"C = {x:.1e} FLOPs" for x in vals], pd.Series(idx, index=pts.index))
        by = pts.groupby("group")["flops"] if "group" in pts.columns else [(None, pts["flops"])]
        if all(looks_isoflop(c.to_numpy(float)) for _, c in by):  # each group's budgets: an IsoFLOP design
            return iso_slices(pts.assign(C=pts["flops"]))
    return _ratio_bins(pts, ncol)


def _ratio_bins(pts, ncol: str) -> Slices:
    """Neither budgets nor ratios few: at most 4 log-spaced bins of the tokens-per-parameter ratio."""
    import pandas as pd

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


def looks_isoflop(c: np.ndarray) -> bool:
    """Budgets of an IsoFLOP design: few distinct values (within 5%), several points each, and apart from
    one another (at least 15%), unlike the spread of budgets of training curves."""
    vals, idx = cluster(c, tol=1.05)
    if len(vals) > 40 or len(c) < 3 * len(vals):
        return False
    v = np.sort(np.asarray(vals))
    return bool(np.all(v[1:] / v[:-1] >= 1.15))


def cluster(x: np.ndarray, tol: float = 1.1):
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


def iso_slices(pts) -> Slices:
    """IsoFLOP slices: points grouped by budget C (within 10% of a neighbour), any number of them."""
    import pandas as pd

    vals, idx = cluster(pts["C"].to_numpy(float))
    return Slices("iso", "N", vals, [f"C = {x:.1e}" for x in vals], pd.Series(idx, index=pts.index))


def optima_approach(ctx: Context):
    """1 or 2 when the fit is an approach-1/2 allocation fit, else None."""
    if not any(g.form == "allocation" for g in ctx.known_fit):
        return None
    a = fitread.approach(ctx.fit)
    return a if a in (1, 2) else None


def param_map(pv, xcol: str, ycol: str):
    """N' as a function of N within one variant (log-log line through its runs), for D = r N'."""
    if xcol == ycol:
        return lambda n: n
    x, y = np.log(pv[xcol].to_numpy(float)), np.log(pv[ycol].to_numpy(float))
    if np.ptp(x) == 0:
        return lambda n: n * float(np.exp(y.mean() - x.mean()))
    slope, icpt = np.polyfit(x, y, 1)
    return lambda n: np.exp(icpt + slope * np.log(n))


def tokens_along(ctx: Context, sl: Slices, pv, group: str, value: float, N: np.ndarray) -> np.ndarray:
    """D along the slice of `value` as a function of the plotted N (pv: the panel's points)."""
    if sl.kind == "ratio":
        return value * param_map(pv, "N", sl.rcol)(N)
    return value / (laws.flops_per_param_token(ctx.fit, group) * N)


def slice_optimum(ctx: Context, group: str, p, c_val: float):
    """The fit's minimum N_opt of the slice at budget c_val (diagnostics.optima) and the loss of the line
    through the slice's points there: (N_opt, loss), or None when the fit recorded none for this slice."""
    o = fitread.optima(ctx.known_fit.groups[group])
    if o is None or len(p) < 2:
        return None
    hit = o[np.abs(np.log(o["C"].to_numpy(float) / c_val)) < np.log(1.1)]
    if hit.empty:
        return None
    n_opt = float(hit["N_opt"].iloc[0])
    ps = p.sort_values("N")
    return n_opt, float(np.interp(np.log(n_opt), np.log(ps["N"].to_numpy(float)), ps["loss"].to_numpy(float)))


@dataclass
class ParamsLayout:
    """What fig2 draws: the points, one panel per fit group (per variant without a fit), the slicing, and
    each panel's loss span (one log-or-linear choice for all)."""

    pts: pd.DataFrame  # the points
    src: str
    panels: list
    variant: dict  # panel -> variant (its colour)
    law_groups: set  # panels with a law to overlay
    iso_fit: bool  # an approach-2 fit: its IsoFLOP slices are the slicing, its minima starred
    sl: Slices
    spans: list[tuple[float, float]]  # per panel: its (lowest, highest) loss
    log: bool


def params_layout(ctx: Context) -> ParamsLayout:
    pts, src, by = final_points(ctx)
    law_groups = set(ctx.groups(("chinchilla", "frontier"))) if ctx.fit is not None else set()
    if by == "group" and ctx.fit is not None:
        panels = [g for g in ctx.groups(fitted=False) if g in set(pts["group"])]
    else:
        panels = sort_variants(pts["group"])
    if not panels:
        raise Skip("no fitted points for the fit's groups")
    variant = {p: (ctx.variant_of(p) if by == "group" and ctx.fit is not None else p) for p in panels}
    iso_fit = ctx.fit is not None and optima_approach(ctx) == 2  # IsoFLOP slices are what approach 2 fitted
    sl = iso_slices(pts) if iso_fit else slices(pts, "N")
    spans = [(float(pts[pts["group"] == p]["loss"].min()), float(pts[pts["group"] == p]["loss"].max())) for p in panels]
    return ParamsLayout(pts, src, panels, variant, law_groups, iso_fit, sl, spans, use_log_loss(spans))


def no_law_title(ctx: Context, panel: str) -> str:
    """The title's remark on a panel of a fit group without an L(N, D) law to overlay."""
    grp = ctx.known_fit.groups.get(panel)
    if grp is not None and grp.form == "allocation":
        return ""
    return " (no L(N, D) law)"


def n_is_nonembed(ctx: Context) -> bool:
    return ctx.fit is not None and any(g.n_column == "params_nonembed" for g in ctx.fit)
