"""Shared-exponent fits (`--share-exponents`): one E and one set of exponents across groups, one
coefficient set per group (as in Volkova et al. 2026, arXiv 2602.07712, one multiplier per variant).

    chinchilla  L_g(N, D) = E + A_g / N^alpha + B_g / D^beta      theta = (e, alpha, beta, a_0, b_0, a_1, ...)
    frontier    L_g(C)    = E + K_g / C^gamma                     theta = (e, gamma, k_0, k_1, ...)

With E and the exponents shared, each group's compute-optimal frontier is E + c_g C^-g' with one
exponent g', so the compute multiplier of B vs A is one number at every budget: (c_B / c_A)^(1/g') (times
k_B / k_A under C = k N D). The point fit polishes from each group's separate fit (its exponents and E in
turn, and their mean); every bootstrap resample (the same counts the separate fits used) is polished
jointly from the joint point fit and from its own separate fits, so sample s of every group comes from one
joint resample (the comparisons are paired).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.fit import laws
from scalelab.fit.bootstrap import percentile_interval
from scalelab.fit.groups import point_weights
from scalelab.fit.objective import Problem, bounds
from scalelab.fit.solver import polish

_LAYOUT = {  # form -> (shared theta names, per-group theta names, (per-group coef index, shared exponent, cov))
    "chinchilla": (("e", "alpha", "beta"), ("a", "b"), ((0, 1, "N"), (1, 2, "D"))),
    "frontier": (("e", "gamma"), ("k",), ((0, 1, "C"),)),
}


def joint_problem(groups, form: str, spec) -> Problem:
    shared, per, terms_of = _LAYOUT[form]
    G, s, q = len(groups), len(shared), len(per)
    names = list(shared) + [f"{p}{i}" for i in range(G) for p in per]
    gi = np.concatenate([np.full(g.L.size, i) for i, g in enumerate(groups)])
    cols = {x: np.concatenate([np.log(getattr(g, x)) for g in groups]) for x in ("N", "D", "C")}
    terms = [(s + q * gi + j, si, cols[x]) for j, si, x in terms_of] + [(0, None, None)]
    z = np.log(np.concatenate([g.L for g in groups]))
    lo, hi = bounds(names, z, {x: cols[x] for _, _, x in terms_of})
    pw = np.concatenate([point_weights(g, spec.weights) for g in groups])
    return Problem(names, terms, z, lo, hi, pw, spec.loss, spec.delta, spec.overestimate_penalty)


def _starts(thetas: list[np.ndarray], form: str) -> np.ndarray:
    """Separate fits per group (list over groups of [S, P_form] log-space theta) -> joint starts [S, G+1, P]:
    the shared part from group j's fit (j = 0..G-1) or the mean, the per-group parts from each group's own."""
    f = laws.FORMS[form]
    shared, per, _ = _LAYOUT[form]
    si = [f.theta.index(n) for n in shared]
    pi = [f.theta.index(n) for n in per]
    rest = np.concatenate([t[:, pi] for t in thetas], 1)
    sh = [t[:, si] for t in thetas] + [np.mean([t[:, si] for t in thetas], 0)]
    return np.stack([np.concatenate([x, rest], 1) for x in sh], 1)  # [S, G+1, P]


def _theta(gf, form) -> np.ndarray:
    return laws.to_theta(laws.FORMS[form], gf.params)


def apply_shared_exponents(groups, fits, spec, counts) -> None:
    """Refit every group jointly with shared E and exponents; overwrite params, intervals, derived
    quantities and samples of each GroupFit in place (fit_laws calls this after the separate fits)."""
    if len(groups) < 2:
        raise ScalelabError("--share-exponents needs at least two groups (--by)")
    if spec.share_e:
        raise ScalelabError("--share-exponents already shares E across groups: drop --share-e")
    forms = {f.form for f in fits}
    if len(forms) != 1 or next(iter(forms)) not in _LAYOUT:
        raise ScalelabError(
            f"--share-exponents needs every group in one form, chinchilla or frontier; got "
            f"{', '.join(f'{f.name}: {f.form}' for f in fits)}: pass --form chinchilla or --form frontier"
        )
    form = next(iter(forms))
    shared, per, _ = _LAYOUT[form]
    s, q = len(shared), len(per)
    prob = joint_problem(groups, form, spec)
    n = prob.n
    st = _starts([_theta(f, form)[None] for f in fits], form)[0]
    th, fval, gn = polish(prob, st, np.ones((st.shape[0], n)) * prob.point_w, iters=300)
    b = int(np.argmin(fval))
    point = th[b]
    diag = {
        "objective": float(fval[b]),
        "grad_norm": float(gn[b]),
        "n_starts_at_best": int(np.sum(fval <= fval[b] * (1 + 1e-6) + 1e-15)),
        "n_starts": int(fval.size),
    }
    boot = None
    if counts and counts[0] is not None and all(f.samples is not None and len(f.samples) for f in fits):
        f0 = laws.FORMS[form]
        sep = [np.stack([laws.to_theta(f0, r) for r in f.samples[list(f0.params)].to_dict("records")]) for f in fits]
        stb = _starts(sep, form)  # [K, G+1, P]
        K = stb.shape[0]
        stb = np.concatenate([stb, np.broadcast_to(point, (K, 1, point.size))], 1)
        m = stb.shape[1]
        Wc = np.concatenate(counts, 1) * prob.point_w
        thb, fb, _ = polish(prob, stb.reshape(K * m, -1), np.repeat(Wc, m, 0), iters=60)
        thb, fb = thb.reshape(K, m, -1), fb.reshape(K, m)
        boot = thb[np.arange(K), np.argmin(fb, 1)]
    zhat = prob.log_pred(point[None])[0]
    off = np.cumsum([0] + [g.L.size for g in groups])
    for i, f in enumerate(fits):
        idx = list(range(s)) + [s + q * i + j for j in range(q)]
        order = [(shared + per).index(t) for t in laws.FORMS[form].theta]
        f.params = {k: float(v) for k, v in laws.to_natural(laws.FORMS[form], point[idx][order]).items()}
        c_ref = f.extra.get("c_ref")
        k_flops = laws.flops_per_param_token(groups[i].N, groups[i].D, groups[i].C)
        f.derived = {k: float(v) for k, v in laws.derived(form, f.params, c_ref, k_flops).items()}
        f.diagnostics["shared_exponents"] = diag
        f.extra["shared_exponents"] = True
        f.residual_sd = float(np.std((prob.z - zhat)[off[i] : off[i + 1]]))
        if boot is not None:
            nat = laws.to_natural(laws.FORMS[form], boot[:, idx][:, order])
            f.samples = pd.DataFrame({k: np.asarray(v, float) for k, v in nat.items()})
            f.conf_int = {k: list(percentile_interval(v, spec.level)) for k, v in nat.items()}
            d = laws.derived(form, nat, c_ref, k_flops)
            f.derived_conf_int = {k: list(percentile_interval(v, spec.level)) for k, v in d.items()}
            for k in ("a", "b"):
                if k in d:
                    f.samples[k] = d[k]
