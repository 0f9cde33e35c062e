"""Approaches 1 and 2 of Hoffmann et al. 2022: the compute-optimal allocation read off the data directly.

Approach 1: the lower envelope of loss against FLOPs gives (C, N_opt, D_opt) per FLOPs bin.
Approach 2: IsoFLOP slices, a parabola in log N per slice, its vertex N_opt(C).
Both then fit N_opt = kN C^a and D_opt = kD C^b by log-log OLS (statsmodels, with intervals).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.fit.groups import distinct
from scalelab.fit.results import FitResults, GroupFit, now_iso
from scalelab.fit.spec import FitSpec


def _loglog(x, y, level):
    """OLS of log y on log x with statsmodels: (slope, intercept, slope CI, intercept CI)."""
    import statsmodels.api as sm

    X = sm.add_constant(np.log(x))
    r = sm.OLS(np.log(y), X).fit()
    ci = r.conf_int(alpha=1 - level) if len(x) > 2 else np.full((2, 2), np.nan)
    return float(r.params[1]), float(r.params[0]), list(map(float, ci[1])), list(map(float, ci[0]))


def envelope_points(N, D, C, L, n_bins: int = 20):
    """Approach 1: the lower envelope of loss vs FLOPs over all curves' points. C is split into
    log-spaced bins; in each the lowest-loss point gives (C, N_opt, D_opt). Returns arrays."""
    edges = np.logspace(np.log10(C.min()), np.log10(C.max()) * (1 + 1e-12), n_bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (C >= lo) & (C < hi)
        if m.any():
            i = np.flatnonzero(m)[np.argmin(L[m])]
            out.append((C[i], N[i], D[i]))
    return np.array(out).reshape(-1, 3).T


def isoflop_minima(N, C, L, tol: float = 0.1, level: float = 0.95):
    """Approach 2: split points into IsoFLOP slices (C within `tol` relative of its neighbours), fit
    loss = c0 + c1 log N + c2 (log N)^2 per slice (statsmodels OLS) and take the vertex.
    Returns rows (C_slice, N_opt) for slices with >= 3 sizes, positive curvature and the vertex
    inside the slice's sizes (an off-centre slice biases the minimum: such slices are skipped)."""
    import statsmodels.api as sm

    order = np.argsort(C)
    lc = np.log(C[order])
    cuts = np.flatnonzero(np.diff(lc) > np.log1p(tol)) + 1
    rows = []
    for idx in np.split(order, cuts):
        x = np.log(N[idx])
        if distinct(N[idx]) < 3:
            continue
        X = sm.add_constant(np.column_stack([x, x * x]))
        r = sm.OLS(L[idx], X).fit()
        c0, c1, c2 = r.params
        if c2 <= 0:
            continue
        xv = -c1 / (2 * c2)
        if not x.min() <= xv <= x.max():
            continue
        rows.append((float(np.exp(np.mean(np.log(C[idx])))), float(np.exp(xv))))
    return np.array(rows).reshape(-1, 2).T


def flops_per_token_at(n, N, F):
    """FLOPs per token at sizes n, from the points' (N, F = C / D): the median F of each distinct N,
    linear in log-log between sizes and beyond the ends along the end segments."""
    sizes = np.unique(N)
    logf = np.log([np.median(F[N == x]) for x in sizes])
    x, q = np.log(sizes), np.log(np.asarray(n, float))
    if sizes.size == 1:
        return np.exp(logf[0] + (q - x[0]))  # one size: F proportional to N
    out = np.interp(q, x, logf)
    lo, hi = q < x[0], q > x[-1]
    out[lo] = logf[0] + (q[lo] - x[0]) * (logf[1] - logf[0]) / (x[1] - x[0])
    out[hi] = logf[-1] + (q[hi] - x[-1]) * (logf[-1] - logf[-2]) / (x[-1] - x[-2])
    return np.exp(out)


def fit_allocation(df: pd.DataFrame, spec: FitSpec, source: str = "data frame", inputs=None) -> FitResults:
    """Approaches 1 and 2 (spec.approach) per group: power laws N_opt = kN C^a, D_opt = kD C^b (log-log OLS
    with statsmodels intervals). Returns FitResults with form 'allocation' groups (no bootstrap samples).
    Called by procedure.fit_laws for spec.approach 1 or 2."""
    from scalelab import __version__

    approach, level = spec.approach, spec.level
    n_col, d_col, loss_col, c_col, run_col = spec.n_col, spec.d_col, spec.loss_col, spec.c_col, spec.run_col
    by = list(spec.by)
    keys = df[by].astype(str).agg("/".join, axis=1) if by else pd.Series(["all"] * len(df), index=df.index)
    groups = {}
    for name in dict.fromkeys(keys):
        sub = df[(keys == name).to_numpy()]
        N = sub[n_col].to_numpy(float)
        L = sub[loss_col].to_numpy(float)
        D = sub[d_col].to_numpy(float) if d_col else sub[c_col].to_numpy(float) / (6 * N)
        C = sub[c_col].to_numpy(float) if c_col else 6 * N * D
        if approach == 1:
            c, n_opt, d_opt = envelope_points(N, D, C, L)
        else:
            c, n_opt = isoflop_minima(N, C, L, level=level)
            # tokens C buys at N_opt: C / F(N_opt), F the data's FLOPs per token (6 N only under 6ND;
            # run-store FLOPs also count attention and logits)
            d_opt = c / flops_per_token_at(n_opt, N, C / D) if c.size else c
        if c.size < 3:
            what = "envelope bins" if approach == 1 else "IsoFLOP slices with >= 3 sizes and an interior minimum"
            raise ScalelabError(
                f"{source}: group {name!r}: approach {approach} found {c.size} {what}; "
                "need at least 3 (use --approach 3)"
            )
        a, ia, a_ci, ia_ci = _loglog(c, n_opt, level)
        b, ib, b_ci, ib_ci = _loglog(c, d_opt, level)
        params = {"a": a, "b": b, "kN": float(np.exp(ia)), "kD": float(np.exp(ib))}
        conf = {"a": a_ci, "b": b_ci, "kN": list(np.exp(ia_ci)), "kD": list(np.exp(ib_ci))}
        warnings = []
        if abs(a + b - 1) > 0.1:
            warnings.append(f"a + b = {a + b:.3f}, far from 1: N_opt D_opt is not proportional to C")
        groups[name] = GroupFit(
            name=name,
            key={k: sub[k].iloc[0] for k in by},
            form="allocation",
            params=params,
            conf_int=conf,
            derived={"a": a, "b": b},
            derived_conf_int={"a": a_ci, "b": b_ci},
            n_points=int(len(sub)),
            n_runs=int(sub[run_col].nunique()) if run_col and run_col in sub else int(len(sub)),
            n_sizes=distinct(N),
            range={
                "N": [float(N.min()), float(N.max())],
                "D": [float(D.min()), float(D.max())],
                "C": [float(C.min()), float(C.max())],
            },
            diagnostics={"optima": {"C": c.tolist(), "N_opt": n_opt.tolist(), "D_opt": d_opt.tolist()}},
            warnings=warnings,
        )
    meta = {
        "scalelab_version": __version__,
        "created": now_iso(),
        "inputs": inputs or [],
        "flop_convention": spec.flop_convention or "6ND",
        "by": by,
        "approach": approach,
        "loss": {"kind": "ols"},
        "bootstrap": {"n": 0, "seed": None, "level": level, "unit": None},
        "drop_top_loss": spec.drop_top_loss,
        "all_checkpoints": spec.all_checkpoints,
        "spec": spec.to_dict(),
    }
    return FitResults(groups, [], meta)
