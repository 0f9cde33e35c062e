"""The fitted laws as the figures need them, evaluated for the point estimate and every bootstrap draw.

Forms (docs/interfaces.md "Fit file"):
  chinchilla  L(N, D) = E + A / N^alpha + B / D^beta
  data        L(D)    = E + B / D^beta               (one fixed N per group)
  frontier    L(C)    = E + K C^-gamma
Compute-optimal allocation for C = k N D (k = 6 for 6ND; REFERENCE.md section 3, Hoffmann et al. 2022):
  G = (alpha A / (beta B))^(1 / (alpha + beta)),  N_opt = G (C/k)^a,  D_opt = (C/k)^b / G,
  L_opt = E + (A G^-alpha + B G^beta) (C/k)^(-alpha beta / (alpha + beta)),  a = beta/(alpha+beta), b = 1 - a.
"""
from __future__ import annotations

import numpy as np

from scalelab.plot.inputs import Fit

CHINCHILLA = ("E", "A", "B", "alpha", "beta")


def param_arrays(fit: Fit, group: str, names) -> tuple[dict, dict | None]:
    """Point estimates (scalars) and bootstrap draws (arrays [S]) of the named parameters."""
    g = fit.groups[group]
    point = {k: float(g["params"][k]) for k in names}
    s = fit.group_samples(group)
    draws = None
    if s is not None and all(k in s.columns for k in names):
        draws = {k: s[k].to_numpy(dtype=float) for k in names}
        ok = np.all([np.isfinite(v) for v in draws.values()], axis=0)
        draws = {k: v[ok] for k, v in draws.items()} if ok.any() else None
    return point, draws


def loss_nd(p: dict, N, D):
    """Chinchilla L(N, D); p holds scalars or [S] arrays (broadcast against N, D on the last axis)."""
    E, A, B, al, be = (np.asarray(p[k], float)[..., None] if np.ndim(p[k]) else float(p[k]) for k in CHINCHILLA)
    N, D = np.asarray(N, float), np.asarray(D, float)
    return E + A * N ** -al + B * D ** -be


def loss_c(p: dict, C):
    """Frontier L(C) = E + K C^-gamma."""
    E, K, ga = (np.asarray(p[k], float)[..., None] if np.ndim(p[k]) else float(p[k]) for k in ("E", "K", "gamma"))
    return E + K * np.asarray(C, float) ** -ga


def loss_n(p: dict, N):
    """L(N) = E + A / N^alpha (form `size`: one fixed D per group)."""
    E, A, al = (np.asarray(p[k], float)[..., None] if np.ndim(p[k]) else float(p[k]) for k in ("E", "A", "alpha"))
    return E + A * np.asarray(N, float) ** -al


def loss_d(p: dict, D):
    E, B, be = (np.asarray(p[k], float)[..., None] if np.ndim(p[k]) else float(p[k]) for k in ("E", "B", "beta"))
    return E + B * np.asarray(D, float) ** -be


def optimal(p: dict, C, k: float = 6.0) -> dict:
    """Closed-form compute-optimal N, D, L at budgets C (FLOPs = k N D). Arrays [S, M] or [M]."""
    E, A, B, al, be = (np.asarray(p[key], float)[..., None] if np.ndim(p[key]) else float(p[key]) for key in CHINCHILLA)
    x = np.asarray(C, float) / k
    logG = (np.log(al * A) - np.log(be * B)) / (al + be)
    G = np.exp(logG)
    a, b = be / (al + be), al / (al + be)
    N = G * x ** a
    D = x ** b / G
    L = E + (A * G ** -al + B * G ** be) * x ** (-al * be / (al + be))
    return {"N": N, "D": D, "L": L}


def band(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over the bootstrap axis (axis 0)."""
    q = (1 - level) / 2
    return np.nanquantile(draws, q, axis=0), np.nanquantile(draws, 1 - q, axis=0)


def group_runs(fit: Fit, group: str):
    """The group's fitted points (the fit file's `runs` list) as a DataFrame (maybe empty)."""
    import pandas as pd

    return pd.DataFrame(fit.groups[group].get("runs") or [])


def n_column(fit: Fit, group: str) -> str:
    """Which run-store column the fit's N is: the one whose span matches the group's range.N."""
    g = fit.groups[group]
    col = (fit.data.get("columns") or {}).get("N")  # written by scalelab.fit
    if col:
        return str(col)
    rng = (g.get("range") or {}).get("N")
    runs = group_runs(fit, group)
    if rng and len(runs):
        best, err = "params", float("inf")
        for col in ("params", "params_nonembed"):
            if col in runs.columns and runs[col].notna().any():
                e = abs(np.log(runs[col].min() / rng[0])) + abs(np.log(runs[col].max() / rng[1]))
                if e < err:
                    best, err = col, e
        return best
    return "params"


def flops_column(fit: Fit | None) -> str:
    """Run-store column holding C in the fit's FLOP convention."""
    if fit is None:
        return "flops"
    col = (fit.data.get("columns") or {}).get("C")
    if col in ("flops", "flops_6nd"):
        return col
    return "flops_6nd" if fit.convention.lower() in ("flops_6nd", "6nd") else "flops"


def flops_per_param_token(fit: Fit, group: str) -> tuple[float, str]:
    """k in C = k N D for the closed form: 6 for 6ND; else the median over the fitted runs."""
    if fit.convention.lower() in ("flops_6nd", "6nd") and n_column(fit, group) != "params":
        return 6.0, "C = 6ND"
    runs = group_runs(fit, group)
    ncol = n_column(fit, group)
    if len(runs) and {"flops", "tokens", ncol} <= set(runs.columns):
        k = (runs["flops"] / (runs[ncol] * runs["tokens"])).replace([np.inf, -np.inf], np.nan).dropna()
        if len(k):
            return float(k.median()), f"C = {float(k.median()):.2f} N D (median over the fitted runs)"
    return 6.0, "C = 6ND (no FLOPs per run in the fit file)"


def convention_label(convention: str) -> str:
    c = convention.lower()
    if c in ("flops_6nd", "6nd"):
        return "training compute C = 6ND (FLOPs)"
    return "training compute C (FLOPs, 3 x forward)"
