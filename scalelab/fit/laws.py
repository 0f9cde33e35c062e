"""Functional forms of scaling laws, their log-space parameterisation and derived quantities.

Every form is written as log L_hat = LSE(terms), each term `c - s * x` with an intercept c (the log of a
coefficient) and optionally an exponent s times a log covariate x (Hoffmann et al. 2022, Approach 3;
Besiroglu et al. 2024):

    chinchilla  L(N, D) = E + A / N^alpha + B / D^beta    theta = (e, a, b, alpha, beta)
    data        L(D)    = E + B / D^beta   (one N)        theta = (e, b, beta)
    size        L(N)    = E + A / N^alpha  (one D)        theta = (e, a, alpha)
    frontier    L(C)    = E + K / C^gamma                 theta = (e, k, gamma)
    power       L(C)    = K / C^gamma                     theta = (k, gamma)

with E = exp(e), A = exp(a), B = exp(b), K = exp(k). Natural parameters (E, A, ...) are what users see.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Form:
    name: str
    theta: tuple[str, ...]          # log-space parameters, in order
    params: tuple[str, ...]         # natural parameters, same order
    # terms: (intercept name, exponent name or None, covariate "N" | "D" | "C" | None)
    terms: tuple[tuple[str, str | None, str | None], ...]
    description: str

    @property
    def covariates(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c for _, _, c in self.terms if c is not None))

    @property
    def exponents(self) -> tuple[str, ...]:
        return tuple(s for _, s, _ in self.terms if s is not None)


FORMS: dict[str, Form] = {
    "chinchilla": Form("chinchilla", ("e", "a", "b", "alpha", "beta"), ("E", "A", "B", "alpha", "beta"),
                       (("a", "alpha", "N"), ("b", "beta", "D"), ("e", None, None)),
                       "L(N, D) = E + A/N^alpha + B/D^beta"),
    "data": Form("data", ("e", "b", "beta"), ("E", "B", "beta"),
                 (("b", "beta", "D"), ("e", None, None)), "L(D) = E + B/D^beta (fixed N)"),
    "size": Form("size", ("e", "a", "alpha"), ("E", "A", "alpha"),
                 (("a", "alpha", "N"), ("e", None, None)), "L(N) = E + A/N^alpha (fixed D)"),
    "frontier": Form("frontier", ("e", "k", "gamma"), ("E", "K", "gamma"),
                     (("k", "gamma", "C"), ("e", None, None)), "L(C) = E + K/C^gamma"),
    "power": Form("power", ("k", "gamma"), ("K", "gamma"), (("k", "gamma", "C"),), "L(C) = K/C^gamma"),
}
EXPONENTS = {"alpha", "beta", "gamma"}
SAMPLE_COLUMNS = ("E", "A", "B", "alpha", "beta", "K", "gamma")


def to_natural(form: Form, theta: np.ndarray) -> dict[str, np.ndarray]:
    """theta[..., P] (log space) -> {natural name: array[...]}."""
    out = {}
    for i, (t, p) in enumerate(zip(form.theta, form.params)):
        out[p] = theta[..., i] if p in EXPONENTS else np.exp(theta[..., i])
    return out


def to_theta(form: Form, params: dict) -> np.ndarray:
    return np.array([params[p] if p in EXPONENTS else np.log(params[p]) for p in form.params], float)


def predict(form: str | Form, params: dict, N=None, D=None, C=None) -> np.ndarray:
    """Loss predicted by `form` with natural `params` at N (params), D (tokens) or C (FLOPs)."""
    form = FORMS[form] if isinstance(form, str) else form
    cov = {"N": N, "D": D, "C": C}
    total = 0.0
    for c, s, x in form.terms:
        coef = params[{"e": "E", "a": "A", "b": "B", "k": "K"}[c]]
        if x is None:
            total = total + coef
        else:
            if cov[x] is None:
                raise ValueError(f"form {form.name} needs {x}")
            total = total + coef * np.asarray(cov[x], float) ** (-params[s])
    return np.asarray(total, float)


def derived(form: str, params: dict, c_ref: float | None = None) -> dict[str, np.ndarray]:
    """Compute-optimal allocation under C = 6 N D (REFERENCE.md section 3), for the chinchilla form.

    a = beta/(alpha+beta) (N_opt ~ C^a), b = alpha/(alpha+beta) (D_opt ~ C^b),
    G = (alpha A / (beta B))^(1/(alpha+beta)), N_opt = G (C/6)^a, D_opt = (C/6)^b / G,
    tokens per parameter at C: D_opt/N_opt = (C/6)^(b-a) / G^2.
    Works element-wise on arrays (bootstrap samples)."""
    if form != "chinchilla":
        return {}
    A, B, al, be = (np.asarray(params[k], float) for k in ("A", "B", "alpha", "beta"))
    with np.errstate(all="ignore"):
        s = al + be
        a, b = be / s, al / s
        G = (al * A / (be * B)) ** (1.0 / s)
        out = {"a": a, "b": b, "G": G}
        if c_ref is not None:
            n_opt = G * (c_ref / 6.0) ** a
            d_opt = (c_ref / 6.0) ** b / G
            out.update(N_opt=n_opt, D_opt=d_opt, tokens_per_param=d_opt / n_opt)
    return out
