"""A fitted law as the figures draw it: L*(C), the compute-optimal allocation over budgets (the planner's),
and the law along a slice of (N, D), each with its bootstrap band and where it leaves the fitted data."""

from __future__ import annotations

from typing import Any

import numpy as np

from scalelab.errors import ScalelabError
from scalelab.fit import laws as fit_laws
from scalelab.plot import laws
from scalelab.plot.shape.context import Context, Skip, law_missing


def c_span(ctx: Context, groups: list[str]) -> tuple[float, float]:
    """The FLOPs range (range.C) the given groups were fitted on."""
    lo = [ctx.known_fit.groups[g].range.get("C", [np.nan, np.nan])[0] for g in groups]
    hi = [ctx.known_fit.groups[g].range.get("C", [np.nan, np.nan])[1] for g in groups]
    lo, hi = np.nanmin(np.asarray(lo, float)), np.nanmax(np.asarray(hi, float))
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise Skip("the fit file gives no FLOPs range (range.C) for its groups")
    return float(lo), float(hi)


def _planned(ctx: Context, c_min: float, c_max: float, n: int):
    """The planner's sweep over [c_min, c_max] (one Planner per figure set, sweeps cached), or its refusal."""
    from scalelab.plan import Planner, sweep

    key = (c_min, c_max, n)
    if key not in ctx._alloc_cache:
        try:
            if ctx._planner is None:  # one Planner on the fit for every figure
                # groups without a law (e.g. loss law not fitted) are not the planner's to allocate
                ok = [g.name for g in ctx.known_fit if law_missing(g) is None]
                some = ok if len(ok) < len(ctx.known_fit.groups) else None
                ctx._planner = Planner(ctx.fit, variants=some, require_samples=False)
            ctx._alloc_cache[key] = sweep(ctx._planner, c_min, c_max, n)
        except ScalelabError as e:
            ctx._alloc_cache[key] = e
        except (KeyError, ValueError, TypeError) as e:  # a fit the planner was not written for: skip, say why
            ctx._alloc_cache[key] = ScalelabError(f"{type(e).__name__}: {e}")
    return ctx._alloc_cache[key]


def allocation(ctx: Context, group: str, c_min: float, c_max: float, n: int = 60):
    """Compute-optimal N, D, L over budgets for one chinchilla group, with bootstrap bands (NaN without
    samples): the planner's sweep (scalelab.plan.sweep, real FLOPs per token), one Planner per figure set.
    Columns as the sweep's: C, N_opt, N_lo, N_hi, D_opt, D_lo, D_hi, L_opt, L_lo, L_hi, extrapolated.
    Raises Skip with the planner's reason when it cannot plan from this fit.
    """
    planned = _planned(ctx, c_min, c_max, n)
    if isinstance(planned, ScalelabError):
        raise Skip(f"the planner cannot allocate from this fit: {planned}")
    ctx.allocation_source = "scalelab.plan.sweep (the planner, real FLOPs per token)"
    a = planned[planned["variant"].astype(str) == ctx.variant_of(group)].sort_values("C").reset_index(drop=True)
    a["extrapolated"] = a["extrapolated"].astype(bool) | outside(ctx, group, a)
    return a


def outside(ctx: Context, group: str, a) -> np.ndarray:
    """Budgets where the allocation leaves the data: C, N_opt or D_opt outside the fitted runs' range
    (the planner itself flags only C > 10x the largest run). Drawn dashed."""
    rng = ctx.known_fit.groups[group].range
    out = np.zeros(len(a), bool)
    for col, key in (("C", "C"), ("N_opt", "N"), ("D_opt", "D")):
        r = rng.get(key)
        if r and len(r) == 2:
            x = a[col].to_numpy(float)
            out |= (x > r[1] * 1.02) | (x < r[0] / 1.02)
    return out


def draws(g, names=None):
    """A group's bootstrap samples of `names` (default its form's), or None when it has none."""
    d = g.sample_arrays(names)
    return d if len(next(iter(d.values()))) else None


def frontier(ctx: Context, group: str, C: np.ndarray):
    """L*(C) for a group: compute-optimal loss (chinchilla) or the fitted frontier.
    (C, point, lo, hi, extrapolated), or None for other forms."""
    g = ctx.known_fit.groups[group]
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
        d = draws(g)
        lo = hi = np.full_like(C, np.nan)
        if d is not None:
            lo, hi = laws.band(fit_laws.predict("frontier", d, C=C), ctx.known_fit.level)
        rng = g.range.get("C") or [C.min(), C.max()]
        return C, g.predict(C=C), lo, hi, (C > rng[1] * 1.02) | (C < rng[0] / 1.02)
    return None


def frontiers(ctx: Context, xlim: tuple) -> list:
    """fig1's L*(C) per chinchilla or frontier group over the x range: [(variant, C, L, lo, hi, extrapolated)],
    from a little below each group's fitted FLOPs range (further left is early-checkpoint land)."""
    out = []
    for g in ctx.groups(("chinchilla", "frontier")):
        v = ctx.variant_of(g)
        c0 = ctx.known_fit.groups[g].range.get("C", [xlim[0]])[0] / 3
        C = np.logspace(np.log10(max(xlim[0], c0)), np.log10(xlim[1]), 80)
        try:
            fr = frontier(ctx, g, C)
        except Skip as e:  # the planner refused: the curves still stand, without this L*(C)
            ctx.note(f"{v}: no L*(C) drawn: {e}")
            continue
        if fr is not None:
            out.append((v, *fr))
    return out


def law_along(ctx: Context, g: str, N: np.ndarray, D: np.ndarray):
    """The fitted law along a slice, (point, lo, hi); None for forms without an (N, D) reading."""
    grp = ctx.known_fit.groups[g]
    at: dict[str, Any]  # the keywords of the law's predict: N and D, or C
    if grp.form == "chinchilla":
        at = dict(N=N, D=D)
    elif grp.form == "frontier":
        at = dict(C=laws.flops_per_param_token(ctx.fit, g) * N * D)
    else:
        return None
    lo = hi = np.full_like(N, np.nan)
    d = draws(grp)
    if d is not None:  # (S, len(N)): every sample along the slice
        lo, hi = laws.band(fit_laws.predict(grp.form, d, **at), ctx.known_fit.level)
    return grp.predict(**at), lo, hi
