"""Huber-on-log scaling-law fits, vectorised across starts and bootstrap resamples.

Objective (Hoffmann et al. 2022; Besiroglu et al. 2024): the SUM over points of
w_i * Huber_delta(log L_i - log L_hat_i), log L_hat = LSE of the form's terms (see laws.py).

Method, all numpy, batched over S = (resamples x starts):
1. Coarse search over the exponents. For fixed exponents L_hat is linear in (E, A, B), so a
   non-negative least-squares solve of the relative residuals (L - L_hat)/L ~ log-residuals gives the
   best coefficients for each grid point of exponents; every resample gets its own solve (its rows are
   just weights), ranked by the exact Huber objective at the best few.
2. Polish the best few starts per resample with a damped Gauss-Newton / Levenberg-Marquardt step on
   the Huber objective (IRLS weights psi(r)/r), projected onto box bounds, to convergence.
A bootstrap resample of rows or runs is a vector of integer counts, so resamples share the design and
differ only in their weights: that is what makes the batch cheap.

Approaches 1 and 2 (envelope, IsoFLOP parabolas) use statsmodels; see `approach1`, `approach2`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.fit.bootstrap import compare as compare_groups, percentile_interval, unit_counts
from scalelab.fit.laws import FORMS, Form

# Coarse exponent grid: dense near the usual 0.1-0.8, sparse out to 2.5.
# IRLS curvature outside the quadratic zone is d/|r| (a majoriser); scaled down it is closer to the
# true Huber Hessian (0 there) and converges in ~3x fewer iterations, still damped by LM.
CURV_OUT = 0.1
CHUNK = 128
THREADS = min(4, os.cpu_count() or 1)
# Coarse grid for resamples (each resample searches it all); the point fit uses the finer one.
COARSE_GRID = np.array([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0, 1.3, 1.7, 2.2])
EXPONENT_GRID = np.unique(np.concatenate([np.arange(0.02, 1.0, 0.04), np.arange(1.0, 2.51, 0.125)]))


@dataclass
class Problem:
    """One least-Huber problem: data in log space, the model's terms, the loss, the bounds."""

    theta_names: list[str]
    terms: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]  # (ci[n], si[n], cov[n])
    z: np.ndarray                      # log L, [n]
    lo: np.ndarray                     # [P] bounds on theta
    hi: np.ndarray
    point_w: np.ndarray                # [n] per-point weights (1, or sqrt(C) normalised)
    loss: str = "huber"                # "huber" | "lsq"
    delta: float = 1e-3
    over_penalty: float = 1.0          # factor on residuals where L_hat > L (over-prediction)

    @property
    def n(self) -> int:
        return self.z.shape[0]

    @property
    def P(self) -> int:
        return len(self.theta_names)

    # ---- model ----------------------------------------------------------------------------------
    def log_pred(self, theta: np.ndarray, jac: bool = False):
        """theta[S, P] -> log L_hat[S, n] (and d log L_hat / d theta, laid out [S, P, n])."""
        T = []
        for ci, si, cov in self.terms:
            t = theta[:, ci] if not np.isscalar(ci) else theta[:, ci:ci + 1]
            if si is not None:
                t = t - (theta[:, si:si + 1] if np.isscalar(si) else theta[:, si]) * cov
            T.append(np.broadcast_to(t, (theta.shape[0], self.n)))
        if len(T) == 1:
            zhat, p = T[0], [np.ones_like(T[0])]
        else:
            m = T[0]
            for t in T[1:]:
                m = np.maximum(m, t)
            ex = [np.exp(t - m) for t in T]
            tot = ex[0]
            for e_ in ex[1:]:
                tot = tot + e_
            zhat = m + np.log(tot)
            if not jac:
                return zhat
            p = [e_ / tot for e_ in ex]                  # softmax weights of the terms
        if not jac:
            return zhat
        S, n = zhat.shape
        J = np.zeros((S, self.P, n))
        ar = np.arange(n)
        for j, (ci, si, cov) in enumerate(self.terms):
            if np.isscalar(ci):
                J[:, ci] += p[j]
            else:
                J[:, ci, ar] += p[j]
            if si is not None:
                if np.isscalar(si):
                    J[:, si] -= p[j] * cov
                else:
                    J[:, si, ar] -= p[j] * cov
        return zhat, J

    # ---- loss -----------------------------------------------------------------------------------
    def rho(self, r: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Weighted loss per point [S, n]."""
        if self.over_penalty != 1.0:
            w = w * np.where(r < 0, self.over_penalty, 1.0)
        if self.loss == "lsq":
            return w * (0.5 * r * r)
        a = np.abs(r)
        m = np.minimum(a, self.delta)
        return w * (m * (a - 0.5 * m))             # 0.5 r^2 inside |r| <= delta, delta(|r| - delta/2) out

    def psi_curv(self, r: np.ndarray, w: np.ndarray):
        """Derivative psi of the weighted loss and the Gauss-Newton curvature weight, [S, n] each."""
        if self.over_penalty != 1.0:
            w = w * np.where(r < 0, self.over_penalty, 1.0)
        if self.loss == "lsq":
            return w * r, w
        d = self.delta
        psi = w * np.clip(r, -d, d)
        a = np.abs(r)
        curv = w * np.where(a <= d, 1.0, (CURV_OUT * d) / np.maximum(a, d))
        return psi, curv

    def objective(self, theta: np.ndarray, W: np.ndarray) -> np.ndarray:
        """theta[S, P], W[S, n] -> f[S] (in chunks that stay in cache)."""
        out = np.empty(theta.shape[0])
        for i in range(0, theta.shape[0], CHUNK):
            r = self.z - self.log_pred(theta[i:i + CHUNK])
            out[i:i + CHUNK] = self.rho(r, W[i:i + CHUNK]).sum(axis=-1)
        return out

    def grad(self, theta: np.ndarray, W: np.ndarray) -> np.ndarray:
        zhat, J = self.log_pred(theta, jac=True)
        psi = self.psi_curv(self.z - zhat, W)[0]
        return -(J @ psi[..., None])[..., 0]


def polish(prob: Problem, theta: np.ndarray, W: np.ndarray, iters: int = 60, tol: float = 1e-10,
           chunk: int | None = None):
    """Polish in chunks of starts small enough for the working arrays to stay in cache."""
    chunk = chunk or CHUNK
    jobs = [(theta[i:i + chunk], W[i:i + chunk]) for i in range(0, theta.shape[0], chunk)]
    if len(jobs) > 1 and THREADS > 1:
        # numpy releases the GIL inside its loops: chunks run in parallel on the machine's cores
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(THREADS) as ex:
            outs = list(ex.map(lambda j: _polish(prob, j[0], j[1], iters, tol), jobs))
    else:
        outs = [_polish(prob, t, w, iters, tol) for t, w in jobs]
    return tuple(np.concatenate(o) for o in zip(*outs))


def _polish(prob: Problem, theta: np.ndarray, W: np.ndarray, iters: int, tol: float):
    """Batched Levenberg-Marquardt on the (Huber) objective, projected onto the bounds.

    theta[S, P] starts, W[S, n] weights. Returns (theta, f, |grad|) with the gradient taken over the
    free coordinates (those not pinned at a bound). Each start keeps its own damping lambda and only
    accepts steps that lower its objective, so the objective never increases; a start stops when an
    accepted step gains less than `tol` (relative) or its damping explodes."""
    theta = np.clip(np.array(theta, float), prob.lo, prob.hi)
    S, P = theta.shape
    lam = np.full(S, 1e-3)
    eye = np.eye(P)
    zhat, J = prob.log_pred(theta, jac=True)
    r = prob.z - zhat
    f = prob.rho(r, W).sum(-1)
    active = np.ones(S, bool)
    for _ in range(iters):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        sl = slice(None) if idx.size == S else idx
        Ja, Wa = J[sl], W[sl]
        psi, curv = prob.psi_curv(r[sl], Wa)
        g = -(Ja @ psi[..., None])[..., 0]                           # gradient [s, P]
        H = (Ja * curv[:, None, :]) @ Ja.transpose(0, 2, 1)          # Gauss-Newton [s, P, P]
        dH = np.diagonal(H, axis1=1, axis2=2)
        A = H + lam[sl, None, None] * (dH[:, :, None] * eye + 1e-12 * eye)
        step = np.nan_to_num(-np.linalg.solve(A, g[..., None])[..., 0])
        new = np.clip(theta[sl] + step, prob.lo, prob.hi)
        zn, Jn = prob.log_pred(new, jac=True)
        rn = prob.z - zn
        fn = prob.rho(rn, Wa).sum(-1)
        fa = f[sl]
        ok = fn < fa
        gain = np.where(ok, fa - fn, 0.0)
        acc = idx[ok]
        theta[acc], r[acc], J[acc], f[acc] = new[ok], rn[ok], Jn[ok], fn[ok]
        lam[acc] = np.maximum(lam[acc] / 3.0, 1e-9)
        lam[idx[~ok]] *= 4.0
        done = (ok & (gain <= tol * np.maximum(fn, 1e-300))) | (lam[idx] > 1e10)
        active[idx[done]] = False
    psi = prob.psi_curv(r, W)[0]
    g = -(J @ psi[..., None])[..., 0]
    free = ~(((theta <= prob.lo + 1e-9) & (g > 0)) | ((theta >= prob.hi - 1e-9) & (g < 0)))
    gnorm = np.sqrt(((g * free) ** 2).sum(-1))
    return theta, f, gnorm


# ---- seeding: linear solves over an exponent grid --------------------------------------------------
def _nnls3(m00, m01, m02, m11, m12, m22, v0, v1, v2, tt):
    """Exact non-negative least squares for 3 unknowns by enumerating the 7 active sets.

    Entries of X^T W X (m..), X^T W t (v.) and t^T W t (tt), arrays of one shape. Returns
    (c0, c1, c2, sse). Written out entry by entry: millions of tiny systems at numpy speed."""
    best = np.full(np.broadcast(v0, v1, v2).shape, np.inf)
    c = [np.zeros_like(best) for _ in range(3)]
    zero = np.zeros_like(best)

    def consider(sse, sol):
        nonlocal best
        ok = np.isfinite(sse) & (sse < best)
        for s_ in sol.values():
            ok &= s_ >= 0
        for i in range(3):
            c[i] = np.where(ok, sol.get(i, zero), c[i])
        best = np.where(ok, sse, best)

    with np.errstate(all="ignore"):
        M = {(0, 0): m00, (0, 1): m01, (0, 2): m02, (1, 1): m11, (1, 2): m12, (2, 2): m22}
        v = {0: v0, 1: v1, 2: v2}
        for i in range(3):
            ci = v[i] / M[i, i]
            consider(tt - ci * v[i], {i: ci})
        for i, j in ((0, 1), (0, 2), (1, 2)):
            det = M[i, i] * M[j, j] - M[i, j] ** 2
            ci = (M[j, j] * v[i] - M[i, j] * v[j]) / det
            cj = (M[i, i] * v[j] - M[i, j] * v[i]) / det
            consider(tt - ci * v[i] - cj * v[j], {i: ci, j: cj})
        A_ = m11 * m22 - m12 * m12
        B_ = m02 * m12 - m01 * m22
        C_ = m01 * m12 - m11 * m02
        E_ = m00 * m22 - m02 * m02
        F_ = m01 * m02 - m00 * m12
        I_ = m00 * m11 - m01 * m01
        det = m00 * A_ + m01 * B_ + m02 * C_
        c0 = (A_ * v0 + B_ * v1 + C_ * v2) / det
        c1 = (B_ * v0 + E_ * v1 + F_ * v2) / det
        c2 = (C_ * v0 + F_ * v1 + I_ * v2) / det
        consider(tt - c0 * v0 - c1 * v1 - c2 * v2, {0: c0, 1: c1, 2: c2})
    return c[0], c[1], c[2], best


def seed_chinchilla(logN, logD, L, W, grid=EXPONENT_GRID):
    """For every resample (row of W[K, n]) and exponent pair (alpha, beta) on the grid, the NNLS
    (E, A, B) minimising sum w ((L - E - A N^-alpha - B D^-beta)/L)^2 (relative ~ log residuals).
    Returns theta[K, G*G, 5] in (e, a, b, alpha, beta) and the LS proxy sse[K, G*G]."""
    G = grid.size
    invL = 1.0 / L
    u = np.exp(-np.outer(logN, grid)) * invL[:, None]          # [n, G]  N^-alpha / L
    v = np.exp(-np.outer(logD, grid)) * invL[:, None]          # [n, G]  D^-beta / L
    uv = (u[:, :, None] * v[:, None, :]).reshape(-1, G * G)    # [n, G*G]
    Wf = np.asarray(W, float)
    K = Wf.shape[0]
    s00 = (Wf @ (invL * invL))[:, None, None]                   # [K, 1, 1]
    s0u, s0v = (Wf @ (u * invL[:, None]))[:, :, None], (Wf @ (v * invL[:, None]))[:, None, :]
    suu, svv = (Wf @ (u * u))[:, :, None], (Wf @ (v * v))[:, None, :]
    suv = (Wf @ uv).reshape(K, G, G)
    r0 = (Wf @ invL)[:, None, None]                             # X^T W t with t = L/L = 1
    ru, rv = (Wf @ u)[:, :, None], (Wf @ v)[:, None, :]
    tt = Wf.sum(-1)[:, None, None]
    cE, cA, cB, sse = _nnls3(s00, s0u, s0v, suu, suv, svv, r0, ru, rv, tt)
    floor = 1e-12 * L.min()
    al, be = np.meshgrid(grid, grid, indexing="ij")
    theta = np.stack([np.log(np.maximum(cE, floor)), np.log(np.maximum(cA, floor)),
                      np.log(np.maximum(cB, floor)),
                      np.broadcast_to(al, (K, G, G)), np.broadcast_to(be, (K, G, G))], -1)
    return theta.reshape(K, G * G, 5), sse.reshape(K, G * G)


def seed_single(logX, L, W, grid=EXPONENT_GRID):
    """Two-term forms E + K X^-s (data, size, frontier): NNLS for (E, K) per exponent on the grid.
    Returns theta[K, G, 3] in (e, k, s) and the LS proxy sse[K, G]."""
    invL = 1.0 / L
    u = np.exp(-np.outer(logX, grid)) * invL[:, None]
    Wf = np.asarray(W, float)
    K, G = Wf.shape[0], grid.size
    one, zero = np.ones((K, G)), np.zeros((K, G))
    m00 = (Wf @ (invL * invL))[:, None] * one
    cE, cK, _, sse = _nnls3(m00, Wf @ (u * invL[:, None]), zero, Wf @ (u * u), zero, one,
                            (Wf @ invL)[:, None] * one, Wf @ u, zero, Wf.sum(-1)[:, None] * one)
    floor = 1e-12 * L.min()
    theta = np.stack([np.log(np.maximum(cE, floor)), np.log(np.maximum(cK, floor)),
                      np.broadcast_to(grid, (K, G))], -1)
    return theta, sse


def seed_power(logX, z, W):
    """Pure power law log L = k - gamma log X: weighted least squares in log space, exact."""
    Wf = W.astype(float)
    sw = Wf.sum(-1)
    mx, mz = Wf @ logX / sw, Wf @ z / sw
    sxx = Wf @ (logX * logX) / sw - mx * mx
    sxz = Wf @ (logX * z) / sw - mx * mz
    slope = sxz / np.maximum(sxx, 1e-300)
    theta = np.stack([mz - slope * mx, -slope], -1)
    return theta[:, None, :], np.zeros((W.shape[0], 1))


# ---- one form on one group, batched over resamples --------------------------------------------------
def make_problem(form: Form, cols: dict[str, np.ndarray], L: np.ndarray, point_w=None, loss="huber",
                 delta=1e-3, over_penalty=1.0) -> Problem:
    """cols: {"N": logN, "D": logD, "C": logC} as needed by the form (log covariates, [n])."""
    idx = {t: i for i, t in enumerate(form.theta)}
    n = L.shape[0]
    terms = []
    for c, s, x in form.terms:
        terms.append((idx[c], None if s is None else idx[s], None if x is None else cols[x]))
    z = np.log(L)
    lo, hi = bounds(form.theta, z, cols)
    return Problem(list(form.theta), terms, z, lo, hi,
                   np.ones(n) if point_w is None else point_w, loss, delta, over_penalty)


def bounds(theta_names, z, cols):
    """Box bounds in log space: exponents in [0, 3]; E between 1e-4 and 10 x max loss; log
    coefficients wide enough for any exponent up to 3 over the covariates' range."""
    xmax = max([np.max(np.abs(v)) for v in cols.values()] + [1.0])
    lo, hi = [], []
    for t in theta_names:
        if t in ("alpha", "beta", "gamma"):
            lo.append(0.0), hi.append(3.0)
        elif t == "e":
            lo.append(np.log(1e-4)), hi.append(float(z.max()) + np.log(10.0))
        else:
            lo.append(-30.0), hi.append(3.0 * xmax + 30.0)
    return np.array(lo), np.array(hi)


@dataclass
class BatchFit:
    theta: np.ndarray        # [K, P] best per resample
    f: np.ndarray            # [K]
    grad_norm: np.ndarray    # [K]
    n_at_best: np.ndarray    # [K] starts whose polished objective is within 1e-6 (relative) of the best
    n_starts: int
    at_bound: list[list[str]] = field(default_factory=list)


def fit_batch(prob: Problem, form: Form, cols: dict, L: np.ndarray, W: np.ndarray, n_starts: int = 2,
              n_screen: int = 8, iters: int = 40, extra_starts: np.ndarray | None = None,
              grid: np.ndarray = COARSE_GRID) -> BatchFit:
    """Fit every resample (rows of W[K, n], counts x point weights) from its own best starts.

    Seeds from the exponent grid (each resample's own linear solves), screens the `n_screen` best by the
    LS proxy on the exact objective, polishes the `n_starts` best. `extra_starts[M, P]` are added for
    every resample (e.g. a point fit's optimum), never used alone."""
    K = W.shape[0]
    Wp = W * prob.point_w[None, :]
    if form.name == "chinchilla":
        cand, proxy = seed_chinchilla(cols["N"], cols["D"], L, Wp, grid)
    elif form.name == "power":
        cand, proxy = seed_power(cols["C"], prob.z, Wp)
    else:
        cand, proxy = seed_single(cols[form.terms[0][2]], L, Wp, grid)
    # screen: best n_screen by the LS proxy, then exact objective
    m = min(n_screen, cand.shape[1])
    top = np.argpartition(proxy, m - 1, axis=1)[:, :m] if m < cand.shape[1] else np.tile(np.arange(m), (K, 1))
    cand = np.take_along_axis(cand, top[..., None], 1)                    # [K, m, P]
    if extra_starts is not None:
        cand = np.concatenate([cand, np.broadcast_to(extra_starts[None], (K,) + extra_starts.shape)], 1)
    cand = np.clip(cand, prob.lo, prob.hi)
    m = cand.shape[1]
    Wrep = np.repeat(Wp, m, axis=0)
    fc = prob.objective(cand.reshape(K * m, -1), Wrep).reshape(K, m)
    s = min(n_starts, m)
    order = _diverse(fc, cand, [i for i, t in enumerate(prob.theta_names) if t in ("alpha", "beta", "gamma")], s)
    starts = np.take_along_axis(cand, order[..., None], 1).reshape(K * s, -1)
    th, f, gn = polish(prob, starts, np.repeat(Wp, s, axis=0), iters=iters)
    th, f, gn = th.reshape(K, s, -1), f.reshape(K, s), gn.reshape(K, s)
    best = np.argmin(f, axis=1)
    fb = f[np.arange(K), best]
    n_at = (f <= fb[:, None] + 1e-6 * np.abs(fb[:, None]) + 1e-15).sum(1)
    thb = th[np.arange(K), best]
    at_b = [[prob.theta_names[p] for p in range(prob.P)
             if abs(thb[k, p] - prob.lo[p]) < 1e-6 or abs(thb[k, p] - prob.hi[p]) < 1e-6] for k in range(K)]
    return BatchFit(thb, fb, gn[np.arange(K), best], n_at, s, at_b)


def _diverse(fc, cand, exp_idx, s, min_sep=0.1):
    """Per resample, the indices of `s` starts: the best by objective, then greedily the best whose
    exponents differ from all chosen by at least `min_sep` (falling back to the next best), so that
    the starts probe different basins rather than neighbouring grid points of one."""
    K, m = fc.shape
    order = np.argsort(fc, axis=1)
    chosen = [order[:, 0]]
    if s == 1 or not exp_idx:
        return order[:, :s]
    ex = cand[..., exp_idx]                                           # [K, m, e]
    taken = np.zeros((K, m), bool)
    taken[np.arange(K), order[:, 0]] = True
    for _ in range(1, s):
        dist = np.full((K, m), np.inf)
        for c in chosen:
            d = np.abs(ex - ex[np.arange(K), c][:, None, :]).max(-1)
            dist = np.minimum(dist, d)
        score = np.where(taken, np.inf, fc + np.where(dist >= min_sep, 0.0, 1e300))
        nxt = np.argmin(score, axis=1)
        fallback = np.argmin(np.where(taken, np.inf, fc), axis=1)
        nxt = np.where(np.isfinite(score[np.arange(K), nxt]) & (score[np.arange(K), nxt] < 1e299), nxt, fallback)
        taken[np.arange(K), nxt] = True
        chosen.append(nxt)
    return np.stack(chosen, 1)


def fit_point(prob: Problem, form: Form, cols: dict, L: np.ndarray, n_starts: int = 64, iters: int = 200):
    """The point fit: same method with many more starts and iterations (cheap for one data set)."""
    W = np.ones((1, prob.n))
    return fit_batch(prob, form, cols, L, W, n_starts=n_starts, n_screen=10 ** 6, iters=iters,
                     grid=EXPONENT_GRID)


# ---- the whole procedure for one group ------------------------------------------------------------------
def distinct(x: np.ndarray, rtol: float = 1e-6) -> int:
    """Number of distinct values up to a relative tolerance."""
    s = np.sort(np.asarray(x, float))
    if s.size == 0:
        return 0
    return int(1 + np.sum(np.diff(s) > rtol * np.abs(s[1:])))


def choose_form(N, D, requested: str = "auto", confound_tol: float = 0.05) -> tuple[str, list[str]]:
    """The form to fit and the notes explaining the choice.

    auto: chinchilla when N and D both vary independently; data (L(D)) when N is fixed; size (L(N))
    when D is fixed; frontier L(C) when every run has the same tokens per parameter (within
    `confound_tol`, relative): then N and D move together and L(N, D) is not identified."""
    notes = []
    nN, nD = distinct(N), distinct(D)
    tpp = np.asarray(D, float) / np.asarray(N, float)
    confounded = nN > 1 and tpp.max() / tpp.min() <= 1 + confound_tol
    if requested != "auto":
        if requested == "chinchilla" and confounded:
            notes.append(f"N and D are confounded (every point has D/N = {np.median(tpp):.3g} within "
                         f"{confound_tol:.0%}): alpha, beta, A, B are not identified separately")
        return requested, notes
    if nN == 1 and nD == 1:
        return "chinchilla", notes      # rejected later: nothing varies
    if nN == 1:
        return "data", notes
    if nD == 1:
        return "size", notes
    if confounded:
        notes.append(f"N and D are confounded (every point has D/N = {np.median(tpp):.3g} within "
                     f"{confound_tol:.0%}): fitted the compute frontier L(C) instead of L(N, D)")
        return "frontier", notes
    return "chinchilla", notes


@dataclass
class GroupData:
    """One group's points, in the units of the law (N params, D tokens, C FLOPs, L loss)."""

    name: str
    key: dict
    N: np.ndarray
    D: np.ndarray
    C: np.ndarray
    L: np.ndarray
    unit: np.ndarray            # resampling unit per point (run id, or row number)
    runs: list = field(default_factory=list)

    def cols(self) -> dict:
        return {"N": np.log(self.N), "D": np.log(self.D), "C": np.log(self.C)}

    def subset(self, mask) -> "GroupData":
        return GroupData(self.name, self.key, self.N[mask], self.D[mask], self.C[mask], self.L[mask],
                         self.unit[mask], self.runs)


def point_weights(g: GroupData, weights: str | None) -> np.ndarray:
    """Per-point weights: none (1) or `compute` (sqrt(C), normalised to mean 1)."""
    if weights in (None, "none"):
        return np.ones(g.L.size)
    if weights == "compute":
        w = np.sqrt(g.C)
        return w / w.mean()
    raise ValueError(f"unknown weights {weights!r}")


@dataclass
class Options:
    form: str = "auto"
    loss: str = "huber"
    delta: float = 1e-3
    weights: str | None = None
    over_penalty: float = 1.0
    n_boot: int = 1000
    seed: int = 0
    level: float = 0.95
    n_starts: int | None = None  # polished starts per resample; None: auto_starts(n) (the point fit uses 64)
    c_ref: float | None = None  # FLOPs at which to report compute-optimal tokens per parameter
    holdout: str | None = None  # "largest"


def auto_starts(n: int) -> int:
    """Polished starts per resample: 2 for large groups (240 Chinchilla points: every resample's two
    starts agree), up to 8 for small ones, where local optima are commoner and starts are cheap
    (on 15-run groups 2 starts missed the best value in 2% of resamples, 8 in 0.2%)."""
    return int(np.clip(480 // max(n, 1), 2, 8))


def fit_group(g: GroupData, opt: Options, counts: np.ndarray | None, progress=None):
    """Point fit and bootstrap of one group. counts[K, n]: resample counts per point (None: none).

    Returns (GroupFit, exponent samples dict) with intervals, derived quantities and checks."""
    from scalelab.fit.results import GroupFit
    from scalelab.fit import laws

    form_name, notes = choose_form(g.N, g.D, opt.form)
    form = laws.FORMS[form_name]
    cols = g.cols()
    pw = point_weights(g, opt.weights)
    prob = make_problem(form, cols, g.L, pw, opt.loss, opt.delta, opt.over_penalty)
    pt = fit_point(prob, form, cols, g.L)
    theta = pt.theta[0]
    params = {k: float(v) for k, v in laws.to_natural(form, theta).items()}
    r = prob.z - prob.log_pred(theta[None])[0]
    warnings = list(notes)
    n_sizes = distinct(g.N)
    if n_sizes < 5 and form_name in ("chinchilla", "size"):
        warnings.append(f"only {n_sizes} distinct model sizes (fewer than 5): the N exponent is poorly constrained")
    if form_name == "data" and distinct(g.D) < 5:
        warnings.append(f"only {distinct(g.D)} distinct token counts (fewer than 5): beta is poorly constrained")
    n_units = np.unique(g.unit).size
    if counts is not None and n_units < 5:
        warnings.append(f"only {n_units} runs to resample: bootstrap intervals are unreliable")
    if pt.at_bound[0]:
        warnings.append(f"parameter(s) at a bound of the search box: {', '.join(pt.at_bound[0])}")
    diag = {"objective": float(pt.f[0]), "grad_norm": float(pt.grad_norm[0]),
            "n_starts_at_best": int(pt.n_at_best[0]), "n_starts": int(pt.n_starts),
            "at_bound": pt.at_bound[0]}

    extra = {}
    c_ref = opt.c_ref if opt.c_ref is not None else float(g.C.max())
    der = {k: float(v) for k, v in laws.derived(form_name, params, c_ref).items()}
    if der:
        extra["c_ref"] = c_ref
    conf, dconf, samples = {}, {}, None
    if counts is not None and counts.shape[0] > 0:
        W = counts
        bf = fit_batch(prob, form, cols, g.L, W, n_starts=opt.n_starts or auto_starts(g.L.size),
                       n_screen=max(8, 2 * (opt.n_starts or auto_starts(g.L.size))))
        nat = laws.to_natural(form, bf.theta)
        samples = pd.DataFrame({k: np.asarray(v, float) for k, v in nat.items()})
        dsamp = laws.derived(form_name, nat, c_ref)
        for k, v in nat.items():
            conf[k] = list(percentile_interval(v, opt.level))
        for k, v in dsamp.items():
            dconf[k] = list(percentile_interval(v, opt.level))
            if k in ("a", "b"):
                samples[k] = v
        single = float(np.mean(bf.n_at_best < 2))
        bound_frac = float(np.mean([bool(b) for b in bf.at_bound]))
        diag["bootstrap"] = {
            "n_starts": int(bf.n_starts),
            "frac_one_start_at_best": single,
            "frac_at_bound": bound_frac,
            "grad_norm_p99": float(np.percentile(bf.grad_norm, 99)),
        }
        if bound_frac > 0.05:
            warnings.append(f"{bound_frac:.0%} of bootstrap fits have a parameter at a bound of the search box: "
                            "intervals may be truncated")
    if opt.holdout == "largest":
        extra["holdout"] = holdout_largest(g, form_name, opt)
    rng_ = {"N": [float(g.N.min()), float(g.N.max())], "D": [float(g.D.min()), float(g.D.max())],
            "C": [float(g.C.min()), float(g.C.max())]}
    gf = GroupFit(name=g.name, key=g.key, form=form_name, params=params, conf_int=conf, derived=der,
                  derived_conf_int=dconf, residual_sd=float(np.std(r, ddof=0)), n_points=int(g.L.size),
                  n_runs=int(np.unique(g.unit).size), n_sizes=n_sizes, range=rng_, diagnostics=diag,
                  warnings=warnings, runs=g.runs, samples=samples, extra=extra)
    return gf, prob, form


def holdout_largest(g: GroupData, form_name: str, opt: Options) -> dict:
    """Refit without the largest size (largest D when N is fixed, largest C for frontier fits) and
    report the relative error of predicting the held-out points."""
    from scalelab.fit import laws

    key = {"data": g.D, "frontier": g.C, "power": g.C}.get(form_name, g.N)
    big = key >= key.max() * (1 - 1e-6)
    rest = g.subset(~big)
    what = {"data": "D", "frontier": "C", "power": "C"}.get(form_name, "N")
    out = {"rule": f"largest {what}", "value": float(key.max()), "n_points": int(big.sum())}
    if distinct(key[~big]) < 2 or rest.L.size < len(laws.FORMS[form_name].theta) + 1:
        out.update(mean_rel_error=None, max_rel_error=None, note="too few points left to refit")
        return out
    form = laws.FORMS[form_name]
    cols = rest.cols()
    prob = make_problem(form, cols, rest.L, point_weights(rest, opt.weights), opt.loss, opt.delta, opt.over_penalty)
    pt = fit_point(prob, form, cols, rest.L)
    p = {k: float(v) for k, v in laws.to_natural(form, pt.theta[0]).items()}
    pred = laws.predict(form, p, N=g.N[big], D=g.D[big], C=g.C[big])
    rel = (pred - g.L[big]) / g.L[big]
    out.update(mean_rel_error=float(np.mean(np.abs(rel))), max_rel_error=float(np.max(np.abs(rel))),
               mean_signed_rel_error=float(np.mean(rel)), params=p)
    return out


def fit_shared_e(groups: list[GroupData], fits: list, opt: Options, counts: list):
    """Joint fit of the chinchilla form over groups sharing E = exp(e), with per-group A, B, alpha, beta.

    Starts: every group's separate fit (point or per resample), with e taken from each group's own E
    in turn; polished jointly. Overwrites each group's E, A, B, alpha, beta (and intervals)."""
    from scalelab.fit import laws

    G = len(groups)
    names = ["e"] + [f"{p}{i}" for i in range(G) for p in ("a", "b", "alpha", "beta")]
    L = np.concatenate([g.L for g in groups])
    gi = np.concatenate([np.full(g.L.size, i) for i, g in enumerate(groups)])
    logN = np.concatenate([np.log(g.N) for g in groups])
    logD = np.concatenate([np.log(g.D) for g in groups])
    base = 1 + 4 * gi
    terms = [(base, base + 2, logN), (base + 1, base + 3, logD), (0, None, None)]
    z = np.log(L)
    lo, hi = bounds(names, z, {"N": logN, "D": logD})
    pw = np.concatenate([point_weights(g, opt.weights) for g in groups])
    prob = Problem(names, terms, z, lo, hi, pw, opt.loss, opt.delta, opt.over_penalty)

    def starts_from(thetas):  # thetas: list over groups of [S, 5] separate fits -> [S, G, 1 + 4G]
        S = thetas[0].shape[0]
        rest = np.concatenate([t[:, 1:] for t in thetas], 1)           # [S, 4G]
        out = np.empty((S, G + 1, 1 + 4 * G))
        for j in range(G):
            out[:, j, 0] = thetas[j][:, 0]
            out[:, j, 1:] = rest
        out[:, G, 0] = np.mean([t[:, 0] for t in thetas], 0)
        out[:, G, 1:] = rest
        return out

    point = [laws.to_theta(laws.FORMS["chinchilla"], f.params)[None] for f in fits]
    st = starts_from(point)[0]
    th, f, gn = polish(prob, st, np.ones((st.shape[0], L.size)) * pw, iters=200)
    b = int(np.argmin(f))
    result = {"theta": th[b], "objective": float(f[b]), "grad_norm": float(gn[b]),
              "n_starts_at_best": int(np.sum(f <= f[b] * (1 + 1e-6) + 1e-15)), "n_starts": int(f.size)}
    result["boot"] = None
    if counts and counts[0] is not None and fits[0].samples is not None:
        thetas = [np.stack([np.log(f_.samples["E"]), np.log(f_.samples["A"]), np.log(f_.samples["B"]),
                            f_.samples["alpha"], f_.samples["beta"]], -1) for f_ in fits]
        st = starts_from(thetas)                                          # [K, G+1, P]
        K, m, P = st.shape
        Wc = np.concatenate(counts, 1) * pw                             # [K, n]
        th, f, _ = polish(prob, st.reshape(K * m, P), np.repeat(Wc, m, 0), iters=60)
        th, f = th.reshape(K, m, P), f.reshape(K, m)
        result["boot"] = th[np.arange(K), np.argmin(f, 1)]
    return prob, result


# ---- the public entry point ---------------------------------------------------------------------------------
RUN_FIELDS = ("run_id", "params", "params_nonembed", "tokens", "flops", "loss", "tokens_per_s", "mfu", "device", "model")


def fit_laws(df: pd.DataFrame, n_col: str = "params", d_col: str | None = "tokens", loss_col: str = "loss",
             c_col: str | None = None, run_col: str | None = None, by: list[str] | str | None = None,
             form: str = "auto", bootstrap: int = 1000, seed: int = 0, level: float = 0.95,
             loss: str = "huber", delta: float = 1e-3, weights: str | None = None,
             overestimate_penalty: float = 1.0, share_e: bool = False, holdout: str | None = None,
             compare: list[tuple[str, str]] | None = None, c_ref: float | None = None,
             flop_convention: str | None = None, n_starts: int | None = None, inputs: list | None = None,
             source: str = "data frame", progress=None):
    """Fit a scaling law per group of `df` with run-level bootstrap intervals.

    df: one row per (N, D) point. n_col: parameters N; d_col: tokens D (None: D = C/(6N) from c_col);
    loss_col: the loss; c_col: training FLOPs C (None: C = 6 N D); run_col: the run id, the bootstrap
    unit (None: rows); by: grouping columns (None: one group "all"). form: auto | chinchilla | data |
    size | frontier | power. compare: [(a, b), ...] groups to compare (default: every group vs dense).
    weights: None | "compute" (sqrt(C)). holdout: None | "largest". c_ref: FLOPs for the
    compute-optimal N, D, tokens/param (default: largest C of each group). n_starts: polished starts
    per resample. Returns FitResults (results.py). `source` names the input in errors."""
    from scalelab import __version__
    from scalelab.fit.results import FitResults, now_iso

    by = [by] if isinstance(by, str) else list(by or [])
    if form not in ("auto", *FORMS):
        raise ScalelabError(f"unknown form {form!r}: use auto, {', '.join(FORMS)}")
    if loss not in ("huber", "lsq"):
        raise ScalelabError(f"unknown loss {loss!r}: use huber or lsq")
    if not 0 < level < 1:
        raise ScalelabError(f"level {level} must be in (0, 1), e.g. 0.95")
    if bootstrap < 0:
        raise ScalelabError("--bootstrap must be >= 0")
    if weights not in (None, "none", "compute"):
        raise ScalelabError(f"unknown weights {weights!r}: use none or compute")
    if overestimate_penalty < 1:
        raise ScalelabError("--overestimate-penalty must be >= 1 (1 = symmetric Huber)")
    need = [n_col, loss_col] + ([d_col] if d_col else []) + ([c_col] if c_col else []) + \
           ([run_col] if run_col else []) + by
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ScalelabError(f"{source}: missing column(s) {', '.join(map(repr, missing))}; "
                            f"columns present: {', '.join(map(str, df.columns))}")
    if not d_col and not c_col:
        raise ScalelabError(f"{source}: need tokens (--d-col) or FLOPs (--flops-col) to know D")
    df = df.reset_index(drop=True)
    arr = {}
    for name, col in (("N", n_col), ("L", loss_col), ("D", d_col), ("C", c_col)):
        if col is None:
            continue
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(v) | (v <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ScalelabError(f"{source}: column {col!r} has {int(bad.sum())} missing, non-numeric or "
                                f"non-positive value(s) (first at row {i}: {_py(df[col].iloc[i])!r}); "
                                "every N, D, FLOPs and loss must be a positive number")
        arr[name] = v
    if "D" not in arr:
        arr["D"] = arr["C"] / (6.0 * arr["N"])
    if "C" not in arr:
        arr["C"] = 6.0 * arr["N"] * arr["D"]
    convention = flop_convention or ("6ND" if c_col is None else c_col)
    units = df[run_col].astype(str).to_numpy() if run_col else np.array([f"row{i}" for i in range(len(df))])
    opt = Options(form=form, loss=loss, delta=delta, weights=weights, over_penalty=overestimate_penalty,
                  n_boot=bootstrap, seed=seed, level=level, n_starts=n_starts, c_ref=c_ref, holdout=holdout)

    # groups
    if by:
        keys = df[by].astype(str).agg("/".join, axis=1) if len(by) > 1 else df[by[0]].astype(str)
    else:
        keys = pd.Series(["all"] * len(df))
    groups: list[GroupData] = []
    for name in dict.fromkeys(keys):
        m = (keys == name).to_numpy()
        sub = df[m]
        key = {c: _py(sub[c].iloc[0]) for c in by}
        g = GroupData(name, key, arr["N"][m], arr["D"][m], arr["C"][m], arr["L"][m], units[m])
        if g.L.size < 3:
            raise ScalelabError(f"{source}: group {name!r} has {g.L.size} point(s); a fit needs at least 3 "
                                f"(column {by[0] if by else n_col!r})")
        if distinct(g.N) == 1 and distinct(g.D) == 1:
            raise ScalelabError(f"{source}: group {name!r}: every point has the same N (column {n_col!r}) and D; "
                                "nothing to fit")
        g.runs = _runs(sub, g, run_col, loss_col)
        groups.append(g)

    # bootstrap counts: per group independently; jointly (paired) when groups share runs
    shared_runs = len(groups) > 1 and len(set().union(*[set(g.unit) for g in groups])) < sum(np.unique(g.unit).size for g in groups)
    counts: list = [None] * len(groups)
    if bootstrap > 0:
        if shared_runs:
            allu = np.concatenate([g.unit for g in groups])
            c_all = unit_counts(allu, bootstrap, np.random.default_rng(seed))
            off = np.cumsum([0] + [g.L.size for g in groups])
            counts = [c_all[:, off[i]:off[i + 1]] for i in range(len(groups))]
        else:
            seqs = np.random.SeedSequence(seed).spawn(len(groups))
            counts = [unit_counts(g.unit, bootstrap, np.random.default_rng(s)) for g, s in zip(groups, seqs)]

    fits = []
    for g, c in zip(groups, counts):
        gf, _, _ = fit_group(g, opt, c, progress)
        fits.append(gf)
        if progress:
            progress(g.name)

    if share_e:
        if len(groups) < 2:
            raise ScalelabError("--share-e needs at least two groups (--by)")
        bad = [f.name for f in fits if f.form != "chinchilla"]
        if bad:
            raise ScalelabError(f"--share-e fits the L(N, D) form, but group(s) {', '.join(bad)} cannot take it "
                                "(fixed N or D, or confounded): drop --share-e or those groups")
        _apply_shared_e(groups, fits, opt, counts)

    comparisons = []
    byname = {f.name: f for f in fits}
    pairs = compare
    if pairs is None:
        dense = [f.name for f in fits if f.key.get("variant") == "dense" or f.name == "dense"]
        pairs = [(dense[0], f.name) for f in fits if dense and f.name != dense[0]]
    for a, b in pairs:
        for x in (a, b):
            if x not in byname:
                raise ScalelabError(f"--compare: no group {x!r}; groups are {', '.join(byname)}")
        fa, fb = byname[a], byname[b]
        if fa.samples is None or fb.samples is None:
            continue
        pa = {**fa.params, **fa.derived}
        pb = {**fb.params, **fb.derived}
        comparisons.append(compare_groups(a, {k: fa.samples[k] for k in fa.samples}, pa,
                                   b, {k: fb.samples[k] for k in fb.samples}, pb, level, paired=shared_runs))
    meta = {"scalelab_version": __version__, "created": now_iso(), "inputs": inputs or [],
            "flop_convention": convention, "by": by, "approach": 3,
            "loss": {"kind": loss, "delta": delta, "overestimate_penalty": overestimate_penalty,
                     "weights": weights or "none"},
            "bootstrap": {"n": bootstrap, "seed": seed, "level": level,
                          "unit": "run" if run_col else "row", "paired": bool(shared_runs)},
            "share_e": bool(share_e),
            "columns": {"N": n_col, "D": d_col or f"{c_col}/(6 N)", "loss": loss_col, "C": c_col or "6ND",
                        "run": run_col}}
    return FitResults({f.name: f for f in fits}, comparisons, meta)


def _py(v):
    return v.item() if hasattr(v, "item") else v


def _runs(sub: pd.DataFrame, g: GroupData, run_col, loss_col) -> list:
    """The group's runs for the fit file (one entry per run: its last point), for the planner."""
    import json as _json

    rows = []
    order = np.argsort(g.D)
    last = {}
    for i in order:                       # later (more tokens) rows overwrite earlier ones
        last[g.unit[i]] = i
    for u, i in last.items():
        row = sub.iloc[i]
        rec = {"run_id": str(u) if run_col else None, "params": float(g.N[i]),
               "params_nonembed": _num(row.get("params_nonembed")), "tokens": float(g.D[i]),
               "flops": float(g.C[i]), "loss": float(g.L[i]), "tokens_per_s": _num(row.get("tokens_per_s")),
               "mfu": _num(row.get("mfu")), "device": row.get("device") if isinstance(row.get("device"), str) else None,
               "model": None}
        cfg = row.get("config")
        if isinstance(cfg, str) and cfg:
            try:
                m = _json.loads(cfg).get("model")
                rec["model"] = m if isinstance(m, dict) else None
            except (ValueError, AttributeError):
                rec["model"] = None
        rows.append(rec)
    return rows


def _num(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _apply_shared_e(groups, fits, opt, counts):
    from scalelab.fit import laws

    prob, res = fit_shared_e(groups, fits, opt, counts)
    th = res["theta"]
    E = float(np.exp(th[0]))
    boot = res["boot"]
    for i, f in enumerate(fits):
        a, b, al, be = th[1 + 4 * i: 5 + 4 * i]
        f.params = {"E": E, "A": float(np.exp(a)), "B": float(np.exp(b)), "alpha": float(al), "beta": float(be)}
        c_ref = f.extra.get("c_ref")
        f.derived = {k: float(v) for k, v in laws.derived("chinchilla", f.params, c_ref).items()}
        f.diagnostics["shared_e"] = {k: res[k] for k in ("objective", "grad_norm", "n_starts_at_best", "n_starts")}
        f.extra["shared_e"] = True
        zhat = prob.log_pred(th[None])[0]
        mask = np.concatenate([np.full(g.L.size, j == i) for j, g in enumerate(groups)])
        f.residual_sd = float(np.std((prob.z - zhat)[mask]))
        if boot is not None:
            nat = {"E": np.exp(boot[:, 0]), "A": np.exp(boot[:, 1 + 4 * i]), "B": np.exp(boot[:, 2 + 4 * i]),
                   "alpha": boot[:, 3 + 4 * i], "beta": boot[:, 4 + 4 * i]}
            f.samples = pd.DataFrame(nat)
            f.conf_int = {k: list(percentile_interval(v, opt.level)) for k, v in nat.items()}
            d = laws.derived("chinchilla", nat, c_ref)
            f.derived_conf_int = {k: list(percentile_interval(v, opt.level)) for k, v in d.items()}
            f.samples["a"], f.samples["b"] = d["a"], d["b"]


# ---- approaches 1 and 2: compute-optimal allocation from the envelope / IsoFLOP minima ----------------------
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


def fit_allocation(df, approach: int, n_col, d_col, loss_col, c_col=None, run_col=None, by=None, level=0.95,
                   source="data frame", inputs=None, flop_convention=None):
    """Approaches 1 and 2 per group: power laws N_opt = kN C^a, D_opt = kD C^b (log-log OLS with
    statsmodels intervals). Returns FitResults with form 'allocation' groups (no bootstrap samples)."""
    from scalelab import __version__
    from scalelab.fit.results import FitResults, GroupFit, now_iso

    by = list(by or [])
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
            raise ScalelabError(f"{source}: group {name!r}: approach {approach} found {c.size} {what}; "
                                "need at least 3 (use --approach 3)")
        a, ia, a_ci, ia_ci = _loglog(c, n_opt, level)
        b, ib, b_ci, ib_ci = _loglog(c, d_opt, level)
        params = {"a": a, "b": b, "kN": float(np.exp(ia)), "kD": float(np.exp(ib))}
        conf = {"a": a_ci, "b": b_ci, "kN": list(np.exp(ia_ci)), "kD": list(np.exp(ib_ci))}
        warnings = []
        if abs(a + b - 1) > 0.1:
            warnings.append(f"a + b = {a + b:.3f}, far from 1: N_opt D_opt is not proportional to C")
        groups[name] = GroupFit(
            name=name, key={k: sub[k].iloc[0] for k in by}, form="allocation", params=params, conf_int=conf,
            derived={"a": a, "b": b}, derived_conf_int={"a": a_ci, "b": b_ci}, n_points=int(len(sub)),
            n_runs=int(sub[run_col].nunique()) if run_col and run_col in sub else int(len(sub)),
            n_sizes=distinct(N), range={"N": [float(N.min()), float(N.max())], "D": [float(D.min()), float(D.max())],
                                         "C": [float(C.min()), float(C.max())]},
            diagnostics={"optima": {"C": c.tolist(), "N_opt": n_opt.tolist(), "D_opt": d_opt.tolist()}},
            warnings=warnings)
    meta = {"scalelab_version": __version__, "created": now_iso(), "inputs": inputs or [],
            "flop_convention": flop_convention or "6ND", "by": by, "approach": approach,
            "loss": {"kind": "ols"}, "bootstrap": {"n": 0, "seed": None, "level": level, "unit": None}}
    return FitResults(groups, [], meta)
