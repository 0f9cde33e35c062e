"""Compute-optimal N and D of a Chinchilla law along a shape family, vectorised over bootstrap samples.

C = k N D has the closed form of scalelab.fit.laws.compute_optimal (Hoffmann et al. 2022); a real family's
FLOPs per token F(N) does not, so the optimum of L(N, C / F(N)) is a grid search plus golden section in
log N, all samples at once.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from scalelab.fit import laws
from scalelab.plan.families import SixND

CHINCHILLA = laws.FORMS["chinchilla"].params  # E, A, B, alpha, beta


def _col(p: dict, names: Sequence[str]) -> dict:
    """Parameters as (S, 1) columns so they broadcast against an (S, G) grid."""
    return {k: np.asarray(p[k], float).reshape(-1, 1) for k in names}


def _minimise_logN(f, lo, hi, n_grid: int, iters: int = 64):
    """argmin over x in [lo, hi] of f(x) for S independent problems; f maps (S, G) -> (S, G).

    lo, hi: (S, 1) brackets. Grid search, then golden section between the best grid point's
    neighbours. L(N, D(N)) is unimodal in log N for these laws, so that bracket holds the minimum.
    Returns x (S,) and at_edge (S,): the best grid point was an end of [lo, hi].
    """
    grid = lo + (hi - lo) * np.linspace(0.0, 1.0, n_grid)  # (S, G)
    vals = f(grid)
    vals = np.where(np.isfinite(vals), vals, np.inf)
    i = np.argmin(vals, axis=1)
    rows = np.arange(grid.shape[0])
    at_edge = (i == 0) | (i == n_grid - 1)
    a = grid[rows, np.maximum(i - 1, 0)].reshape(-1, 1)
    b = grid[rows, np.minimum(i + 1, n_grid - 1)].reshape(-1, 1)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        left = fc < fd  # the minimum lies in [a, d]: drop (d, b]; else drop [a, c)
        b = np.where(left, d, b)
        a = np.where(left, a, c)
        c_new = np.where(left, b - g * (b - a), d)
        d_new = np.where(left, c, a + g * (b - a))
        f_new = f(np.where(left, c_new, d_new))  # one new evaluation per iteration
        fc, fd = np.where(left, f_new, fd), np.where(left, fc, f_new)
        c, d = c_new, d_new
    return ((a + b) / 2).ravel(), at_edge


def optimum(p: dict, family, C, inference_tokens: float = 0.0):
    """(N, D, L, at_edge) arrays at budget C (scalar or per sample) for Chinchilla-form params p.

    Training budget C = F(N) D; with T inference tokens the lifetime budget is C = F(N) (D + T/3),
    since a forward pass is a third of training's 3 x forward. at_edge: the optimum lies at the end
    of the family's range of buildable sizes.
    """
    S = len(np.atleast_1d(p["E"]))
    C = np.broadcast_to(np.asarray(C, float), (S,)).copy()
    if isinstance(family, SixND) and inference_tokens == 0:
        opt = laws.compute_optimal(p, C, family.k, outer=False)
        return (
            np.atleast_1d(opt["N_opt"]),
            np.atleast_1d(opt["D_opt"]),
            np.atleast_1d(opt["L_opt"]),
            np.zeros(S, bool),
        )
    q = _col(p, CHINCHILLA)
    logC = np.log(C).reshape(-1, 1)
    T3 = inference_tokens / 3.0

    def loss_fn(idx):
        qi, lc = {k: v[idx] for k, v in q.items()}, logC[idx]

        def f(logN):
            D = np.exp(lc - family.log_flops_per_token(logN)) - T3
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                L = laws.predict("chinchilla", qi, N=np.exp(logN), D=np.maximum(D, 1e-300), outer=False)
                return np.where(D > 0, L, np.inf)

        return f

    lo, hi = family.log_n_bounds
    x = np.full(S, np.nan)
    at_edge = np.zeros(S, bool)
    todo = np.ones(S, bool)
    if T3 == 0:
        # fast path: start from the closed form with the family's FLOPs per param-token at the 6N guess,
        # search +-2 e-folds around it; samples whose optimum lands on that bracket's edge go below
        flat = {k: v.ravel() for k, v in q.items()}
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            x6 = np.log(laws.compute_optimal(flat, C, 6.0, outer=False)["N_opt"])
            k = np.exp(family.log_flops_per_token(np.clip(x6, lo, hi)) - np.clip(x6, lo, hi))
            x0 = np.log(laws.compute_optimal(flat, C, k, outer=False)["N_opt"])
        ok = np.isfinite(x0)
        if ok.any():
            idx = np.flatnonzero(ok)
            a = np.clip(x0[idx] - 2.0, lo, hi).reshape(-1, 1)
            b = np.clip(x0[idx] + 2.0, lo, hi).reshape(-1, 1)
            xi, edge = _minimise_logN(loss_fn(idx), a, b, n_grid=41, iters=44)
            good = ~edge
            x[idx[good]] = xi[good]
            todo[idx[good]] = False
    if todo.any():  # the whole range of buildable sizes
        idx = np.flatnonzero(todo)
        a, b = np.full((len(idx), 1), lo), np.full((len(idx), 1), hi)
        xi, edge = _minimise_logN(loss_fn(idx), a, b, n_grid=400)
        x[idx], at_edge[idx] = xi, edge
    N = np.exp(x)
    D = np.exp(np.log(C) - family.log_flops_per_token(x)) - T3
    return N, D, laws.predict("chinchilla", {k: v.ravel() for k, v in q.items()}, N=N, D=D, outer=False), at_edge


def _n_for_ratio(family, C, ratio: float) -> float:
    """N such that F(N) * ratio * N = C (frontier fits: tokens per param taken from the runs)."""
    lo, hi = family.log_n_bounds
    g = lambda x: float(family.log_flops_per_token(x)) + math.log(ratio) + x - math.log(C)
    if g(lo) > 0:
        return math.exp(lo)
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if g(mid) < 0 else (lo, mid)
    return math.exp((lo + hi) / 2)
