"""Cluster bootstrap by run, percentile intervals, and group comparisons.

Checkpoints of one run are correlated, so the resampling unit is the run (rows when the input has no
run id). A resample is a vector of counts per unit; the fitter turns counts into per-row weights, so
every resample is fitted from its own starts on the same design (see solver.fit_batch).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


def unit_counts(units: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Draw `n_boot` resamples of the distinct units (with replacement, as many as there are).

    units[n]: the unit (run id) of each row. Returns counts per row [n_boot, n]: how many times the
    row's unit was drawn."""
    uniq, inv = np.unique(units, return_inverse=True)
    R = uniq.size
    draws = rng.integers(0, R, size=(n_boot, R))
    flat = (draws + np.arange(n_boot)[:, None] * R).ravel()
    per_unit = np.bincount(flat, minlength=n_boot * R).reshape(n_boot, R)
    return per_unit[:, inv].astype(float)


def percentile_interval(samples, level: float = 0.95, axis: int | None = None, method: str = "linear"):
    """The percentile interval of bootstrap samples: the one routine, with the one policy for odd samples.

    NaN is undefined (a resample that could not be fitted or evaluated): left out. +-inf is an outcome (a loss
    never reached, a budget that never suffices): it stays in its tail, so an end that reaches into it is
    +-inf. axis None: (lo, hi) floats over all samples (NaN when none is defined); else arrays over `axis`
    (e.g. axis=0 for samples x points). method: numpy's percentile method ("nearest" keeps ends on samples)."""
    s = np.asarray(samples, float)
    if axis is None:
        s, axis_ = s.ravel(), 0
    else:
        axis_ = axis
    big = np.finfo(float).max
    q = 100 * (1 - level) / 2
    if s.size == 0:
        lo = hi = np.full(np.delete(s.shape, axis_), np.nan) if s.ndim > 1 else np.float64("nan")
    else:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: NaN ends, as documented
            # method: any numpy percentile method name, checked by numpy (its stubs want one Literal)
            lo, hi = np.nanpercentile(  # type: ignore[call-overload]
                np.clip(s, -big, big), [q, 100 - q], axis=axis_, method=method
            )
        # an end interpolated into the clipped infinities is itself infinite
        lo, hi = (np.where(np.abs(x) >= _INF_EDGE, np.sign(x) * np.inf, x) for x in (lo, hi))
    if axis is None:
        return float(lo), float(hi)
    return lo, hi


_INF_EDGE = 1e300  # no finite sample of a law's quantity comes near this; an interpolated clipped inf does


def not_an_interval(
    lo: float, hi: float, estimate: float, n_valid: int, n: int, level: float = 0.95, spread: bool = False
) -> str | None:
    """Why [lo, hi] is not an interval of `estimate`, else None (the policy, in one place): it rests on fewer
    than half of the n resamples (the valid ones are those that kept what the estimate needed: a conditional,
    not a sampling, distribution) or it does not contain its own estimate (the resamples do not describe the
    estimate's error). With `spread` (a fitted quantity, not a prediction): also when it has no width."""
    if n_valid < max(2, n / 2):
        return (
            f"only {n_valid} of {n} bootstrap resamples could be fitted"
            + (" (fewer than half)" if n >= 2 * max(n_valid, 1) else "")
            + ": too few to be a sample of the estimate's error"
        )
    if spread and (flat := no_spread(lo, hi, n_valid)):  # a fitted quantity must move with the data (no_spread)
        return flat
    # rounding slack at each end, on the scale of that end and the estimate (an end may be inf: never reached)
    slack = 1e-9 * abs(estimate) + 1e-300
    if not lo - 1e-9 * abs(lo) - slack <= estimate <= hi + 1e-9 * abs(hi) + slack:
        return (
            f"the estimate {estimate:.4g} lies outside [{lo:.4g}, {hi:.4g}], the {level:.0%} percentile range "
            f"of its {n_valid} valid resamples (of {n})"
        )
    return None


def no_spread(lo: float, hi: float, n_valid: int) -> str | None:
    """Why a fitted quantity's [lo, hi] measures no error, else None: every resample gave the same value. A law's
    parameters and their differences always move with the data; one that does not rests on one run, or on a
    direction the fit does not depend on. (A prediction can be pinned at one point by construction: the
    planner's intervals do not apply this.)"""
    if np.isfinite(lo) and np.isfinite(hi) and hi - lo <= 1e-9 * max(abs(lo), abs(hi)):
        return (
            f"all {n_valid} valid resamples gave the same value: resampling did not move it (one run to resample, or "
            "a parameter the fit does not depend on), so no error is measured"
        )
    return None


def bootstrap_interval(
    samples: np.ndarray, estimate: float, level: float = 0.95, spread: bool = False
) -> tuple[list | None, dict | None]:
    """The percentile interval of an estimate's bootstrap samples, or why there is none (not_an_interval):
    ([lo, hi], None) or (None, {"why", "n_valid", "n"}). samples: one per resample, NaN where the resample
    could not be fitted (inf: an outcome, see percentile_interval)."""
    s = np.asarray(samples, float)
    n, ok = s.size, int((~np.isnan(s)).sum())  # inf (never reached) is an outcome: a valid resample
    lo, hi = percentile_interval(s, level) if ok else (float("nan"), float("nan"))
    why = not_an_interval(lo, hi, estimate, ok, n, level, spread)
    if why:
        return None, {"why": why, "n_valid": ok, "n": n}
    return [lo, hi], None


def intervals(samples: dict, estimates: dict, level: float = 0.95) -> tuple[dict, dict]:
    """bootstrap_interval over named quantities: ({name: [lo, hi]}, {name: why-record}) for those with an
    estimate; a quantity whose interval is withheld appears only in the second."""
    conf, withheld = {}, {}
    for k, v in samples.items():
        if k not in estimates:
            continue
        ci, why = bootstrap_interval(v, float(estimates[k]), level, spread=True)
        if ci is None:
            withheld[k] = why
        else:
            conf[k] = ci
    return conf, withheld


def withheld_warning(withheld: dict, level: float = 0.95) -> str:
    """One warning line for the intervals bootstrap_interval withheld: {param: its record}."""
    by_why: dict[str, list[str]] = {}
    for k, r in withheld.items():
        by_why.setdefault(r["why"], []).append(k)
    return "; ".join(f"no {level:.0%} interval for {', '.join(ks)}: {why}" for why, ks in by_why.items())


# (parameter, plain-words direction when b - a > 0, when < 0)
_VERDICT = {
    "alpha": ("scales more steeply than {a} in N", "scales less steeply than {a} in N"),
    "beta": ("scales more steeply than {a} in D", "scales less steeply than {a} in D"),
    "a": ("puts more of extra compute into parameters than {a}", "puts less of extra compute into parameters than {a}"),
    "gamma": ("scales more steeply than {a} in compute", "scales less steeply than {a} in compute"),
}


def compare(
    name_a: str,
    samples_a: dict,
    point_a: dict,
    name_b: str,
    samples_b: dict,
    point_b: dict,
    level: float = 0.95,
    paired: bool = False,
) -> dict:
    """Bootstrap distribution of b - a for alpha, beta, a (or gamma for frontier fits).

    samples_*: {param: array[K]} (same K; sample k of each group comes from independent resamples, or
    from the same resample of shared runs when `paired`). Returns the fit-file record with
    [estimate, lo, hi] per difference and a plain-words verdict."""
    out: dict[str, Any] = {"a": name_a, "b": name_b, "level": level, "paired": paired}
    words: list[str] = []
    withheld: list[str] = []
    for p in ("alpha", "beta", "a", "gamma"):
        if p not in samples_a or p not in samples_b:
            continue
        sa, sb = np.asarray(samples_a[p], float), np.asarray(samples_b[p], float)
        if not (np.isfinite(sa).any() and np.isfinite(sb).any()):
            continue
        k = min(sa.size, sb.size)
        d = sb[:k] - sa[:k]
        est = float(point_b[p] - point_a[p])
        lo, hi = percentile_interval(d, level)
        sym = {"alpha": "d_alpha", "beta": "d_beta", "a": "d_a", "gamma": "d_gamma"}[p]
        why = not_an_interval(lo, hi, est, int((~np.isnan(d)).sum()), d.size, level, spread=True)
        if why:  # not an interval: no verdict rests on it
            withheld.append(f"no {level:.0%} interval for {sym}: {why}")
            continue
        out[f"d_{p}"] = [est, lo, hi]
        if lo > 0 or hi < 0:
            words.append(
                f"{name_b} {_VERDICT[p][0 if lo > 0 else 1].format(a=name_a)}: "
                f"{sym} = {est:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            )
    shown = [f"{k} = {v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]" for k, v in out.items() if k.startswith("d_")]
    if words:
        out["verdict"] = "; ".join(words + withheld)
    elif shown:
        out["verdict"] = "; ".join(
            [f"no detectable difference between {name_b} and {name_a} at {level:.0%} ({', '.join(shown)})", *withheld]
        )
    else:
        out["verdict"] = f"{name_b} vs {name_a}: nothing to compare; " + "; ".join(withheld)
    return out
