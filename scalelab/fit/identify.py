"""Identifiability from the design alone: which law the points can identify, and why, before any fit.

A law is identified by where the points lie, not by how well a curve passes through them:

- L(N, D) = E + A/N^alpha + B/D^beta needs N and D to vary *independently*: at least 3 model sizes and
  tokens per parameter spread at a given size. The spread is measured on log(D/N) after removing its
  linear trend in log N (a design where D grows as any power of N is one curve, whatever the ratio):
  `separation` = exp(range of those residuals), a factor. Below SEPARATION_MIN the two terms trade off
  along the design's line and alpha, beta, A, B (and the compute-optimal N, D built from them) are not
  identified: the compute frontier L(C) = E + K/C^gamma is what such data identify.
- L(D) (one N) needs 3 token counts; L(N) (one D) 3 sizes; L(C) 3 budgets.
- every form needs more points than free parameters (parameters fixed with --fix are not free).

Each rule has one home here (`sizes_short`, `separation_short`, `points_short`, `allocation_short`): `choose`
applies them to the fitted points, and `plan --suggest` (scalelab/loop/suggest.py) to a design with candidate
runs added, to find the cheapest runs that make it identified.

`choose` returns (form, why) or raises a one-line ScalelabError naming what is missing. The compute-optimal
N and D of an L(N, D) fit are checked against the design too (`plausible_tpp`, `allocation_check`): a
tokens-per-parameter ratio more than PLAUSIBLE_FACTOR outside the fitted runs' range is not a finding,
it is the law extrapolated where it was never measured.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from scalelab.errors import ScalelabError
from scalelab.fit.groups import distinct
from scalelab.fit.laws import FORMS

SEPARATION_MIN = 3.0  # tokens/param must spread at least 3x at a given size to separate N from D
MIN_LEVELS = 3  # distinct sizes (token counts, budgets) an exponent needs
PLAUSIBLE_FACTOR = 10.0  # compute-optimal tokens/param plausible within 10x of the fitted runs' range

_LAW = {
    "chinchilla": "L(N, D)",
    "data": "L(D)",
    "size": "L(N)",
    "frontier": "L(C)",
    "power": "L(C) = K/C^gamma",
    "repetition": "L(N', D') (repeated data)",
}


@dataclass(frozen=True)
class Design:
    """What the points' placement can tell apart (see module docstring)."""

    n_points: int
    n_sizes: int  # distinct N
    n_tokens: int  # distinct D
    n_budgets: int  # distinct C
    tpp_min: float
    tpp_max: float
    separation: float  # factor: spread of tokens/param at a given size (trend in log N removed)

    def to_dict(self) -> dict:
        return asdict(self)


def describe(N, D, C) -> Design:
    N, D, C = (np.asarray(x, float) for x in (N, D, C))
    tpp = D / N
    ns = distinct(N)
    y = np.log(tpp)
    if ns >= 2:
        x = np.log(N)
        slope, icpt = np.polyfit(x, y, 1)
        r = y - (icpt + slope * x)
    else:
        r = y - y.mean()
    sep = float(math.exp(float(r.max() - r.min()))) if r.size else 1.0
    return Design(int(N.size), ns, distinct(D), distinct(C), float(tpp.min()), float(tpp.max()), sep)


def free_params(form: str, fixed=()) -> int:
    return len([p for p in FORMS[form].params if p not in dict(fixed)])


def _ratio_words(d: Design) -> str:
    return f"tokens/param {d.tpp_min:.3g}-{d.tpp_max:.3g}"


# ---- the rules, one home each: how far a design is from meeting them -------------------------------------------
RULES = {
    "sizes": f"at least {MIN_LEVELS} model sizes (the N exponent)",
    "separation": f"tokens/param spread at least {SEPARATION_MIN:g}x at a given size (N apart from D)",
    "points": "more points than the law's free parameters",
    "allocation": f"compute-optimal tokens/param within {PLAUSIBLE_FACTOR:g}x of the runs' range (N_opt)",
}


def sizes_short(d: Design) -> int:
    """Model sizes the design lacks for an N exponent (0: enough)."""
    return max(0, MIN_LEVELS - d.n_sizes)


def separation_short(d: Design) -> float:
    """Factor by which tokens/param must still spread at a given size to separate N from D (1.0: enough)."""
    return max(1.0, SEPARATION_MIN / d.separation) if d.separation > 0 else math.inf


def points_short(d: Design, form: str = "chinchilla", fixed=()) -> int:
    """Points the design lacks to have more points than the form's free parameters (0: enough)."""
    return max(0, free_params(form, fixed) + 1 - d.n_points)


def chinchilla_short(d: Design, fixed=()) -> dict[str, float]:
    """How far the design is from identifying L(N, D), rule by rule (see RULES); all-zero shortfalls (sizes,
    points) and a separation factor of 1 mean identified."""
    return {"sizes": sizes_short(d), "separation": separation_short(d), "points": points_short(d, "chinchilla", fixed)}


def _points_check(d: Design, form: str, fixed, group: str) -> None:
    P = free_params(form, fixed)
    if points_short(d, form, fixed):
        raise ScalelabError(
            f"group {group!r}: {d.n_points} points for the {P} free parameters of {_LAW[form]}: "
            f"a fit needs more points than parameters; add runs or fix parameters with --fix (e.g. --fix E=1.69)"
        )


def chinchilla_gap(d: Design) -> str | None:
    """What keeps the design from identifying L(N, D), in words; None when it does."""
    if sizes_short(d):
        return (
            f"{d.n_sizes} model size(s): the N exponent needs at least {MIN_LEVELS}; "
            "add a size (or fit L(D) per size with --by on the N column)"
        )
    if separation_short(d) > 1:
        lo, hi = d.tpp_min, d.tpp_max
        mid = math.sqrt(lo * hi)
        return (
            f"{d.n_sizes} sizes at nearly one tokens-per-param ratio ({lo:.3g}-{hi:.3g}, {d.separation:.3g}x apart "
            f"at a given size): N and D are confounded; add runs at {_nice(mid / 4):g}x and {_nice(mid * 2.5):g}x "
            "tokens/param to separate them"
        )
    return None


def _nice(x: float) -> float:
    """x rounded to 1, 2 or 5 times a power of ten."""
    e = math.floor(math.log10(x))
    m = x / 10**e
    return min((1, 2, 5, 10), key=lambda c: abs(math.log(m / c))) * 10**e


def choose(N, D, C, requested: str = "auto", fixed=(), group: str = "all") -> tuple[str, str, Design]:
    """(form, why, design) for one group's points, or a one-line ScalelabError naming what is missing.

    requested: "auto" picks the richest law the design identifies: L(N, D) when sizes and tokens/param
    vary independently, else L(D) (one N), L(N) (one D), or the frontier L(C); an explicit form is
    checked and refused when the design cannot identify it."""
    d = describe(N, D, C)
    fixed = tuple(fixed or ())
    if d.n_sizes == 1 and d.n_tokens == 1:
        raise ScalelabError(f"group {group!r}: every point has the same N and D; nothing to fit: add runs")
    if requested == "auto":
        if d.n_sizes == 1:
            form, why = "data", f"one model size, {d.n_tokens} token counts: fitting L(D) at fixed N"
            if d.n_tokens < MIN_LEVELS:
                raise ScalelabError(
                    f"group {group!r}: one model size and {d.n_tokens} token counts: L(D) needs at least "
                    f"{MIN_LEVELS}; add runs at more token counts"
                )
        elif d.n_tokens == 1:
            form, why = "size", f"{d.n_sizes} sizes at one token count: fitting L(N) at fixed D"
            if d.n_sizes < MIN_LEVELS:
                raise ScalelabError(
                    f"group {group!r}: {d.n_sizes} sizes at one token count: L(N) needs at least "
                    f"{MIN_LEVELS} sizes; add a size"
                )
        else:
            gap = chinchilla_gap(d)
            if gap is None and not points_short(d, "chinchilla", fixed):
                form = "chinchilla"
                why = (
                    f"{d.n_sizes} sizes, {_ratio_words(d)} ({d.separation:.3g}x apart at a given size), "
                    f"{d.n_points} points for {free_params(form, fixed)} parameters: N and D vary independently; "
                    "fitting L(N, D)"
                )
            else:
                form = "frontier"
                if gap is None:
                    gap = f"{d.n_points} points cannot identify the {free_params('chinchilla', fixed)} of L(N, D)"
                if d.n_budgets < MIN_LEVELS:
                    raise ScalelabError(f"group {group!r}: {gap}; and {d.n_budgets} compute budget(s) cannot fit L(C)")
                why = gap.replace("; add", "; fitting L(C); add", 1) if "; add" in gap else f"{gap}; fitting L(C)"
        _points_check(d, form, fixed, group)
        return form, why, d
    form = requested
    if form == "chinchilla":
        gap = chinchilla_gap(d)
        if gap is not None:
            raise ScalelabError(f"group {group!r}: --form chinchilla is not identified: {gap} (or use --form auto)")
    elif form == "data" and d.n_tokens < MIN_LEVELS:
        raise ScalelabError(f"group {group!r}: --form data needs {MIN_LEVELS} token counts, got {d.n_tokens}")
    elif form == "size" and d.n_sizes < MIN_LEVELS:
        raise ScalelabError(f"group {group!r}: --form size needs {MIN_LEVELS} sizes, got {d.n_sizes}")
    elif form in ("data", "size") and (d.n_sizes if form == "data" else d.n_tokens) > 1:
        # L(D) holds N fixed (its N term is inside E), L(N) holds D fixed: pooling them mixes several laws
        held, n, col = ("N", d.n_sizes, "model size") if form == "data" else ("D", d.n_tokens, "token count")
        raise ScalelabError(
            f"group {group!r}: --form {form} fits {_LAW[form]} at one {col}, and these points have {n}: fit each "
            f"{col} apart (--by on the {held} column), or leave out --form"
        )
    elif form in ("frontier", "power") and d.n_budgets < (MIN_LEVELS if form == "frontier" else 2):
        raise ScalelabError(f"group {group!r}: --form {form} needs {MIN_LEVELS} compute budgets, got {d.n_budgets}")
    _points_check(d, form, fixed, group)
    return form, f"{_LAW[form]} as requested (--form {form}); {d.n_points} points, {d.n_sizes} sizes", d


# ---- plausibility of a compute-optimal allocation -------------------------------------------------------------
def plausible_tpp(tpp_min: float, tpp_max: float, factor: float = PLAUSIBLE_FACTOR) -> tuple[float, float]:
    """The tokens-per-parameter range a compute-optimal allocation may take and still be a reading of the
    data: the fitted runs' range widened by `factor` each way."""
    return (tpp_min / factor, tpp_max * factor)


def allocation_short(tpp: float, rng: tuple[float, float]) -> float:
    """Factor by which `tpp` lies outside the plausible range `rng` (1.0: inside; inf: not a number)."""
    lo, hi = rng
    if not (math.isfinite(tpp) and tpp > 0):
        return math.inf
    return max(1.0, lo / tpp, tpp / hi)


def allocation_check(tpp: float, rng: tuple[float, float]) -> str | None:
    """None when `tpp` lies in the plausible range `rng`; else the reason it is not identified, in words."""
    lo, hi = rng
    if allocation_short(tpp, rng) == 1.0:
        return None
    return (
        f"compute-optimal tokens/param {tpp:.3g} is outside the plausible {lo:.3g}-{hi:.3g} "
        f"({PLAUSIBLE_FACTOR:g}x beyond the fitted runs' range): N_opt and D_opt are not identified"
    )


E_FLOOR = 1e-4  # the lower bound of E's search box (fit/objective.bounds)


def e_gap(E: float | None, interval=None, level: float = 0.95) -> str | None:
    """Why the runs do not identify the irreducible loss E, in words; None when they do (or E is not fitted).
    Not identified: the point estimate sits at the search box's floor, or its bootstrap interval reaches below a
    tenth of it (the loss curves show no floor at this scale). One rule for the fit's warning and the planner."""
    if E is None or not E > 0:
        return None
    if E <= E_FLOOR * (1 + 1e-6):
        return f"E is not identified by these runs (the fit puts it at the floor of the search, {E_FLOOR:g})"
    if interval is not None and interval[0] is not None and interval[0] < 0.1 * E:
        # the point estimate is not a reading of the data, so it is not printed; the interval is
        lo, hi = interval
        return f"E is not identified by these runs ({level:.0%} interval [{lo:.3g}, {hi:.3g}])"
    return None


def compute_optimal_gap(g):
    """Why a fitted group's compute-optimal N is not identified, in words, from what its fit recorded (a
    GroupFit's form, identification, compute_optimal, fixed and loss_law_refused); None when it is identified.
    Returns str | None."""
    form = g.form
    if form == "allocation":  # approach 1/2: N_opt is fitted directly
        return None
    if g.loss_law_refused is not None:  # a sweep kept for its lr law only
        return f"loss law not fitted: {g.loss_law_refused or 'refused'}"
    if form == "chinchilla":
        co = g.compute_optimal
        if co is not None and co.identified is False:
            return str(co.why or "compute-optimal tokens/param outside the plausible range")
        return None
    fixed = tuple((g.fixed or {}).items())
    ident = g.identification.to_dict() if g.identification is not None else {}
    try:
        d = Design(**{k: ident[k] for k in Design.__dataclass_fields__})
    except (KeyError, TypeError):
        return f"the fit is {_LAW.get(form, form)}, which has no compute-optimal N"
    gap = chinchilla_gap(d)
    if gap is None and points_short(d, "chinchilla", fixed):
        gap = f"{d.n_points} points cannot identify the {free_params('chinchilla', fixed)} parameters of L(N, D)"
    return f"the fit is {_LAW.get(form, form)}: {gap}" if gap else f"the fit is {_LAW.get(form, form)} (requested)"
