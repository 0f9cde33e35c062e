"""The fitting objective: log-space predictions of a law and the (Huber or least-squares) loss on them.

Objective (Hoffmann et al. 2022; Besiroglu et al. 2024): the SUM over points of
w_i * Huber_delta(log L_i - log L_hat_i), log L_hat = LSE of the form's terms (see laws.py), optionally
with over-predictions (L_hat > L) penalised by a factor. Everything is batched over S parameter vectors
(starts x bootstrap resamples): a resample is a row of weights W[S, n] on the same design.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from scalelab.fit.laws import Form

# IRLS curvature outside the quadratic zone is d/|r| (a majoriser); scaled down it is closer to the
# true Huber Hessian (0 there) and converges in ~3x fewer iterations, still damped by LM.
CURV_OUT = 0.1
CHUNK = 128  # parameter vectors per block: the working arrays stay in cache


def _logsumexp(T: list, weights: bool = True):
    """log sum_j exp(T_j), shifted by the elementwise max so that no exp overflows, and (with `weights`) the
    softmax weight of each term, its share of the sum: d/dT_j of the result."""
    m = T[0]
    for t in T[1:]:
        m = np.maximum(m, t)
    ex = [np.exp(t - m) for t in T]
    tot = ex[0]
    for e_ in ex[1:]:
        tot = tot + e_
    if not weights:
        return m + np.log(tot), None
    inv = 1.0 / tot
    return m + np.log(tot), [e_ * inv for e_ in ex]


@dataclass
class Problem:
    """One least-Huber problem: data in log space, the model's terms, the loss, the bounds."""

    theta_names: list[str]
    # (ci, si or None, cov[n] or None): an index into theta is an int, or an int array [n] (one per point, as
    # shared fits give each group its own coefficient); a term with an exponent si has its covariate cov
    terms: list[tuple[Any, Any, Any]]
    z: np.ndarray  # log L, [n]
    lo: np.ndarray  # [P] bounds on theta
    hi: np.ndarray
    point_w: np.ndarray  # [n] per-point weights (1, or sqrt(C) normalised)
    loss: str = "huber"  # "huber" | "lsq"
    delta: float = 1e-3
    over_penalty: float = 1.0  # factor on residuals where L_hat > L (over-prediction)
    # the polish steps a constant term's coefficient (E) linearly, E (1 + s), not exp(s) (solver.linear_coefficients);
    # False: the 0.3 solver's steps (FitSpec.search "starts")
    linear_e: bool = True

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
            # one int index or an int array [n]; a plain bool, as np.isscalar's TypeIs narrows an int to numpy's
            # scalar union, which is no index to the type checker
            one_c, one_s = np.isscalar(ci), np.isscalar(si)
            t = theta[:, ci : ci + 1] if one_c else theta[:, ci]
            if si is not None:
                t = t - (theta[:, si : si + 1] if one_s else theta[:, si]) * cov
            T.append(np.broadcast_to(t, (theta.shape[0], self.n)))
        if len(T) == 1:
            zhat, p = T[0], [np.ones_like(T[0])]
        else:
            zhat, p = _logsumexp(T, weights=jac)
        if not jac:
            return zhat
        S, n = zhat.shape
        J = np.zeros((S, self.P, n))
        ar = np.arange(n)
        for j, (ci, si, cov) in enumerate(self.terms):
            one_c, one_s = np.isscalar(ci), np.isscalar(si)  # plain bools, as above
            if one_c:
                J[:, ci] += p[j]
            else:
                J[:, ci, ar] += p[j]
            if si is not None:
                if one_s:
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
        return w * (m * (a - 0.5 * m))  # 0.5 r^2 inside |r| <= delta, delta(|r| - delta/2) out

    def psi_curv(self, r: np.ndarray, w: np.ndarray):
        """Derivative psi of the weighted loss and the Gauss-Newton curvature weight, [S, n] each."""
        if self.over_penalty != 1.0:
            w = w * np.where(r < 0, self.over_penalty, 1.0)
        if self.loss == "lsq":
            return w * r, w
        d = self.delta
        psi = w * np.minimum(np.maximum(r, -d), d)  # np.clip without its wrapper (called every iteration)
        a = np.abs(r)
        curv = w * np.where(a <= d, 1.0, (CURV_OUT * d) / np.maximum(a, d))
        return psi, curv

    def objective(self, theta: np.ndarray, W: np.ndarray) -> np.ndarray:
        """theta[S, P], W[S, n] -> f[S] (in chunks that stay in cache)."""
        out = np.empty(theta.shape[0])
        for i in range(0, theta.shape[0], CHUNK):
            r = self.z - self.log_pred(theta[i : i + CHUNK])
            out[i : i + CHUNK] = self.rho(r, W[i : i + CHUNK]).sum(axis=-1)
        return out

    # ---- Gauss-Newton system without the Jacobian -------------------------------------------------
    @property
    def scalar_terms(self) -> bool:
        """True when every term reads one coefficient and at most one exponent (the single-group forms of
        laws.FORMS): then gn_system applies."""
        return all(np.isscalar(ci) and (si is None or np.isscalar(si)) for ci, si, _ in self.terms)

    def terms_eval(self, theta: np.ndarray):
        """theta[S, P] -> (log L_hat[S, n], softmax weights of the terms, each [S, n] or [S, 1])."""
        unshifted = len(self.terms) > 1 and self._unshifted()
        if unshifted:  # no term can overflow or vanish: exp of a constant term is one per start
            ex = []
            for (ci, si, cov), uq in zip(self.terms, self._uniques()):
                if si is None:
                    ex.append(np.exp(theta[:, ci : ci + 1]))
                elif uq is None:
                    ex.append(np.exp(theta[:, ci : ci + 1] - theta[:, si : si + 1] * cov))
                else:  # few distinct covariate values (e.g. 16 model sizes): exp once per value
                    vals, inv = uq
                    ex.append(np.take(np.exp(theta[:, ci : ci + 1] - theta[:, si : si + 1] * vals), inv, axis=1))
            tot = ex[0]
            for e_ in ex[1:]:
                tot = tot + e_
            inv = 1.0 / tot
            return np.log(tot), [e_ * inv for e_ in ex]
        T = [
            theta[:, ci : ci + 1] if si is None else theta[:, ci : ci + 1] - theta[:, si : si + 1] * cov
            for ci, si, cov in self.terms
        ]
        if len(T) == 1:
            return np.broadcast_to(T[0], (theta.shape[0], self.n)), [np.ones((theta.shape[0], 1))]
        return _logsumexp(T)

    def _uniques(self) -> list:
        """Per term, (distinct covariate values, index of each point's) when there are at most a third as many
        as points, else None."""
        if getattr(self, "_uq", None) is None:
            out: list = []
            for _, si, cov in self.terms:
                if si is None:
                    out.append(None)
                    continue
                vals, inv = np.unique(np.asarray(cov, float), return_inverse=True)
                out.append((vals, inv.ravel()) if 3 * vals.size <= cov.size else None)
            self._uq = out
        return self._uq

    def _unshifted(self) -> bool:
        """Whether every term's log value stays within +-600 inside the bounds and some term is a constant
        (so that the sum of exps cannot underflow): then terms_eval skips the max shift of log-sum-exp.
        Cached: whoever changes the bounds (solver.fix_parameters) resets `_unshift`."""
        if getattr(self, "_unshift", None) is None:
            lo, hi = np.asarray(self.lo, float), np.asarray(self.hi, float)
            big, const = 0.0, False
            for ci, si, cov in self.terms:
                c = max(abs(lo[ci]), abs(hi[ci]))
                if si is None:
                    const = True
                else:
                    c += max(abs(lo[si]), abs(hi[si])) * float(np.max(np.abs(cov)))
                big = max(big, c)
            self._unshift: bool | None = bool(const and big < 600.0)
        return bool(self._unshift)

    def _gn_plan(self):
        """Which sums make up g and H (gn_system), built once per problem: per term its basis columns [1, x_j],
        per pair of terms the products of their bases, and the (row, column, sign, basis column) entries that
        each fills."""
        if getattr(self, "_plan", None) is not None:
            return self._plan
        n, T = self.n, len(self.terms)
        rows = []  # per parameter: (index, term, sign, uses the covariate)
        for j, (ci, si, _) in enumerate(self.terms):
            rows.append((ci, j, 1.0, 0))
            if si is not None:
                rows.append((si, j, -1.0, 1))
        basis = [np.ones((n, 1)) if cov is None else np.stack([np.ones(n), cov], 1) for _, _, cov in self.terms]
        grad = [(j, [(k, -sg, x) for k, jj, sg, x in rows if jj == j]) for j in range(T)]
        pairs = []
        for j in range(T):
            for jj in range(j, T):
                v = basis[jj].shape[1]
                B = np.ascontiguousarray((basis[j][:, :, None] * basis[jj][:, None, :]).reshape(n, -1))
                fill = [
                    (k, m, s1 * s2, x1 * v + x2)
                    for k, j1, s1, x1 in rows
                    if j1 == j
                    for m, j2, s2, x2 in rows
                    if j2 == jj
                ]
                pairs.append((j, jj, B, fill))
        # g and H as one gather each from the concatenated products, times the entry's sign (+-1: exact; an entry
        # no term fills reads column 0 times 0); a later fill of the same entry wins, as it would entry by entry
        src = [np.zeros(self.P, np.intp), np.zeros(self.P, float), np.zeros(self.P**2, np.intp), np.zeros(self.P**2)]
        off = 0
        for j, gfill in grad:
            for k, sg, x in gfill:
                src[0][k], src[1][k] = off + x, sg
            off += basis[j].shape[1]
        off = 0
        for _, _, B, fill in pairs:
            for k, m, sg, c in fill:
                for e in (k * self.P + m, m * self.P + k):
                    src[2][e], src[3][e] = off + c, sg
            off += B.shape[1]
        self._plan: tuple = (basis, grad, pairs, src)
        return self._plan

    def gn_system(self, p: list, r: np.ndarray, W: np.ndarray):
        """Gradient g[S, P] and Gauss-Newton matrix H[S, P, P] of the objective from the term weights p and
        residuals r (terms_eval), for scalar_terms problems. The Jacobian row of a coefficient is p_j, of an
        exponent -p_j x_j, so H's entries are sums of c p_j p_k x_j^u x_k^v: one skinny matrix product per pair
        of terms against fixed covariate columns, never the [S, P, n] Jacobian."""
        basis, grad, pairs, (gc, gs, hc, hs) = (
            self._plan if getattr(self, "_plan", None) is not None else self._gn_plan()
        )
        psi, curv = self.psi_curv(r, W)
        gall = np.concatenate([(psi * p[j]) @ basis[j] for j, _ in grad], 1)
        cp = [curv * pj for pj in p]
        hall = np.concatenate([(cp[j] * p[jj]) @ B for j, jj, B, _ in pairs], 1)
        return gall[:, gc] * gs, (hall[:, hc] * hs).reshape(r.shape[0], self.P, self.P)

    def grad(self, theta: np.ndarray, W: np.ndarray) -> np.ndarray:
        zhat, J = self.log_pred(theta, jac=True)
        psi = self.psi_curv(self.z - zhat, W)[0]
        return -(J @ psi[..., None])[..., 0]


def make_problem(
    form: Form, cols: dict[str, np.ndarray], L: np.ndarray, point_w=None, loss="huber", delta=1e-3, over_penalty=1.0
) -> Problem:
    """cols: {"N": logN, "D": logD, "C": logC} as needed by the form (log covariates, [n])."""
    idx = {t: i for i, t in enumerate(form.theta)}
    n = L.shape[0]
    terms = []
    for c, s, x in form.terms:
        terms.append((idx[c], None if s is None else idx[s], None if x is None else cols[x]))
    z = np.log(L)
    lo, hi = bounds(form.theta, z, cols)
    return Problem(
        list(form.theta), terms, z, lo, hi, np.ones(n) if point_w is None else point_w, loss, delta, over_penalty
    )


def bounds(theta_names, z, cols):
    """Box bounds in log space: exponents in [0, 3]; E between 1e-4 and 10 x max loss; log
    coefficients wide enough for any exponent up to 3 over the covariates' range."""
    xmax = max([np.max(np.abs(v)) for v in cols.values()] + [1.0])
    lo, hi = [], []
    for t in theta_names:
        if t in ("alpha", "beta", "gamma"):
            lo.append(0.0)
            hi.append(3.0)
        elif t == "e":
            lo.append(np.log(1e-4))
            hi.append(float(z.max()) + np.log(10.0))
        else:
            lo.append(-30.0)
            hi.append(3.0 * xmax + 30.0)
    return np.array(lo), np.array(hi)
