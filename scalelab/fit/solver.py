"""Solving a Problem for many starts and bootstrap resamples at once: grid seeds, then Gauss-Newton polish.

Method, all numpy, batched over S = (resamples x starts):
1. Coarse search over the exponents. For fixed exponents L_hat is linear in (E, A, B), so a
   non-negative least-squares solve of the relative residuals (L - L_hat)/L ~ log-residuals gives the
   best coefficients for each grid point of exponents; every resample gets its own solve (its rows are
   just weights), ranked by the exact Huber objective at the best few.
2. Polish the best few starts per resample with a damped Gauss-Newton / Levenberg-Marquardt step on
   the Huber objective (IRLS weights psi(r)/r), projected onto box bounds, to convergence.
A bootstrap resample of rows or runs is a vector of integer counts, so resamples share the design and
differ only in their weights: that is what makes the batch cheap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from scalelab.fit.laws import Form
from scalelab.fit.objective import CHUNK, Problem

THREADS = min(4, os.cpu_count() or 1)
# Coarse exponent grid for resamples (each resample searches it all): dense near the usual 0.1-0.8,
# sparse out to 2.5. The point fit uses the finer one.
COARSE_GRID = np.array([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0, 1.3, 1.7, 2.2])
EXPONENT_GRID = np.unique(np.concatenate([np.arange(0.02, 1.0, 0.04), np.arange(1.0, 2.51, 0.125)]))


def polish(
    prob: Problem,
    theta: np.ndarray,
    W: np.ndarray,
    iters: int = 60,
    tol: float = 1e-10,
    chunk: int | None = None,
    capped: bool = False,
):
    """Polish in chunks of starts, in parallel threads when starts x points reach THREAD_ELEMENTS. Returns
    (theta, f, |grad|), and with `capped` also [S] True where a start was still improving when the `iters` ran
    out."""
    run = _polish_terms if prob.scalar_terms else _polish
    if chunk is None and run is _polish_terms:
        # one block per thread: starts that converge leave the active set, and a block's late iterations on
        # its few slow starts cost the same per call whatever the block size. A small problem runs in one
        # block in this thread: its iterations are numpy calls on tiny arrays, which threads only slow down
        # (each thread would repeat the slow starts' tail of iterations, contending for the GIL)
        S = theta.shape[0]
        chunk = max(64, -(-S // THREADS)) if S * prob.n >= THREAD_ELEMENTS else max(S, 1)
    chunk = chunk or CHUNK
    jobs = [(theta[i : i + chunk], W[i : i + chunk]) for i in range(0, theta.shape[0], chunk)]
    if len(jobs) > 1 and THREADS > 1:
        # numpy releases the GIL inside its loops: chunks run in parallel on the machine's cores
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(THREADS) as ex:
            outs = list(ex.map(lambda j: run(prob, j[0], j[1], iters, tol), jobs))
    else:
        outs = [run(prob, t, w, iters, tol) for t, w in jobs]
    out = tuple(np.concatenate(o) for o in zip(*outs))
    return out if capped else out[:3]


BLOCK_ELEMENTS = 32768  # starts x points per block of an iteration: the working arrays stay in cache
# starts x points from which polish splits the starts over threads: on 2 busy cores 12 points x 8000 starts ran
# faster in one thread (4.8-5.3 s vs 5.9 s), Porian et al.'s 10 groups of 116 points x 4000 starts a little
# faster in two (22.4 s vs 24.3 s)
THREAD_ELEMENTS = 262144


try:  # the LAPACK gufunc behind np.linalg.solve, without its per-call checks (tiny systems, thousands of calls)
    from numpy.linalg import _umath_linalg

    def _solve(A, b):
        return _umath_linalg.solve(A, b, signature="dd->d")

except ImportError:  # pragma: no cover - a numpy without it
    _solve = np.linalg.solve


def _polish_terms(prob: Problem, theta: np.ndarray, W: np.ndarray, iters: int, tol: float):
    """_polish for scalar_terms problems (every single-group form): the same iteration, its Gauss-Newton
    system from Problem.gn_system (no [S, P, n] Jacobian), rebuilt only where a step was accepted. Each
    iteration runs over the still-active starts in cache-sized blocks, so converged starts cost nothing and
    a few slow ones cost one small block per iteration."""
    theta = np.clip(np.array(theta, float), prob.lo, prob.hi)
    S, P = theta.shape
    lam = np.full(S, 1e-3)
    eye = np.eye(P)
    free = ~fixed_mask(prob)
    all_free = bool(free.all())
    block = max(16, BLOCK_ELEMENTS // max(prob.n, 1))
    lin = linear_coefficients(prob)

    def held(p, r, w):  # a fixed parameter (lo == hi) takes no step
        g, H = prob.gn_system(p, r, w)
        return g * free, H * (free[:, None] & free[None, :])

    system = prob.gn_system if all_free else held

    f = np.empty(S)
    g = np.empty((S, P))
    H = np.empty((S, P, P))
    for i in range(0, S, block):
        zhat, p = prob.terms_eval(theta[i : i + block])
        r = prob.z - zhat
        f[i : i + block] = prob.rho(r, W[i : i + block]).sum(-1)
        g[i : i + block], H[i : i + block] = system(p, r, W[i : i + block])
    active = np.ones(S, bool)
    lo, hi, z = prob.lo, prob.hi, prob.z
    lo_in, hi_in = lo + 1e-12, hi - 1e-12
    eps_eye = 1e-12 * eye
    for _ in range(iters):
        act = np.flatnonzero(active)
        if act.size == 0:
            break
        for b0 in range(0, act.size, block):
            idx = act[b0 : b0 + block] if act.size > block else act
            sel = slice(None) if idx.size == S else idx  # all active: read views, no copies
            Ha, Wa, ga, ta = H[sel], W[sel], g[sel], theta[sel]
            # a coordinate at a bound whose descent direction leaves the box is held there for this step
            # (projected Newton): otherwise the clipped step bends the others' and most steps are rejected
            at_lo, at_hi = ta <= lo_in, ta >= hi_in
            if (at_lo | at_hi).any():
                keep = ~((at_lo & (ga > 0)) | (at_hi & (ga < 0)))
                Ha = Ha * (keep[:, :, None] & keep[:, None, :])
                ga = ga * keep
            dH = np.diagonal(Ha, axis1=1, axis2=2)
            A = Ha + lam[idx, None, None] * (dH[:, :, None] * eye + eps_eye)
            step = -_solve(A, ga[..., None])[..., 0]
            if not np.isfinite(step).all():  # np.linalg.solve's checks (a singular system raises), then as always
                step = np.nan_to_num(-np.linalg.solve(A, ga[..., None])[..., 0])
            new = np.minimum(np.maximum(ta + _linear_steps(step, lin), lo), hi)
            zn, pn = prob.terms_eval(new)
            rn = z - zn
            fn = prob.rho(rn, Wa).sum(-1)
            fa = f[idx]
            ok = fn < fa
            if ok.all():
                acc = idx
                theta[acc], f[acc] = new, fn
                g[acc], H[acc] = system(pn, rn, Wa)
                lam[acc] = np.maximum(lam[acc] / 3.0, 1e-9)
                done = (fa - fn <= tol * np.maximum(fn, 1e-300)) | (lam[idx] > 1e10)
            else:
                gain = np.where(ok, fa - fn, 0.0)
                acc = idx[ok]
                if acc.size:
                    theta[acc], f[acc] = new[ok], fn[ok]
                    g[acc], H[acc] = system([q if q.shape[0] == 1 else q[ok] for q in pn], rn[ok], Wa[ok])
                lam[acc] = np.maximum(lam[acc] / 3.0, 1e-9)
                lam[idx[~ok]] *= 4.0
                done = (ok & (gain <= tol * np.maximum(fn, 1e-300))) | (lam[idx] > 1e10)
            if done.any():
                active[idx[done]] = False
    bounded = ((theta <= prob.lo + 1e-9) & (g > 0)) | ((theta >= prob.hi - 1e-9) & (g < 0))
    gnorm = np.sqrt(((g * ~bounded) ** 2).sum(-1))
    return theta, f, gnorm, active


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
    fixed = fixed_mask(prob)
    lin = linear_coefficients(prob)
    zhat, J = prob.log_pred(theta, jac=True)
    if fixed.any():  # a fixed parameter (lo == hi) takes no step: its Jacobian row is zero
        J = J * ~fixed[None, :, None]
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
        g = -(Ja @ psi[..., None])[..., 0]  # gradient [s, P]
        H = (Ja * curv[:, None, :]) @ Ja.transpose(0, 2, 1)  # Gauss-Newton [s, P, P]
        dH = np.diagonal(H, axis1=1, axis2=2)
        A = H + lam[sl, None, None] * (dH[:, :, None] * eye + 1e-12 * eye)
        step = np.nan_to_num(-np.linalg.solve(A, g[..., None])[..., 0])
        new = np.clip(theta[sl] + _linear_steps(step, lin), prob.lo, prob.hi)
        zn, Jn = prob.log_pred(new, jac=True)
        if fixed.any():
            Jn = Jn * ~fixed[None, :, None]
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
    return theta, f, gnorm, active


def linear_coefficients(prob: Problem) -> list[int]:
    """Indices of the log coefficients of constant terms (E): the prediction is linear in E itself, so a step
    of s in log E is taken as E -> E (1 + s) (floored at E / 10), the Gauss-Newton model's own prediction.
    Taken as exp(s), a start with E near 0 (at its lower bound) that should rise 1000-fold climbs out a few
    tenths of a nat per accepted step, hundreds of iterations (Kaplan-like groups: E at the bound)."""
    if not prob.linear_e:
        return []
    # a plain int test (np.isscalar's TypeIs narrows to numpy's scalar union, which is no index to the checker)
    return [ci for ci, si, _ in prob.terms if si is None and isinstance(ci, int) and prob.lo[ci] < prob.hi[ci]]


def _linear_steps(step: np.ndarray, lin: list[int]) -> np.ndarray:
    """The steps in log space of the linear_coefficients `lin` taken as E -> E (1 + s), floored at E / 10."""
    if lin:
        step[:, lin] = np.log(np.maximum(1.0 + step[:, lin], 0.1))
    return step


def fixed_mask(prob: Problem) -> np.ndarray:
    """[P] True where a parameter is held fixed (--fix): its box has no width (lo == hi)."""
    return np.asarray(prob.lo, float) >= np.asarray(prob.hi, float)


def fix_parameters(prob: Problem, form: Form, fixed: dict) -> Problem:
    """Hold the natural parameters in `fixed` ({"E": 1.69}) at their values: their bounds collapse to a point
    (log space for coefficients), so seeds, polish and bounds all keep them there. Returns `prob`."""
    from scalelab.fit.laws import EXPONENTS

    lo, hi = np.array(prob.lo, float), np.array(prob.hi, float)
    for i, name in enumerate(form.params):
        if name in fixed:
            v = float(fixed[name]) if name in EXPONENTS else float(np.log(fixed[name]))
            lo[i] = hi[i] = v
    prob.lo, prob.hi = lo, hi
    prob._unshift = None  # terms_eval's overflow check depends on the bounds
    return prob


# ---- seeding: linear solves over an exponent grid --------------------------------------------------
def _nnls3(m00, m01, m02, m11, m12, m22, v0, v1, v2, tt):
    """Exact non-negative least squares for 3 unknowns.

    Entries of X^T W X (m..), X^T W t (v.) and t^T W t (tt), arrays of one shape. Returns
    (c0, c1, c2, sse). Written out entry by entry: millions of tiny systems at numpy speed. Where the
    unconstrained solution is non-negative it is the answer (the constrained minimum of a convex
    quadratic); only the other entries enumerate the 7 active sets (_nnls3_sets)."""
    with np.errstate(all="ignore"):
        c0, c1, c2, sse = _solve3(m00, m01, m02, m11, m12, m22, v0, v1, v2, tt)
        ok = (c0 >= 0) & (c1 >= 0) & (c2 >= 0) & np.isfinite(sse)
    if ok.all():
        return c0, c1, c2, sse
    shape = ok.shape
    out = [x if x.shape == shape else np.array(np.broadcast_to(x, shape)) for x in (c0, c1, c2, sse)]
    bad = np.nonzero(~ok)  # gathered from each input's broadcast view: no full-size copies
    sub = [np.broadcast_to(x, shape)[bad] for x in (m00, m01, m02, m11, m12, m22, v0, v1, v2, tt)]
    for o, x in zip(out, _nnls3_sets(*sub)):
        o[bad] = x
    return out[0], out[1], out[2], out[3]


def _nnls3_sets(m00, m01, m02, m11, m12, m22, v0, v1, v2, tt):
    """_nnls3 by enumerating the 7 active sets: the feasible solution of least sse."""
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
        c0, c1, c2, sse = _solve3(m00, m01, m02, m11, m12, m22, v0, v1, v2, tt)
        consider(sse, {0: c0, 1: c1, 2: c2})
    return c[0], c[1], c[2], best


def _solve3(m00, m01, m02, m11, m12, m22, v0, v1, v2, tt):
    """The unconstrained 3x3 solve by cofactors, entry by entry, and its sse (callers silence the warnings)."""
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
    return c0, c1, c2, tt - c0 * v0 - c1 * v1 - c2 * v2


def seed_chinchilla(logN, logD, L, W, grid=EXPONENT_GRID, grid_b=None, E=None, keep=None):
    """For every resample (row of W[K, n]) and exponent pair (alpha, beta) on the grid, the NNLS
    (E, A, B) minimising sum w ((L - E - A N^-alpha - B D^-beta)/L)^2 (relative ~ log residuals).
    grid_b: beta's grid (default `grid`); E: a fixed E (then only A, B are solved for); keep: return only
    the `keep` pairs of least sse per resample (in np.argpartition's order), building no others' theta.
    Returns theta[K, G*Gb (or keep), 5] in (e, a, b, alpha, beta) and the LS proxy sse[K, G*Gb (or keep)]."""
    grid_b = grid if grid_b is None else np.asarray(grid_b, float)
    G, Gb = grid.size, grid_b.size
    invL = 1.0 / L
    u = np.exp(-np.outer(logN, grid)) * invL[:, None]  # [n, G]  N^-alpha / L
    v = np.exp(-np.outer(logD, grid_b)) * invL[:, None]  # [n, Gb]  D^-beta / L
    uv = (u[:, :, None] * v[:, None, :]).reshape(-1, G * Gb)  # [n, G*Gb]
    Wf = np.asarray(W, float)
    K = Wf.shape[0]
    suu, svv = (Wf @ (u * u))[:, :, None], (Wf @ (v * v))[:, None, :]
    suv = (Wf @ uv).reshape(K, G, Gb)
    if E is None:
        s00 = (Wf @ (invL * invL))[:, None, None]  # [K, 1, 1]
        s0u, s0v = (Wf @ (u * invL[:, None]))[:, :, None], (Wf @ (v * invL[:, None]))[:, None, :]
        r0 = (Wf @ invL)[:, None, None]  # X^T W t with t = L/L = 1
        ru, rv = (Wf @ u)[:, :, None], (Wf @ v)[:, None, :]
        tt = Wf.sum(-1)[:, None, None]
    else:  # E known: t = (L - E)/L, the E column out (its coefficient solves to 0 and is replaced by E)
        t = (L - E) * invL
        s00, s0u, s0v, r0 = np.ones((K, 1, 1)), np.zeros((K, G, 1)), np.zeros((K, 1, Gb)), np.zeros((K, 1, 1))
        ru, rv = (Wf @ (u * t[:, None]))[:, :, None], (Wf @ (v * t[:, None]))[:, None, :]
        tt = (Wf @ (t * t))[:, None, None]
    cE, cA, cB, sse = _nnls3(s00, s0u, s0v, suu, suv, svv, r0, ru, rv, tt)
    floor = 1e-12 * L.min()
    if E is not None:
        cE = np.full_like(cA, E)
    if keep is not None and keep < G * Gb:
        sse = sse.reshape(K, G * Gb)
        top = np.argpartition(sse, keep - 1, axis=1)[:, :keep]
        pick = [np.take_along_axis(np.broadcast_to(c, (K, G, Gb)).reshape(K, -1), top, 1) for c in (cE, cA, cB)]
        theta = np.stack(
            [np.log(np.maximum(c, floor)) for c in pick] + [grid[top // Gb], grid_b[top % Gb]],
            -1,
        )
        return theta, np.take_along_axis(sse, top, 1)
    al, be = np.meshgrid(grid, grid_b, indexing="ij")
    theta = np.stack(
        [
            np.log(np.maximum(cE, floor)),
            np.log(np.maximum(cA, floor)),
            np.log(np.maximum(cB, floor)),
            np.broadcast_to(al, (K, G, Gb)),
            np.broadcast_to(be, (K, G, Gb)),
        ],
        -1,
    )
    return theta.reshape(K, G * Gb, 5), sse.reshape(K, G * Gb)


def seed_single(logX, L, W, grid=EXPONENT_GRID, E=None):
    """Two-term forms E + K X^-s (data, size, frontier): NNLS for (E, K) per exponent on the grid (K alone
    when E is fixed). Returns theta[K, G, 3] in (e, k, s) and the LS proxy sse[K, G]."""
    invL = 1.0 / L
    u = np.exp(-np.outer(logX, grid)) * invL[:, None]
    Wf = np.asarray(W, float)
    K, G = Wf.shape[0], grid.size
    one, zero = np.ones((K, G)), np.zeros((K, G))
    if E is None:
        m00, m01, v0 = (Wf @ (invL * invL))[:, None] * one, Wf @ (u * invL[:, None]), (Wf @ invL)[:, None] * one
        v1, tt = Wf @ u, Wf.sum(-1)[:, None] * one
    else:
        t = (L - E) * invL
        m00, m01, v0 = one, zero, zero
        v1, tt = Wf @ (u * t[:, None]), (Wf @ (t * t))[:, None] * one
    cE, cK, _, sse = _nnls3(m00, m01, zero, Wf @ (u * u), zero, one, v0, v1, zero, tt)
    if E is not None:
        cE = np.full_like(cK, E)
    floor = 1e-12 * L.min()
    theta = np.stack([np.log(np.maximum(cE, floor)), np.log(np.maximum(cK, floor)), np.broadcast_to(grid, (K, G))], -1)
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
@dataclass
class BatchFit:
    theta: np.ndarray  # [K, P] best per resample
    f: np.ndarray  # [K]
    grad_norm: np.ndarray  # [K]
    n_at_best: np.ndarray  # [K] starts whose polished objective is within 1e-6 (relative) of the best
    n_starts: int
    at_bound: list[list[str]] = field(default_factory=list)
    # raised starts (fit_resamples): resamples refitted with more starts, and how many
    n_raised: int = 0
    n_starts_raised: int = 0
    frac_agreed_first: float = float("nan")  # share of resamples whose first starts agreed (>= 2 at the best)
    frac_agreed: float = float("nan")  # the same after raising: the best value reached twice
    starts_theta: np.ndarray | None = None  # [K, s, P] every polished start (fit_resamples continues them)
    starts_f: np.ndarray | None = None  # [K, s]
    starts_capped: np.ndarray | None = None  # [K, s] still improving when the iterations ran out
    n_continued: int = 0  # resamples whose starts were polished further before any were raised
    n_crossed: int = 0  # resamples moved to a better optimum found from another resample's (tail_seed, cross_seed)

    def point_diagnostics(self) -> dict:
        """A point fit's (K = 1) diagnostics as the fit file records them (fit/summary prints them)."""
        return {
            "objective": float(self.f[0]),
            "grad_norm": float(self.grad_norm[0]),
            "n_starts_at_best": int(self.n_at_best[0]),
            "n_starts": int(self.n_starts),
            "at_bound": self.at_bound[0],
        }


def fit_batch(
    prob: Problem,
    form: Form,
    cols: dict,
    L: np.ndarray,
    W: np.ndarray,
    n_starts: int = 2,
    n_screen: int = 8,
    iters: int = 40,
    extra_starts: np.ndarray | None = None,
    grid: np.ndarray = COARSE_GRID,
) -> BatchFit:
    """Fit every resample (rows of W[K, n], counts x point weights) from its own best starts.

    Seeds from the exponent grid (each resample's own linear solves), screens the `n_screen` best by the
    LS proxy on the exact objective, polishes the `n_starts` best. `extra_starts[M, P]` are added for
    every resample (e.g. a point fit's optimum), never used alone."""
    K = W.shape[0]
    Wp = W * prob.point_w[None, :]
    fixed = fixed_mask(prob)
    fval = {t: float(prob.lo[i]) for i, t in enumerate(prob.theta_names) if fixed[i]}
    E = float(np.exp(fval["e"])) if "e" in fval else None

    def grid_of(name):  # a fixed exponent is searched at its value only
        return np.array([fval[name]]) if name in fval else grid

    if form.name == "chinchilla":
        ga, gb = grid_of("alpha"), grid_of("beta")
        keep = n_screen if n_screen < ga.size * gb.size else None  # the screen's choice, made before building theta
        cand, proxy = seed_chinchilla(cols["N"], cols["D"], L, Wp, ga, gb, E=E, keep=keep)
    elif form.name == "power":
        cand, proxy = seed_power(cols["C"], prob.z, Wp)
    else:
        cand, proxy = seed_single(cols[form.terms[0][2]], L, Wp, grid_of(form.theta[2]), E=E)
    # screen: best n_screen by the LS proxy, then exact objective
    m = min(n_screen, cand.shape[1])
    top = np.argpartition(proxy, m - 1, axis=1)[:, :m] if m < cand.shape[1] else np.tile(np.arange(m), (K, 1))
    cand = np.take_along_axis(cand, top[..., None], 1)  # [K, m, P]
    if extra_starts is not None:
        cand = np.concatenate([cand, np.broadcast_to(extra_starts[None], (K,) + extra_starts.shape)], 1)
    cand = np.clip(cand, prob.lo, prob.hi)
    m = cand.shape[1]
    Wrep = np.repeat(Wp, m, axis=0)
    fc = prob.objective(cand.reshape(K * m, -1), Wrep).reshape(K, m)
    s = min(n_starts, m)
    order = _diverse(fc, cand, [i for i, t in enumerate(prob.theta_names) if t in ("alpha", "beta", "gamma")], s)
    starts = np.take_along_axis(cand, order[..., None], 1).reshape(K * s, -1)
    th, f, gn, cap = polish(prob, starts, np.repeat(Wp, s, axis=0), iters=iters, capped=True)
    th, f, gn, cap = th.reshape(K, s, -1), f.reshape(K, s), gn.reshape(K, s), cap.reshape(K, s)
    thb, fb, gnb, n_at = _best_of(th, f, gn)
    at_b = _at_bound(prob, thb)
    return BatchFit(thb, fb, gnb, n_at, s, at_b, starts_theta=th, starts_f=f, starts_capped=cap)


def _best_of(th, f, gn):
    """Per resample, the best of its polished starts th[K, s, P]: (theta, f, |grad|, starts at that value)."""
    K = f.shape[0]
    best = np.argmin(f, axis=1)
    fb = f[np.arange(K), best]
    n_at = (f <= fb[:, None] + 1e-6 * np.abs(fb[:, None]) + 1e-15).sum(1)
    return th[np.arange(K), best], fb, gn[np.arange(K), best], n_at


def _at_bound(prob: Problem, theta: np.ndarray) -> list[list[str]]:
    fixed = fixed_mask(prob)
    return [
        [
            prob.theta_names[p]
            for p in range(prob.P)
            if not fixed[p] and (abs(t[p] - prob.lo[p]) < 1e-6 or abs(t[p] - prob.hi[p]) < 1e-6)
        ]
        for t in theta
    ]


def auto_starts(n: int, search: str = "tails") -> int:
    """Polished starts per resample, the point fit's optimum among them: 2 from 120 points (Chinchilla's 240,
    Porian et al.'s 88-132 per group), up to 8 for small groups (up to 30 points), where local optima are
    commoner and starts are cheap (on 15-run groups 2 starts missed the best value in 2% of resamples, 8 in
    0.2%). More starts do not remove the rare agreed-on worse optimum of larger groups (Porian et al.'s: 0.6%
    of resamples with 2 or 3 starts, still some with 4); re-seeding every resample from the optima in the tails
    does, where it moves an interval (solver.tail_seed). Resamples whose starts disagree get more
    (solver.fit_resamples). search "starts" (0.3): twice as many starts, up to 240 points."""
    return int(np.clip((480 if search == "starts" else 240) // max(n, 1), 2, 8))


MAX_STARTS = 16  # starts a resample is raised to when its first starts disagree
FIRST_ITERS = 60  # polish iterations of a resample's first starts (most stop earlier, converged)
MORE_ITERS = 400  # further iterations for the starts of a resample whose first starts disagree


def fit_resamples(
    prob: Problem,
    form: Form,
    cols: dict,
    L: np.ndarray,
    W: np.ndarray,
    n_starts: int = 2,
    n_screen: int = 8,
    max_starts: int = MAX_STARTS,
    warm: np.ndarray | None = None,
    iters: int = FIRST_ITERS,
    more_iters: int = MORE_ITERS,
    reseed: str | None = "tails",
) -> BatchFit:
    """fit_batch for bootstrap resamples, with more work only where a resample's starts disagree.

    warm[P]: the point fit's optimum, one of every resample's starts (the others from its own grid seeds,
    chosen to differ in the exponents): a resample's optimum is usually near the full data's, so this start
    converges in a few iterations. A resample's starts agree when at least two of them reach its best value
    (within 1e-6, relative). Where they do not, its starts are first polished further (`more_iters`: on this
    near-L1 objective a start in the right basin can need hundreds of iterations, and most disagreements are
    such starts); those still disagreeing are refitted from `max_starts` new starts and keep the better
    optimum. `frac_agreed_first` is the share that agreed after the first `iters` iterations, `frac_agreed`
    the share whose best value was reached twice in the end. With n_starts 1 nothing is redone. Last, where the
    first starts of some resample disagreed (the objective has more than one basin there), `reseed` "tails"
    polishes every resample again from the optima of the resamples in the tails (tail_seed); "cross" (the earlier
    default) polishes only the resamples in the tails, from other resamples' optima (cross_seed); None: neither."""
    if reseed not in RESEEDS:
        raise ValueError(f"reseed must be one of {RESEEDS}")
    bf = _starts_per_resample(prob, form, cols, L, W, n_starts, n_screen, max_starts, warm, iters, more_iters)
    if reseed is not None and bf.frac_agreed_first < 1:
        Wp = W * prob.point_w[None, :]
        bf.n_crossed = tail_seed(prob, bf, Wp) if reseed == "tails" else cross_seed(prob, bf, Wp)
    return bf


RESEEDS = ("tails", "cross", None)  # fit_resamples(reseed=): FitSpec.search's, "starts" searching without


def reseeding(search: str) -> str | None:
    """fit_resamples' reseed for a FitSpec.search: "starts" (the 0.3 search) re-seeds nothing."""
    return search if search in RESEEDS else None


def _starts_per_resample(
    prob: Problem,
    form: Form,
    cols: dict,
    L: np.ndarray,
    W: np.ndarray,
    n_starts: int,
    n_screen: int,
    max_starts: int,
    warm: np.ndarray | None,
    iters: int,
    more_iters: int,
) -> BatchFit:
    """fit_resamples without the re-seeding: each resample's own starts, then more work where they disagree."""
    extra = None if warm is None else np.asarray(warm, float)[None]
    bf = fit_batch(prob, form, cols, L, W, n_starts=n_starts, n_screen=n_screen, iters=iters, extra_starts=extra)
    assert bf.starts_theta is not None and bf.starts_f is not None  # fit_batch keeps every start
    agreed = bf.n_at_best >= 2
    bf.frac_agreed_first = float(np.mean(agreed))
    # starts can agree on the value while both still creep along a flat valley (A and alpha move together):
    # a resample whose best value was reached by a start cut off by the iteration cap is polished further too
    at_best = bf.starts_f <= bf.f[:, None] + 1e-6 * np.abs(bf.f[:, None]) + 1e-15
    settled = agreed & ~(bf.starts_capped & at_best).any(1)
    if n_starts < 2 or settled.all():
        bf.frac_agreed = bf.frac_agreed_first
        return bf
    Wp = W * prob.point_w[None, :]
    idx = np.flatnonzero(~settled)
    s = bf.starts_theta.shape[1]
    th, f, gn = polish(prob, bf.starts_theta[idx].reshape(idx.size * s, -1), np.repeat(Wp[idx], s, 0), more_iters)
    th, f, gn = th.reshape(idx.size, s, -1), f.reshape(idx.size, s), gn.reshape(idx.size, s)
    bf.starts_theta[idx], bf.starts_f[idx] = th, f
    thb, fb, gnb, n_at = _best_of(th, f, gn)
    bf.theta[idx], bf.f[idx], bf.grad_norm[idx], bf.n_at_best[idx] = thb, fb, gnb, n_at
    for j, b in zip(idx, _at_bound(prob, thb)):
        bf.at_bound[j] = b
    bf.n_continued = int(idx.size)
    agreed[idx] = n_at >= 2
    if agreed.all() or max_starts <= n_starts:
        bf.frac_agreed = float(np.mean(agreed))
        return bf
    idx = np.flatnonzero(~agreed)
    more = fit_batch(
        prob,
        form,
        cols,
        L,
        W[idx],
        n_starts=max_starts,
        n_screen=max(n_screen, 2 * max_starts),
        iters=more_iters,
        extra_starts=extra,
    )
    f0 = bf.f[idx]
    same = np.abs(more.f - f0) <= 1e-6 * np.abs(f0) + 1e-15
    better = more.f < f0
    bf.theta[idx[better]] = more.theta[better]
    bf.f[idx[better]] = more.f[better]
    bf.grad_norm[idx[better]] = more.grad_norm[better]
    for j in np.flatnonzero(better):
        bf.at_bound[idx[j]] = more.at_bound[j]
    agreed[idx] = (better & (more.n_at_best >= 2)) | same
    bf.n_at_best[idx] = np.where(agreed[idx], np.maximum(2, more.n_at_best), 1)
    bf.n_raised, bf.n_starts_raised, bf.frac_agreed = int(idx.size), int(max_starts), float(np.mean(agreed))
    return bf


TAIL = 5.0  # percent: resamples beyond the 5th / 95th percentile of any parameter are re-seeded (cross_seed)
CROSS_STARTS = 2  # other resamples' optima each of them is polished from
POOL_TAIL = 2.5  # percent: the optima beyond the 2.5th / 97.5th percentile of any parameter seed every resample
POOL_STARTS = 3  # of them, the ones each resample is polished from (tail_seed)


def tail_seed(
    prob: Problem, bf: BatchFit, Wp: np.ndarray, iters: int = FIRST_ITERS, m: int = POOL_STARTS, tail: float = POOL_TAIL
) -> int:
    """Polish every resample again from the optima of the resamples in the tails. Returns how many moved to a
    better optimum.

    A few starts can agree on a worse local optimum of the (near-L1) objective, most often the central basin the
    point fit's optimum leads to, while the resample's best lies in a far basin: beyond an interval's end, which
    it would move (on Porian et al.'s groups, 15-19 of 10,000 resamples with 2 starts; those that moved an end sat
    inside the 5th-95th percentile band that cross_seed re-polishes beyond). The optima already in the tails are
    starts in those far basins. Each resample is polished from the `m` best on its own data (one matrix product
    scores them all) among those whose free exponents differ from its own by 0.05 or more, and keeps the better
    result. On those groups the fit took 1.25-1.45x the wall time of cross_seed's, and the intervals came within
    2e-4 of those from each resample's best optimum over four searches, one of them 16 converged starts per
    resample (bench/fit.md). Tails are taken over the free parameters only: a fixed one is in every tail."""
    ok = np.isfinite(bf.f)
    free = ~fixed_mask(prob)
    if ok.sum() < 20 or m < 1 or not free.any():
        return 0
    names = prob.theta_names
    ex = [i for i, t in enumerate(names) if t in ("alpha", "beta", "gamma") and free[i]] or list(np.flatnonzero(free))
    lo, hi = np.percentile(bf.theta[ok][:, free], [tail, 100 - tail], axis=0)
    th_free = bf.theta[:, free]
    pool = np.flatnonzero(ok & ((th_free <= lo) | (th_free >= hi)).any(1))
    sel = np.flatnonzero(ok)
    starts = _best_foreign(prob, bf.theta, Wp, sel, pool, ex, m)
    th, f, gn = polish(prob, starts.reshape(sel.size * m, -1), np.repeat(Wp[sel], m, 0), iters)
    moved = _keep_better(prob, bf, sel, th.reshape(sel.size, m, -1), f.reshape(sel.size, m), gn.reshape(sel.size, m))
    return int(moved.size)


def _best_foreign(prob: Problem, theta, Wp, sel, pool, ex, m) -> np.ndarray:
    """Per resample in `sel`, the `m` optima of resamples in `pool` best on its own data (the objective is linear in
    the weights: one matrix product scores them all) among those whose exponents `ex` differ from its own by 0.05
    or more; a resample with fewer such candidates repeats its own optimum (polishes to itself)."""
    rho1 = prob.rho(prob.z - prob.log_pred(theta[pool]), np.ones((1, prob.n)))  # [J, n] per unit weight
    starts = np.empty((sel.size, m, prob.P))
    for c in range(0, sel.size, 256):  # [256, J] at a time: bounded memory for many resamples
        s_ = sel[c : c + 256]
        with np.errstate(all="ignore"):
            F = Wp[s_] @ rho1.T
        far = np.abs(theta[s_][:, None, ex] - theta[pool][None, :, ex]).max(-1) >= 0.05
        F = np.where(far & np.isfinite(F), F, np.inf)
        top = np.argsort(F, axis=1)[:, :m]  # fewer than m columns when the pool is smaller
        cand = np.where(np.isfinite(np.take_along_axis(F, top, 1))[..., None], theta[pool][top], theta[s_][:, None])
        starts[c : c + 256] = np.concatenate([cand, np.repeat(theta[s_][:, None], m - top.shape[1], 1)], 1)
    return starts


def _keep_better(prob: Problem, bf: BatchFit, sel, th, f, gn) -> np.ndarray:
    """Move each resample in `sel` to the best of its re-polished starts th[k, m, P] where that is lower; returns
    the indices moved."""
    b = np.argmin(f, 1)
    r = np.arange(sel.size)
    better = f[r, b] < bf.f[sel] - 1e-12 * np.abs(bf.f[sel])
    k = sel[better]
    bf.theta[k], bf.f[k], bf.grad_norm[k] = th[r, b][better], f[r, b][better], gn[r, b][better]
    for kk, bb in zip(k, _at_bound(prob, bf.theta[k])):
        bf.at_bound[kk] = bb
    return k


def cross_seed(
    prob: Problem, bf: BatchFit, Wp: np.ndarray, iters: int = FIRST_ITERS, m: int = CROSS_STARTS, rounds: int = 3
) -> int:
    """Polish the resamples that set the intervals' ends again, from other resamples' optima. Returns how many
    moved to a better optimum.

    A few starts can agree on a worse local optimum of the (near-L1) objective: on Porian et al.'s groups with 2
    starts, up to about one resample in 100, each a different basin several tenths apart in an exponent. Only
    the resamples in the tails of some parameter (beyond its TAIL / 100 - TAIL percentiles) move a percentile
    interval's end, and the other resamples' optima are starts from every basin the data support, already near
    one. Each tail resample is polished from the `m` optima best on its own data (the objective is linear in the
    weights: one matrix product scores them all) among those whose exponents differ from its own by 0.05 or
    more, and keeps the better result. A move can bring another resample into a tail: up to `rounds` rounds."""
    K = bf.theta.shape[0]
    if K < 20 or m < 1:
        return 0
    names = prob.theta_names
    ex = [i for i, t in enumerate(names) if t in ("alpha", "beta", "gamma")] or list(range(prob.P))
    done = np.zeros(K, bool)
    moved = np.zeros(K, bool)
    for _ in range(rounds):
        ok = np.isfinite(bf.f)
        if ok.sum() < 20:
            break
        lo, hi = np.percentile(bf.theta[ok], [TAIL, 100 - TAIL], axis=0)
        tail = ok & ((bf.theta <= lo) | (bf.theta >= hi)).any(1) & ~done
        sel = np.flatnonzero(tail)
        if sel.size == 0:
            break
        done[sel] = True
        starts = _best_foreign(prob, bf.theta, Wp, sel, np.flatnonzero(ok), ex, m)
        th, f, gn = polish(prob, starts.reshape(sel.size * m, -1), np.repeat(Wp[sel], m, 0), iters)
        k = _keep_better(prob, bf, sel, th.reshape(sel.size, m, -1), f.reshape(sel.size, m), gn.reshape(sel.size, m))
        if k.size == 0:
            break
        moved[k] = True
    return int(moved.sum())


def _diverse(fc, cand, exp_idx, s, min_sep=0.1):
    """Per resample, the indices of `s` starts: the best by objective, then greedily the best whose
    exponents differ from all chosen by at least `min_sep` (falling back to the next best), so that
    the starts probe different basins rather than neighbouring grid points of one."""
    K, m = fc.shape
    order = np.argsort(fc, axis=1)
    chosen = [order[:, 0]]
    if s == 1 or not exp_idx:
        return order[:, :s]
    ex = cand[..., exp_idx]  # [K, m, e]
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
    return fit_batch(prob, form, cols, L, W, n_starts=n_starts, n_screen=10**6, iters=iters, grid=EXPONENT_GRID)
