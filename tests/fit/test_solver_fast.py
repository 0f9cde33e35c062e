"""The fast bootstrap path (solver.fit_resamples with the point fit's optimum as a start, Problem.gn_system,
projected steps at bounds) against independent computations and the multi-start reference. Nothing is timed
here: the speed is measured by `scalelab bench fit` (bench/fit.md)."""

import numpy as np
import pandas as pd
import pytest

from scalelab.fit import fit_laws, laws, objective, solver

from .conftest import synthetic


def _problem(form_name, seed=0, n=40):
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(1e7), np.log(1e9), n))
    D = N * np.exp(rng.uniform(np.log(5), np.log(100), n))
    L = (1.8 + 400 / N**0.34 + 2000 / D**0.37) * np.exp(0.02 * rng.standard_normal(n))
    cols = {"N": np.log(N), "D": np.log(D), "C": np.log(6 * N * D)}
    form = laws.FORMS[form_name]
    return objective.make_problem(form, cols, L), form, cols, L


@pytest.mark.parametrize("form_name", list(laws.FORMS))
def test_gn_system_equals_the_jacobian_products(form_name):
    """g = -J psi and H = J diag(c) J^T from the explicit Jacobian of log_pred, for every form, at points
    spread over the box, with bootstrap-like integer weights."""
    prob, _, _, _ = _problem(form_name)
    assert prob.scalar_terms
    rng = np.random.default_rng(1)
    lo, hi = np.maximum(prob.lo, -5.0), np.minimum(prob.hi, 15.0)
    theta = lo + (hi - lo) * rng.random((7, prob.P))
    W = rng.poisson(1.0, (7, prob.n)).astype(float)
    zhat, p = prob.terms_eval(theta)
    zref, J = prob.log_pred(theta, jac=True)
    np.testing.assert_allclose(zhat, zref, rtol=1e-12, atol=1e-12)
    r = prob.z - zhat
    psi, curv = prob.psi_curv(r, W)
    g, H = prob.gn_system(p, r, W)
    np.testing.assert_allclose(g, -(J @ psi[..., None])[..., 0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(H, (J * curv[:, None, :]) @ J.transpose(0, 2, 1), rtol=1e-9, atol=1e-12)


def test_shifted_and_unshifted_log_sum_exp_agree():
    prob, _, _, _ = _problem("chinchilla")
    theta = np.array([[0.5, 6.0, 8.0, 0.3, 0.4], [-2.0, 20.0, 1.0, 1.2, 0.1]])
    assert prob._unshifted()
    z1, p1 = prob.terms_eval(theta)
    prob._unshift = False  # force the max-shifted branch
    z2, p2 = prob.terms_eval(theta)
    np.testing.assert_allclose(z1, z2, rtol=1e-13)
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(np.broadcast_to(a, z1.shape), np.broadcast_to(b, z1.shape), rtol=1e-12)


def test_fast_polish_takes_the_generic_steps_inside_the_box():
    """Away from the bounds the Jacobian-free polish is the same iteration as the generic one."""
    prob, _, _, _ = _problem("chinchilla", seed=2)
    rng = np.random.default_rng(3)
    theta = np.array([0.6, 6.0, 7.6, 0.34, 0.37]) + rng.normal(0, 0.05, (20, 5))
    W = rng.poisson(1.0, (20, prob.n)).astype(float)
    a = solver._polish_terms(prob, theta, W, 30, 1e-10)
    b = solver._polish(prob, theta, W, 30, 1e-10)
    inside = ~((a[0] <= prob.lo + 1e-9) | (b[0] <= prob.lo + 1e-9)).any(1)  # a resample can drive A to 0
    assert inside.sum() >= 15
    np.testing.assert_allclose(a[0][inside], b[0][inside], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(a[1][inside], b[1][inside], rtol=1e-7)


def test_a_parameter_at_its_bound_is_held_and_the_rest_converge():
    """Data without an irreducible loss: E goes to its lower bound. The projected step holds e there and
    reaches a lower objective than the clipped generic step in the same iterations."""
    rng = np.random.default_rng(4)
    N = np.exp(rng.uniform(np.log(1e7), np.log(1e9), 60))
    D = N * np.exp(rng.uniform(np.log(5), np.log(100), 60))
    L = (40 / N**0.2 + 300 / D**0.3) * np.exp(0.01 * rng.standard_normal(60))
    cols = {"N": np.log(N), "D": np.log(D)}
    prob = objective.make_problem(laws.FORMS["chinchilla"], cols, L)
    start = np.array([[np.log(0.5), np.log(40), np.log(300), 0.25, 0.25]])
    W = np.ones((1, 60))
    th_a, f_a, _, cap = solver.polish(prob, start, W, iters=400, capped=True)
    th_b, f_b, _, _ = solver._polish(prob, start, W, 400, 1e-10)
    assert th_a[0, 0] == pytest.approx(prob.lo[0])
    assert f_a[0] <= f_b[0] * (1 + 1e-9)
    assert not cap[0]
    assert th_a[0, 3] == pytest.approx(0.2, abs=0.03) and th_a[0, 4] == pytest.approx(0.3, abs=0.03)


def test_small_problems_polish_in_one_block_and_large_ones_in_threads_alike(monkeypatch):
    """polish runs a small problem's starts in one block in the calling thread and splits a large one over
    threads: the same starts, forced through either way, end at the same optimum, each in its own row."""
    prob, _, _, _ = _problem("chinchilla", seed=6, n=30)
    rng = np.random.default_rng(7)
    theta = np.array([0.6, 6.0, 7.6, 0.34, 0.37]) + rng.normal(0, 0.05, (300, 5))
    W = rng.poisson(1.0, (300, prob.n)).astype(float)
    assert theta.shape[0] * prob.n < solver.THREAD_ELEMENTS  # the default here: one block
    one = solver.polish(prob, theta, W, iters=400, capped=True)
    monkeypatch.setattr(solver, "THREADS", 2)
    monkeypatch.setattr(solver, "THREAD_ELEMENTS", 0)
    split = solver.polish(prob, theta, W, iters=400, capped=True)
    done = ~one[3] & ~split[3]  # starts still creeping when the iterations ran out stop wherever rounding led them
    assert done.sum() >= 250
    np.testing.assert_allclose(split[1][done], one[1][done], rtol=1e-8)
    np.testing.assert_allclose(split[0][done], one[0][done], rtol=1e-4, atol=1e-5)
    # each row is its own resample's optimum: not a permutation of the others
    assert np.unique(np.round(one[1][done], 12)).size >= 0.9 * done.sum()


def _ci_and_samples(df, **kw):
    fast = fit_laws(df, bootstrap=100, seed=0, **kw)
    ref = fit_laws(df, bootstrap=100, seed=0, n_starts=8, **kw)
    worst, frac = 0.0, 1.0
    for k in fast.groups:
        a, b = fast[k], ref[k]
        assert a.params == b.params  # the same point fit
        for p in ("E", "alpha", "beta"):
            for i in (0, 1):
                worst = max(worst, abs(a.conf_int[p][i] - b.conf_int[p][i]))
        d = np.abs(a.samples[["E", "alpha", "beta"]].to_numpy() - b.samples[["E", "alpha", "beta"]].to_numpy())
        frac = min(frac, float(np.mean(d.max(1) < 1e-3)))
    return worst, frac


def test_fast_path_matches_the_converged_multi_start_reference_on_two_groups():
    """Two noisy synthetic groups: every resample's estimates and every interval endpoint of the default
    path equal those of 8 starts per resample each polished to convergence, within 1e-3."""
    df = pd.concat(
        [
            synthetic(sd=0.01, seed=5, group="a"),
            synthetic(E=2.0, A=300.0, B=1500.0, alpha=0.3, beta=0.4, sd=0.01, seed=6, group="b"),
        ]
    )
    worst, frac = _ci_and_samples(df, n_col="N", d_col="D", loss_col="loss", run_col="run", by=("group",))
    assert worst < 1e-3 and frac == 1.0


def test_fast_path_matches_the_reference_on_a_flat_public_group(shared_data):
    """Porian et al.'s owt2_tuned configuration, where A and alpha trade off along a flat valley and two
    starts can agree on the value before either has converged."""
    df = pd.read_csv(shared_data("external/porian.csv"))
    df = df[df["group"] == "owt2_tuned"]
    worst, frac = _ci_and_samples(df, n_col="N", d_col="D", c_col="C", loss_col="loss", run_col="run")
    assert worst < 1e-3 and frac >= 0.99


def test_nnls3_equals_scipy_nnls_where_the_unconstrained_solution_is_infeasible_and_not():
    """The 3-unknown NNLS (unconstrained solution where it is non-negative, else the 7 active sets) against
    scipy's NNLS on random designs, half of them with targets that force a zero coefficient."""
    from scipy.optimize import nnls

    rng = np.random.default_rng(11)
    X = rng.uniform(0.1, 1.0, (200, 30, 3))
    truth = rng.uniform(-1.0, 1.0, (200, 3))  # negative truths: the constraint binds
    t = np.einsum("kni,ki->kn", X, truth) + 0.01 * rng.standard_normal((200, 30))
    M = np.einsum("kni,knj->kij", X, X)
    v = np.einsum("kni,kn->ki", X, t)
    tt = (t * t).sum(1)
    c0, c1, c2, sse = solver._nnls3(M[:, 0, 0], M[:, 0, 1], M[:, 0, 2], M[:, 1, 1], M[:, 1, 2], M[:, 2, 2], *v.T, tt)
    got = np.stack([c0, c1, c2], 1)
    assert 20 < (got == 0).any(1).sum() < 200  # both paths exercised
    for k in range(200):
        ref, rnorm = nnls(X[k], t[k])
        np.testing.assert_allclose(got[k], ref, atol=1e-8)
        if (ref > 0).any():  # the empty set is no candidate (positive losses always fit E alone): sse stays inf
            assert sse[k] == pytest.approx(rnorm**2, rel=1e-6, abs=1e-10)


def test_seeding_keeps_exactly_the_candidates_the_screen_would_pick():
    """seed_chinchilla(keep=m) returns exactly the m candidates of least proxy that the full grid's screen picks."""
    prob, form, cols, L = _problem("chinchilla", seed=8, n=60)
    W = np.random.default_rng(9).poisson(1.0, (40, prob.n)).astype(float)
    full, proxy = solver.seed_chinchilla(cols["N"], cols["D"], L, W, solver.COARSE_GRID)
    top = np.argpartition(proxy, 7, axis=1)[:, :8]
    kept, kproxy = solver.seed_chinchilla(cols["N"], cols["D"], L, W, solver.COARSE_GRID, keep=8)
    np.testing.assert_array_equal(kept, np.take_along_axis(full, top[..., None], 1))
    np.testing.assert_array_equal(kproxy, np.take_along_axis(proxy, top, 1))
