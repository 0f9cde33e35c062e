"""The data-constrained law: repeated tokens are worth less than new ones (Muennighoff et al. 2023, "Scaling
Data-Constrained Language Models", arXiv 2305.16264, eq. 5-6).

    L(N, D) = E + A / N'^alpha + B / D'^beta,  the Chinchilla form at effective sizes
    D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*)),  R_D = D / U_D - 1      (repetitions of the U_D unique tokens)
    N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)),  R_N = N / U_N - 1,  U_N = min(N, N_opt(U_D))

N_opt(U_D) is the base law's compute-optimal size for U_D tokens, G (G U_D)^(beta/alpha) (laws.compute_optimal):
parameters beyond it are "excess" and decay like repeated tokens. R_D*, R_N* are the fitted decay constants
(the paper: 15.4 and 5.3 on C4).

The fit follows the paper: E, A, B, alpha, beta on the single-epoch runs (the plain Chinchilla fit,
procedure's solver), then R_D*, R_N* on the repeated runs with the base held. Both stages see the same
run-level bootstrap resample, so intervals carry the base law's uncertainty into R_D*, R_N*.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError

REPEAT_EPOCHS = 4.0  # up to ~4 epochs repeated tokens are nearly as good as new (the paper, section 5)
ONE_EPOCH = 1.0 + 1e-6  # epochs at or below this count as single-epoch (unique) runs
DECAY = ("R_D_star", "R_N_star")
PARAMS = ("E", "A", "B", "alpha", "beta", *DECAY)
_BOUNDS = (np.log(1e-2), np.log(1e6))  # log R*: from no decay worth fitting to none seen
_LOG_R = np.linspace(*_BOUNDS, 37)  # the first grid of log R_D*, log R_N*: 2.5 steps per factor 10
POINT_U = "unique_tokens"  # GroupFit.diagnostics key of the points' unique tokens (fit_group; point_unique)
_ZOOMS = 7  # finer grids, each a quarter of the step: the last step is 4^-6 of the first (4e-4 in log R)


# ---- how much the runs repeat --------------------------------------------------------------------------------
def epochs_of(g) -> np.ndarray:
    return g.D / g.U


def repeat_note(g, form_name: str) -> str | None:
    """The one-line warning of a law that counts repeated tokens as new, fitted on runs beyond REPEAT_EPOCHS."""
    if g.U is None:
        return None
    ep = epochs_of(g)
    many = ep > REPEAT_EPOCHS
    if not many.any():
        return None
    return (
        f"{int(many.sum())} of {ep.size} points repeat their data more than {REPEAT_EPOCHS:g} epochs (up to "
        f"{ep.max():.3g}, median of those {np.median(ep[many]):.3g}): the {form_name} law counts repeated tokens as "
        "new and is optimistic for them; fit --form repetition"
    )


# ---- the law -------------------------------------------------------------------------------------------------
def n_opt(params: dict, U) -> np.ndarray:
    """The base law's compute-optimal parameters for U tokens: N_opt(C) = G (C/k)^a where D_opt(C) = U, i.e.
    G (G U)^(beta/alpha) (independent of k)."""
    al, be = np.asarray(params["alpha"], float), np.asarray(params["beta"], float)
    with np.errstate(all="ignore"):  # a degenerate resample (an exponent at 0) gives inf or NaN, not a warning
        G = np.power(al * np.asarray(params["A"], float) / (be * np.asarray(params["B"], float)), 1.0 / (al + be))
        return G * np.power(G * np.asarray(U, float), be / al)


def effective(params: dict, N, D, U) -> tuple[np.ndarray, np.ndarray]:
    """(N', D'): the effective parameters and data of the law (module docstring), element-wise. U is the corpus's
    unique tokens; a run of fewer tokens sees D of them once."""
    N, D = np.asarray(N, float), np.asarray(D, float)
    U = np.minimum(np.asarray(U, float), D)  # the unique tokens seen: a corpus larger than D is not exhausted
    rd_s, rn_s = np.asarray(params["R_D_star"], float), np.asarray(params["R_N_star"], float)
    Dp = U + U * rd_s * -np.expm1(-(D / U - 1.0) / rd_s)
    UN = np.minimum(N, n_opt(params, U))
    Np = UN + UN * rn_s * -np.expm1(-(N / UN - 1.0) / rn_s)
    return Np, Dp


def predict(params: dict, N, D, U) -> np.ndarray:
    """Loss of the data-constrained law with natural params at N params, D tokens of U unique tokens."""
    Np, Dp = effective(params, N, D, U)
    return params["E"] + params["A"] * np.power(Np, -params["alpha"]) + params["B"] * np.power(Dp, -params["beta"])


def optimum(params: dict, C, U, k: float = 6.0, decades: float = 4.0) -> dict[str, np.ndarray]:
    """The allocation of C = k N D FLOPs of least loss when the corpus has U unique tokens (the paper's
    data-constrained optimum): N_opt, D_opt = C / (k N_opt), epochs = D_opt / U and L_opt, for each parameter
    sample (params as arrays of S draws give arrays of S), and at_edge where the best N is at the end of the
    search (the optimum may lie beyond it). Searched over N within `decades` of the
    unconstrained optimum each way, by grids in log N each finer about the best (the loss has a kink where N
    passes N_opt(U_D)); with U beyond D_opt it is the Chinchilla optimum (laws.compute_optimal)."""
    from scalelab.fit import laws

    p = {key: np.atleast_1d(np.asarray(v, float))[:, None] for key, v in params.items() if key in PARAMS}
    with np.errstate(all="ignore"):
        n0 = laws.compute_optimal({key: p[key] for key in ("A", "B", "alpha", "beta")}, float(C), k=k, outer=False)
        x = np.log(n0["N_opt"]) + np.linspace(-1, 1, 161) * decades * np.log(10)  # [S, G]
        h = x[:, 1:2] - x[:, :1]
        ends = (x[:, 0] + h[:, 0], x[:, -1] - h[:, 0])  # a best within a step of these: the search's edge
        for _ in range(6):  # each grid spans the last one's step about its best: 4e-6 of the first step at the end
            f = predict(p, np.exp(x), C / (k * np.exp(x)), U)
            best = x[np.arange(x.shape[0]), np.argmin(np.where(np.isfinite(f), f, np.inf), 1)][:, None]
            x, h = best + np.linspace(-1, 1, 21) * h, h / 10
        N = np.exp(best[:, 0])
        D = C / (k * N)
        L = predict({key: v[:, 0] for key, v in p.items()}, N, D, U)
        edge = (best[:, 0] <= ends[0]) | (best[:, 0] >= ends[1])
    return {"N_opt": N, "D_opt": D, "epochs": D / U, "L_opt": L, "at_edge": edge}


def point_unique(grp, run, D) -> np.ndarray | None:
    """The unique tokens of points (run, D) of a repetition-law group, from what its fit recorded (fit_group);
    NaN for a point it did not record, None when it recorded none (a fit file written before it did)."""
    rec = (grp.diagnostics or {}).get(POINT_U)
    if not isinstance(rec, dict) or not all(k in rec for k in ("run", "D", "U")):
        return None
    known = {(str(r), round(float(np.log(d)), 9)): float(u) for r, d, u in zip(rec["run"], rec["D"], rec["U"])}
    return np.array([known.get((str(r), round(float(np.log(d)), 9)), np.nan) for r, d in zip(run, D)], float)


# ---- which groups take it ------------------------------------------------------------------------------------
def wanted(g, requested: str) -> bool:
    """The group is fitted with this law: asked for, or `auto` on runs repeating beyond REPEAT_EPOCHS whose
    design identifies it (else auto fits the usual law, which warns: repeat_note)."""
    if requested == "repetition":
        return True
    if requested != "auto" or g.U is None or not (epochs_of(g) > REPEAT_EPOCHS).any():
        return False
    try:
        check(g, (), g.name)
    except ScalelabError:
        return False
    return True


def check(g, fixed, group: str):
    """(single-epoch mask, why, design): the base law must be identified by the single-epoch runs and the decay
    constants need more repeated points than their 2; else a one-line ScalelabError."""
    from scalelab.fit import identify

    if g.U is None:
        raise ScalelabError(
            f"group {group!r}: --form repetition needs unique tokens: an 'epochs' column (the run store records "
            "it) or --unique-col COLUMN"
        )
    ep = epochs_of(g)
    single = ep <= ONE_EPOCH
    if single.sum() < 3:
        raise ScalelabError(
            f"group {group!r}: {int(single.sum())} single-epoch point(s): the repetition law fits its base "
            "L(N, D) on runs that see each token once; add single-epoch runs"
        )
    try:
        identify.choose(g.N[single], g.D[single], g.C[single], "chinchilla", fixed, group)
    except ScalelabError as e:
        raise ScalelabError(f"{e} (the single-epoch runs, which fit the repetition law's base)") from None
    if (~single).sum() < 3:
        raise ScalelabError(
            f"group {group!r}: {int((~single).sum())} repeated-data point(s): R_D* and R_N* need at least 3; "
            "add runs of more than one epoch"
        )
    d = identify.describe(g.N, g.D, g.C)
    why = (
        f"{int((~single).sum())} of {ep.size} points repeat their data (up to {ep.max():.3g} epochs): fitting the "
        f"data-constrained law (Muennighoff et al. 2023), its base L(N, D) on the {int(single.sum())} single-epoch "
        "points, R_D* and R_N* on the repeated ones"
    )
    return single, why, d


# ---- the fit -------------------------------------------------------------------------------------------------
def _rho(r: np.ndarray, loss: str, delta: float) -> np.ndarray:
    if loss == "lsq":
        return 0.5 * r * r
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def fit_decay(base: dict, N, D, U, L, W: np.ndarray, loss: str = "huber", delta: float = 1e-3) -> np.ndarray:
    """log R_D*, log R_N* [K, 2] minimising sum_i W[k, i] rho(log L_hat - log L) over the repeated points, with
    the base law's parameters held (each a scalar or one per resample k): the best of a grid over 1e-2 to 1e6,
    then of finer grids about it (two parameters: a grid is exact where the Huber objective has kinks, and
    vectorised it is faster than a solver per resample). NaN where a resample has no repeated point."""
    W = np.atleast_2d(np.asarray(W, float))
    b = {k: np.broadcast_to(np.asarray(base[k], float), (W.shape[0],)) for k in ("E", "A", "B", "alpha", "beta")}
    out = np.full((W.shape[0], 2), np.nan)
    for k in range(W.shape[0]):
        if W[k].sum() <= 0:
            continue
        p = {key: float(v[k]) for key, v in b.items()}
        x, y = _LOG_R, _LOG_R
        h = _LOG_R[1] - _LOG_R[0]
        for _ in range(_ZOOMS):
            f = _grid(p, x, y, N, D, U, L, W[k], loss, delta)
            if not np.isfinite(f).any():
                break
            i, j = np.unravel_index(int(np.nanargmin(f)), f.shape)
            out[k] = x[i], y[j]
            x, y = (np.clip(c + np.linspace(-h, h, 9), *_BOUNDS) for c in out[k])
            h /= 4
    return out


def _grid(p: dict, x, y, N, D, U, L, w, loss: str, delta: float) -> np.ndarray:
    """The objective at every (log R_D* in x, log R_N* in y); NaN where undefined. D' depends on R_D* only and N'
    on R_N* only, so the grid is a sum of two tables."""
    with np.errstate(all="ignore"):  # a degenerate resample's base gives inf or NaN: NaN out
        tD = p["B"] * effective({**p, "R_D_star": np.exp(x)[:, None], "R_N_star": 1.0}, N, D, U)[1] ** -p["beta"]
        tN = p["A"] * effective({**p, "R_D_star": 1.0, "R_N_star": np.exp(y)[:, None]}, N, D, U)[0] ** -p["alpha"]
        f = (w * _rho(np.log(p["E"] + tD[:, None, :] + tN[None, :, :]) - np.log(L), loss, delta)).sum(-1)
    return np.where(np.isfinite(f), f, np.nan)


def _base(g, single, spec, fixed, counts):
    """The base L(N, D) on the single-epoch points: (point params, its optimiser diagnostics, resample params or
    None)."""
    from scalelab.fit import laws
    from scalelab.fit.groups import point_weights
    from scalelab.fit.objective import make_problem
    from scalelab.fit.solver import FIRST_ITERS, auto_starts, fit_point, fit_resamples, fix_parameters, reseeding

    s = g.subset(single)
    form = laws.FORMS["chinchilla"]
    cols = s.cols()
    prob = make_problem(
        form, cols, s.L, point_weights(s, spec.weights), spec.loss, spec.delta, spec.overestimate_penalty
    )
    prob.linear_e = spec.search != "starts"
    fix_parameters(prob, form, fixed)
    pt = fit_point(prob, form, cols, s.L)
    theta = pt.theta[0]
    params = {k: float(v) for k, v in laws.to_natural(form, theta).items()}
    boot = None
    if counts is not None:
        n = auto_starts(s.L.size, spec.search)
        bf = fit_resamples(
            prob, form, cols, s.L, counts[:, single], n_starts=n, n_screen=2 * n, warm=theta, iters=FIRST_ITERS,
            reseed=reseeding(spec.search),
        )  # fmt: skip
        boot = laws.to_natural(form, bf.theta)
    diag = pt.point_diagnostics()
    return params, diag, boot


def _excess_note(g, single, base: dict) -> str | None:
    """The single-epoch runs larger than the base law's N_opt(D) for their tokens: the law puts them off the base
    (excess parameters, R_N > 0), yet the paper's procedure fits the base on them; said, since they bias it."""
    over = single & (g.N > n_opt(base, g.D) * 1.05)
    if not over.any():
        return None
    return (
        f"{int(over.sum())} of the {int(single.sum())} single-epoch points are larger than the base law's "
        "compute-optimal size for their tokens: the law has them off the base (excess parameters), so the base fit "
        "on them (the paper's procedure) is biased; add single-epoch runs at 20 or more tokens per parameter"
    )


def fit_group(g, spec, counts: np.ndarray | None):
    """The data-constrained law of one group (the paper's two stages, module docstring) with run-level
    bootstrap intervals. Returns a GroupFit of form "repetition"."""
    from scalelab.fit.bootstrap import intervals, withheld_warning
    from scalelab.fit.records import Identification, RepetitionLaw
    from scalelab.fit.results import GroupFit

    fixed = dict(spec.fixed)
    if bad := [k for k in fixed if k not in PARAMS]:
        raise ScalelabError(f"--fix {', '.join(bad)}: the repetition law has no {bad[0]}; fix E, A, B, alpha or beta")
    single, why, design = check(g, tuple(sorted(fixed.items())), g.name)
    rep = ~single
    base, diag, boot = _base(g, single, spec, fixed, counts)
    N, D, U, L = g.N[rep], g.D[rep], g.U[rep], g.L[rep]
    x = fit_decay(base, N, D, U, L, np.ones((1, N.size)), spec.loss, spec.delta)[0]
    params = {**base, "R_D_star": float(np.exp(x[0])), "R_N_star": float(np.exp(x[1]))}
    r = np.log(g.L) - np.log(predict(params, g.N, g.D, g.U))
    warnings = [w for w in [_excess_note(g, single, base)] if w]
    if spec.holdout or spec.rollout:
        warnings.append("--holdout and --rollout are not available for the repetition law: skipped")
    conf: dict = {}
    samples = None
    if boot is not None and counts is not None:
        xs = fit_decay(boot, N, D, U, L, counts[:, rep], spec.loss, spec.delta)
        nat = {**{k: np.asarray(v, float) for k, v in boot.items()}, "R_D_star": np.exp(xs[:, 0])}
        nat["R_N_star"] = np.exp(xs[:, 1])
        samples = pd.DataFrame(nat)
        conf, withheld = intervals({k: v for k, v in nat.items() if k not in fixed}, params, spec.level)
        conf.update({k: [float(params[k])] * 2 for k in fixed})  # held: its value, not a bootstrap range
        warnings += [withheld_warning(withheld, spec.level)] if withheld else []
    law = RepetitionLaw(int(single.sum()), int(rep.sum()), float(epochs_of(g).max()), float(np.mean(np.expm1(-r[rep]))))
    # each point's unique tokens, by (run, D): the points table (fit/points.py) has no U, and figures need epochs
    diag[POINT_U] = {"run": [str(u) for u in g.unit], "D": g.D.tolist(), "U": g.U.tolist()}
    return GroupFit(
        form="repetition",
        params=params,
        conf_int=conf,
        residual_sd=float(np.std(r)),
        diagnostics=diag,
        warnings=warnings,
        samples=samples,
        identification=Identification(form="repetition", why=why, **design.to_dict()),
        fixed=fixed,
        repetition_law=law,
        **g.described(U=g.U),
    )
