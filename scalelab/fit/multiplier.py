"""The verdict in compute: effective compute multipliers and frontier crossovers between two groups.

For a comparison of group B against group A at a budget C (FLOPs):

    m(C) = C_B(L_A*(C)) / C

with L_A*(C) A's compute-optimal loss at C and C_B(L) the compute B needs for loss L on its own
compute-optimal frontier (laws.compute_for_loss). m < 1: B reaches A's loss with that share of A's
compute ("lowrank-32 reaches dense's loss with 0.82x [0.71, 0.95] of dense's compute at 1e21"); m = inf:
B never reaches it (L_A*(C) <= E_B). L(N, D) (chinchilla) groups use their compute-optimal frontier
under C = k N D, with k the group's FLOPs per parameter per token as the fit records it (the median of
C / (N D) over its points: 6 for C = 6ND); frontier groups use L(C) directly.

The crossover is the first budget in a searched range where the two frontiers cross (m = 1). Intervals
are percentiles over bootstrap samples: sample s of A against sample s of B, which is the paired bootstrap
when the fit resampled shared runs jointly (or fitted the groups jointly), and independent resamples
combined otherwise. Everything is vectorised over samples.
"""

from __future__ import annotations

import numpy as np

from scalelab import numfmt
from scalelab.fit import laws
from scalelab.fit.bootstrap import not_an_interval, percentile_interval
from scalelab.fit.timing import add_time_verdict

FORMS = ("chinchilla", "frontier")
N_GRID = 241  # log-spaced budgets searched for a crossover


def loss_at(form: str, params: dict, C, k=6.0, outer: bool = True) -> np.ndarray:
    """L*(C): the compute-optimal loss at budget C (chinchilla under C = k N D; frontier: L(C))."""
    if form == "chinchilla":
        return laws.compute_optimal(params, C, k, outer=outer)["L_opt"]
    if form == "frontier":
        return laws.predict("frontier", params, C=C, outer=outer)
    raise ValueError(f"form {form!r} has no compute-optimal frontier")


def compute_for(form: str, params: dict, target, k=6.0, outer: bool = True) -> np.ndarray:
    """C(L): the compute the group's frontier needs for loss `target` (inf where never reached)."""
    C = laws.compute_for_loss(form, params, target, k=k, outer=outer)
    return np.where(np.isnan(C), np.inf, C)


def multiplier(fa: str, pa: dict, ka, fb: str, pb: dict, kb, C) -> np.ndarray:
    """m(C) = C_B(L_A*(C)) / C, elementwise: parameters of S samples against budgets C[...] give
    (S,) + C.shape (scalars give a scalar). inf where B never reaches A's loss."""
    LA = loss_at(fa, pa, C, ka)
    if np.ndim(C) and np.ndim(LA) > np.ndim(C):  # samples x budgets: B's samples along the first axis
        pb = {k: np.asarray(v, float).reshape(np.shape(v) + (1,) * np.ndim(C)) for k, v in pb.items()}
        kb = np.asarray(kb, float).reshape(np.shape(kb) + (1,) * np.ndim(C)) if np.ndim(kb) else kb
    return compute_for(fb, pb, LA, kb, outer=False) / np.asarray(C, float)


def first_crossing(fa, pa, ka, fb, pb, kb, lo: float, hi: float, n: int = N_GRID) -> np.ndarray:
    """The smallest C in [lo, hi] where L_A*(C) = L_B*(C) (log-linear interpolation between grid
    budgets), per sample; NaN where the frontiers do not cross in the range."""
    grid = np.geomspace(lo, hi, n)
    with np.errstate(all="ignore"):
        d = np.log(loss_at(fa, pa, grid, ka)) - np.log(loss_at(fb, pb, grid, kb))
    d = np.atleast_2d(d)  # [S, n]
    s = np.sign(d)
    change = (s[:, :-1] * s[:, 1:] < 0) | ((s[:, 1:] == 0) & (s[:, :-1] != 0))
    has = change.any(1) & np.isfinite(d).all(1)
    j = np.argmax(change, 1)
    r = np.arange(d.shape[0])
    x0, x1 = np.log(grid[j]), np.log(grid[np.minimum(j + 1, n - 1)])
    d0, d1 = d[r, j], d[r, np.minimum(j + 1, n - 1)]
    with np.errstate(all="ignore"):
        x = x0 + (x1 - x0) * d0 / (d0 - d1)
    out = np.where(has, np.exp(np.where(has, x, 0.0)), np.nan)
    return out if np.ndim(pa[next(iter(pa))]) else out[0]


def _interval(v: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval with ends on samples (inf, never reached, in the upper tail)."""
    return percentile_interval(v, level, method="nearest")


fmt_c, fmt_m = numfmt.flops, numfmt.multiplier  # short names for the report lines below


def compare_compute(
    name_a: str,
    form_a: str,
    point_a: dict,
    samples_a: dict | None,
    k_a: float,
    range_a: tuple[float, float],
    name_b: str,
    form_b: str,
    point_b: dict,
    samples_b: dict | None,
    k_b: float,
    range_b: tuple[float, float],
    budgets=None,
    level: float = 0.95,
) -> dict:
    """The fit file's multiplier and crossover record for B vs A (docs/interfaces.md "Fit file").

    samples_*: {param: array (S,)} aligned sample by sample (the caller pairs them), or None (no intervals).
    budgets: FLOPs at which to report the multiplier (default: the largest C both groups fitted and 10x it).
    ranges: each group's fitted FLOPs range (budgets outside either are marked extrapolated)."""
    cmax = min(range_a[1], range_b[1])  # the largest C both groups fitted
    budgets = [cmax, 10 * cmax] if not budgets else [float(c) for c in budgets]
    lo_fit, hi_fit = max(range_a[0], range_b[0]), min(range_a[1], range_b[1])
    has_s = samples_a is not None and samples_b is not None and len(next(iter(samples_a.values()))) > 0
    out: dict = {"k": {"a": k_a if form_a == "chinchilla" else None, "b": k_b if form_b == "chinchilla" else None}}
    rows, words = [], []
    for C in budgets:
        with np.errstate(all="ignore"):
            est = float(multiplier(form_a, point_a, k_a, form_b, point_b, k_b, C))
            LA = float(loss_at(form_a, point_a, C, k_a))
        row: dict = {"C": C, "loss": LA, "est": est, "lo": float("nan"), "hi": float("nan"), "frac_unreachable": 0.0}
        if has_s:
            assert samples_a is not None and samples_b is not None  # has_s says both are given
            with np.errstate(all="ignore"):
                m = multiplier(form_a, samples_a, k_a, form_b, samples_b, k_b, C)
            row["lo"], row["hi"] = _interval(m, level)
            row["frac_unreachable"] = float(np.mean(np.isinf(m)))
            # inf samples (never reached) are outcomes, not failed resamples; an infinite estimate has no interval
            ok = int((~np.isnan(m)).sum())
            why = (
                not_an_interval(row["lo"], row["hi"], est, ok, m.size, level)
                if np.isfinite(est) or ok < m.size / 2
                else None
            )
            if why:
                row["lo"], row["hi"], row["interval_withheld"] = float("nan"), float("nan"), why
        row["extrapolated"] = bool(C < lo_fit * (1 - 1e-9) or C > hi_fit * (1 + 1e-9))
        rows.append(row)
        ci = f" [{fmt_m(row['lo'])}, {fmt_m(row['hi'])}]" if has_s else ""
        if "interval_withheld" in row:
            ci = f" (no {level:.0%} interval: {row['interval_withheld']})"
        ext = " (extrapolated)" if row["extrapolated"] else ""
        if np.isfinite(est):
            words.append(
                f"{name_b} reaches {name_a}'s loss with {fmt_m(est)}{ci} of {name_a}'s compute at {fmt_c(C)}{ext}"
            )
        else:
            words.append(f"{name_b} never reaches {name_a}'s loss at {fmt_c(C)} ({LA:.4g} <= its E){ci}{ext}")
    out["multiplier"] = rows

    lo_r, hi_r = min(range_a[0], range_b[0]), max(budgets + [cmax])
    cross: dict = {"C": None, "range": [lo_r, hi_r], "frac_samples": float("nan")}
    est = float(first_crossing(form_a, point_a, k_a, form_b, point_b, k_b, lo_r, hi_r))
    if has_s:
        cs = first_crossing(form_a, samples_a, k_a, form_b, samples_b, k_b, lo_r, hi_r)
        cross["frac_samples"] = float(np.mean(np.isfinite(cs)))
    if np.isfinite(est):
        lo, hi = percentile_interval(cs, level) if has_s else (float("nan"), float("nan"))
        cross["C"] = [est, lo, hi]
        share = f", in {cross['frac_samples']:.0%} of resamples" if has_s else ""
        cross["text"] = f"{fmt_c(est)} [{fmt_c(lo)}, {fmt_c(hi)}]{share}" if has_s else fmt_c(est)
    else:
        share = f" (a crossing in {cross['frac_samples']:.0%} of resamples)" if has_s else ""
        cross["text"] = f"none in [{fmt_c(lo_r)}, {fmt_c(hi_r)}]{share}"
    out["crossover"] = cross
    out["multiplier_text"] = "; ".join(words) + f"; frontiers cross: {cross['text']}"
    return out


def aligned_samples(ga, gb, paired: bool) -> tuple[dict | None, dict | None]:
    """Samples of two GroupFits' form parameters aligned sample by sample: by sample id when paired
    (the same resample), else the first min(S_a, S_b) of each (independent resamples combined)."""
    sa, sb = ga.sample_arrays(), gb.sample_arrays()
    if not len(next(iter(sa.values()))) or not len(next(iter(sb.values()))):
        return None, None
    if paired:
        ia, ib = ga.sample_ids, gb.sample_ids
        common, xa, xb = np.intersect1d(ia, ib, return_indices=True)
        if common.size < 2:
            return None, None
        return {k: v[xa] for k, v in sa.items()}, {k: v[xb] for k, v in sb.items()}
    n = min(len(next(iter(sa.values()))), len(next(iter(sb.values()))))
    return {k: v[:n] for k, v in sa.items()}, {k: v[:n] for k, v in sb.items()}


def multiplier_curve(fit, a: str, b: str, C, k_a: float | None = None, k_b: float | None = None) -> dict:
    """m(C) of group b vs group a of a FitResults over budgets C (a grid, for figures): {"C", "est", "lo",
    "hi"} arrays, intervals at the fit's level (NaN without samples). k_*: FLOPs per parameter-token of
    L(N, D) groups; default the comparison record's "k", else 6."""
    from scalelab.fit.results import as_fit

    fit = as_fit(fit)
    ga, gb = fit[a], fit[b]
    rec = fit.comparison(a, b)
    k = (rec.k if rec is not None else None) or {}
    k_a = k_a or k.get("a") or 6.0
    k_b = k_b or k.get("b") or 6.0
    C = np.asarray(C, float)
    est = multiplier(ga.form, ga.params, k_a, gb.form, gb.params, k_b, C)
    sa, sb = aligned_samples(ga, gb, fit.paired)
    lo = hi = np.full(C.shape, np.nan)
    if sa is not None and sb is not None:  # both or neither
        m = multiplier(ga.form, sa, k_a, gb.form, sb, k_b, C)  # [S, ...]
        lo, hi = percentile_interval(m, fit.level, axis=0)
    return {"C": C, "est": est, "lo": lo, "hi": hi}


def add_compute_verdicts(comparisons: list, fits: dict, budgets, level: float, paired: bool) -> None:
    """Add the multiplier and crossover keys to each comparison record in place (fit_laws calls this).

    fits: {name: GroupFit} (each with its k = C / (N D), k_flops); budgets: FLOPs or None (default)."""
    for rec in comparisons:
        fa, fb = fits[rec["a"]], fits[rec["b"]]
        if fa.form not in FORMS or fb.form not in FORMS:
            continue
        sa, sb = aligned_samples(fa, fb, paired)
        rec.update(
            compare_compute(
                fa.name, fa.form, fa.params, sa, fa.k_flops, tuple(fa.c_range),
                fb.name, fb.form, fb.params, sb, fb.k_flops, tuple(fb.c_range),
                budgets, level,
            )
        )  # fmt: skip
        add_time_verdict(rec, fa, fb)
