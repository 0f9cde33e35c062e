"""What the law-across-shares figure draws (fit/share.py's form "share"), as arrays: no matplotlib.

Loss against share at fixed compute: at each of a few budgets C, the compute-optimal loss at each kept FFN
share f, with its bootstrap band, the best share (and the spread of the resamples' best shares), the fitted
shares. Two ways to optimise width and tokens at a share:

- the shapes of the runs (plan/share.py's search: buildable widths at share f, exact params and FLOPs per
  token), where the fit's runs record model configs (`--share-col config` on a run store);
- otherwise the law's closed form under C = k N D (k: the fit's FLOPs per parameter per token). There a share
  f trains like dense on the effective compute C f^(rho_N + rho_D), so the curve is monotone in f and the best
  share is an end of the fitted range: the figure says so in a note rather than suggest an interior optimum.

Curves are drawn relative to dense's compute-optimal loss at the same budget (paired sample by sample), so
that budgets whose losses differ by far more than the shares' effect share one axis.

Multipliers against budget per share: B = the kind at share f, A = the same law at f = 1 (dense), m(C) as
fit/multiplier.py defines it (C = k N D), sample by sample (one joint law: the resamples pair themselves). One
E and one set of exponents make m = f^-(rho_N + rho_D) at every budget: flat lines, which the note says. The
time multiplier multiplies m by dense's achieved FLOP/s over the share's (fit/timing.py, from the runs at each
share) when the runs were timed on one device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scalelab.errors import ScalelabError
from scalelab.fit import laws, timing
from scalelab.fit.bootstrap import percentile_interval
from scalelab.fit.multiplier import multiplier
from scalelab.fit.records import Estimate
from scalelab.plot.shape.context import Context, Skip

N_SHARES = 49  # shares on the closed-form curve between the extended low end and 1
LOW_EXTEND = 0.7  # the curve goes down to 0.7 x the lowest fitted share, dashed (extrapolation)
N_BUDGETS = 41  # budgets on the multiplier curves
LEVEL_TOL = 0.1  # shares within 10% in log are one level (fit/share.py's LEVEL_TOL)


@dataclass
class ShareCurve:
    """Loss against share at one budget: point law, band, which shares are outside the fitted ones."""

    C: float
    f: np.ndarray
    loss: np.ndarray  # the compute-optimal loss at each share (point law)
    rel: np.ndarray  # loss / dense's loss at the same budget - 1, point law
    lo: np.ndarray  # band of rel: each resample's loss over its own dense loss (paired: one joint law)
    hi: np.ndarray
    extrapolated: np.ndarray  # per share: below the lowest fitted share
    dense_loss: float
    best: Estimate  # the best share (point law) and the interval of the resamples' best shares
    best_loss: float
    at_edge: str = ""  # "low" / "high" when the best share is an end of the fitted range
    budget_extrapolated: bool = False  # C outside the fitted FLOPs range


@dataclass
class ShareLoss:
    kind: str
    curves: list
    shares: list  # the fitted share levels, ascending (dense, 1, last)
    method: str  # "runs' shapes" or "closed form"
    notes: list = field(default_factory=list)


@dataclass
class MultiplierCurve:
    """m(C) of one share against dense over budgets, with its band; the time multiplier when timed."""

    share: float
    C: np.ndarray
    est: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    extrapolated: np.ndarray
    time_ratio: float | None = None  # dense's FLOP/s over the share's: time = m x ratio
    time_missing: str = ""


def share_groups(ctx: Context) -> list[str]:
    """The fit's groups with a law across shares; Skip (a note) when the fit has none."""
    if ctx.fit is None:
        raise Skip("needs a fit (--fit fits/NAME.json) with a law across shares (scalelab fit --share-col)")
    out = [g for g in ctx.groups(("share",)) if ctx.known_fit[g].share_law is not None]
    if not out:
        raise Skip("no law across FFN shares in the fit (fit with --share-col config|COLUMN to draw it)")
    return out


def budgets(g, n: int = 4) -> list[float]:
    """A few budgets: the fitted FLOPs range's ends and middle, and 100x its top (extrapolated)."""
    lo, hi = g.c_range
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo <= hi):
        raise Skip(f"group {g.name}: no fitted FLOPs range to choose budgets from")
    inside = np.geomspace(lo, hi, n - 1) if hi > lo else np.array([lo])
    return sorted({float(c) for c in [*inside, 100.0 * hi]})


def _k(g) -> float:
    return float(g.k_flops) if g.k_flops else 6.0


def _samples(g) -> dict:
    s = g.sample_arrays()
    return s if len(next(iter(s.values()))) >= 2 else {}


def closed_form_loss(params: dict, f, C: float, k: float) -> np.ndarray:
    """The compute-optimal loss at each share f (F,) at budget C under C = k N D: (F,) for point parameters,
    (S, F) for sample arrays (S,)."""
    f = np.asarray(f, float)
    p = {key: np.asarray(params[key], float)[..., None] for key in laws.FORMS["share"].params}
    q = {
        "E": p["E"],
        "A": p["A"] * f ** (-p["alpha"] * p["rho_N"]),
        "B": p["B"] * f ** (-p["beta"] * p["rho_D"]),
        "alpha": p["alpha"],
        "beta": p["beta"],
    }
    with np.errstate(all="ignore"):
        return np.asarray(laws.compute_optimal(q, C, k, outer=False)["L_opt"], float)


def loss_vs_share(fit, g, cs=None) -> ShareLoss:
    """ShareLoss of group g at budgets cs (default `budgets(g)`): the runs' shapes where the fit records
    them, else the law's closed form (module docstring)."""
    law = g.share_law
    levels = sorted(float(x) for x in law.shares)
    cs = budgets(g) if cs is None else [float(c) for c in cs]
    out = ShareLoss(kind=g.name, curves=[], shares=levels, method="closed form")
    search = _shape_search(fit, g, out.notes)
    if search is not None:
        out.method = "runs' shapes"
    c_lo, c_hi = g.c_range
    s = _samples(g)
    for C in cs:
        f, L, Ls = _shaped(search, g, s, C) if search is not None else _closed(g, s, C, levels)
        curve = _curve(C, f, L, Ls, levels, _lowest(g, levels), fit.level)
        curve.budget_extrapolated = bool(C < c_lo * (1 - 1e-9) or C > c_hi * (1 + 1e-9))
        out.curves.append(curve)
    edges = {c.at_edge for c in out.curves} - {""}
    if out.method == "closed form":
        rho = g.params["rho_N"] + g.params["rho_D"]
        out.notes.append(
            f"{g.name}: the law's closed form under C = k N D (k = {_k(g):.3g}): a share f trains like dense on "
            f"f^(rho_N + rho_D) = f^{rho:.3g} of the compute, so the loss is monotone in f and the best share is an "
            "end of the fitted range; fit a run store with --share-col config to optimise over buildable shapes"
        )
    else:
        if "low" in edges:
            out.notes.append(
                f"{g.name}: the best share is the lowest fitted one at some budgets: a lower share may be better "
                "still; train one to know"
            )
        if "high" in edges:
            out.notes.append(f"{g.name}: the best share is dense (1) at some budgets")
    return out


def _closed(g, s: dict, C: float, levels: list) -> tuple:
    f = np.unique(
        np.concatenate([np.geomspace(_lowest(g, levels) * LOW_EXTEND, 1.0, N_SHARES), levels, [_lowest(g, levels)]])
    )
    L = closed_form_loss(g.params, f, C, _k(g))
    Ls = closed_form_loss(s, f, C, _k(g)) if s else None
    return f, L, Ls


def _shape_search(fit, g, notes: list):
    """plan/share.py's candidate search for g's shapes, or None (with a note) when its runs record none."""
    from scalelab.plan import share as plan_share

    try:
        rule = plan_share._rule_from_runs(g, None, None)
        kind = plan_share._structure_kind(g, rule)
    except ScalelabError as e:
        if "records no model configs" not in str(e):
            notes.append(f"{g.name}: no buildable shapes ({e}); drawn from the law's closed form")
        return None
    lo = float(g.range.get("share", g.share_law.range)[0])
    return plan_share.ShareSearch(rule, kind, (lo, 1.0), g.n_column or "params", fit.convention)


def _shaped(search, g, s: dict, C: float) -> tuple:
    """Per nominal share: the least loss over buildable widths (point law, and per sample), at the share the
    best shape really keeps."""
    from scalelab.plan import share as plan_share

    fs, L, Ls = [], [], []
    for nominal in plan_share.nominal_shares(g.share_law.shares):
        search.best_at(g.params, nominal, C)
        shapes = [sh for (_, x), sh in search.cache.items() if x == nominal and sh is not None]
        if not shapes:
            continue
        loss = plan_share._loss(g.params, shapes, C)
        i = int(np.argmin(loss))
        fs.append(shapes[i].share)
        L.append(float(loss[i]))
        if s:
            Ls.append(np.min(plan_share._loss(s, shapes, C), axis=1))
    if not fs:
        raise Skip(f"group {g.name}: no buildable shape at any share at {C:.3g} FLOPs")
    order = np.argsort(fs)
    f = np.asarray(fs)[order]
    keep = np.concatenate([[True], np.diff(f) > 1e-9])  # two nominal shares that round to one structure
    Ls_arr = np.stack(Ls, axis=1)[:, order][:, keep] if Ls else None
    return f[keep], np.asarray(L)[order][keep], Ls_arr


def _lowest(g, levels: list) -> float:
    """The lowest share the runs kept (a level is its shares' geometric mean: some runs sit below it)."""
    return min(float(g.range.get("share", levels)[0]), levels[0])


def _curve(C: float, f, L, Ls, levels: list, lo_fit: float, level: float) -> ShareCurve:
    inside = f >= lo_fit * (1 - 1e-6)
    ref = int(np.argmin(np.abs(np.log(f))))  # dense, f = 1 (always among the shares)
    band_lo = band_hi = np.full(f.shape, np.nan)
    best_lo = best_hi = float("nan")
    if Ls is not None and Ls.size:
        with np.errstate(all="ignore"):
            band_lo, band_hi = percentile_interval(Ls / Ls[:, ref : ref + 1] - 1, level, axis=0)
        picks = f[inside][np.nanargmin(np.where(np.isfinite(Ls[:, inside]), Ls[:, inside], np.inf), axis=1)]
        best_lo, best_hi = percentile_interval(picks, level, method="nearest")
    i = int(np.nanargmin(np.where(inside, L, np.inf)))
    edge = "low" if f[i] <= levels[0] * np.exp(LEVEL_TOL) else "high" if f[i] >= 1 - 1e-9 else ""
    return ShareCurve(
        C=C,
        f=np.asarray(f, float),
        loss=np.asarray(L, float),
        rel=np.asarray(L, float) / float(L[ref]) - 1,
        dense_loss=float(L[ref]),
        lo=np.asarray(band_lo, float),
        hi=np.asarray(band_hi, float),
        extrapolated=~inside,
        best=Estimate(float(f[i]), float(best_lo), float(best_hi)),
        best_loss=float(L[i]),
        at_edge=edge,
    )


def share_multipliers(fit, g, n: int = N_BUDGETS) -> list[MultiplierCurve]:
    """m(C) of each fitted share below 1 against dense over budgets from a third of the fitted FLOPs range to
    100x beyond it, with bands, and each share's time ratio (or why it has none)."""
    c_lo, c_hi = g.c_range
    C = np.geomspace(c_lo / 3, c_hi * 100, n)
    k = _k(g)
    s = _samples(g)
    dense = laws.at_share(g.params, 1.0)
    rates = _rates_by_share(g)
    out = []
    for f in sorted(float(x) for x in g.share_law.shares):
        if f >= 1 - 1e-9:
            continue
        with np.errstate(all="ignore"):
            est = np.asarray(multiplier("chinchilla", dense, k, "chinchilla", laws.at_share(g.params, f), k, C))
        lo = hi = np.full(C.shape, np.nan)
        if s:
            with np.errstate(all="ignore"):
                m = multiplier("chinchilla", laws.at_share(s, 1.0), k, "chinchilla", laws.at_share(s, f), k, C)
            lo, hi = percentile_interval(m, fit.level, axis=0, method="nearest")
        curve = MultiplierCurve(f, C, est, np.asarray(lo), np.asarray(hi), (C < c_lo) | (C > c_hi))
        curve.time_ratio, curve.time_missing = _time_ratio(g.name, rates, f)
        out.append(curve)
    return out


def _rates_by_share(g) -> dict:
    """{share level: the runs at it} from the fit's points (run -> share); {} when the points are missing."""
    pts = g.points
    if pts is None or "share" not in pts.columns or "run" not in pts.columns:
        return {}
    share_of = dict(zip(pts["run"].astype(str), pts["share"].astype(float)))
    out: dict = {}
    for r in g.runs:
        f = share_of.get(str(r.get("run_id")))
        if f is not None:
            out.setdefault(f, []).append(r)
    return out


def _time_ratio(name: str, by_share: dict, f: float) -> tuple:
    """(dense's FLOP/s over share f's, "") or (None, why not)."""
    if not by_share:
        return None, f"{name}: the fit's points do not map its runs to their shares"

    def runs_at(x: float) -> list:
        return [r for s, rs in by_share.items() if abs(np.log(s) - np.log(x)) <= LEVEL_TOL for r in rs]

    td, tf = timing.throughput(f"{name} dense", runs_at(1.0)), timing.throughput(f"{name} at {f:.3g}", runs_at(f))
    for t in (td, tf):
        if isinstance(t, str):
            return None, t
    assert isinstance(td, timing.Throughput) and isinstance(tf, timing.Throughput)
    if td.device != tf.device:
        return None, f"{name}: dense and share {f:.3g} were timed on different devices ({td.device}, {tf.device})"
    return td.median / tf.median, ""
