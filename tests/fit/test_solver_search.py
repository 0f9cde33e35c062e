"""How each bootstrap resample searches for its optimum (solver.fit_resamples, cross_seed, linear E steps):
against the converged many-start reference on public data, and the 0.3 search still reachable. Nothing is
timed here: the speed is measured by `scalelab bench fit` (bench/fit.md)."""

import numpy as np
import pandas as pd
import pytest

from scalelab.fit import FitSpec, fit_laws, laws, objective, procedure, solver


def _captured_problem(df, spec):
    """The Problem, form, columns, losses, counts and options fit_laws hands the bootstrap of one group."""
    got = {}
    real = procedure.fit_resamples

    def spy(prob, form, cols, L, W, **kw):
        got.update(args=(prob, form, cols, L, W), kw=kw)
        return real(prob, form, cols, L, W, **kw)

    procedure.fit_resamples = spy
    try:
        fit_laws(df, spec)
    finally:
        procedure.fit_resamples = real
    return got["args"], got["kw"]


@pytest.fixture(scope="module")
def rw_tuned(shared_data):
    """Porian et al.'s rw_tuned configuration (121 points, 1000 run-level resamples): a group where a few starts
    agree on a worse local optimum in about 1% of resamples."""
    df = pd.read_csv(shared_data("external/porian.csv"))
    df = df[df["group"] == "rw_tuned"]
    spec = FitSpec(n_col="N", d_col="D", c_col="C", loss_col="loss", run_col="run", bootstrap=1000, seed=0)
    args, kw = _captured_problem(df, spec)
    prob, form, cols, L, W = args
    ref = solver.fit_resamples(
        *args, **{**kw, "n_starts": 8, "n_screen": 16, "iters": solver.MORE_ITERS, "cross": False}
    )
    return args, kw, ref


def test_re_seeding_the_tails_finds_the_better_optima_that_set_the_interval_ends(rw_tuned):
    """Without re-seeding, some resamples keep a worse optimum than 8 converged starts find, and one of them sets
    beta's upper end; re-seeding moves resamples only to lower objectives and brings that end to the
    reference's."""
    (prob, form, cols, L, W), kw, ref = rw_tuned
    plain = solver.fit_resamples(prob, form, cols, L, W, **{**kw, "cross": False})
    crossed = solver.fit_resamples(prob, form, cols, L, W, **{**kw, "cross": True})
    assert kw["n_starts"] == 2 and crossed.n_crossed > 0 and plain.n_crossed == 0
    assert np.all(crossed.f <= plain.f * (1 + 1e-12))  # a move is taken only when it is better
    worse = lambda bf: int((bf.f > ref.f * (1 + 1e-6)).sum())  # noqa: E731
    assert worse(crossed) < worse(plain)

    def ends(bf):
        nat = laws.to_natural(form, bf.theta)
        return {p: np.percentile(nat[p], [2.5, 97.5]) for p in ("E", "alpha", "beta")}

    e_plain, e_cross, e_ref = ends(plain), ends(crossed), ends(ref)
    gap = lambda e: max(np.abs(e[p] - e_ref[p]).max() for p in e_ref)  # noqa: E731
    assert gap(e_plain) > 1e-3  # the failure the re-seeding is for: a worse optimum at an interval's end
    assert gap(e_cross) < 1e-4


def test_no_re_seeding_where_every_resample_s_starts_agree(chinchilla):
    """Chinchilla's 240 points: every resample's two starts agree, so nothing is re-seeded (no cost)."""
    fit = fit_laws(chinchilla, n_col="Model Size", d_col=None, c_col="Training FLOP", loss_col="loss", bootstrap=200)[
        "all"
    ]
    b = fit.diagnostics["bootstrap"]
    assert b["frac_agreed_first"] == 1.0 and b["n_crossed"] == 0


def _iterations_to_converge(prob, start, best_f, cap=400):
    for it in range(1, cap):
        _, f, _ = solver.polish(prob, start.copy(), np.ones((1, prob.n)), iters=it)
        if f[0] <= best_f * (1 + 1e-6):
            return it
    return cap


def test_a_linear_step_in_e_reaches_the_optimum_from_e_s_lower_bound_sooner():
    """Kaplan-like data (E about 0.9 under a nearly flat A N^-0.097 term: the point fit of such groups puts E at
    its lower bound 1e-4, which is then every resample's warm start). From E = 1e-4, the rest at the optimum,
    steps E (1 + s) reach the optimum in fewer iterations than exp(s) steps, which climb log E a few tenths per
    accepted step."""
    form = laws.FORMS["chinchilla"]
    n_lin = n_exp = 0
    for seed in range(4):
        rng = np.random.default_rng(seed)
        N = np.exp(rng.uniform(np.log(1e7), np.log(1e9), 60))
        D = N * np.exp(rng.uniform(np.log(5), np.log(100), 60))
        L = (0.9 + 11.1 / N**0.097 + 12150 / D**0.44) * np.exp(0.005 * rng.standard_normal(60))
        cols = {"N": np.log(N), "D": np.log(D)}
        best = solver.fit_point(objective.make_problem(form, cols, L), form, cols, L)
        start = best.theta.copy()
        start[0, 0] = np.log(1e-4)
        for linear in (True, False):
            prob = objective.make_problem(form, cols, L)
            prob.linear_e = linear
            assert (solver.linear_coefficients(prob) == [0]) is linear
            it = _iterations_to_converge(prob, start, best.f[0])
            assert it < 400  # both get there
            if linear:
                n_lin += it
            else:
                n_exp += it
    assert n_lin < 0.8 * n_exp


def test_the_0_3_search_is_reachable(rw_tuned):
    """search = "starts": 480 // points starts, exp(s) steps in E, no re-seeding (the 0.3 bootstrap search); its
    exact reproduction of 0.3's fits is tested in test_upgrade.py."""
    (prob, form, cols, L, W), kw, _ = rw_tuned
    assert solver.auto_starts(L.size, "starts") == 3 and solver.auto_starts(L.size) == 2
    spec = FitSpec(n_col="N", d_col="D", loss_col="loss", search="starts")
    assert spec.search == "starts"
    with pytest.raises(Exception, match="unknown search 'more'"):
        FitSpec(n_col="N", d_col="D", loss_col="loss", search="more")
