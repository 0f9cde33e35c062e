"""plan --suggest: the top-ranked run narrows the interval more than a random run of the same cost."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scalelab.errors import ScalelabError
from scalelab.fit import fit_laws
from scalelab.loop.suggest import Candidate, suggest

TRUTH = dict(E=1.0, A=60.0, B=100.0, alpha=0.36, beta=0.30)


def law(N, D):
    return TRUTH["E"] + TRUTH["A"] / N ** TRUTH["alpha"] + TRUTH["B"] / D ** TRUTH["beta"]


def design(rng, sizes=4, tpp=(5, 15, 40), noise=0.006):
    rows = []
    for N in np.geomspace(3e4, 1e5, sizes):
        for t in tpp:
            rows.append(
                dict(
                    N=N,
                    D=N * t,
                    loss=law(N, N * t) * np.exp(noise * rng.standard_normal()),
                    run=f"{N:.0f}-{t}",
                    variant="dense",
                )
            )
    return pd.DataFrame(rows)


def spec_for(n_boot, seed):
    return dict(n_col="N", d_col="D", loss_col="loss", run_col="run", by=("variant",), bootstrap=n_boot, seed=seed)


def width_with(points, cand, loss, at, n_boot, seed):
    row = pd.DataFrame([dict(N=cand.N, D=cand.D, loss=loss, run="new", variant="dense")])
    f = fit_laws(pd.concat([points, row], ignore_index=True), **spec_for(n_boot, seed), c_ref=at)
    lo, hi = f.groups["dense"].derived_conf_int["N_opt"]
    return np.log(hi / lo)


@pytest.mark.slow
def test_top_suggestion_beats_a_random_run_of_the_same_cost_in_most_seeds():
    wins, n_boot = 0, 60
    for seed in range(20):
        rng = np.random.default_rng(seed)
        points = design(rng)
        fit = fit_laws(points, **spec_for(n_boot, seed))
        g = fit.groups["dense"]
        at = 10 * float((6 * points.N * points.D).max())
        cost = 2 * float((6 * points.N * points.D).max())  # every candidate costs the same
        pool = [
            Candidate("dense", n, cost / (6 * n), cost, "", float(g.predict(N=n, D=cost / (6 * n))))
            for n in np.geomspace(1.5e4, 4e5, 6)
        ]
        s = suggest(fit, 1, cost, at=at, n_boot=n_boot, seed=seed, points=points, spec=fit.spec, pool=pool)
        assert s.ranked, s.notes
        top = s.ranked[0]
        other = rng.choice([c for c in pool if c is not top])
        # the runs are "trained": their losses come from the true law with noise, not the fit
        y_top = law(top.N, top.D) * np.exp(0.006 * rng.standard_normal())
        y_other = law(other.N, other.D) * np.exp(0.006 * rng.standard_normal())
        wins += width_with(points, top, y_top, at, n_boot, seed) < width_with(points, other, y_other, at, n_boot, seed)
    assert wins >= 12, f"top suggestion narrower in only {wins} of 20 seeds"


def test_suggest_refuses_bad_requests():
    rng = np.random.default_rng(0)
    points = design(rng)
    fit = fit_laws(points, **spec_for(20, 0))
    kw = dict(points=points, spec=fit.spec, n_boot=20)
    with pytest.raises(ScalelabError, match="at least one"):
        suggest(fit, 0, 1e15, **kw)
    with pytest.raises(ScalelabError, match="suggest-flops"):
        suggest(fit, 1, -1, **kw)
    with pytest.raises(ScalelabError, match="no candidate run costs"):
        suggest(fit, 1, 1.0, **kw)
    with pytest.raises(ScalelabError, match="n_opt or multiplier"):
        suggest(fit, 1, 1e15, quantity="gamma", **kw)


def test_suggest_for_a_parameter_narrows_its_own_interval():
    """--suggest-for E: the baseline is the log width of E's bootstrap interval in the same refit (same seed and
    resamples), and a candidate's width is E's interval with that run added."""
    rng = np.random.default_rng(1)
    points = design(rng)
    fit = fit_laws(points, **spec_for(20, 0))
    g = fit.groups["dense"]
    cost = 2 * float((6 * points.N * points.D).max())
    pool = [
        Candidate("dense", n, cost / (6 * n), cost, "", float(g.predict(N=n, D=cost / (6 * n)))) for n in (2e4, 2e5)
    ]
    at = 1e14
    s = suggest(fit, 1, cost, quantity="E", at=at, n_boot=20, seed=0, points=points, spec=fit.spec, pool=pool)
    spec = fit.spec.replace(bootstrap=20, seed=0, c_ref=at, at_flops=(at,))
    lo, hi = fit_laws(points, spec).groups["dense"].conf_int["E"]
    assert s.baseline == pytest.approx(np.log(hi / lo), rel=1e-9) and s.interval == pytest.approx((lo, hi))
    c = pool[0]
    row = pd.DataFrame([dict(N=c.N, D=c.D, loss=c.loss, run="suggested-0", variant="dense")])
    lo, hi = fit_laws(pd.concat([points, row], ignore_index=True), spec).groups["dense"].conf_int["E"]
    assert c.width == pytest.approx(np.log(hi / lo), rel=1e-9)


def _swept_table(rng):
    """Two groups' rows interleaved, no run column (each row its own bootstrap unit), a 3-value lr sweep per
    (N, D) cell: the fit drops the top loss, then keeps the best lr per cell (the envelope)."""
    rows = []
    for N in np.geomspace(3e4, 1e5, 4):
        for t in (5, 15, 40):
            for lr in (1e-3, 3e-3, 1e-2):
                for g, shift in (("dense", 0.0), ("wide", 0.05)):
                    L = (law(N, N * t) + shift + 0.02 * np.log(lr / 3e-3) ** 2) * np.exp(0.006 * rng.standard_normal())
                    rows.append(dict(N=N, D=N * t, loss=L, lr=lr, variant=g))
    return pd.DataFrame(rows)


def test_refitting_the_fitted_points_reproduces_the_fit():
    """fitted_points gives back what the fit's laws were fitted on, in the order that numbers the bootstrap's
    row units: the same spec refitted on it gives the same laws, intervals and N_opt intervals."""
    from scalelab.loop.suggest import fitted_points

    df = _swept_table(np.random.default_rng(3))
    fit = fit_laws(df, n_col="N", d_col="D", loss_col="loss", by=("variant",), bootstrap=20, drop_top_loss=1)
    pts, spec = fitted_points(fit)
    assert len(pts) == 2 * 4 * 3 and spec.drop_top_loss == 0  # one point per cell: the envelope's
    again = fit_laws(pts, spec)
    for g in fit:
        h = again[g.name]
        assert h.params == pytest.approx(g.params, rel=1e-12)
        for k, ci in g.conf_int.items():
            assert h.conf_int[k] == pytest.approx(ci, rel=1e-12)
        assert h.derived_conf_int["N_opt"] == pytest.approx(g.derived_conf_int["N_opt"], rel=1e-12)


def test_a_candidate_joins_the_fitted_points_and_is_never_dropped():
    """With --drop-top-loss, the refit adds the candidate to the points the fit used: those it dropped stay
    dropped, and the candidate (here the highest loss of all) is kept."""
    rng = np.random.default_rng(2)
    points = design(rng)
    fit = fit_laws(points, **spec_for(20, 0), drop_top_loss=2)
    g = fit.groups["dense"]
    n = 1.5e4  # smaller than any fitted size, at 2 tokens per parameter: the highest loss of all
    cost = 6 * n * 2 * n
    c = Candidate("dense", n, 2 * n, cost, "", float(g.predict(N=n, D=2 * n)))
    assert c.loss > points["loss"].max()
    at = 1e14
    s = suggest(fit, 1, cost, at=at, n_boot=20, seed=0, pool=[c])
    kept = points[points["loss"] < np.sort(points["loss"])[-2]]
    row = pd.DataFrame([dict(N=c.N, D=c.D, loss=c.loss, run="suggested-0", variant="dense")])
    spec = fit.spec.replace(bootstrap=20, seed=0, c_ref=at, at_flops=(at,), drop_top_loss=0)
    lo, hi = fit_laws(kept, spec).groups["dense"].derived_conf_int["N_opt"]
    assert s.baseline == pytest.approx(np.log(hi / lo), rel=1e-9)
    lo, hi = fit_laws(pd.concat([kept, row], ignore_index=True), spec).groups["dense"].derived_conf_int["N_opt"]
    assert c.width == pytest.approx(np.log(hi / lo), rel=1e-9)
