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
from scalelab.fit.bootstrap import intervals, percentile_interval, withheld_warning
from scalelab.fit.groups import point_weights
from scalelab.fit.objective import Problem, bounds
from scalelab.fit.records import ComputeOptimal, SeparateFit
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


_NATURAL = {"e": "E", "a": "A", "b": "B", "k": "K", "alpha": "alpha", "beta": "beta", "gamma": "gamma"}
# warnings fit_group writes about the design (sizes, runs, resampling unit): as true of the joint fit; every
# other warning describes the separate fit's result and is replaced by the joint fit's own
_DESIGN_WARNINGS = ("only ", "rows are resampled")
_ALLOCATION = ("N_opt", "D_opt", "tokens_per_param")  # what fit_group drops from `derived` when not identified


def _agree(f: np.ndarray) -> np.ndarray:
    """Starts that reached the best value of their row, per row of objective values f[..., starts]."""
    best = f.min(-1, keepdims=True)
    return (f <= best + 1e-6 * np.abs(best) + 1e-15).sum(-1)


def apply_shared_exponents(groups, fits, spec, counts, weakly_identified=None) -> dict:
    """Refit every group jointly with shared E and exponents; overwrite params, intervals, derived
    quantities, samples, diagnostics and result warnings of each GroupFit in place (fit_laws calls this
    after the separate fits). The separate fits' estimates stay in each group's "separate_fit" record.

    weakly_identified(params, conf_int, level) -> [warning]: the separate fits' rule for loose intervals.
    Returns {group name: {"params": separate params and derived, "samples": {name: array} or None}}: the
    separate fits, for `compare_shared` (whether the data support one set of exponents)."""
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
    names = prob.theta_names
    at_bound = [
        names[i] for i in range(len(names)) if min(abs(point[i] - prob.lo[i]), abs(point[i] - prob.hi[i])) < 1e-6
    ]
    diag: dict = {
        "objective": float(fval[b]),
        "grad_norm": float(gn[b]),
        "n_starts_at_best": int(_agree(fval)),
        "n_starts": int(fval.size),
    }
    separate = {
        f.name: {
            "params": {**f.params, **f.derived},
            "samples": None if f.samples is None else {k: f.samples[k].to_numpy(float) for k in f.samples},
        }
        for f in fits
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
        bb = np.minimum(np.abs(boot - prob.lo), np.abs(boot - prob.hi)) < 1e-6  # [K, P]
        diag["bootstrap"] = {
            "n_starts": int(m),
            "frac_one_start_at_best": float(np.mean(_agree(fb) < 2)),
            "frac_agreed": float(np.mean(_agree(fb) >= 2)),
            "frac_at_bound": float(np.mean(bb.any(1))),
        }
    zhat = prob.log_pred(point[None])[0]
    w_rho = prob.rho((prob.z - zhat)[None], prob.point_w[None])[0]
    off = np.cumsum([0] + [g.L.size for g in groups])
    for i, f in enumerate(fits):
        idx = list(range(s)) + [s + q * i + j for j in range(q)]
        mine = [names[j] for j in idx]
        order = [(shared + per).index(t) for t in laws.FORMS[form].theta]
        f.separate_fit = SeparateFit(
            params=f.params,
            conf_int=f.conf_int,
            objective=f.diagnostics.get("objective"),
            warnings=[w for w in f.warnings if not w.startswith(_DESIGN_WARNINGS)],
        )
        warnings = [w for w in f.warnings if w.startswith(_DESIGN_WARNINGS)]
        f.params = {k: float(v) for k, v in laws.to_natural(laws.FORMS[form], point[idx][order]).items()}
        c_ref = f.c_ref
        k_flops = laws.flops_per_param_token(groups[i].N, groups[i].D, groups[i].C)
        f.derived = {k: float(v) for k, v in laws.derived(form, f.params, c_ref, k_flops).items()}
        f.diagnostics = {
            **diag,
            "objective_group": float(w_rho[off[i] : off[i + 1]].sum()),
            "at_bound": [_NATURAL[t.rstrip("0123456789")] for t in mine if t in at_bound],
            "joint": {"groups": [g.name for g in groups], "shared": [_NATURAL[t] for t in shared]},
        }
        f.shared_exponents = True
        f.residual_sd = float(np.std((prob.z - zhat)[off[i] : off[i + 1]]))
        if f.diagnostics["at_bound"]:
            warnings.append(f"parameter(s) at a bound of the search box: {', '.join(f.diagnostics['at_bound'])}")
        if boot is not None:
            nat = laws.to_natural(laws.FORMS[form], boot[:, idx][:, order])
            f.samples = pd.DataFrame({k: np.asarray(v, float) for k, v in nat.items()})
            d = laws.derived(form, nat, c_ref, k_flops)
            f.conf_int, withheld = intervals(nat, f.params, spec.level)
            f.derived_conf_int, dwithheld = intervals(d, f.derived, spec.level)
            withheld.update(dwithheld)
            if withheld:
                f.diagnostics["intervals_withheld"] = withheld
                warnings.append(withheld_warning(withheld, spec.level))
            for k in ("a", "b"):
                if k in d:
                    f.samples[k] = d[k]
            if weakly_identified is not None:
                warnings += weakly_identified(f.params, f.conf_int, spec.level)
        _allocation(f, warnings)
        f.warnings = warnings
    return separate


def _allocation(f, warnings: list) -> None:
    """Recheck the joint fit's compute-optimal allocation against the group's plausible tokens/param (the
    rule fit_group applied to the separate fit): N_opt and D_opt leave `derived` when it is not identified."""
    from scalelab.fit import identify

    co = f.compute_optimal
    if co is None or "tokens_per_param" not in f.derived:
        return
    why = identify.allocation_check(f.derived["tokens_per_param"], tuple(co.plausible_tokens_per_param))
    f.compute_optimal = ComputeOptimal(identified=why is None, plausible_tokens_per_param=co.plausible_tokens_per_param)
    if why:
        f.compute_optimal.why, f.compute_optimal.tokens_per_param = why, f.derived["tokens_per_param"]
        warnings.append(why)
        f.derived = {k: v for k, v in f.derived.items() if k not in _ALLOCATION}
        f.derived_conf_int = {k: v for k, v in f.derived_conf_int.items() if k not in _ALLOCATION}


def compare_shared(fa, fb, separate: dict, level: float, paired_separate: bool) -> dict:
    """The comparison record of B vs A under shared exponents: their E and exponents are one estimate, so
    their differences are zero by construction and say nothing; what differs is each coefficient, as the
    ratio B / A with its interval (sample s of both groups comes from one joint resample). Whether the data
    support one set of exponents is read from the separate fits: their exponent differences (bootstrap.compare)
    go in "separate" and the verdict says when they are detectable."""
    from scalelab.fit.bootstrap import compare

    shared_names, per, _ = _LAYOUT[fa.form]
    out = {"a": fa.name, "b": fb.name, "level": level, "paired": True, "shared": [_NATURAL[t] for t in shared_names]}
    words = []
    for p in (_NATURAL[t] for t in per):
        est = fb.params[p] / fa.params[p]
        lo = hi = float("nan")
        if fa.samples is not None and fb.samples is not None and len(fa.samples) and len(fa.samples) == len(fb.samples):
            with np.errstate(all="ignore"):
                lo, hi = percentile_interval(fb.samples[p].to_numpy(float) / fa.samples[p].to_numpy(float), level)
        out[f"ratio_{p}"] = [float(est), lo, hi]
        words.append(f"{p} x{est:.3g}" + (f" [{lo:.3g}, {hi:.3g}]" if lo == lo else ""))
    ratios = [v for k, v in out.items() if k.startswith("ratio_")]
    differ = any(lo > 1 or hi < 1 for _, lo, hi in ratios)  # False with NaN intervals (no samples)
    head = (
        f"{', '.join(out['shared'])} shared by the joint fit (their differences are 0 by construction); "
        f"{fb.name}'s coefficients / {fa.name}'s: {', '.join(words)}"
        + ("" if differ else f" (no detectable difference at {level:.0%})")
    )
    sa, sb = separate[fa.name], separate[fb.name]
    if sa["samples"] is not None and sb["samples"] is not None:
        sep = compare(
            fa.name, sa["samples"], sa["params"], fb.name, sb["samples"], sb["params"], level, paired_separate
        )
        out["separate"] = {k: v for k, v in sep.items() if k.startswith("d_") and k != "d_a"}
        shown = ", ".join(f"{k} = {v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]" for k, v in out["separate"].items())
        detected = [k for k, v in out["separate"].items() if v[1] > 0 or v[2] < 0]
        tail = (
            f"the separate fits' exponents differ ({shown}): the data do not support one set of exponents; "
            "read the separate fits (drop --share-exponents)"
            if detected
            else f"the separate fits show no detectable exponent difference at {level:.0%} ({shown})"
        )
        out["verdict"] = f"{head}; {tail}"
    else:
        out["verdict"] = head
    return out
