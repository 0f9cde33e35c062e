"""The compute-optimal figure's groups and optima, and the compute multipliers of the fit's comparisons
laid out as marks (budget offsets per variant, open-ended intervals, budgets never reached)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scalelab.plot.shape import fitread
from scalelab.plot.shape.context import Context, Skip


def optimal_groups(ctx: Context) -> list[str]:
    """The groups with an allocation to draw (L(N, D) or approach-1/2 allocation fits); Skip when none."""
    if ctx.fit is None:
        raise Skip("needs a fit (--fit fits/NAME.json)")
    from scalelab.fit.identify import compute_optimal_gap

    groups = ctx.groups(("chinchilla", "allocation"))
    if not groups:
        raise Skip(
            "no L(N, D) (chinchilla-form) or approach-1/2 allocation group in the fit: "
            + (elsewhere(ctx) or "N_opt and D_opt are not identified (e.g. one tokens-per-parameter ratio per group)")
        )
    kept = []
    for g in groups:  # a group whose fit refused its optimum has no curve to draw (it may have no finite one)
        gap = compute_optimal_gap(ctx.known_fit[g])
        if gap:
            ctx.note(f"group {g} left out: {gap}")
        else:
            kept.append(g)
    if not kept:
        raise Skip("no group of the fit identifies N_opt and D_opt (see its warnings)")
    return kept


# laws whose optima another figure draws
_ELSEWHERE = {
    "share": "its law across FFN shares gives the optimum per share and budget: see fig8_share_law",
    "repetition": "its data-constrained law is drawn in fig10_loss_vs_epochs",
}


def elsewhere(ctx: Context) -> str:
    """Where the fit's share or repetition laws are drawn ('' when it has none): a figure of L(N, D) groups that
    skips such a fit says so, instead of calling the optimum unidentified."""
    forms = {g.form for g in ctx.fit} if ctx.fit is not None else set()
    return "; ".join(v for k, v in _ELSEWHERE.items() if k in forms)


def optima(ctx: Context, group: str):
    """The (C, N_opt, D_opt) an approach-1/2 fit recorded for a group, else None."""
    return fitread.optima(ctx.known_fit.groups[group])


def optima_label(ctx: Context) -> str:
    approach = fitread.approach(ctx.fit)
    if approach == 1:
        return "envelope optima (approach 1)"
    if approach == 2:
        return "IsoFLOP slice minima (approach 2)"
    return "optima the allocation was fitted to"


def multipliers(ctx: Context) -> list:
    """The fit's compute multipliers per comparison (docs/interfaces.md "Fit file", comparisons[].multiplier):
    [(b group, a group, rows)], rows the fit's MultiplierRow records (C, est, lo, hi, extrapolated)."""
    out = []
    for comp in ctx.known_fit.comparisons:
        rows = [r for r in comp.multiplier if r.C]
        if rows and comp.a in ctx.known_fit.groups and comp.b in ctx.known_fit.groups:
            out.append((comp.b, comp.a, rows))
    return out


@dataclass
class Mark:
    variant: str
    x: float  # the budget, moved aside per variant on the log axis
    est: float
    lo: float
    hi: float  # NaN: open at the top ("never" inside the interval)
    extrapolated: bool


@dataclass
class MultiplierMarks:
    marks: list = field(default_factory=list)
    budgets: list = field(default_factory=list)
    open_top: list = field(default_factory=list)  # (x, lo, variant): interval drawn up to the top edge
    unreachable: list = field(default_factory=list)  # "variant at C": no multiplier at all
    any_extrapolated: bool = False
    refs: list = field(default_factory=list)
    bottom: float = 0.5
    top: float = 2.0


def multiplier_marks(ctx: Context, mults: list) -> MultiplierMarks:
    """Where each recorded multiplier goes: variants side by side at each budget, y limits from the finite
    values (and parity, 1), open-topped intervals, and the budgets a variant never reaches."""
    m = MultiplierMarks(budgets=sorted({float(r.C) for _, _, rows in mults for r in rows}))
    nb, finite = len(mults), [1.0]
    for i, (b, a, rows) in enumerate(mults):
        v = ctx.variant_of(b)
        for r in rows:
            C = float(r.C)
            x = C * 10 ** ((i - (nb - 1) / 2) * 0.06)  # side by side at each budget (log x)
            est, lo, hi = float(r.est), float(r.lo), float(r.hi)
            if not np.isfinite(est):
                m.unreachable.append(f"{v} at {C:.1e}")
                continue
            finite += [y for y in (est, lo, hi) if np.isfinite(y) and y > 0]
            if not np.isfinite(hi):
                m.open_top.append((x, lo, v))
                hi = np.nan
            m.marks.append(Mark(v, x, est, lo, hi, bool(r.extrapolated)))
    m.any_extrapolated = any(r.extrapolated for _, _, rows in mults for r in rows)
    m.bottom, m.top = min(finite) / 2, max(finite) * 2
    m.refs = sorted({ctx.variant_of(a) for _, a, _ in mults})
    return m
