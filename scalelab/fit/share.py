"""The law across FFN shares (`--share-col`): per structure kind, one joint fit over its runs at several kept
shares f of the dense FFN's weights (dense is f = 1 and anchors every kind), with one E and one set of
exponents, the share entering as effective-size multipliers (Volkova et al. 2026's per-arm rho factors,
made a power of f so that they are continuous in f and 1 at f = 1):

    L(N, D, f) = E + A / (N f^rho_N)^alpha + B / (D f^rho_D)^beta        (laws.FORMS["share"])

N is the structured model's own parameter count, so rho_N < 0 says a structured parameter is worth more than
a dense one (f^rho_N > 1 at f < 1), rho_N > 0 less. Objective: the Huber loss on log loss of every fit
(objective.Problem's loss), minimised over theta = (e, a, b, alpha, beta, rho_N, rho_D) by L-BFGS-B from a
pooled Chinchilla fit; bootstrap by run (bootstrap.unit_counts) as everywhere. Whether the shares share
their exponents is read from each share's own Chinchilla fit on the same resamples (as fit/shared.py does).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.fit import identify, laws
from scalelab.fit.bootstrap import intervals, percentile_interval, unit_counts, withheld_warning
from scalelab.fit.groups import GroupData, distinct, point_weights, split_groups
from scalelab.fit.info import fit_info
from scalelab.fit.io import show_value
from scalelab.fit.objective import Problem, bounds, make_problem
from scalelab.fit.records import Estimate, ShareLaw, ShareRow
from scalelab.fit.results import FitResults, GroupFit
from scalelab.fit.solver import fit_point, fit_resamples, reseeding

FORM = laws.FORMS["share"]
MIN_SHARES = 3  # distinct shares, dense included: two would make rho a two-point line through each arm
MIN_SIZES = 2  # distinct sizes at every share: rho_N and rho_D move the law differently only along N and D
RHO_BOX = 5.0  # |rho| bound: f^5 at f = 0.3 is a 400x effective size, beyond any structure
_RHO_STARTS = (-1.0, 0.0, 1.0)
DENSE_TOL = 1e-9
LEVEL_TOL = 0.1  # shares closer than 10% in log are one level (widths round a kept fraction's rank apart)


# ---- the shares and the kinds -----------------------------------------------------------------------------
def read_shares(df: pd.DataFrame, spec, source: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(share per row, structure kind per row or None): from the --share-col column, or with --share-col
    config from each run's model config (structured FFN params over the dense FFN's; dense: 1)."""
    col = spec.share_col
    if col == "config":
        return _config_shares(df, source)
    if col not in df.columns:
        raise ScalelabError(
            f"{source}: no share column {col!r} (--share-col); columns present: {', '.join(map(str, df.columns))}"
        )
    f = pd.to_numeric(df[col], errors="coerce").to_numpy(float)
    bad = ~np.isfinite(f) | (f <= 0) | (f > 1 + DENSE_TOL)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ScalelabError(
            f"{source}: column {col!r} has {int(bad.sum())} share(s) outside (0, 1] (first at row {i + 1}: "
            f"{show_value(df[col].iloc[i])}); a kept FFN share is structured FFN params / dense FFN params, dense = 1"
        )
    return np.minimum(f, 1.0), None


def _config_shares(df: pd.DataFrame, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Shares and kinds from the runs' configs (the run store's `config` column, read again when the fit's
    reader left it out)."""
    from scalelab import store, structures
    from scalelab.config import ModelConfig

    cfgs = df["config"] if "config" in df.columns else None
    if cfgs is None:
        files = sorted(set(df["_file"].astype(str))) if "_file" in df.columns else []
        if not files or "run_id" not in df.columns:
            raise ScalelabError(f"{source}: --share-col config needs run-store input (its config column)")
        runs = store.read_runs(files, columns=["run_id", "config"]).drop_duplicates("run_id")
        cfgs = df["run_id"].map(dict(zip(runs["run_id"], runs["config"])))
    shares, kinds = [], []
    for i, text in enumerate(cfgs):
        try:
            cfg = ModelConfig.from_dict(json.loads(text)["model"])
        except (TypeError, KeyError, ValueError) as e:
            raise ScalelabError(
                f"{source}: row {i} has no readable model config ({e}): cannot derive its share"
            ) from None
        dense = cfg.ffn.kind == "dense"
        shares.append(1.0 if dense else structures.ffn_fraction(cfg.ffn, cfg.d_model, cfg.ffn_width))
        kinds.append(cfg.ffn.kind)
    return np.array(shares, float), np.array(kinds, object)


def kind_groups(df: pd.DataFrame, spec, source: str) -> list[tuple[GroupData, np.ndarray]]:
    """(points, share per point) of every structure kind: its rows below share 1 with every dense row. Kinds:
    the configs' structure kind, else the --by columns of the structured rows (one group "all" without)."""
    share, kinds = read_shares(df, spec, source)
    dense = share >= 1 - DENSE_TOL
    if not dense.any():
        raise ScalelabError(f"{source}: no dense rows (share 1) to anchor the law across shares: add the dense runs")
    if dense.all():
        raise ScalelabError(
            f"{source}: every row has share 1 (dense): a law across shares needs structured runs at shares below 1"
        )
    by = list(spec.by) if kinds is None else []
    if kinds is None:
        missing = [c for c in by if c not in df.columns]
        if missing:
            raise ScalelabError(f"{source}: missing column(s) {', '.join(map(repr, missing))} (--by)")
        kinds = (df[by].astype(str).agg("/".join, axis=1) if by else pd.Series(["all"] * len(df))).to_numpy()
    flat = spec.replace(by=(), share_col=None, form="auto")
    out = []
    for name in dict.fromkeys(kinds[~dense]):
        rows = dense | (kinds == name)
        sub = df[rows].reset_index(drop=True)
        g = split_groups(sub, flat, source)[0]
        g.name, g.key = str(name), {"structure": str(name)}
        if by:
            g.key = {c: str(sub.loc[~dense[rows], c].iloc[0]) for c in by}
        out.append((g, share[rows]))
    return out


def check_design(name: str, f: np.ndarray, N: np.ndarray, hint: str = "", D: np.ndarray | None = None) -> list[float]:
    """The distinct shares of a kind, ascending, or a one-line refusal naming what is missing (and `hint`).
    With D: each share's tokens/param must also spread at a given size (identify.py's separation), else N and
    D are confounded there and rho_N, rho_D (and alpha, beta) trade off along the design's line."""
    levels = _levels(f)
    if len(levels) < MIN_SHARES:
        raise ScalelabError(
            f"kind {name!r} has {len(levels)} distinct share(s) ({', '.join(f'{x:.3g}' for x in levels)}); a law "
            f"across shares needs at least {MIN_SHARES} including dense (f = 1): train another share{hint}"
        )
    for x in levels:
        n = distinct(N[_at(f, x)])
        if n < MIN_SIZES:
            raise ScalelabError(
                f"kind {name!r}: share {x:.3g} has {n} model size(s); each share needs at least {MIN_SIZES} "
                "to tell its size multiplier from its data multiplier: train another size there"
            )
        if D is not None:
            m = _at(f, x)
            d = identify.describe(N[m], D[m], N[m] * D[m])
            if identify.separation_short(d) > 1:
                raise ScalelabError(
                    f"kind {name!r}: share {x:.3g} has its runs at nearly one tokens-per-param ratio "
                    f"({d.tpp_min:.3g}-{d.tpp_max:.3g}, {d.separation:.3g}x apart at a given size): N and D are "
                    f"confounded, so rho_N, rho_D, alpha and beta are not identified; add runs there at "
                    f"{identify.SEPARATION_MIN:g}x fewer and {identify.SEPARATION_MIN:g}x more tokens/param"
                )
    return levels


def _levels(f: np.ndarray) -> list[float]:
    """The kind's share levels: shares within LEVEL_TOL (in log) of their neighbour are one level (a kept
    fraction's rank rounds differently at each width: 0.312 at one, 0.326 at another), named by their
    geometric mean; dense is its own level, 1."""
    s = np.sort(np.unique(f))
    cuts = np.flatnonzero(np.diff(np.log(s)) > LEVEL_TOL) + 1
    groups = np.split(s, cuts)
    return [1.0 if g[-1] >= 1 - DENSE_TOL else float(np.exp(np.mean(np.log(g)))) for g in groups]


def _at(f: np.ndarray, x: float) -> np.ndarray:
    """The points at level x (of _levels)."""
    return np.abs(np.log(f) - np.log(x)) <= LEVEL_TOL


# ---- the objective -----------------------------------------------------------------------------------------
class ShareObjective:
    """Huber (or least squares) on log loss of the share law, batched over S parameter vectors theta[S, 7]
    (starts x resamples, a resample being a row of point weights), minimised by damped Gauss-Newton with the
    curvature weights of objective.Problem (IRLS for Huber), clipped to the box."""

    def __init__(self, g: GroupData, f: np.ndarray, spec):
        self.lN, self.lD, self.lf = np.log(g.N), np.log(g.D), np.log(f)
        z = np.log(g.L)
        self.loss = Problem(list(FORM.theta), [], z, np.zeros(7), np.zeros(7), point_weights(g, spec.weights))
        self.loss.loss, self.loss.delta, self.loss.over_penalty = spec.loss, spec.delta, spec.overestimate_penalty
        lo, hi = bounds(FORM.theta[:5], z, {"N": self.lN, "D": self.lD})
        self.lo = np.concatenate([lo, [-RHO_BOX] * 2])
        self.hi = np.concatenate([hi, [RHO_BOX] * 2])

    def log_pred(self, th: np.ndarray, jac: bool = False):
        """theta[S, 7] -> log L_hat[S, n] (and d log L_hat / d theta [S, 7, n])."""
        e, a, b, al, be, rn, rd = (th[:, i : i + 1] for i in range(7))
        xN, xD = self.lN + rn * self.lf, self.lD + rd * self.lf
        T = np.stack([a - al * xN, b - be * xD, np.broadcast_to(e, xN.shape)])
        m = T.max(0)
        p = np.exp(T - m)
        tot = p.sum(0)
        zhat = m + np.log(tot)
        if not jac:
            return zhat
        p = p / tot
        J = np.stack([p[2], p[0], p[1], -p[0] * xN, -p[1] * xD, -p[0] * al * self.lf, -p[1] * be * self.lf], 1)
        return zhat, J

    def value(self, th: np.ndarray, W: np.ndarray) -> np.ndarray:
        return self.loss.rho(self.loss.z - self.log_pred(th), W).sum(1)

    def polish(self, th: np.ndarray, W: np.ndarray, iters: int = 300) -> tuple[np.ndarray, np.ndarray]:
        """Levenberg-Marquardt from every row of th under the weights W[S, n]: (theta[S, 7], objective[S])."""
        th = np.clip(np.array(th, float), self.lo, self.hi)
        f = self.value(th, W)
        lam = np.full(len(th), 1e-3)
        eye = np.eye(7)
        for _ in range(iters):
            zhat, J = self.log_pred(th, jac=True)
            psi, curv = self.loss.psi_curv(self.loss.z - zhat, W)
            g = -np.einsum("spn,sn->sp", J, psi)
            H = np.einsum("spn,sqn->spq", J * curv[:, None, :], J)
            d = np.einsum("spp->sp", H)
            A = H + lam[:, None, None] * (d[:, :, None] * eye + 1e-12 * eye)
            new = np.clip(th - np.linalg.solve(A, g[..., None])[..., 0], self.lo, self.hi)
            fn = self.value(new, W)
            ok = fn < f
            done = ok & (f - fn <= 1e-12 * np.abs(f) + 1e-18) | ~ok & (lam > 1e8)
            th[ok], f[ok] = new[ok], fn[ok]
            lam = np.where(ok, np.maximum(lam * 0.3, 1e-9), lam * 10)
            if done.all():
                break
        return th, f


def _pooled_start(g: GroupData) -> np.ndarray:
    """A Chinchilla law through every point of the kind, ignoring the share: where the joint fit starts."""
    ch = laws.FORMS["chinchilla"]
    prob = make_problem(ch, g.cols(), g.L)
    return fit_point(prob, ch, g.cols(), g.L, n_starts=16).theta[0]


# ---- one kind ------------------------------------------------------------------------------------------------
def fit_kind(g: GroupData, f: np.ndarray, spec, counts: np.ndarray | None) -> GroupFit:
    """The share law of one kind: point fit, run-level bootstrap, per-share multipliers and separate fits."""
    hint = (
        ", or group by structure kind (--by), not by variant"
        if "variant" in spec.by and spec.share_col != "config"
        else ""
    )
    levels = check_design(g.name, f, g.N, hint, g.D)
    obj = ShareObjective(g, f, spec)
    base = _pooled_start(g)
    starts = np.array([[*base, rn, rd] for rn in _RHO_STARTS for rd in _RHO_STARTS])
    w = obj.loss.point_w
    th, fv = obj.polish(starts, np.broadcast_to(w, (len(starts), w.size)))
    theta, fval = th[int(np.argmin(fv))], float(fv.min())
    n_best = int(np.sum(fv <= fval + 1e-6 * abs(fval) + 1e-15))
    params = {k: float(v) for k, v in laws.to_natural(FORM, theta).items()}
    r = obj.loss.z - obj.log_pred(theta[None])[0]
    zhat, J = obj.log_pred(theta[None], jac=True)
    psi = obj.loss.psi_curv(obj.loss.z - zhat, w[None])[0]
    grad = float(np.linalg.norm(np.einsum("spn,sn->sp", J, psi)))
    diag: dict = {"objective": fval, "grad_norm": grad, "n_starts_at_best": n_best, "n_starts": len(starts)}
    warnings: list[str] = []
    at_bound = [FORM.params[i] for i in range(7) if min(theta[i] - obj.lo[i], obj.hi[i] - theta[i]) < 1e-6]
    diag["at_bound"] = at_bound
    if at_bound:
        warnings.append(f"parameter(s) at a bound of the search box: {', '.join(at_bound)}")
    samples, conf = None, dict[str, list]()
    if counts is not None and counts.shape[0]:
        boot = _resamples(obj, theta, np.array([*base, 0.0, 0.0]), counts * w)
        nat = laws.to_natural(FORM, boot)
        samples = pd.DataFrame({k: np.asarray(v, float) for k, v in nat.items()})
        conf, withheld = intervals(nat, params, spec.level)
        if withheld:
            diag["intervals_withheld"] = withheld
            warnings.append(withheld_warning(withheld, spec.level))
    if np.unique(g.unit).size < 5 and counts is not None:
        warnings.append(f"only {np.unique(g.unit).size} runs to resample: bootstrap intervals are unreliable")
    rows, draws = _share_rows(g, f, levels, params, samples, r, spec, counts)
    law = ShareLaw(kind=g.name, shares=levels, rows=rows)
    _verdict(law, draws, spec.level)
    if law.rejects_shared:
        warnings.append(law.verdict)
    return GroupFit(
        form="share",
        params=params,
        conf_int=conf,
        residual_sd=float(np.std(r)),
        diagnostics=diag,
        warnings=warnings,
        samples=samples,
        share_law=law,
        **g.described(share=f),
    )


def _resamples(obj: ShareObjective, theta: np.ndarray, back: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Every resample's optimum from two starts, the point fit's and the pooled law's with rho = 0."""
    K = W.shape[0]
    th, fv = obj.polish(np.concatenate([np.tile(theta, (K, 1)), np.tile(back, (K, 1))]), np.tile(W, (2, 1)))
    th, fv = th.reshape(2, K, 7), fv.reshape(2, K)
    return th[np.argmin(fv, 0), np.arange(K)]


def _share_rows(g, f, levels, params, samples, r, spec, counts) -> tuple[list[ShareRow], list[dict]]:
    """Per share: runs, sizes, the multipliers f^rho with intervals, residual sd, the separate fit's exponents
    (and its bootstrap draws of alpha and beta, {} when none)."""
    rows, draws = [], []
    for x in levels:
        m = _at(f, x)
        row = ShareRow(share=x, n_runs=int(np.unique(g.unit[m]).size), n_sizes=distinct(g.N[m]))
        row.residual_sd, row.mean_residual = float(np.std(r[m])), float(np.mean(r[m]))
        for arm in ("N", "D"):
            est = x ** params[f"rho_{arm}"]
            lo = hi = float("nan")
            if samples is not None:
                lo, hi = percentile_interval(x ** samples[f"rho_{arm}"].to_numpy(float), spec.level)
            setattr(row, f"m_{arm}", Estimate(float(est), lo, hi))
        draws.append(_separate(row, g.subset(m), spec, None if counts is None else counts[:, m]))
        rows.append(row)
    return rows, draws


def _separate(row: ShareRow, g: GroupData, spec, counts) -> dict:
    """The share's own Chinchilla fit (same resamples): its alpha and beta on the row, or why it has none.
    Returns its bootstrap draws of alpha and beta ({} when none) for the exponent test of `_verdict`."""
    try:
        form, _, _ = identify.choose(g.N, g.D, g.C, "chinchilla", (), g.name)
    except ScalelabError as e:
        row.note = f"no separate fit: {str(e).split(': ', 1)[-1]}"
        return {}
    ch = laws.FORMS[form]
    prob = make_problem(ch, g.cols(), g.L, point_weights(g, spec.weights), spec.loss, spec.delta)
    prob.linear_e = spec.search != "starts"
    pt = fit_point(prob, ch, g.cols(), g.L)
    est = laws.to_natural(ch, pt.theta[0])
    draws = {}
    if counts is not None and counts.shape[0]:
        used = counts.sum(1) > 0  # a resample that drew none of this share's runs says nothing about it
        bf = fit_resamples(prob, ch, g.cols(), g.L, counts[used], warm=pt.theta[0], reseed=reseeding(spec.search))
        nat = laws.to_natural(ch, bf.theta)
        for k in ("alpha", "beta"):
            d = np.full(counts.shape[0], np.nan)
            d[used] = nat[k]
            draws[k] = d
    for k in ("alpha", "beta"):
        lo, hi = percentile_interval(draws[k], spec.level) if draws else (float("nan"), float("nan"))
        setattr(row, k, Estimate(float(est[k]), lo, hi))
    return draws


def _verdict(law: ShareLaw, draws: list[dict], level: float) -> None:
    """Do the shares' separate fits reject one set of exponents? Each share's alpha and beta minus dense's, on
    the same resamples: a difference whose interval excludes 0 rejects them."""
    rows, dd = law.rows, draws[-1]
    if not dd:
        law.verdict = f"shared exponents not tested: {rows[-1].note or 'no bootstrap (--bootstrap 0)'}"
        return
    found, tested = [], []
    for row, rd in zip(rows[:-1], draws[:-1]):
        if not rd:
            continue
        for k in ("alpha", "beta"):
            lo, hi = percentile_interval(rd[k] - dd[k], level)
            tested.append(row.share)
            if lo > 0 or hi < 0:
                diff = getattr(row, k).est - getattr(rows[-1], k).est
                found.append(f"{k} at share {row.share:.3g} {diff:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    if not tested:
        law.verdict = "shared exponents not tested: no structured share has a separate fit"
        return
    law.rejects_shared = bool(found)
    law.verdict = (
        f"the data reject shared exponents for {law.kind}: the separate fits differ from dense in {'; '.join(found)}; "
        "read the separate per-share fits (drop --share-col) for this kind"
        if found
        else f"the separate per-share fits show no exponent difference from dense at {level:.0%}: shared exponents hold"
    )


# ---- the public entry point ------------------------------------------------------------------------------
def fit_share_laws(df: pd.DataFrame, spec, *, inputs=None, source: str = "data frame", progress=None) -> FitResults:
    """One share law per structure kind (module docstring); fit_laws dispatches here under --share-col."""
    if spec.share_e or spec.share_exponents or spec.approach != 3 or spec.fix or spec.holdout or spec.rollout:
        raise ScalelabError(
            "--share-col fits its own joint law (one E and exponents per kind): drop --share-e, "
            "--share-exponents, --approach, --fix, --holdout and --rollout"
        )
    groups = kind_groups(df, spec, source)
    seqs = np.random.SeedSequence(spec.seed).spawn(len(groups))
    out = {}
    for (g, f), seq in zip(groups, seqs):
        counts = unit_counts(g.unit, spec.bootstrap, np.random.default_rng(seq)) if spec.bootstrap > 0 else None
        out[g.name] = fit_kind(g, f, spec, counts)
        out[g.name].points = pd.DataFrame(
            {"run": g.unit, "N": g.N, "D": g.D, "C": g.C, "loss": g.L, "fitted": True, "share": f}
        )
        if progress:
            progress(g.name)
    info = fit_info(spec, inputs)
    return FitResults(out, [], info)
