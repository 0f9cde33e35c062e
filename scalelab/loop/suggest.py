"""Which runs to add next: the candidates that most shrink the interval of a quantity, per FLOP.

A pre-posterior estimate by refitting: for each candidate run (a shape and a token count within the
budget) its loss is taken to be the point fit's prediction, the run is added to the fitted points, and the
whole fit with its run-level bootstrap is redone (same seed, same number of resamples). The candidate's
value is how much narrower the quantity's interval gets, in log units (log(hi / lo)), divided by the
candidate's training FLOPs. Quantities: a variant's compute-optimal N at a budget (`n_opt`), or the
compute multiplier of a variant against another at a budget (`multiplier`, scalelab.fit.multiplier).

The refits are noisy (a few hundred resamples each); a candidate is only ranked as an improvement when
its interval is narrower than the baseline's, and the baseline's width is reported beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.fit.results import FitResults

TOKENS_PER_PARAM = (5.0, 10.0, 20.0, 40.0, 80.0)


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
    """The points and FitSpec `fit` was made from, re-read from the input files it records."""
    from pathlib import Path

    from scalelab.fit.io import load_inputs

    spec = fit.spec
    if spec is None:
        raise ScalelabError(f"fit {fit.path} records no spec (written by an older scalelab): refit it first")
    paths = [i["path"] for i in fit.meta.get("inputs") or []]
    missing = [p for p in paths if not Path(p).is_file()]
    if not paths or missing:
        raise ScalelabError(
            f"fit {fit.path}: its input files are not here ({', '.join(missing[:2]) or 'none recorded'}): "
            "--suggest refits them; run it where `scalelab fit` ran"
        )
    df, _ = load_inputs(
        paths,
        n_col=spec.n_col,
        d_col=spec.d_col,
        loss_col=spec.loss_col,
        flops_col=spec.c_col,
        run_col=spec.run_col,
        by=list(spec.by) or None,
        all_checkpoints=spec.all_checkpoints,
    )
    return df, spec


def _quantity(res: FitResults, quantity: str, variant: str, versus: str | None) -> tuple[float, float]:
    """(lo, hi) of the quantity in a refit."""
    groups = {g.variant: g for g in res}
    if quantity == "n_opt":
        ci = groups[variant].derived_conf_int.get("N_opt")
        return (float(ci[0]), float(ci[1])) if ci else (float("nan"), float("nan"))
    for c in res.comparisons:
        pair = {groups[versus].name if versus in groups else versus, groups[variant].name}
        if {c.get("a"), c.get("b")} == pair and c.get("multiplier"):
            m = c["multiplier"][0]
            lo, hi = m.get("lo"), m.get("hi")
            if c.get("b") != groups[variant].name and lo and hi:  # oriented as variant vs versus
                lo, hi = 1 / hi, 1 / lo
            return (float(lo), float(hi)) if lo and hi else (float("nan"), float("nan"))
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
            raise ScalelabError(f"{g.variant}: --suggest needs an L(N, D) fit (form chinchilla), not {g.form}")
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
    """Rank candidate runs by how much they narrow the quantity's interval per FLOP (module docstring)."""
    from scalelab.fit import fit_laws

    if k < 1:
        raise ScalelabError(f"--suggest {k}: ask for at least one run")
    if not budget > 0:
        raise ScalelabError(f"--suggest-flops {budget}: give the most FLOPs one new run may cost, e.g. 1e15")
    if quantity not in ("n_opt", "multiplier"):
        raise ScalelabError(f"--suggest-for {quantity!r}: choose n_opt or multiplier")
    names = sorted({g.variant for g in fit})
    variant = variant or next((v for v in names if v != versus), names[0])
    if variant not in names or (quantity == "multiplier" and versus not in names):
        raise ScalelabError(f"variant {variant!r} / {versus!r} not in the fit: choose from {', '.join(names)}")
    for g in fit:
        if g.variant in (variant, versus) and quantity == "n_opt" and g.variant == variant and g.form != "chinchilla":
            raise ScalelabError(
                f"{variant}: the fit is {g.form}, which has no compute-optimal N to narrow: "
                "--suggest needs an L(N, D) fit (runs at several tokens-per-parameter ratios)"
            )
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
    run_col = spec.run_col
    group_col = spec.by[0] if spec.by else None

    def refit(extra: pd.DataFrame | None):
        df = points if extra is None else pd.concat([points, extra], ignore_index=True)
        return fit_laws(df, spec)

    def width(res) -> tuple[float, tuple]:
        lo, hi = _quantity(res, quantity, variant, versus)
        return (math.log(hi / lo) if lo > 0 and hi > 0 else float("nan")), (lo, hi)

    res0 = refit(None)
    base, interval = width(res0)
    if not math.isfinite(base):
        why = [w for g in res0 if g.variant in wanted for w in g.warnings if "not identified" in w]
        raise ScalelabError(
            f"the fit gives no interval for {quantity} of {variant} at {at:.3g} FLOPs"
            + (f" ({why[0]})" if why else "")
            + ": nothing to narrow yet; add runs at more sizes and tokens-per-parameter ratios first"
        )
    for i, c in enumerate(pool):
        row = {spec.n_col: c.N, spec.d_col: c.D, spec.loss_col: c.loss}
        if spec.c_col:
            row[spec.c_col] = c.flops
        if run_col:
            row[run_col] = f"suggested-{i}"
        if group_col:
            row[group_col] = c.variant
        for col in points.columns:  # columns the fit does not read: any value of the right dtype
            row.setdefault(col, points[col].iloc[0])
        c.width, _ = width(refit(pd.DataFrame([row])))
        c.reduction = base - c.width
        c.per_flop = c.reduction / c.flops
        if progress:
            progress(i + 1, len(pool))
    ranked = sorted([c for c in pool if c.reduction > 0], key=lambda c: -c.per_flop)[:k]
    notes = []
    if len(ranked) < k:
        notes.append(f"only {len(ranked)} of {len(pool)} candidates narrowed the interval in the refits")
    return Suggestion(quantity, at, base, interval, ranked, pool, notes)
