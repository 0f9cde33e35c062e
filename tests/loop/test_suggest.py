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
