"""The fit of each group: choose the form, point fit, bootstrap, checks, holdout, a shared E; `fit_laws`.

The per-group procedure (Hoffmann et al. 2022, Approach 3; Besiroglu et al. 2024): the point fit from
many starts (solver.fit_point), every bootstrap resample from its own few starts (solver.fit_batch),
percentile intervals and the compute-optimal quantities of laws.derived, and the diagnostics that say
whether to trust them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from scalelab.config import StructureConfig
from scalelab.errors import ScalelabError
from scalelab.fit import identify, laws
from scalelab.fit.bootstrap import compare as compare_groups
from scalelab.fit.bootstrap import intervals, unit_counts, withheld_warning
from scalelab.fit.groups import GroupData, distinct, drop_top_losses, group_runs, point_weights, split_groups
from scalelab.fit.info import fit_info
from scalelab.fit.objective import Problem, bounds, make_problem
from scalelab.fit.points import attach_points, point_table
from scalelab.fit.records import ComputeOptimal, Holdout, Identification, Rollout, Sweep
from scalelab.fit.results import FitResults, GroupFit
from scalelab.fit.solver import (
    FIRST_ITERS,
    MORE_ITERS,
    auto_starts,
    fit_point,
    fit_resamples,
    fix_parameters,
    polish,
    reseeding,
)
from scalelab.fit.spec import FitSpec, no_time_verdict


def choose_form(N, D, requested: str = "auto", C=None, fixed=(), group: str = "all") -> tuple[str, list[str]]:
    """The form the design identifies and why (identify.choose: from the design alone, before fitting),
    or a one-line ScalelabError naming what is missing. C defaults to 6 N D."""
    C = 6.0 * np.asarray(N, float) * np.asarray(D, float) if C is None else C
    form, why, _ = identify.choose(N, D, C, requested, fixed, group)
    return form, [why]


def _fixed_for(form, spec: FitSpec, group: str) -> dict:
    """The --fix values for a group fitted with `form`; a fixed name the form lacks is an error."""
    bad = [k for k in spec.fixed if k not in form.params]
    if bad:
        raise ScalelabError(
            f"--fix {', '.join(bad)}: group {group!r} is fitted with {form.description}, which has no "
            f"{', '.join(bad)}; fix one of {', '.join(form.params)} (or choose the form with --form)"
        )
    return dict(spec.fixed)


_ALLOCATION = ("N_opt", "D_opt", "tokens_per_param")


def fit_group(g: GroupData, spec: FitSpec, counts: np.ndarray | None):
    """Point fit and bootstrap of one group. counts[K, n]: resample counts per point (None: none).

    Returns (GroupFit with intervals, derived quantities and checks, its Problem, its Form)."""
    from scalelab.fit import repetition

    if repetition.wanted(g, spec.form):  # repeated data: the data-constrained law has its own two-stage fit
        return repetition.fit_group(g, spec, counts), None, laws.FORMS["repetition"]
    form_name, why, design = identify.choose(g.N, g.D, g.C, spec.form, spec.fix, g.name)
    form = laws.FORMS[form_name]
    fixed = _fixed_for(form, spec, g.name)
    if "E" in fixed and fixed["E"] >= g.L.min():  # the other terms are positive: every loss lies above E
        raise ScalelabError(
            f"--fix E={fixed['E']:g}: group {g.name!r} has losses down to {g.L.min():.4g}, and E, the loss no size "
            "or data goes below, must lie under all of them: give a smaller E"
        )
    cols = g.cols()
    pw = point_weights(g, spec.weights)
    prob = make_problem(form, cols, g.L, pw, spec.loss, spec.delta, spec.overestimate_penalty)
    prob.linear_e = spec.search != "starts"
    fix_parameters(prob, form, fixed)
    pt = fit_point(prob, form, cols, g.L)
    theta = pt.theta[0]
    params = {k: float(v) for k, v in laws.to_natural(form, theta).items()}
    r = prob.z - prob.log_pred(theta[None])[0]
    warnings = [w for w in [repetition.repeat_note(g, form_name)] if w]
    n_sizes = distinct(g.N)
    if n_sizes < 5 and form_name in ("chinchilla", "size"):
        warnings.append(f"only {n_sizes} distinct model sizes (fewer than 5): the N exponent is poorly constrained")
    if form_name == "data" and distinct(g.D) < 5:
        warnings.append(f"only {distinct(g.D)} distinct token counts (fewer than 5): beta is poorly constrained")
    n_units = np.unique(g.unit).size
    if counts is not None and n_units < 2:  # every resample is the one run: nothing to measure an error with
        warnings.append(
            f"one run to resample ({g.unit[0]!r}): no bootstrap intervals (every resample is that run); fit a "
            "group of several runs"
        )
        counts = None
    elif counts is not None and n_units < 5:
        warnings.append(f"only {n_units} runs to resample: bootstrap intervals are unreliable")
    if counts is not None and spec.run_col is None:
        per_size = np.unique(np.round(np.log(g.N), 9), return_counts=True)[1].max()
        if per_size > 1:
            warnings.append(
                f"rows are resampled one by one (no --run-col) but sizes repeat (up to {per_size} rows at one N): "
                "if they are checkpoints of one run the intervals are too narrow; name the run column with --run-col"
            )
    if pt.at_bound[0]:
        warnings.append(f"parameter(s) at a bound of the search box: {', '.join(pt.at_bound[0])}")
    diag = pt.point_diagnostics()

    records: dict = {
        "identification": Identification(form=form_name, why=why, **design.to_dict()),
        "fixed": fixed or {},
    }
    c_ref = spec.c_ref if spec.c_ref is not None else float(g.C.max())
    described = g.described()
    k_flops = described["k_flops"]  # C = k N D, as the multipliers read it
    der = {k: float(v) for k, v in laws.derived(form_name, params, c_ref, k_flops).items()}
    if der:
        records["c_ref"] = c_ref
    plaus = identify.plausible_tpp(design.tpp_min, design.tpp_max)
    unidentified = identify.allocation_check(der["tokens_per_param"], plaus) if "tokens_per_param" in der else None
    if "tokens_per_param" in der:
        records["compute_optimal"] = ComputeOptimal(identified=unidentified is None, plausible_tokens_per_param=plaus)
        if unidentified:  # the numbers are not a reading of the data: kept out of `derived`, said in words
            records["compute_optimal"].why = unidentified
            records["compute_optimal"].tokens_per_param = der["tokens_per_param"]
            warnings.append(unidentified)
            der = {k: v for k, v in der.items() if k not in _ALLOCATION}
    conf: dict = {}
    dconf: dict = {}
    samples = None
    if counts is not None and counts.shape[0] > 0:
        W = counts
        bf = fit_resamples(
            prob,
            form,
            cols,
            g.L,
            W,
            n_starts=spec.n_starts or auto_starts(g.L.size, spec.search),
            n_screen=max(8, 2 * (spec.n_starts or auto_starts(g.L.size, spec.search))),
            warm=theta,
            # starts asked for by number are each polished to convergence (the interval reference of bench fit)
            iters=FIRST_ITERS if spec.n_starts is None else MORE_ITERS,
            reseed=reseeding(spec.search) if spec.n_starts is None else None,
        )
        nat = laws.to_natural(form, bf.theta)
        samples = pd.DataFrame({k: np.asarray(v, float) for k, v in nat.items()})
        dsamp = laws.derived(form_name, nat, c_ref, k_flops)
        # a held parameter has no error to measure: its interval is its value, not a bootstrap range
        conf, withheld = intervals({k: v for k, v in nat.items() if k not in fixed}, params, spec.level)
        conf.update({k: [float(params[k])] * 2 for k in fixed})
        dsamp_kept = {k: v for k, v in dsamp.items() if not (unidentified and k in _ALLOCATION)}
        dconf, dwithheld = intervals(dsamp_kept, der, spec.level)
        withheld.update(dwithheld)
        for k in ("a", "b"):
            if k in dsamp_kept:
                samples[k] = dsamp_kept[k]
        if withheld:
            diag["intervals_withheld"] = withheld
            warnings.append(withheld_warning(withheld, spec.level))
        single = float(np.mean(bf.n_at_best < 2))
        bound_frac = float(np.mean([bool(b) for b in bf.at_bound]))
        diag["bootstrap"] = {
            "n_starts": int(bf.n_starts),
            "frac_one_start_at_best": single,
            "frac_at_bound": bound_frac,
            "grad_norm_p99": float(np.percentile(bf.grad_norm, 99)),
            "frac_agreed_first": bf.frac_agreed_first,
            "frac_agreed": bf.frac_agreed,
            "n_raised": bf.n_raised,
            "n_crossed": bf.n_crossed,
            "n_starts_raised": bf.n_starts_raised,
        }
        if bf.frac_agreed < 0.9:
            warnings.append(
                f"in {1 - bf.frac_agreed:.0%} of bootstrap resamples no two of up to "
                f"{max(bf.n_starts_raised, bf.n_starts)} starts reached the same best value: the objective is "
                "rugged (e.g. a small --delta); intervals may be wider than shown"
            )
        if bound_frac > 0.05:
            warnings.append(
                f"{bound_frac:.0%} of bootstrap fits have a parameter at a bound of the search box: "
                "intervals may be truncated"
            )
        warnings += _weakly_identified(params, conf, spec.level)
    if spec.holdout == "largest":
        records["holdout"] = Holdout.from_dict(holdout_largest(g, form_name, spec))
    if spec.rollout:
        from scalelab.fit.rollout import rollout

        records["rollout"] = Rollout.from_dict(rollout(g, form_name, spec))
    gf = GroupFit(
        form=form_name,
        params=params,
        conf_int=conf,
        derived=der,
        derived_conf_int=dconf,
        residual_sd=float(np.std(r, ddof=0)),
        diagnostics=diag,
        warnings=warnings,
        samples=samples,
        **described,
        **records,
    )
    return gf, prob, form


def _weakly_identified(params: dict, conf: dict, level: float) -> list[str]:
    """Plain words for an exponent whose bootstrap interval spans more than a factor 10 (for E: reaches
    below a tenth of its estimate), i.e. the runs do not pin it down: say so rather than let a reader take
    the point estimate at face value. E gets the fix researchers use: hold it at an outside value."""
    out = []
    e_why = identify.e_gap(params.get("E"), conf.get("E"), level) if "E" in conf or "E" in params else None
    if e_why:
        out.append(
            f"{e_why}: the irreducible loss is not visible at this scale; read A and alpha with care, or hold E at "
            "a value from a larger study with --fix E=VALUE"
        )
    for k, (lo, hi) in conf.items():
        est = params.get(k)
        if est is None or not (est > 0) or lo is None or hi is None or not (hi > 0):
            continue
        if k in ("alpha", "beta", "gamma") and lo > 0 and hi / lo > 10:  # coefficients move with them
            out.append(
                f"{k} is weakly identified ({level:.0%} interval [{lo:.3g}, {hi:.3g}] spans {hi / lo:.0f}x): "
                "more sizes or tokens-per-parameter ratios would pin it down"
            )
    return out


def holdout_largest(g: GroupData, form_name: str, spec: FitSpec) -> dict:
    """Refit without the largest size (largest D when N is fixed, largest C for frontier fits) and
    report the relative error of predicting the held-out points."""
    key = {"data": g.D, "frontier": g.C, "power": g.C}.get(form_name, g.N)
    big = key >= key.max() * (1 - 1e-6)
    rest = g.subset(~big)
    what = {"data": "D", "frontier": "C", "power": "C"}.get(form_name, "N")
    out = {"rule": f"largest {what}", "value": float(key.max()), "n_points": int(big.sum())}
    if distinct(key[~big]) < 2 or rest.L.size < len(laws.FORMS[form_name].theta) + 1:
        out.update(mean_rel_error=None, max_rel_error=None, note="too few points left to refit")
        return out
    from scalelab.fit.rollout import predict_held_out

    out.update(predict_held_out(g, ~big, big, form_name, spec))
    return out


def fit_shared_e(groups: list[GroupData], fits: list, spec: FitSpec, counts: list):
    """Joint fit of the chinchilla form over groups sharing E = exp(e), with per-group A, B, alpha, beta.

    Starts: every group's separate fit (point or per resample), with e taken from each group's own E
    in turn; polished jointly. Overwrites each group's E, A, B, alpha, beta (and intervals)."""
    G = len(groups)
    names = ["e"] + [f"{p}{i}" for i in range(G) for p in ("a", "b", "alpha", "beta")]
    L = np.concatenate([g.L for g in groups])
    gi = np.concatenate([np.full(g.L.size, i) for i, g in enumerate(groups)])
    logN = np.concatenate([np.log(g.N) for g in groups])
    logD = np.concatenate([np.log(g.D) for g in groups])
    base = 1 + 4 * gi
    terms = [(base, base + 2, logN), (base + 1, base + 3, logD), (0, None, None)]
    z = np.log(L)
    lo, hi = bounds(names, z, {"N": logN, "D": logD})
    pw = np.concatenate([point_weights(g, spec.weights) for g in groups])
    prob = Problem(names, terms, z, lo, hi, pw, spec.loss, spec.delta, spec.overestimate_penalty)

    def starts_from(thetas):  # thetas: list over groups of [S, 5] separate fits -> [S, G, 1 + 4G]
        S = thetas[0].shape[0]
        rest = np.concatenate([t[:, 1:] for t in thetas], 1)  # [S, 4G]
        out = np.empty((S, G + 1, 1 + 4 * G))
        for j in range(G):
            out[:, j, 0] = thetas[j][:, 0]
            out[:, j, 1:] = rest
        out[:, G, 0] = np.mean([t[:, 0] for t in thetas], 0)
        out[:, G, 1:] = rest
        return out

    point = [laws.to_theta(laws.FORMS["chinchilla"], f.params)[None] for f in fits]
    st = starts_from(point)[0]
    th, f, gn = polish(prob, st, np.ones((st.shape[0], L.size)) * pw, iters=200)
    b = int(np.argmin(f))
    result = {
        "theta": th[b],
        "objective": float(f[b]),
        "grad_norm": float(gn[b]),
        "n_starts_at_best": int(np.sum(f <= f[b] * (1 + 1e-6) + 1e-15)),
        "n_starts": int(f.size),
    }
    result["boot"] = None
    if counts and counts[0] is not None and fits[0].samples is not None:
        thetas = [
            np.stack(
                [
                    np.log(f_.samples["E"]),
                    np.log(f_.samples["A"]),
                    np.log(f_.samples["B"]),
                    f_.samples["alpha"],
                    f_.samples["beta"],
                ],
                -1,
            )
            for f_ in fits
        ]
        st = starts_from(thetas)  # [K, G+1, P]
        K, m, P = st.shape
        Wc = np.concatenate(counts, 1) * pw  # [K, n]
        th, f, _ = polish(prob, st.reshape(K * m, P), np.repeat(Wc, m, 0), iters=60)
        th, f = th.reshape(K, m, P), f.reshape(K, m)
        result["boot"] = th[np.arange(K), np.argmin(f, 1)]
    return prob, result


def _apply_shared_e(groups, fits, spec: FitSpec, counts):
    prob, res = fit_shared_e(groups, fits, spec, counts)
    th = res["theta"]
    E = float(np.exp(th[0]))
    boot = res["boot"]
    for i, f in enumerate(fits):
        a, b, al, be = th[1 + 4 * i : 5 + 4 * i]
        f.params = {"E": E, "A": float(np.exp(a)), "B": float(np.exp(b)), "alpha": float(al), "beta": float(be)}
        c_ref = f.c_ref
        k_flops = laws.flops_per_param_token(groups[i].N, groups[i].D, groups[i].C)
        f.derived = {k: float(v) for k, v in laws.derived("chinchilla", f.params, c_ref, k_flops).items()}
        f.diagnostics["shared_e"] = {k: res[k] for k in ("objective", "grad_norm", "n_starts_at_best", "n_starts")}
        f.shared_e = True
        zhat = prob.log_pred(th[None])[0]
        mask = np.concatenate([np.full(g.L.size, j == i) for j, g in enumerate(groups)])
        f.residual_sd = float(np.std((prob.z - zhat)[mask]))
        if boot is not None:
            nat = {
                "E": np.exp(boot[:, 0]),
                "A": np.exp(boot[:, 1 + 4 * i]),
                "B": np.exp(boot[:, 2 + 4 * i]),
                "alpha": boot[:, 3 + 4 * i],
                "beta": boot[:, 4 + 4 * i],
            }
            f.samples = pd.DataFrame(nat)
            d = laws.derived("chinchilla", nat, c_ref, k_flops)
            f.conf_int, withheld = intervals(nat, f.params, spec.level)
            f.derived_conf_int, dwithheld = intervals(d, f.derived, spec.level)
            withheld.update(dwithheld)
            if withheld:
                f.diagnostics["intervals_withheld"] = withheld
                f.warnings.append(withheld_warning(withheld, spec.level))
            f.samples["a"], f.samples["b"] = d["a"], d["b"]


def _fit_one(g: GroupData, spec: FitSpec, counts: np.ndarray | None) -> GroupFit:
    """fit_group's GroupFit alone (what a worker process sends back)."""
    return fit_group(g, spec, counts)[0]


def default_pairs(fits: Sequence[GroupFit]) -> list[tuple[str, str]]:
    """Every group against "dense" when there is one; else each group against the group that is the same
    variant with a dense FFN (lowrank-32+mup against dense+mup), where the names parse as variants."""
    from scalelab import variant

    dense = [f.name for f in fits if f.key.get("variant") == "dense" or f.name == "dense"]
    if dense:
        return [(dense[0], f.name) for f in fits if f.name != dense[0]]
    by_variant = {}
    for f in fits:
        try:
            by_variant[f.name] = variant.parse(str(f.key.get("variant") or f.name))
        except ScalelabError:
            continue
    named = {variant.name(v): g for g, v in by_variant.items()}
    pairs = []
    for g, v in by_variant.items():
        base = named.get(variant.name(v.replace(ffn=StructureConfig())))
        if base is not None and base != g:
            pairs.append((base, g))
    return pairs


# ---- the public entry point ---------------------------------------------------------------------------------
def shares_runs(groups: list[GroupData]) -> bool:
    """Do some groups hold points of the same run (then they are resampled together, and compared paired)?"""
    n_units = sum(np.unique(g.unit).size for g in groups)
    return len(groups) > 1 and len(set().union(*[set(g.unit) for g in groups])) < n_units


def resample_counts(groups: list[GroupData], spec: FitSpec) -> list:
    """Each group's bootstrap counts [spec.bootstrap, n] (None without a bootstrap): per group independently, or
    jointly (paired) when groups share runs."""
    if spec.bootstrap <= 0:
        return [None] * len(groups)
    if shares_runs(groups):
        allu = np.concatenate([g.unit for g in groups])
        c_all = unit_counts(allu, spec.bootstrap, np.random.default_rng(spec.seed))
        off = np.cumsum([0] + [g.L.size for g in groups])
        return [c_all[:, off[i] : off[i + 1]] for i in range(len(groups))]
    seqs = np.random.SeedSequence(spec.seed).spawn(len(groups))
    return [unit_counts(g.unit, spec.bootstrap, np.random.default_rng(s)) for g, s in zip(groups, seqs)]


def fit_laws(
    df: pd.DataFrame,
    spec: FitSpec | None = None,
    *,
    inputs: list | None = None,
    source: str = "data frame",
    progress=None,
    **options,
) -> FitResults:
    """Fit a scaling law per group of `df` with run-level bootstrap intervals.

    df: one row per (N, D) point. spec: a FitSpec (spec.py) naming the columns and every choice; or pass
    its fields as keywords (n_col, d_col, loss_col, c_col, run_col, by, form, bootstrap, seed, level, loss,
    delta, weights, overestimate_penalty, share_e, holdout, compare, c_ref, flop_convention, n_starts,
    approach, drop_top_loss, ...), which also override those of a given spec. inputs: provenance records of
    the input files; source names the input in errors; progress(group name) is called per fitted group.
    Approaches 1 and 2 (spec.approach) go to approaches.fit_allocation. Returns FitResults (results.py).
    throughput=: a bench train table's throughput by shape (plan/throughput_model.py), the time verdict's basis
    instead of the runs' own timing (fit/timing.py)."""
    throughput = options.pop("throughput", None)
    spec = FitSpec(**options) if spec is None else spec.replace(**options) if options else spec
    if throughput is not None and not hasattr(throughput, "rate"):
        raise ScalelabError("throughput= takes a loaded bench table: plan.throughput_model.load(paths)")
    if throughput is not None and (spec.share_col or spec.approach in (1, 2)):  # never silently ignored
        raise ScalelabError(no_time_verdict(spec.share_col, spec.approach))
    df = drop_top_losses(df, spec.loss_col, spec.drop_top_loss)
    if spec.share_col:  # one law per structure kind across its FFN shares (fit/share.py)
        from scalelab.fit.share import fit_share_laws

        return fit_share_laws(df, spec, inputs=inputs, source=source, progress=progress)
    sweep_record, lr_laws = None, {}
    from scalelab.fit import hyper

    swept = hyper.swept(df, spec)  # a hyperparameter sweep in the input: the envelope, and lr_opt(N) per group
    all_points = df
    if swept:
        if ("lr" in swept or "batch_size" in swept) and spec.approach == 3:
            lr_laws = hyper.fit_lr_laws(df, spec)  # {group: {"lr": law, "batch": law}}
        if spec.envelope:
            df, sweep_record = hyper.envelope(df, spec, swept)
        else:
            sweep_record = hyper.describe(swept, len(df), len(df), False)
    if spec.approach in (1, 2):
        from scalelab.fit.approaches import fit_allocation

        res = fit_allocation(df, spec, source=source, inputs=inputs)
        if sweep_record:
            res.info.sweep = Sweep.from_dict(sweep_record)
        attach_points(res.groups, point_table(all_points, spec, df.index, swept))
        return res
    # a group whose loss law the design refuses but whose sweep gives a law keeps that law (_split_sweeps)
    groups, refused = _split_sweeps(df, spec, source, lr_laws) if lr_laws else (split_groups(df, spec, source), {})

    counts = resample_counts(groups, spec)
    shared_runs = shares_runs(groups)

    from scalelab.fit import parallel  # independent groups with resamples: side by side on the cores

    fits = parallel.map_groups(
        _fit_one,
        [(g, spec, c) for g, c in zip(groups, counts)],
        parallel.workers(len(groups), spec.bootstrap),
        progress and (lambda i: progress(groups[i].name)),
    )

    if spec.share_e:
        if len(groups) < 2:
            raise ScalelabError("--share-e needs at least two groups (--by)")
        bad = [f.name for f in fits if f.form != "chinchilla"]
        if bad:
            raise ScalelabError(
                f"--share-e fits the L(N, D) form, but group(s) {', '.join(bad)} cannot take it "
                "(fixed N or D, or confounded): drop --share-e or those groups"
            )
        _apply_shared_e(groups, fits, spec, counts)
    separate = None  # --share-exponents: the separate fits, which say whether one set of exponents fits
    if spec.share_exponents:
        from scalelab.fit.shared import apply_shared_exponents

        separate = apply_shared_exponents(groups, fits, spec, counts, _weakly_identified)

    comparisons = []
    byname = {f.name: f for f in fits}
    pairs: Sequence[tuple[str, str]] | None = spec.compare
    if pairs is None:
        pairs = default_pairs(fits)
    for a, b in pairs:
        for x in (a, b):
            if x not in byname:
                raise ScalelabError(f"--compare: no group {x!r}; groups are {', '.join(byname)}")
        fa, fb = byname[a], byname[b]
        if fa.samples is None or fb.samples is None:
            continue
        if separate is not None:  # exponent differences are 0 by construction: compare coefficients
            from scalelab.fit.shared import compare_shared

            comparisons.append(compare_shared(fa, fb, separate, spec.level, shared_runs))
            continue
        pa = {**fa.params, **fa.derived}
        pb = {**fb.params, **fb.derived}
        comparisons.append(
            compare_groups(
                a,
                {k: fa.samples[k] for k in fa.samples},
                pa,
                b,
                {k: fb.samples[k] for k in fb.samples},
                pb,
                spec.level,
                paired=shared_runs,
            )
        )
    from scalelab.fit.multiplier import add_compute_verdicts

    joint = bool(shared_runs or spec.share_e or spec.share_exponents)
    add_compute_verdicts(comparisons, byname, spec.at_flops, spec.level, joint)
    if throughput is not None:
        from scalelab.fit.timing import add_time_verdicts

        add_time_verdicts(comparisons, byname, throughput)
    info = fit_info(spec, inputs)
    info.bootstrap.paired = bool(shared_runs)
    if sweep_record:
        info.sweep = Sweep.from_dict(sweep_record)
    for f in fits:  # the lr and batch laws (fit/hyper.py) beside the group's law; their draws as sample columns
        if f.name in lr_laws:
            hyper.attach(f, lr_laws[f.name])
    out = {f.name: f for f in fits}
    for name, (sub, why) in refused.items():
        out[name] = _sweep_only(sub, spec, name, why, lr_laws[name])
    order = list(dict.fromkeys(hyper.group_names(df, spec.by)))  # the groups in order of appearance
    info.share_exponents = bool(spec.share_exponents)
    info.at_flops = list(spec.at_flops) if spec.at_flops else None
    attach_points(out, point_table(all_points, spec, df.index, swept))
    return FitResults({k: out[k] for k in order if k in out}, comparisons, info)


def _split_sweeps(df: pd.DataFrame, spec: FitSpec, source: str, hyper_laws: dict):
    """split_groups one group at a time, keeping apart as refused ({name: (rows, reason)}) a group that has a
    hyperparameter law but whose points cannot carry a loss law: fewer than 3 points, one (N, D), or a
    design identify.choose refuses. Any other problem (columns, values) is an error as always."""
    from scalelab.fit import hyper

    names = hyper.group_names(df, spec.by)
    subs = {name: df[(names == name).to_numpy()] for name in dict.fromkeys(names)}
    few = {name: why for name in hyper_laws if name in subs and (why := _too_few(subs[name], spec))}
    if few:  # split the others one by one
        split = [g for name, sub in subs.items() if name not in few for g in split_groups(sub, spec, source)]
    else:  # all at once, as without a sweep (errors name rows of the whole input)
        split = split_groups(df, spec, source)
    groups, refused = [], {name: (subs[name], why) for name, why in few.items()}
    for g in split:
        name = g.name
        if name in hyper_laws:
            try:
                identify.choose(g.N, g.D, g.C, spec.form, spec.fix, g.name)
            except ScalelabError as e:
                refused[name] = (subs[name], str(e).removeprefix(f"group {name!r}: "))
                continue
        groups.append(g)
    return groups, refused


def _too_few(sub: pd.DataFrame, spec: FitSpec) -> str | None:
    """Why a group's (valid) points are too few for any loss law, or None (also when a value is invalid:
    split_groups then names it)."""
    from scalelab.fit import hyper

    cols = [c for c in (spec.n_col, spec.loss_col, spec.d_col, spec.c_col) if c]
    if any(c not in sub.columns for c in cols):
        return None
    v = sub[cols].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    if not (np.isfinite(v).all() and (v > 0).all()):
        return None
    N, D = sub[spec.n_col].astype(float), hyper.tokens_of(sub, spec)
    if len(sub) < 3:
        return f"{len(sub)} point(s) after the envelope over the sweep; a loss law needs at least 3"
    if distinct(N.to_numpy()) == 1 and distinct(D.to_numpy()) == 1:
        return "every point has the same N and D; a loss law needs several sizes or token counts"
    return None


def _sweep_only(sub: pd.DataFrame, spec: FitSpec, name: str, why: str, laws_: dict) -> GroupFit:
    """The fit-file group of a sweep whose loss law was refused: form "none", no parameters, one warning
    "loss law not fitted: WHY", `loss_law_refused` = WHY, and its hyperparameter laws."""
    from scalelab.fit import hyper

    N = sub[spec.n_col].astype(float).to_numpy()
    D = hyper.tokens_of(sub, spec).to_numpy()
    C = sub[spec.c_col].astype(float).to_numpy() if spec.c_col else 6.0 * N * D
    L = sub[spec.loss_col].astype(float).to_numpy()
    unit = sub[spec.run_col].astype(str).to_numpy() if spec.run_col else np.array([f"row{i}" for i in range(len(sub))])
    key = {c: (lambda v: v.item() if hasattr(v, "item") else v)(sub[c].iloc[0]) for c in spec.by}
    g = GroupData(name, key, N, D, C, L, unit)
    g.runs = group_runs(sub, g, spec.run_col)
    gf = GroupFit(
        form="none", params={}, warnings=[f"loss law not fitted: {why}"], loss_law_refused=why, **g.described()
    )
    hyper.attach(gf, laws_)
    return gf
