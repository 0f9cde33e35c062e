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
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Form:
    name: str
    theta: tuple[str, ...]  # log-space parameters, in order
    params: tuple[str, ...]  # natural parameters, same order
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
    "chinchilla": Form(
        "chinchilla",
        ("e", "a", "b", "alpha", "beta"),
        ("E", "A", "B", "alpha", "beta"),
        (("a", "alpha", "N"), ("b", "beta", "D"), ("e", None, None)),
        "L(N, D) = E + A/N^alpha + B/D^beta",
    ),
    "data": Form(
        "data",
        ("e", "b", "beta"),
        ("E", "B", "beta"),
        (("b", "beta", "D"), ("e", None, None)),
        "L(D) = E + B/D^beta (fixed N)",
    ),
    "size": Form(
        "size",
        ("e", "a", "alpha"),
        ("E", "A", "alpha"),
        (("a", "alpha", "N"), ("e", None, None)),
        "L(N) = E + A/N^alpha (fixed D)",
    ),
    "frontier": Form(
        "frontier",
        ("e", "k", "gamma"),
        ("E", "K", "gamma"),
        (("k", "gamma", "C"), ("e", None, None)),
        "L(C) = E + K/C^gamma",
    ),
    "power": Form("power", ("k", "gamma"), ("K", "gamma"), (("k", "gamma", "C"),), "L(C) = K/C^gamma"),
    # the law across FFN shares f (fit/share.py): effective sizes N f^rho_N, D f^rho_D, 1 at f = 1 (dense)
    "share": Form(
        "share",
        ("e", "a", "b", "alpha", "beta", "rho_N", "rho_D"),
        ("E", "A", "B", "alpha", "beta", "rho_N", "rho_D"),
        (("a", "alpha", "N"), ("b", "beta", "D"), ("e", None, None)),
        "L(N, D, f) = E + A/(N f^rho_N)^alpha + B/(D f^rho_D)^beta",
    ),
    # the chinchilla terms at effective N', D' (Muennighoff et al. 2023): fitted and predicted by fit/repetition.py
    "repetition": Form(
        "repetition",
        ("e", "a", "b", "alpha", "beta", "r_d", "r_n"),
        ("E", "A", "B", "alpha", "beta", "R_D_star", "R_N_star"),
        (("a", "alpha", "N"), ("b", "beta", "D"), ("e", None, None)),
        "L(N, D) = E + A/N'^alpha + B/D'^beta, N', D' decayed by R_N*, R_D* for repeated data",
    ),
}
EXPONENTS = {"alpha", "beta", "gamma", "rho_N", "rho_D"}  # estimated as they are (the rest in log space)
SAMPLE_COLUMNS = ("E", "A", "B", "alpha", "beta", "K", "gamma", "a", "b", "kN", "kD")

# The allocation form of approaches 1 and 2 (Hoffmann et al. 2022): no loss law, the compute-optimal
# allocation itself, N_opt = kN C^a and D_opt = kD C^b (C in the fit's FLOPs convention).
ALLOCATION = ("a", "b", "kN", "kD")


def allocation(params: dict, C, outer: bool = True) -> dict[str, np.ndarray]:
    """N_opt = kN C^a, D_opt = kD C^b and tokens per parameter D_opt / N_opt of an allocation fit.
    Broadcasting as in `predict` (samples x budgets under `outer`)."""
    p = _broadcast(params, ALLOCATION, np.ndim(C), outer)
    C = np.asarray(C, float)
    with np.errstate(all="ignore"):
        N = p["kN"] * np.power(C, p["a"])
        D = p["kD"] * np.power(C, p["b"])
    return {"N_opt": N, "D_opt": D, "tokens_per_param": D / N}


def to_natural(form: Form, theta: np.ndarray) -> dict[str, np.ndarray]:
    """theta[..., P] (log space) -> {natural name: array[...]}."""
    out = {}
    for i, (t, p) in enumerate(zip(form.theta, form.params)):
        out[p] = theta[..., i] if p in EXPONENTS else np.exp(theta[..., i])
    return out


def to_theta(form: Form, params: dict) -> np.ndarray:
    return np.array([params[p] if p in EXPONENTS else np.log(params[p]) for p in form.params], float)


def _broadcast(params: dict, names, point_ndim: int, outer: bool) -> dict[str, np.ndarray]:
    """The named parameters as float arrays; under `outer` a sample array gets one trailing axis per
    point dimension, so that (S,) samples against (K,) points evaluate to (S, K)."""
    out = {}
    for k in names:
        v = np.asarray(params[k], float)
        out[k] = v.reshape(v.shape + (1,) * point_ndim) if outer and v.ndim else v
    return out


def predict(form: str | Form, params: dict, N=None, D=None, C=None, outer: bool = True, share=None) -> np.ndarray:
    """Loss predicted by `form` with natural `params` at N (params), D (tokens) or C (FLOPs).

    Broadcasting: each parameter is a scalar or an array of S bootstrap samples. With `outer` (default)
    the result has shape (samples' shape) + (points' shape): samples (S,) at points (K,) give (S, K), at
    one point (S,). With outer=False parameters and points broadcast as numpy does (e.g. one budget per
    sample). Sums E first, then the terms as the law is written (E + A/N^alpha + B/D^beta). share: the
    kept FFN share f of the "share" form (default 1, dense), broadcast with N and D."""
    form = FORMS[form] if isinstance(form, str) else form
    if form.name == "share":
        return _predict_share(params, N, D, 1.0 if share is None else share, outer)
    if form.name == "repetition":  # N' and D' need the unique tokens
        raise ValueError("the repetition law needs unique tokens: use scalelab.fit.repetition.predict(params, N, D, U)")
    cov: dict[str | None, Any] = {"N": N, "D": D, "C": C}  # a term with an exponent always has its covariate
    x: str | None
    for x in form.covariates:
        if cov[x] is None:
            raise ValueError(f"form {form.name} needs {x}")
    point_ndim = len(np.broadcast_shapes(*(np.shape(cov[x]) for x in form.covariates)))
    p = _broadcast(params, form.params, point_ndim, outer)
    coef = {"e": "E", "a": "A", "b": "B", "k": "K"}
    const = [c for c, s, _ in form.terms if s is None]
    total = p[coef[const[0]]] if const else 0.0
    for c, s, x in form.terms:
        if s is not None:
            total = total + p[coef[c]] * np.asarray(cov[x], float) ** -p[s]
    return np.asarray(total, float)


def _predict_share(params: dict, N, D, share, outer: bool) -> np.ndarray:
    """E + A/(N f^rho_N)^alpha + B/(D f^rho_D)^beta: the share enters as effective-size multipliers."""
    if N is None or D is None:
        raise ValueError("form share needs N and D")
    x = {k: np.asarray(v, float) for k, v in (("N", N), ("D", D), ("f", share))}
    p = _broadcast(params, FORMS["share"].params, len(np.broadcast_shapes(*(v.shape for v in x.values()))), outer)
    with np.errstate(all="ignore"):
        n_eff = x["N"] * x["f"] ** p["rho_N"]
        d_eff = x["D"] * x["f"] ** p["rho_D"]
        return np.asarray(p["E"] + p["A"] * n_eff ** -p["alpha"] + p["B"] * d_eff ** -p["beta"], float)


def at_share(params: dict, share: float) -> dict:
    """The chinchilla law a share law gives at one share f: A f^(-alpha rho_N), B f^(-beta rho_D)."""
    f = float(share)
    return {
        "E": params["E"],
        "A": params["A"] * f ** (-params["alpha"] * params["rho_N"]),
        "B": params["B"] * f ** (-params["beta"] * params["rho_D"]),
        "alpha": params["alpha"],
        "beta": params["beta"],
    }


def compute_optimal(params: dict, C=None, k=6.0, outer: bool = True) -> dict[str, np.ndarray]:
    """Compute-optimal allocation of the chinchilla law under C = k N D (Hoffmann et al. 2022, eq. 4):

        a = beta/(alpha+beta), b = alpha/(alpha+beta), G = (alpha A / (beta B))^(1/(alpha+beta)),
        N_opt = G (C/k)^a,  D_opt = (C/k)^b / G,  L_opt = L(N_opt, D_opt).

    k: FLOPs per parameter per token (6; another constant where C counts differently), a scalar or one
    per sample. Broadcasting as in `predict` (samples x budgets under `outer`). Without C: a, b, G only."""
    C_ndim = 0 if C is None else np.ndim(C)
    p = _broadcast(
        params, ("E", "A", "B", "alpha", "beta") if "E" in params else ("A", "B", "alpha", "beta"), C_ndim, outer
    )
    al, be = p["alpha"], p["beta"]
    with np.errstate(all="ignore"):
        s = al + be
        a, b = be / s, al / s
        G = np.power(al * p["A"] / (be * p["B"]), 1.0 / s)
        out = {"a": a, "b": b, "G": G}
        if C is not None:
            x = np.asarray(C, float) / (_broadcast({"k": k}, "k", C_ndim, outer)["k"])
            N = G * np.power(x, a)
            D = np.power(x, b) / G
            out.update(N_opt=N, D_opt=D)
            if "E" in p:
                out["L_opt"] = p["E"] + p["A"] * np.power(N, -al) + p["B"] * np.power(D, -be)
    return out


def compute_for_loss(form: str, params: dict, target, k=6.0, outer: bool = True) -> np.ndarray:
    """The compute C at which the law's best loss reaches `target`; NaN where target <= E (never).

    chinchilla (C = k N D): L_opt(C) = E + (A G^-alpha + B G^beta) (C/k)^(-alpha beta/(alpha+beta)), inverted;
    frontier: L(C) = E + K C^-gamma, inverted. Broadcasting as in `predict` (samples x targets)."""
    t_ndim = np.ndim(target)
    target = np.asarray(target, float)
    if form == "frontier":
        p = _broadcast(params, ("E", "K", "gamma"), t_ndim, outer)
        with np.errstate(all="ignore"):
            C = np.power((target - p["E"]) / p["K"], -1.0 / p["gamma"])
    elif form == "chinchilla":
        p = _broadcast(params, ("E", "A", "B", "alpha", "beta"), t_ndim, outer)
        al, be = p["alpha"], p["beta"]
        kk = _broadcast({"k": k}, "k", t_ndim, outer)["k"]
        with np.errstate(all="ignore"):
            G = compute_optimal(p, outer=False)["G"]
            coef = p["A"] * G**-al + p["B"] * G**be
            C = kk * np.power((target - p["E"]) / coef, -(al + be) / (al * be))
    else:
        raise ValueError(f"form {form!r} has no compute-optimal loss: use chinchilla or frontier")
    return np.where(target > p["E"], C, np.nan)


def flops_per_param_token(N, D, C) -> float:
    """k in C = k N D for a group's points: the median of C / (N D) (exactly 6 when C = 6ND). The fit's
    derived compute-optimal point and the compute multipliers both use it, so they agree."""
    return float(np.median(np.asarray(C, float) / (np.asarray(N, float) * np.asarray(D, float))))


def derived(form: str, params: dict, c_ref: float | None = None, k: float = 6.0) -> dict[str, np.ndarray]:
    """The fit file's derived quantities of a chinchilla law (compute_optimal at C = k N D, k the group's
    flops_per_param_token: 6 for C = 6ND): a, b, G and, at c_ref FLOPs, N_opt, D_opt and tokens per
    parameter D_opt/N_opt = (C/k)^(b-a) / G^2. Works element-wise on arrays (bootstrap samples)."""
    if form != "chinchilla":
        return {}
    opt = compute_optimal({k_: params[k_] for k_ in ("A", "B", "alpha", "beta")}, c_ref, k=k)
    out = {k: opt[k] for k in ("a", "b", "G")}
    if c_ref is not None:
        with np.errstate(all="ignore"):
            out.update(N_opt=opt["N_opt"], D_opt=opt["D_opt"], tokens_per_param=opt["D_opt"] / opt["N_opt"])
    return out
