"""The fitted points as the figures draw them: per fit group (else the run files' final rows), with the
fitted law's prediction, the held-out refit's, and the relative residual; and the loss axis they need."""

from __future__ import annotations

import numpy as np

from scalelab.fit import laws as fit_laws
from scalelab.plot.shape.context import Context, Skip

LOG_LOSS_SPAN = 2.0  # a log loss axis when a panel's loss spans more than this factor


def final_points(ctx: Context):
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


def use_log_loss(spans) -> bool:
    """A log loss axis when any panel's values span more than a factor of 2 (LOG_LOSS_SPAN)."""
    return any(hi > LOG_LOSS_SPAN * lo for lo, hi in spans if lo > 0)


def loss_limits(lo: float, hi: float, log: bool, pad: float = 0.08) -> tuple[float, float]:
    if log:
        r = (hi / lo) ** pad if hi > lo else 1.05
        return lo / r, hi * r
    d = (hi - lo) * pad or 0.05 * hi
    return lo - d, hi + d


def predict(form: str, p: dict, N, D, C):
    """Point prediction of a fitted form (scalelab.fit.laws); None for a form without one (allocation)."""
    try:
        return fit_laws.predict(form, p, N=N, D=D, C=C)
    except (KeyError, ValueError):
        return None


def group_points(ctx: Context, g: str):
    """A group's (N, D, C, loss) points: every fitted point (inputs.points: read through the fit's columns
    from the data files, else the fit file's runs list, one point per run)."""
    pts = ctx.inputs.points
    if pts is None:
        return None
    p = pts[pts["group"] == g]
    if p.empty:
        return None
    return p[["N", "D", "C", "loss", "run"]].rename(columns={"run": "run_id"}).reset_index(drop=True)


def _held_out(ctx: Context, g: str, pts):
    """The points of group g that its held-out refit did not see, predicted by that refit (None: none)."""
    grp = ctx.known_fit.groups[g]
    h = grp.holdout
    if h is None or not h.params or not np.isfinite(h.value):
        return None
    col = {"N": "N", "D": "D", "C": "C"}.get(str(h.rule or "largest N").split()[-1], "N")
    held = pts[pts[col] >= h.value * (1 - 1e-6)]
    hp = predict(grp.form, h.params, held["N"].to_numpy(), held["D"].to_numpy(), held["C"].to_numpy())
    if not len(held) or hp is None:
        return None
    err = h.mean_rel_error
    ctx.note(
        f"{g}: {len(held)} held-out point(s) ({h.rule}) predicted by the refit without them"
        + (f", mean |rel err| {100 * err:.2f}%" if err is not None else "")
    )
    return held.assign(pred=hp, held_out=True)


def residuals(ctx: Context, groups: list[str]):
    """Every fitted point of `groups` with pred (the law's), held_out, variant and rel (100 (obs - pred) /
    pred); held-out points again at their refit's prediction. Skip when none."""
    import pandas as pd

    frames = []
    for g in groups:
        grp = ctx.known_fit.groups[g]
        pts = group_points(ctx, g)
        if pts is None or pts.empty:
            ctx.note(f"group {g}: no points to compare with")
            continue
        pred = predict(grp.form, grp.params, pts["N"].to_numpy(), pts["D"].to_numpy(), pts["C"].to_numpy())
        if pred is None:
            ctx.note(f"group {g}: form {grp.form!r} has no point predictor here")
            continue
        pts = pts.assign(pred=pred, variant=grp.variant, held_out=False)
        frames.append(pts)
        held = _held_out(ctx, g, pts)
        if held is not None:
            frames.append(held)
    if not frames:
        raise Skip("no fitted points to compare with (give the run files, or a fit file listing its runs)")
    d = pd.concat(frames, ignore_index=True)
    d["rel"] = 100 * (d["loss"] - d["pred"]) / d["pred"]
    return d
