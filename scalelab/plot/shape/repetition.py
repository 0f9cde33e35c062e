"""Loss against epochs at fixed unique data, as the repetition-law figure draws it (fit/repetition.py,
Muennighoff et al. 2023): per repetition-law group, a few (U, N) settings of its runs, the law's loss over
epochs D / U at each with its bootstrap band, the base law counting repeated tokens as new beside it, and the
observed points of each setting at their epochs. Numbers only: fig_repetition.py draws them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scalelab.fit import repetition as R
from scalelab.plot import laws
from scalelab.plot.shape.context import Context, Skip
from scalelab.plot.shape.points import group_points

MAX_CURVES = 4  # settings (U, N) per panel: more crowd it
MIN_EPOCHS_SHOWN = 100.0  # the curves run from 1 epoch to this, or past the farthest observed point
POINTS_PER_CURVE = 160


@dataclass
class Curve:
    """The law at U unique tokens and N params over epochs, with its band (NaN without samples), the base law
    (repeated tokens counted as new), and the observed points of this (U, N)."""

    U: float
    N: float
    epochs: np.ndarray
    loss: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    as_new: np.ndarray  # E + A/N^alpha + B/(epochs U)^beta: what the data would give were it all new
    points: pd.DataFrame  # epochs, loss of the observed runs at this (U, N)


@dataclass
class Panel:
    group: str
    variant: str
    curves: list[Curve]
    n_points: int  # the group's points, of which the curves' settings hold sum(len(c.points))
    R_D_star: float
    R_N_star: float
    notes: list[str] = field(default_factory=list)


def repetition_groups(ctx: Context) -> list[str]:
    """The fit's repetition-law groups; Skip when it has none."""
    if ctx.fit is None:
        raise Skip("needs a fit (--fit fits/NAME.json) with a repetition-law group (fit --form repetition)")
    gs = ctx.groups(("repetition",))
    if not gs:
        raise Skip(
            "no group of the fit has the data-constrained (repetition) law: fit runs that repeat their data with "
            "`scalelab fit --form repetition` (unique tokens from --unique-col or the run store's epochs)"
        )
    return gs


def panels(ctx: Context, max_curves: int = MAX_CURVES) -> list[Panel]:
    """One Panel per repetition-law group (module docstring); Skip when none has points with unique tokens."""
    out = [p for g in repetition_groups(ctx) if (p := panel(ctx, g, max_curves)) is not None]
    if not out:
        raise Skip("the fit records no unique tokens per point (refit it with this scalelab to draw the epochs)")
    return out


def observed(ctx: Context, g: str) -> pd.DataFrame | None:
    """The group's points with their unique tokens U and epochs D / U; None when the fit has none recorded."""
    pts = group_points(ctx, g)
    if pts is None or pts.empty:
        return None
    U = R.point_unique(ctx.known_fit.groups[g], pts["run_id"], pts["D"].to_numpy(float))
    if U is None:
        return None
    pts = pts.assign(U=U, epochs=pts["D"].to_numpy(float) / U)
    return pts[np.isfinite(pts["U"])].reset_index(drop=True)


def _keys(pts: pd.DataFrame) -> pd.DataFrame:
    """The points with (U, N) keys that treat float noise as equal (log rounded to 5 decimals)."""
    return pts.assign(
        uk=np.round(np.log(pts["U"].to_numpy(float)), 5), nk=np.round(np.log(pts["N"].to_numpy(float)), 5)
    )


def settings(pts: pd.DataFrame, max_curves: int) -> list[tuple[float, float]]:
    """The (U, N) keys (_keys) to draw: for each U the N with the most points (ties: the larger N), the U
    values with the most repeated points first, at most max_curves of them, in order of U."""
    key = _keys(pts).assign(rep=pts["epochs"] > R.ONE_EPOCH)
    count = key.groupby(["uk", "nk"]).agg(n=("loss", "size"), rep=("rep", "sum")).reset_index()
    count = count[count["rep"] >= 1].sort_values(["uk", "n", "nk"], ascending=[True, False, False])
    best = count.drop_duplicates("uk").sort_values(["rep", "n", "uk"], ascending=False).head(max_curves)
    return sorted(zip(best["uk"].astype(float), best["nk"].astype(float)))


def panel(ctx: Context, g: str, max_curves: int = MAX_CURVES) -> Panel | None:
    """The Panel of one repetition-law group, or None when its fit recorded no unique tokens per point."""
    grp = ctx.known_fit.groups[g]
    pts = observed(ctx, g)
    if pts is None or pts.empty:
        ctx.note(f"group {g}: the fit records no unique tokens per point: no epochs to draw (refit it)")
        return None
    p = {k: float(grp.params[k]) for k in R.PARAMS}
    draws = grp.sample_arrays(R.PARAMS)
    has_draws = len(next(iter(draws.values()))) > 0
    if not has_draws:
        ctx.note(f"group {g}: no bootstrap samples in the fit: the law without a band")
    curves = []
    keyed = _keys(pts)
    for uk, nk in settings(pts, max_curves):
        on = keyed[(keyed["uk"] == uk) & (keyed["nk"] == nk)]
        U, N = float(on["U"].median()), float(on["N"].median())
        top = max(MIN_EPOCHS_SHOWN, float(on["epochs"].max()) * 1.3)
        ep = np.geomspace(1.0, top, POINTS_PER_CURVE)
        D = ep * U
        loss = R.predict(p, N, D, U)
        if has_draws:
            with np.errstate(all="ignore"):
                s = R.predict({k: v[:, None] for k, v in draws.items()}, N, D[None, :], U)
            lo, hi = laws.band(np.where(np.isfinite(s), s, np.nan), ctx.known_fit.level)
        else:
            lo = hi = np.full(ep.size, np.nan)
        as_new = p["E"] + p["A"] * N ** -p["alpha"] + p["B"] * D ** -p["beta"]
        curves.append(Curve(U, N, ep, loss, np.asarray(lo), np.asarray(hi), as_new, on[["epochs", "loss"]]))
    notes = []
    shown = sum(len(c.points) for c in curves)
    if shown < len(pts):
        notes.append(
            f"group {g}: {shown} of its {len(pts)} points drawn, those at the {len(curves)} (unique tokens, params) "
            "settings with the most repeated runs; the loss of the others depends on their own N and U"
        )
    return Panel(g, grp.variant, curves, len(pts), p["R_D_star"], p["R_N_star"], notes)
