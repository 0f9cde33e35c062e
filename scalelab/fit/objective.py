"""The fitting objective: log-space predictions of a law and the (Huber or least-squares) loss on them.

Objective (Hoffmann et al. 2022; Besiroglu et al. 2024): the SUM over points of
w_i * Huber_delta(log L_i - log L_hat_i), log L_hat = LSE of the form's terms (see laws.py), optionally
with over-predictions (L_hat > L) penalised by a factor. Everything is batched over S parameter vectors
(starts x bootstrap resamples): a resample is a row of weights W[S, n] on the same design.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalelab.fit.laws import Form

# IRLS curvature outside the quadratic zone is d/|r| (a majoriser); scaled down it is closer to the
# true Huber Hessian (0 there) and converges in ~3x fewer iterations, still damped by LM.
CURV_OUT = 0.1
CHUNK = 128  # parameter vectors per block: the working arrays stay in cache


@dataclass
class Problem:
    """One least-Huber problem: data in log space, the model's terms, the loss, the bounds."""

    theta_names: list[str]
    terms: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]  # (ci[n], si[n], cov[n])
    z: np.ndarray  # log L, [n]
    lo: np.ndarray  # [P] bounds on theta
    hi: np.ndarray
    point_w: np.ndarray  # [n] per-point weights (1, or sqrt(C) normalised)
    loss: str = "huber"  # "huber" | "lsq"
    delta: float = 1e-3
    over_penalty: float = 1.0  # factor on residuals where L_hat > L (over-prediction)

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
            t = theta[:, ci] if not np.isscalar(ci) else theta[:, ci : ci + 1]
            if si is not None:
                t = t - (theta[:, si : si + 1] if np.isscalar(si) else theta[:, si]) * cov
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
            p = [e_ / tot for e_ in ex]  # softmax weights of the terms
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
        return w * (m * (a - 0.5 * m))  # 0.5 r^2 inside |r| <= delta, delta(|r| - delta/2) out

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
            r = self.z - self.log_pred(theta[i : i + CHUNK])
            out[i : i + CHUNK] = self.rho(r, W[i : i + CHUNK]).sum(axis=-1)
        return out

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
            lo.append(0.0), hi.append(3.0)
        elif t == "e":
            lo.append(np.log(1e-4)), hi.append(float(z.max()) + np.log(10.0))
        else:
            lo.append(-30.0), hi.append(3.0 * xmax + 30.0)
    return np.array(lo), np.array(hi)
