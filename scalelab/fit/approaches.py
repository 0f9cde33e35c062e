"""Approaches 1 and 2 of Hoffmann et al. 2022: the compute-optimal allocation read off the data directly.

Approach 1: the lower envelope of loss against FLOPs gives (C, N_opt, D_opt) per FLOPs bin.
Approach 2: IsoFLOP slices (one per budget C: the --flops-col budget where given, else 6ND), a parabola of
loss in log N per slice, its vertex N_opt(C); D_opt(C) is the tokens the slice's own runs take at N_opt
(log D interpolated in log N between the slice's sizes), so a nominal budget that is not 6ND (Marin's) and
run-store FLOPs that count attention and logits are both read as the runs spent them.
Both then fit N_opt = kN C^a and D_opt = kD C^b by log-log least squares: the "allocation" form
(laws.allocation), which `plan` and `plot` use like any other fit.

Which points of a slice the parabola is fitted on (FitSpec.slice_window, --slice-window):

- "whole" (default): every point of the slice, the classic fit of Hoffmann et al., Llama 3 and the
  Open-Athena compendium, whose published numbers it reproduces (tests/fit/test_published.py).
- "near-min": a window symmetric in log N about the slice's minimum (below). A parabola is only a local
  approximation of loss along a slice; fitted to a whole slice sampled asymmetrically about its minimum
  its vertex is pulled towards the side with more (or farther) points (Czech et al. 2026, "Problems with
  Chinchilla Approach 2", arXiv 2603.22339). Without noise the window removes that bias; with the noise of
  real runs it costs more than it saves: it fits fewer points and its centre is the noisy lowest point.

The default is evidence (tests/fit/test_approaches.py, the slice-window study, and docs/fitting.md "Approaches 1
and 2"): on slices of a known law sampled off-centre, with the centre drifting across budgets as in real
sweeps, at the noise of the public IsoFLOP data (0.1-0.9% in loss), the whole slice has the smaller error
in a (RMSE 1.1-3x smaller in every case studied; bias smaller on slices spanning 3x either side, as the
compendium's, larger by up to 0.006 on slices spanning 5x); near-min wins on noise-free slices and on
slices whose shape departs from the law (Porian et al.'s long-cosine configurations).

The near-minimum window:
  1. x* = log N of the slice's lowest-loss point (the mean log N of tied lowest losses, common in digitised
     data); a slice whose lowest loss is at its smallest or largest size does not bracket its minimum and
     is dropped.
  2. h = the larger of the log-N distances from x* to the WINDOW-th nearest size on each side (or the
     farthest size where a side has fewer): every point with |log N - x*| <= h is used, so the window holds
     at least WINDOW sizes on each side when the slice has them.
  3. Fit loss = c0 + c1 x + c2 x^2 on those points (weighted by bootstrap counts); re-centre once, x* = the
     vertex -c1 / (2 c2), same h, refit.
Either rule drops a slice, with the reason recorded (diagnostics.slices, and a warning), that has fewer than
3 sizes, curvature c2 <= 0 or a vertex outside the sizes fitted (an extrapolated minimum is not a reading of
the data); near-min also drops a slice whose minimum is at its edge.

Intervals: with --bootstrap K (default) the runs are resampled and the whole approach (slices, windows,
vertices, power laws) refitted per resample, so the samples of a, b, kN, kD go to the samples file and the
intervals are percentile bootstrap intervals, each withheld with its reason where the bootstrap cannot
support it (bootstrap.bootstrap_interval); with --bootstrap 0 they are statsmodels OLS intervals of the
final log-log regression (which ignore the error in each slice's vertex), and the fit file says so
("intervals": "ols").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.fit import laws
from scalelab.fit.bootstrap import intervals, unit_counts, withheld_warning
from scalelab.fit.groups import distinct
from scalelab.fit.info import fit_info
from scalelab.fit.results import FitResults, GroupFit
from scalelab.fit.spec import FitSpec

WINDOW = 3  # sizes on each side of a slice's minimum (near-minimum rule, module docstring)
SLICE_RULES = {
    "whole": "parabola in log N fitted on every point of each IsoFLOP slice (Hoffmann et al. 2022, Llama 3, the "
    "Open-Athena compendium)",
    "near-min": f"parabola in log N fitted on a window symmetric in log N about the slice's lowest-loss point, wide "
    f"enough for {WINDOW} sizes on each side where the slice has them, re-centred once on the vertex (Czech et al. "
    "2026, arXiv 2603.22339)",
}


def window_of(slice_window: str) -> int | None:
    """The `window` argument of slice_vertex for a FitSpec.slice_window rule (None: the whole slice)."""
    return None if slice_window == "whole" else WINDOW


def _loglog(x, y, level):
    """OLS of log y on log x with statsmodels: (slope, intercept, slope CI, intercept CI)."""
    import statsmodels.api as sm

    X = sm.add_constant(np.log(x))
    r = sm.OLS(np.log(y), X).fit()
    ci = r.conf_int(alpha=1 - level) if len(x) > 2 else np.full((2, 2), np.nan)
    return float(r.params[1]), float(r.params[0]), list(map(float, ci[1])), list(map(float, ci[0]))


def _slope(x, y):
    """Least-squares slope and intercept of log y on log x (numpy; the bootstrap's inner loop)."""
    lx, ly = np.log(x), np.log(y)
    mx, my = lx.mean(), ly.mean()
    s = np.sum((lx - mx) ** 2)
    b = np.sum((lx - mx) * (ly - my)) / s if s > 0 else np.nan
    return b, my - b * mx


def envelope_points(N, D, C, L, n_bins: int = 20, w=None):
    """Approach 1: the lower envelope of loss vs FLOPs over all curves' points. C is split into
    log-spaced bins; in each the lowest-loss point (of those with weight w > 0) gives (C, N_opt, D_opt)."""
    edges = np.logspace(np.log10(C.min()), np.log10(C.max()) * (1 + 1e-12), n_bins + 1)
    Lw = L if w is None else np.where(w > 0, L, np.inf)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (C >= lo) & (C < hi) & np.isfinite(Lw)
        if m.any():
            i = np.flatnonzero(m)[np.argmin(Lw[m])]
            out.append((C[i], N[i], D[i]))
    return np.array(out).reshape(-1, 3).T


def isoflop_slices(C, tol: float = 0.1) -> list[np.ndarray]:
    """Row indices of each IsoFLOP slice: points sorted by C, split where C jumps by more than `tol` (relative)."""
    order = np.argsort(C, kind="stable")
    lc = np.log(C[order])
    cuts = np.flatnonzero(np.diff(lc) > np.log1p(tol)) + 1
    return np.split(order, cuts)


def _parabola(x, L, w):
    """Weighted least squares of L on (1, x, x^2) (x centred for conditioning): (c0, c1, c2) in x."""
    m = np.average(x, weights=w)
    u = x - m
    X = np.stack([np.ones_like(u), u, u * u], 1)
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(X * sw[:, None], L * sw, rcond=None)
    b0, b1, b2 = coef
    return b0 - b1 * m + b2 * m * m, b1 - 2 * b2 * m, b2


def slice_vertex(x, L, w=None, window: int | None = WINDOW):
    """The vertex of one IsoFLOP slice's parabola (module docstring): (x_opt or NaN, n_used, reason or None).

    x: log N of the slice's points, L their losses, w their weights (bootstrap counts; 0 = not drawn).
    window None: the whole slice (the classic fit, FitSpec.slice_window "whole")."""
    w = np.ones_like(x) if w is None else np.asarray(w, float)
    keep = w > 0
    x, L, w = x[keep], L[keep], w[keep]
    sizes = np.unique(np.round(x, 9))
    if sizes.size < 3:
        return np.nan, int(x.size), "fewer than 3 sizes"
    x0 = float(np.mean(x[L <= L.min() * (1 + 1e-12)]))  # tied lowest losses (digitised data): their centre
    if window is None:
        use = np.ones(x.size, bool)
    else:
        if x0 <= sizes[0] + 1e-9 or x0 >= sizes[-1] - 1e-9:
            return (
                np.nan,
                int(x.size),
                "lowest loss at the smallest or largest size: the slice does not bracket its minimum",
            )
        left, right = sizes[sizes < x0 - 1e-9], sizes[sizes > x0 + 1e-9]
        h = max(x0 - left[-min(window, left.size)], right[min(window, right.size) - 1] - x0)
        use = np.abs(x - x0) <= h + 1e-9
    for it in range(2 if window is not None else 1):
        if np.unique(np.round(x[use], 9)).size < 3:
            return np.nan, int(use.sum()), "fewer than 3 sizes in the window about the minimum"
        _, c1, c2 = _parabola(x[use], L[use], w[use])
        if not c2 > 0:
            return np.nan, int(use.sum()), "curvature <= 0: no minimum"
        xv = -c1 / (2 * c2)
        if not x[use].min() <= xv <= x[use].max():
            return np.nan, int(use.sum()), "vertex outside the sizes fitted"
        if it == 0 and window is not None:  # re-centre once on the vertex, same half-width
            use = np.abs(x - xv) <= h + 1e-9
    return float(xv), int(use.sum()), None


def slice_optima(N, D, C, L, tol: float = 0.1, w=None, window: int | None = None):
    """Approach 2 per IsoFLOP slice: (C_slice, N_opt, D_opt) arrays of the slices kept, and one record per
    slice {C, n_points, n_used, N_opt, used, reason}. N_opt: the parabola's vertex (slice_vertex with
    `window`, None: the whole slice); D_opt: the slice's tokens at N_opt, log D interpolated in log N between
    its sizes (exactly C / (6 N_opt) when C = 6ND; the runs' own tokens when C is a nominal budget)."""
    rows, recs = [], []
    for idx in isoflop_slices(C, tol):
        wi = None if w is None else w[idx]
        x = np.log(N[idx])
        xv, n_used, why = slice_vertex(x, L[idx], wi, window)
        c = float(np.exp(np.mean(np.log(C[idx]))))
        if why is None:
            sizes, inv = np.unique(np.round(x, 9), return_inverse=True)
            logd = np.bincount(inv, np.log(D[idx])) / np.bincount(inv)  # mean log D per size of the slice
            rows.append((c, float(np.exp(xv)), float(np.exp(np.interp(xv, sizes, logd)))))
        recs.append(
            {
                "C": c,
                "n_points": int(idx.size),
                "n_used": n_used,
                "N_opt": None if why else float(np.exp(xv)),
                "used": why is None,
                "reason": why,
            }
        )
    out = np.array(rows).reshape(-1, 3).T
    return out[0], out[1], out[2], recs


def isoflop_minima(N, C, L, tol: float = 0.1, w=None, window: int | None = None, detail: bool = False):
    """Approach 2's vertices alone: (C_slice, N_opt) arrays of the slices kept (slice_optima); with `detail`
    also the per-slice records. window None: the whole slice; WINDOW: the near-minimum rule."""
    c, n, _, recs = slice_optima(N, np.ones_like(N, dtype=float), C, L, tol, w, window)
    return (c, n, recs) if detail else (c, n)


def optima(approach: int, N, D, C, L, w=None, window: int | None = None):
    """(C, N_opt, D_opt) of approach 1 or 2 on points with weights w (None: all once), and the slice records."""
    if approach == 1:
        c, n_opt, d_opt = envelope_points(N, D, C, L, w=w)
        return c, n_opt, d_opt, []
    return slice_optima(N, D, C, L, w=w, window=window)


def _whole_slice_resamples(N, D, C, L, counts) -> np.ndarray:
    """[K, 4] samples of (a, b, kN, kD) of the whole-slice rule, all resamples at once: per slice, the weighted
    parabola of every resample from its weighted moments (one matrix product and a batched 3x3 solve), the same
    drop rules as slice_vertex (fewer than 3 sizes drawn, c2 <= 0, a vertex outside the sizes drawn), then each
    resample's log-log regressions over the slices it kept. Equal to the per-resample loop (tested)."""
    K = counts.shape[0]
    cs, xs, ds = [], [], []
    for idx in isoflop_slices(C):
        x, W = np.log(N[idx]), counts[:, idx]
        sizes, inv = np.unique(np.round(x, 9), return_inverse=True)
        n_sizes = ((W @ np.eye(sizes.size)[inv]) > 0).sum(1)
        u = x - x.mean()  # centred for conditioning; the vertex does not depend on the centre
        P = np.stack([u**j for j in range(5)], 1)
        M = W @ P  # weighted moments sum w u^j, j = 0..4
        R = W @ (L[idx, None] * P[:, :3])
        A = np.stack([M[:, j : j + 3] for j in range(3)], 1)
        ok = n_sizes >= 3
        coef = np.full((K, 3), np.nan)
        coef[ok] = np.linalg.solve(A[ok], R[ok][..., None])[..., 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            xv = x.mean() - coef[:, 1] / (2 * coef[:, 2])
        drawn = W > 0
        lo, hi = np.where(drawn, x, np.inf).min(1), np.where(drawn, x, -np.inf).max(1)
        ok &= (coef[:, 2] > 0) & (lo <= xv) & (xv <= hi)
        logd = np.bincount(inv, np.log(D[idx])) / np.bincount(inv)
        cs.append(np.mean(np.log(C[idx])))
        xs.append(np.where(ok, xv, np.nan))
        ds.append(np.where(ok, np.interp(np.where(ok, xv, sizes[0]), sizes, logd), np.nan))
    lc, xn, xd = np.array(cs), np.stack(xs, 1), np.stack(ds, 1)  # [S], [K, S], [K, S]
    V = np.isfinite(xn)
    n = V.sum(1)
    out = np.full((K, 4), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        mc = (V * lc).sum(1) / n
        dc = np.where(V, lc - mc[:, None], 0.0)
        sxx = (dc**2).sum(1)
        for j, y in enumerate((xn, xd)):
            my = np.where(V, y, 0.0).sum(1) / n
            slope = (dc * np.where(V, y - my[:, None], 0.0)).sum(1) / sxx
            out[:, j], out[:, 2 + j] = slope, np.exp(my - slope * mc)
    out[~((n >= 3) & (sxx > 0))] = np.nan
    return out


def _bootstrap(approach, N, D, C, L, counts, window) -> np.ndarray:
    """[K, 4] samples of (a, b, kN, kD): the whole approach refitted on each resample (NaN rows where a
    resample keeps fewer than 3 optima)."""
    if approach == 2 and window is None:
        return _whole_slice_resamples(N, D, C, L, counts)
    out = np.full((counts.shape[0], 4), np.nan)
    for k, w in enumerate(counts):
        c, n_opt, d_opt, _ = optima(approach, N, D, C, L, w=w, window=window)
        if c.size >= 3 and np.unique(c).size >= 2:
            a, ia = _slope(c, n_opt)
            b, ib = _slope(c, d_opt)
            out[k] = (a, b, np.exp(ia), np.exp(ib))
    return out


def fit_allocation(df: pd.DataFrame, spec: FitSpec, source: str = "data frame", inputs=None) -> FitResults:
    """Approaches 1 and 2 (spec.approach) per group: power laws N_opt = kN C^a, D_opt = kD C^b (the
    "allocation" form), with run-level bootstrap intervals and samples (spec.bootstrap > 0; groups drawn
    with independent seeds) or statsmodels OLS intervals (bootstrap 0). Called by procedure.fit_laws."""
    approach, level = spec.approach, spec.level
    n_col, d_col, loss_col, c_col, run_col = spec.n_col, spec.d_col, spec.loss_col, spec.c_col, spec.run_col
    by = list(spec.by)
    missing = [c for c in [n_col, loss_col, *(x for x in (d_col, c_col, run_col) if x), *by] if c not in df.columns]
    if missing:
        raise ScalelabError(
            f"{source}: no column(s) {', '.join(missing)}: name them with --n-col/--d-col/--loss-col/--flops-col"
        )
    keys = df[by].astype(str).agg("/".join, axis=1) if by else pd.Series(["all"] * len(df), index=df.index)
    names = list(dict.fromkeys(keys))
    seqs = np.random.SeedSequence(spec.seed).spawn(len(names))
    groups = {}
    for name, sq in zip(names, seqs):
        sub = df[(keys == name).to_numpy()]
        N = sub[n_col].to_numpy(float)
        L = sub[loss_col].to_numpy(float)
        D = sub[d_col].to_numpy(float) if d_col else sub[c_col].to_numpy(float) / (6 * N)
        C = sub[c_col].to_numpy(float) if c_col else 6 * N * D
        bad = ~(np.isfinite(N) & np.isfinite(D) & np.isfinite(C) & np.isfinite(L) & (N > 0) & (D > 0) & (C > 0))
        if bad.any():
            raise ScalelabError(
                f"{source}: group {name!r}: {int(bad.sum())} row(s) with a missing or non-positive N, D, C or loss: "
                "drop them first"
            )
        window = window_of(spec.slice_window)
        c, n_opt, d_opt, recs = optima(approach, N, D, C, L, window=window)
        if c.size < 3:
            what = "envelope bins" if approach == 1 else "IsoFLOP slices with a bracketed minimum"
            dropped = "; ".join(f"C={r['C']:.2g}: {r['reason']}" for r in recs if not r["used"])
            raise ScalelabError(
                f"{source}: group {name!r}: approach {approach} found {c.size} {what}; need at least 3 "
                f"(use --approach 3){' [dropped: ' + dropped + ']' if dropped else ''}"
            )
        a, ia, a_ci, ia_ci = _loglog(c, n_opt, level)
        b, ib, b_ci, ib_ci = _loglog(c, d_opt, level)
        params = {"a": a, "b": b, "kN": float(np.exp(ia)), "kD": float(np.exp(ib))}
        conf = {"a": a_ci, "b": b_ci, "kN": list(np.exp(ia_ci)), "kD": list(np.exp(ib_ci))}
        units = sub[run_col].astype(str).to_numpy() if run_col else np.arange(len(sub))
        samples = None
        diag: dict = {"optima": {"C": c.tolist(), "N_opt": n_opt.tolist(), "D_opt": d_opt.tolist()}}
        warnings = []
        if approach == 2:
            diag["slices"], diag["window"] = recs, SLICE_RULES[spec.slice_window]
            drop = [r for r in recs if not r["used"]]
            if drop:
                warnings.append(
                    f"{len(drop)} of {len(recs)} IsoFLOP slices dropped: "
                    + "; ".join(f"C={r['C']:.2g} ({r['n_points']} pts): {r['reason']}" for r in drop)
                )
        if spec.bootstrap > 0:
            counts = unit_counts(units, spec.bootstrap, np.random.default_rng(sq))
            s = _bootstrap(approach, N, D, C, L, counts, window)
            ok = np.isfinite(s).all(1)
            samples = pd.DataFrame(s, columns=list(laws.ALLOCATION))
            conf, withheld = intervals({k: samples[k].to_numpy() for k in laws.ALLOCATION}, params, level)
            diag["bootstrap"] = {"n": int(spec.bootstrap), "n_valid": int(ok.sum()), "frac_failed": float(np.mean(~ok))}
            if withheld:
                diag["intervals_withheld"] = withheld
                warnings.append(withheld_warning(withheld, level))
            elif np.mean(~ok) > 0.05:
                warnings.append(
                    f"{np.mean(~ok):.0%} of bootstrap resamples kept fewer than 3 optima and were left out: "
                    f"intervals rest on the other {int(ok.sum())} of {ok.size}"
                )
            if np.unique(units).size < 10:
                warnings.append(f"only {np.unique(units).size} runs to resample: bootstrap intervals are unreliable")
        if abs(a + b - 1) > 0.1:
            warnings.append(f"a + b = {a + b:.3f}, far from 1: N_opt D_opt is not proportional to C")
        groups[name] = GroupFit(
            name=name,
            key={k: sub[k].iloc[0] for k in by},
            form="allocation",
            params=params,
            conf_int=conf,
            derived={"a": a, "b": b},
            derived_conf_int={k: conf[k] for k in ("a", "b") if k in conf},
            n_points=int(len(sub)),
            n_runs=int(np.unique(units).size),
            n_sizes=distinct(N),
            range={
                "N": [float(N.min()), float(N.max())],
                "D": [float(D.min()), float(D.max())],
                "C": [float(C.min()), float(C.max())],
            },
            diagnostics=diag,
            warnings=warnings,
            samples=samples,
            k_flops=laws.flops_per_param_token(N, D, C),
        )
    return FitResults(groups, [], fit_info(spec, inputs))
