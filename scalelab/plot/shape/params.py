"""The exponents of each group's law with their intervals, and their differences against dense oriented as
(variant - dense): what the forest plot draws."""

from __future__ import annotations

import numpy as np

from scalelab.plot import laws
from scalelab.plot.shape.context import Context, finite
from scalelab.plot.shape.frontier import draws

PARAMS = ("alpha", "beta", "a")


def _interval_of(ctx: Context, grp, name: str):
    """The recorded interval of alpha, beta or a, else the percentile interval of its bootstrap draws."""
    if name in ("alpha", "beta"):
        return grp.conf_int.get(name)
    if grp.form == "allocation":
        return grp.conf_int.get("a") or grp.derived_conf_int.get("a")
    return grp.derived_conf_int.get("a")


def _interval_from_draws(ctx: Context, grp, name: str):
    names = ("a",) if grp.form == "allocation" else ("alpha", "beta")
    d = draws(grp, names) if all(n in grp.form_params for n in names) else None
    if d is None:
        return None
    x = d[name] if name in d else d["beta"] / (d["alpha"] + d["beta"])
    ci = laws.band(x[:, None], ctx.known_fit.level)
    return (float(ci[0][0]), float(ci[1][0]))


def estimate(ctx: Context, g: str, name: str):
    """(estimate, lo, hi) of alpha, beta or a (N_opt ~ C^a: beta/(alpha+beta) of an L(N, D) law, fitted
    directly by approaches 1 and 2) for a group; None where the group's law has no such exponent."""
    grp = ctx.known_fit.groups[g]
    p = grp.params or {}
    if name in ("alpha", "beta"):
        if not finite(p.get(name)):
            return None
        est = float(p[name])
    elif grp.form == "allocation":
        if not finite(p.get("a")):
            return None
        est = float(p["a"])
    else:
        if not (finite(p.get("alpha")) and finite(p.get("beta"))):
            return None
        al, be = float(p["alpha"]), float(p["beta"])
        est = float(grp.derived.get("a", be / (al + be)))
    ci = _interval_of(ctx, grp, name)
    if ci is None:
        ci = _interval_from_draws(ctx, grp, name)
    lo, hi = (float(ci[0]), float(ci[1])) if ci is not None and None not in ci[:2] else (np.nan, np.nan)
    return est, lo, hi


def differences(ctx: Context, groups: list[str]) -> dict:
    """Differences (variant - dense) from the fit's comparisons, oriented by the point estimates:
    {variant: {param: (est, lo, hi)}}."""
    dense = [g for g in groups if ctx.variant_of(g) == "dense"]
    out: dict[str, dict] = {}
    if not dense:
        return out
    d = dense[0]
    for comp in ctx.known_fit.comparisons:
        a, b = comp.a, comp.b
        if d not in (a, b) or a not in ctx.known_fit.groups or b not in ctx.known_fit.groups:
            continue
        other = b if a == d else a
        rows = {}
        for name in (n for n in PARAMS if n in comp.differences):
            e = comp.differences[name]
            est, lo, hi = e.est, e.lo, e.hi
            # Orient as (other - dense): the sign the point estimates imply.
            eo, ed = estimate(ctx, other, name), estimate(ctx, d, name)
            if eo is None or ed is None:
                continue
            want = eo[0] - ed[0]
            if abs(-est - want) < abs(est - want):
                est, lo, hi = -est, -hi, -lo
            rows[name] = (est, lo, hi)
        if rows:
            out[ctx.variant_of(other)] = rows
    return out


def shared_exponents(ctx: Context, groups: list[str]) -> bool:
    return any(ctx.known_fit.groups[g].shared_exponents for g in groups)
