"""Which runs to add next: the candidates that most shrink the interval of a quantity, per FLOP.

A pre-posterior estimate by refitting: for each candidate run (a shape and a token count within the
budget) its loss is taken to be the point fit's prediction, the run is added to the fitted points, and the
whole fit with its run-level bootstrap is redone (same seed, same number of resamples). The candidate's
value is how much narrower the quantity's interval gets, in log units (log(hi / lo)), divided by the
candidate's training FLOPs. Quantities: a variant's compute-optimal N at a budget (`n_opt`), or the
compute multiplier of a variant against another at a budget (`multiplier`, scalelab.fit.multiplier), or a
parameter of its law (E, A, B, alpha, beta: for one the fit warns is not identified by the runs).

The refits are noisy (a few hundred resamples each); a candidate is only ranked as an improvement when
its interval is narrower than the baseline's, and the baseline's width is reported beside it.

A variant whose compute-optimal N is not identified (its fit is L(C), L(D) or L(N) because the design cannot
separate N from D, or its N_opt lies far outside the runs' tokens per parameter) has no interval to narrow:
`design_runs` proposes instead the cheapest runs (the fitted sizes and new ones from a quarter of the
smallest to 4x the largest, x a tokens-per-parameter ladder, each under the FLOP cap) whose addition makes
the design meet the rules of scalelab.fit.identify (sizes, tokens/param spread at a size, points per
parameter, and the estimated compute-optimal tokens/param within reach of the runs'), each run labelled
with the rules it meets.
The search is a beam search over sets of candidates, cheapest total FLOPs first; every rule is checked by
identify's own functions on the design with the candidates added.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.fit import identify
from scalelab.fit.results import FitResults
from scalelab.loop.emit import said

TOKENS_PER_PARAM = (5.0, 10.0, 20.0, 40.0, 80.0)
TPP_LADDER = tuple(2.5 * 2.0**i for i in range(10))  # 2.5 .. 1280 tokens/param: design-mode candidates
PARAMS = ("E", "A", "B", "alpha", "beta")  # parameters --suggest-for can narrow besides n_opt and multiplier


@dataclass
class Candidate:
    variant: str
    N: float
    D: float
    flops: float
    shape: str  # "d_model x layers" where the fit has shape families, else ""
    loss: float = float("nan")  # the point fit's prediction, used as its outcome
    width: float = float("nan")  # log(hi / lo) of the quantity with this run added
    reduction: float = float("nan")  # baseline width - width
    per_flop: float = float("nan")  # reduction / flops


@dataclass
class Suggestion:
    quantity: str
    at: float
    baseline: float  # log(hi / lo) of the quantity on the fitted points alone
    interval: tuple  # (lo, hi) on the fitted points alone
    ranked: list  # Candidates, best reduction per FLOP first (only those that narrow the interval)
    tried: list  # every Candidate evaluated
    notes: list = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([c.__dict__ for c in self.tried]).sort_values("per_flop", ascending=False)


def fitted_points(fit: FitResults) -> tuple[pd.DataFrame, object]:
    """The points `fit` used (fit.points: after --drop-top-loss and the envelope over a sweep) in the columns of
    the FitSpec it was made with, and that spec with nothing left to drop: what its refits start from. Groups
    without a loss law are left out, as the fit left them out of its loss-law fits."""
    spec = fit.spec
    if spec is None:
        raise ScalelabError(f"fit {fit.path} records no spec (written by an older scalelab): refit it first")
    pts = fit.points
    if pts is None:
        raise ScalelabError(f"fit {fit.path} records no points: refit it with `scalelab fit` (--suggest refits them)")
    rows = pts["run"].astype(str)
    if spec.run_col is None and rows.str.fullmatch(r"row\d+").all():
        # each row is its own bootstrap unit, numbered by its place in the input: keep the input's order
        pts = pts.iloc[np.argsort(rows.str[3:].astype(int).to_numpy(), kind="stable")]
    lawless = [g.name for g in fit if g.loss_law_refused is not None]
    pts = pts[pts["fitted"].astype(bool).to_numpy() & ~pts["group"].isin(lawless).to_numpy()]
    cols = {"N": spec.n_col, "loss": spec.loss_col, "D": spec.d_col, "C": spec.c_col, "run": spec.run_col}
    cols = {k: v for k, v in cols.items() if v}
    df = pts[list(cols)].rename(columns=cols).reset_index(drop=True)
    keys = [fit.groups[name].key for name in pts["group"]]
    for c in spec.by:
        df[c] = [k[c] for k in keys]
    return df, spec.replace(drop_top_loss=0)


def _quantity(res: FitResults, quantity: str, variant: str, versus: str | None) -> tuple[float, float]:
    """(lo, hi) of the quantity in a refit."""
    groups = {g.variant: g for g in res}
    if quantity in PARAMS:  # a law parameter: its own bootstrap interval
        ci = groups[variant].conf_int.get(quantity)
        return (float(ci[0]), float(ci[1])) if ci else (float("nan"), float("nan"))
    if quantity == "n_opt":
        ci = groups[variant].derived_conf_int.get("N_opt")
        return (float(ci[0]), float(ci[1])) if ci else (float("nan"), float("nan"))
    pair = {groups[versus].name if versus in groups else versus, groups[variant].name}
    for c in res.comparisons:
        if {c.a, c.b} == pair and c.multiplier:
            lo, hi = c.multiplier[0].lo, c.multiplier[0].hi
            if not (lo > 0 and hi > 0):  # NaN: no interval
                return float("nan"), float("nan")
            return (1 / hi, 1 / lo) if c.b != groups[variant].name else (lo, hi)  # as variant vs versus
    return float("nan"), float("nan")


def candidates(fit: FitResults, variants, budget: float, sizes: int = 7) -> list[Candidate]:
    """Shapes over the fitted N range (halved below, x4 above) x TOKENS_PER_PARAM, costing at most `budget`."""
    from scalelab.plan import Planner

    planner = Planner(fit, require_samples=False)
    out = []
    for g in planner.groups:
        if g.variant not in variants:
            continue
        if g.form != "chinchilla":
            raise ScalelabError(f"{said(g.variant)}: --suggest needs an L(N, D) fit (form chinchilla), not {g.form}")
        lo, hi = g.range["N"]
        fam, shapes = planner.families[g.name], planner.shape_families.get(g.name)
        for n in np.geomspace(lo / 2, hi * 4, sizes):
            shape = ""
            if shapes is not None:
                c = min(shapes.candidates_near(n), key=lambda c: abs(math.log(c.N / n)))
                n, shape = c.N, f"{c.cfg.d_model} x {c.cfg.n_layers}"
            per_token = math.exp(float(fam.log_flops_per_token(math.log(n))))
            for t in TOKENS_PER_PARAM:
                D = t * n
                if per_token * D <= budget:
                    loss = float(g.predict(N=n, D=D))
                    out.append(Candidate(g.variant, float(n), float(D), per_token * D, shape, loss))
    if not out:
        raise ScalelabError(f"no candidate run costs at most {budget:.3g} FLOPs: raise --suggest-flops")
    return out


def _request(fit: FitResults, k: int, budget: float, quantity: str, variant: str | None, versus: str) -> str:
    """The variant whose quantity to narrow, once the request is checked (a one-line ScalelabError if not)."""
    if k < 1:
        raise ScalelabError(f"--suggest {k}: ask for at least one run")
    if not budget > 0:
        raise ScalelabError(f"--suggest-flops {budget}: give the most FLOPs one new run may cost, e.g. 1e15")
    if quantity not in ("n_opt", "multiplier", *PARAMS):
        raise ScalelabError(
            f"--suggest-for {quantity!r}: choose n_opt or multiplier, or a parameter: {', '.join(PARAMS)}"
        )
    names = sorted({g.variant for g in fit})
    variant = variant or next((v for v in names if v != versus), names[0])
    if variant not in names or (quantity == "multiplier" and versus not in names):
        raise ScalelabError(f"variant {variant!r} / {versus!r} not in the fit: choose from {', '.join(names)}")
    for g in fit:
        if quantity == "n_opt" and g.variant == variant and g.form != "chinchilla":
            raise ScalelabError(
                f"{variant}: the fit is {g.form}, which has no compute-optimal N to narrow: "
                "--suggest needs an L(N, D) fit (runs at several tokens-per-parameter ratios)"
            )
    return variant


def _candidate_row(c: Candidate, i: int, spec, points: pd.DataFrame) -> pd.DataFrame:
    """Candidate `c` as one input row in the spec's columns (run id suggested-i, its group's name)."""
    row: dict[str, Any] = {spec.n_col: c.N, spec.d_col: c.D, spec.loss_col: c.loss}
    if spec.c_col:
        row[spec.c_col] = c.flops
    if spec.run_col:
        row[spec.run_col] = f"suggested-{i}"
    if spec.by:
        row[spec.by[0]] = c.variant
    for col in points.columns:  # columns the fit does not read: any value of the right dtype
        row.setdefault(col, points[col].iloc[0])
    return pd.DataFrame([row])


def suggest(
    fit: FitResults,
    k: int,
    budget: float,
    *,
    quantity: str = "n_opt",
    variant: str | None = None,
    versus: str = "dense",
    at: float | None = None,
    n_boot: int = 200,
    seed: int = 0,
    points: pd.DataFrame | None = None,
    spec=None,
    pool: list | None = None,
    progress=None,
) -> Suggestion:
    """Rank candidate runs by how much they narrow the quantity's interval per FLOP (module docstring).
    points, spec: what to refit (default: fitted_points(fit))."""
    from scalelab.fit import fit_laws

    variant = _request(fit, k, budget, quantity, variant, versus)
    if points is None:
        points, spec = fitted_points(fit)
    at = at or max(g.c_range[1] for g in fit) * 10
    if not (at > 0 and math.isfinite(at)):
        raise ScalelabError(f"--at {at}: give a budget in FLOPs, e.g. 1e16")
    spec = spec.replace(bootstrap=n_boot, seed=seed, c_ref=at, at_flops=(at,), holdout=None, rollout=False)
    if quantity == "multiplier":
        spec = spec.replace(compare=((versus, variant),))
    wanted = [variant] + ([versus] if quantity == "multiplier" else [])
    pool = pool if pool is not None else candidates(fit, wanted, budget)

    def width(extra: pd.DataFrame | None) -> tuple[float, tuple, FitResults]:
        res = fit_laws(points if extra is None else pd.concat([points, extra], ignore_index=True), spec)
        lo, hi = _quantity(res, quantity, variant, versus)
        return (math.log(hi / lo) if lo > 0 and hi > 0 else float("nan")), (lo, hi), res

    base, interval, res0 = width(None)
    if not math.isfinite(base):
        why = [w for g in res0 if g.variant in wanted for w in g.warnings if "not identified" in w]
        raise ScalelabError(
            f"the fit gives no interval for {quantity} of {variant} at {at:.3g} FLOPs"
            + (f" ({why[0]})" if why else "")
            + ": nothing to narrow yet; add runs at more sizes and tokens-per-parameter ratios first"
        )
    for i, c in enumerate(pool):
        c.width = width(_candidate_row(c, i, spec, points))[0]
        c.reduction = base - c.width
        c.per_flop = c.reduction / c.flops
        if progress:
            progress(i + 1, len(pool))
    ranked = sorted([c for c in pool if c.reduction > 0], key=lambda c: -c.per_flop)[:k]
    notes = []
    if len(ranked) < k:
        notes.append(f"only {len(ranked)} of {len(pool)} candidates narrowed the interval in the refits")
    return Suggestion(quantity, at, base, interval, ranked, pool, notes)


# ---- design from zero: the cheapest runs that make the design identify N_opt ----------------------------------
@dataclass
class DesignRun:
    variant: str
    N: float
    D: float
    flops: float
    shape: str  # "d_model x layers" where the fit has shape families, else ""
    config: dict | None = None  # the model config to train, where the fit has shape families
    rules: list = field(default_factory=list)  # (rule, words): the identify rules the design misses without it


@dataclass
class DesignSuggestion:
    runs: list  # DesignRuns, cheapest first
    gaps: dict  # variant -> why its N_opt is not identified now
    before: dict  # variant -> identify.Design of the fitted points
    after: dict  # variant -> identify.Design with the runs added
    notes: list = field(default_factory=list)
    pool: dict = field(default_factory=dict)  # variant -> the candidates searched (under the FLOP cap)

    def to_dict(self) -> dict:
        return {
            "mode": "identify",
            "gaps": self.gaps,
            "suggested": [
                {
                    **{k: v for k, v in r.__dict__.items() if k != "rules"},
                    "rules": [w for _, w in r.rules],
                    "rule_ids": [k for k, _ in r.rules],
                }
                for r in self.runs
            ],
            "before": {v: d.to_dict() for v, d in self.before.items()},
            "after": {v: d.to_dict() for v, d in self.after.items()},
            "notes": self.notes,
        }


def not_identified(fit: FitResults, variants=None) -> dict[str, str]:
    """variant -> why its compute-optimal N is not identified (identify.compute_optimal_gap), for those not."""
    out = {}
    for g in fit:
        if variants and g.variant not in variants:
            continue
        gap = identify.compute_optimal_gap(g)
        if gap:
            out[g.variant] = gap
    return out


def group_points(fit: FitResults) -> dict[str, pd.DataFrame]:
    """Each group's points its law was fitted on (its `points`, the rows the envelope kept), by group name."""
    return {g.name: g.points[g.points["fitted"].astype(bool)] for g in fit if g.points is not None}


def _fitted_sizes(g, shapes, gd: pd.DataFrame) -> dict[float, tuple]:
    """N -> (N, FLOPs per token, shape, config) of the fitted sizes: each size's own FLOPs per token (C / D of
    its point with the most tokens) and model (its run's, where the runs carry model configs)."""
    models = {str(r.get("run_id")): r.get("model") for r in g.runs}  # the runs list: each run's config
    out = {}
    for n, pts in gd.sort_values("D", kind="stable").groupby("N", sort=True):
        last = pts.iloc[-1]
        model = models.get(str(last["run"]))
        shape = f"{model['d_model']} x {model['n_layers']}" if model else ""
        out[float(n)] = (float(n), float(last["C"]) / float(last["D"]), shape, model if shapes is not None else None)
    return out


def _sizes(g, shapes, gd: pd.DataFrame) -> list[tuple[float, float, str, dict | None]]:
    """(N, FLOPs per token, shape, config) of the fitted sizes and of new ones over [N_min / 4, 4 N_max], each
    new size at least 1.5x from any other (a size next to another adds a level in name only). A new size
    without a shape family costs k N per token, k = the group's FLOPs per parameter-token (C = k N D)."""
    out = _fitted_sizes(g, shapes, gd)
    if shapes is None and g.k_flops is None:
        raise ScalelabError(f"{said(g.variant)}: the fit records no FLOPs per parameter-token (k_flops): refit it")
    lo, hi = float(gd["N"].min()) / 4, float(gd["N"].max()) * 4
    for target in np.exp(np.arange(math.log(lo), math.log(hi) + 1e-9, math.log(2) / 2)):  # sqrt(2) steps
        if shapes is not None:
            c = min(shapes.candidates_near(target), key=lambda c: abs(math.log(c.N / target)))
            n, per_token = float(c.N), float(c.flops_per_token)
            shape, config = f"{c.cfg.d_model} x {c.cfg.n_layers}", c.cfg.to_dict()
        else:
            n, per_token, shape, config = float(target), g.k_flops * float(target), "", None
        if not lo * 0.999 <= n <= hi * 1.001 or any(abs(math.log(n / m)) < math.log(1.5) for m in out):
            continue
        out[n] = (n, per_token, shape, config)
    return sorted(out.values())


def _ladder(est_tpp: float | None) -> list[float]:
    """TPP_LADDER, doubled on past its ends until it reaches within PLAUSIBLE_FACTOR of an estimated
    compute-optimal tokens/param (what the allocation rule asks), at most 30 rungs."""
    lad = list(TPP_LADDER)
    if est_tpp and math.isfinite(est_tpp) and est_tpp > 0:
        reach = identify.PLAUSIBLE_FACTOR
        while lad[-1] * reach < est_tpp and len(lad) < 30:
            lad.append(lad[-1] * 2)
        while lad[0] / reach > est_tpp and len(lad) < 30:
            lad.insert(0, lad[0] / 2)
    return lad


def _short(base, extra, fixed, est_tpp):
    """(Design, shortfall per rule) of the fitted points plus `extra` runs, by identify's own rule functions."""
    N = np.concatenate([base[0], [r.N for r in extra]])
    D = np.concatenate([base[1], [r.D for r in extra]])
    C = np.concatenate([base[2], [r.flops for r in extra]])
    d = identify.describe(N, D, C)
    s = identify.chinchilla_short(d, fixed)
    if est_tpp is not None:
        s["allocation"] = identify.allocation_short(est_tpp, identify.plausible_tpp(d.tpp_min, d.tpp_max))
    return d, s


def _deficit(s: dict) -> float:
    """0 when every rule is met; else a sum of shortfalls in comparable units (missing levels or points; the
    missing spread and reach as fractions of the factors the rules ask for)."""
    out = float(s["sizes"] + s["points"]) + math.log(s["separation"]) / math.log(identify.SEPARATION_MIN)
    if "allocation" in s:
        out += math.log(s["allocation"]) / math.log(identify.PLAUSIBLE_FACTOR)
    return out


def _cheapest(base, pool: list, fixed, est_tpp, max_runs: int, beam: int = 24):
    """The cheapest set of at most `max_runs` runs of `pool` (total FLOPs) after which every rule is met, by a
    beam search over sets (states ranked by deficit, then cost, plus the cheapest states); None if none found."""
    best, best_cost = None, math.inf
    states: list[frozenset[int]] = [frozenset()]
    cost: dict[frozenset[int], float] = {frozenset(): 0.0}
    for _ in range(max_runs):
        scored = {}
        for st in states:
            for j, r in enumerate(pool):
                if j in st:
                    continue
                new = st | {j}
                c = cost[st] + r.flops
                if new in scored or c >= best_cost:
                    continue
                cost[new] = c
                dfc = _deficit(_short(base, [pool[i] for i in new], fixed, est_tpp)[1])
                if dfc <= 0:
                    best, best_cost = new, c
                else:
                    scored[new] = (dfc, c)
        scored = {st: v for st, v in scored.items() if v[1] < best_cost}
        by_deficit = sorted(scored, key=lambda st: scored[st])[:beam]
        by_cost = sorted(scored, key=lambda st: scored[st][1])[:beam]
        states = list(dict.fromkeys(by_deficit + by_cost))
        if not states:
            break
    return None if best is None else sorted((pool[i] for i in best), key=lambda r: r.flops)


def _rule_words(rule: str, d, fixed, est_tpp) -> str:
    P = identify.free_params("chinchilla", fixed)
    if rule == "sizes":
        return f"sizes: {d.n_sizes} model sizes (L(N, D) needs >= {identify.MIN_LEVELS})"
    if rule == "separation":
        return f"spread: tokens/param {d.separation:.3g}x apart at a given size (needs >= {identify.SEPARATION_MIN:g}x)"
    if rule == "points":
        return f"points: {d.n_points} for {P} free parameters (needs > {P})"
    lo, hi = identify.plausible_tpp(d.tpp_min, d.tpp_max)
    return (
        f"N_opt: runs' tokens/param {d.tpp_min:.3g}-{d.tpp_max:.3g} reach the estimated compute-optimal "
        f"{est_tpp:.3g} (within {identify.PLAUSIBLE_FACTOR:g}x: {lo:.3g}-{hi:.3g})"
    )


def _design_request(fit: FitResults, k: int, budget: float, variants) -> dict[str, str]:
    """The variants to design for and why each N_opt is not identified, once the request is checked."""
    if k < 1:
        raise ScalelabError(f"--suggest {k}: ask for at least one run")
    if not budget > 0:
        raise ScalelabError(f"--suggest-flops {budget}: give the most FLOPs one new run may cost, e.g. 1e15")
    names = sorted({g.variant for g in fit})
    unknown = [v for v in variants or () if v not in names]
    if unknown:
        raise ScalelabError(f"variant {unknown[0]!r} is not in the fit: choose from {', '.join(map(said, names))}")
    gaps = not_identified(fit, variants)
    if not gaps:
        raise ScalelabError("N_opt of every variant asked for is identified: `plan --suggest K` narrows its interval")
    spec = fit.spec
    if spec is None:
        raise ScalelabError(f"fit {fit.path} records no spec (written by an older scalelab): refit it first")
    if spec.form not in ("auto", "chinchilla"):
        raise ScalelabError(f"the fit was made with --form {spec.form}: refit with --form auto to fit L(N, D)")
    return gaps


def _within_cap(g, base, pool: list, capped: list, est, k: int, max_search: int, budget: float, gap: str) -> list:
    """The cheapest runs of `capped` (at most k, else at most max_search) that make the design meet every
    rule; a one-line ScalelabError when no runs under the cap can, naming the cap that would do."""
    fixed = g.fixed
    chosen = _cheapest(base, capped, fixed, est, k) if capped else None
    if chosen is None:
        chosen = _cheapest(base, capped, fixed, est, max_search) if capped else None
    if chosen is not None:
        return chosen
    need = _cheapest(base, pool, fixed, est, max_search)  # nothing under the cap: say what cap would do
    if need is None:
        raise ScalelabError(
            f"{said(g.variant)}: no set of up to {max_search} runs at sizes {_si_range(pool)} makes the "
            f"design identify N_opt ({said(gap)}); plan the next runs by hand"
        )
    big = max(r.flops for r in need)
    raise ScalelabError(
        f"{said(g.variant)}: no run of at most {budget:.3g} FLOPs makes the design identify N_opt "
        f"({said(gap)}); {len(need)} run(s) of up to {big:.3g} FLOPs do: raise --suggest-flops"
    )


def _design_note(g, est) -> list[str]:
    if est is not None:
        return [
            f"{said(g.variant)}: its N_opt estimate ({est:.3g} tokens/param) comes from runs far from it and "
            "moves as runs are added: refit after these and run `plan --suggest` again"
        ]
    if g.form != "chinchilla":
        return [
            f"{said(g.variant)}: once the design identifies L(N, D), its N_opt must also land within "
            f"{identify.PLAUSIBLE_FACTOR:g}x of the runs' tokens/param; refit and run `plan --suggest` again"
        ]
    return []


def design_runs(fit: FitResults, k: int, budget: float, *, variants=None, max_search: int = 12) -> DesignSuggestion:
    """The cheapest runs (at most k, each <= budget FLOPs) after which the design of every variant whose
    compute-optimal N is not identified meets identify's rules (module docstring), judged on the points each
    group was fitted on; a one-line ScalelabError when k runs cannot do it (naming how many can) or none under
    the cap can (naming the FLOPs needed)."""
    from scalelab.plan import Planner

    gaps = _design_request(fit, k, budget, variants)
    pts = group_points(fit)
    try:
        planner = Planner(fit, require_samples=False)
    except ScalelabError:  # only L(D) / L(N) groups: no FLOP families; new sizes cost C = k N D
        planner = None
    runs, before, after, notes, pools = [], {}, {}, [], {}
    for g in fit:
        if g.variant not in gaps:
            continue
        gd = pts.get(g.name)
        if gd is None or not len(gd):
            raise ScalelabError(f"{said(g.variant)}: fit {fit.path} records no points for it: refit it first")
        base = tuple(gd[c].to_numpy(float) for c in ("N", "D", "C"))
        co = g.compute_optimal
        est = float(co.tokens_per_param) if co is not None and co.identified is False and co.tokens_per_param else None
        shapes = planner.shape_families.get(g.name) if planner else None
        pool = [
            DesignRun(g.variant, n, t * n, per_token * t * n, shape, config)
            for n, per_token, shape, config in _sizes(g, shapes, gd)
            for t in _ladder(est)
        ]
        capped = pools[g.variant] = [r for r in pool if r.flops <= budget * (1 + 1e-9)]
        chosen = _within_cap(g, base, pool, capped, est, k, max_search, budget, gaps[g.variant])
        _label(base, chosen, g.fixed, est)
        before[g.variant], after[g.variant] = identify.describe(*base), _short(base, chosen, g.fixed, est)[0]
        runs += chosen
        notes += _design_note(g, est)
    if len(runs) > k:
        per = ", ".join(f"{said(v)} {sum(r.variant == v for r in runs)}" for v in gaps)
        raise ScalelabError(
            f"{k} run(s) of at most {budget:.3g} FLOPs cannot make the design identify N_opt of "
            f"{', '.join(map(said, gaps))}; {len(runs)} can ({per}): ask --suggest {len(runs)}"
            + (", or one variant at a time with --suggest-variant" if len(gaps) > 1 else "")
        )
    runs.sort(key=lambda r: r.flops)
    if len(runs) < k:
        notes.append(
            f"{len(runs)} run(s) make the design meet every rule; once they are trained and refitted, "
            f"`plan --suggest {k}` ranks the runs that narrow N_opt's interval"
        )
    return DesignSuggestion(runs, gaps, before, after, notes, pools)


def _label(base, chosen: list, fixed, est) -> None:
    """Each run's rules, cheapest run first: those still unmet before it that it meets or moves closer (its row
    "satisfies" them, together with the runs above it); where it moves none on its own, the rules the design
    would miss without it."""
    chosen.sort(key=lambda r: r.flops)
    for i, r in enumerate(chosen):
        _, s0 = _short(base, chosen[:i], fixed, est)
        d1, s1 = _short(base, chosen[: i + 1], fixed, est)
        r.rules = [(rule, _rule_words(rule, d1, fixed, est)) for rule in s0 if _fails(rule, s0) and s1[rule] < s0[rule]]
        if not r.rules:
            _, s = _short(base, [x for x in chosen if x is not r], fixed, est)
            d, _ = _short(base, chosen, fixed, est)
            r.rules = [(rule, _rule_words(rule, d, fixed, est)) for rule in s if _fails(rule, s)]


def _fails(rule: str, s: dict) -> bool:
    return s[rule] > (1.0 if rule in ("separation", "allocation") else 0)


def _si_range(pool: list) -> str:
    ns = [r.N for r in pool]
    return f"{min(ns):.3g}-{max(ns):.3g}" if ns else "none"
