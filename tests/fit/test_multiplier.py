"""Compute multipliers and crossovers (fit/multiplier.py) and shared-exponent fits (fit/shared.py) against
closed forms derived here, brute-force minimisation, and synthetic truth (interval coverage)."""

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq, minimize_scalar

from scalelab.errors import ScalelabError
from scalelab.fit import fit_laws, multiplier

from .conftest import synthetic

LAW_A = {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.37}
LAW_B = {"E": 1.7, "A": 300.0, "B": 2600.0, "alpha": 0.30, "beta": 0.33}


def brute_loss(p, C, k=6.0):
    """min over N of L(N, C/(k N)) by bounded scalar minimisation in log N."""
    f = lambda x: p["E"] + p["A"] * np.exp(-p["alpha"] * x) + p["B"] * (C / (k * np.exp(x))) ** -p["beta"]  # noqa: E731
    return minimize_scalar(f, bounds=(0, 60), method="bounded", options={"xatol": 1e-10}).fun


def brute_compute(p, L, k=6.0):
    return np.exp(brentq(lambda lc: brute_loss(p, np.exp(lc), k) - L, 0, 150, xtol=1e-12))


def test_multiplier_matches_brute_force_minimisation():
    """m(C) = C_B(L_A*(C)) / C, each side found numerically here (k differs between the groups)."""
    for C in (1e19, 1e21, 1e23):
        LA = brute_loss(LAW_A, C, 6.0)
        want = brute_compute(LAW_B, LA, 7.5) / C
        got = multiplier.multiplier("chinchilla", LAW_A, 6.0, "chinchilla", LAW_B, 7.5, C)
        assert got == pytest.approx(want, rel=1e-5)


def test_multiplier_is_inf_where_b_never_reaches_a():
    worse_e = dict(LAW_B, E=2.5)  # A's loss at 1e23 is below 2.5: B never gets there
    assert np.isinf(multiplier.multiplier("chinchilla", LAW_A, 6.0, "chinchilla", worse_e, 6.0, 1e23))


def test_crossover_where_frontiers_meet():
    """Frontier fits E + K C^-gamma with different E and gamma: the crossing solves L_A(C) = L_B(C)."""
    fa = {"E": 1.8, "K": 50.0, "gamma": 0.05}
    fb = {"E": 1.6, "K": 80.0, "gamma": 0.055}
    want = np.exp(brentq(lambda x: (fa["E"] + fa["K"] * np.exp(-fa["gamma"] * x))
                         - (fb["E"] + fb["K"] * np.exp(-fb["gamma"] * x)), 0, 200))  # fmt: skip
    got = multiplier.first_crossing("frontier", fa, 6.0, "frontier", fb, 6.0, want / 1e3, want * 1e3)
    assert got == pytest.approx(want, rel=1e-3)
    assert multiplier.multiplier("frontier", fa, 6, "frontier", fb, 6, got) == pytest.approx(1.0, rel=1e-3)
    assert np.isnan(multiplier.first_crossing("frontier", fa, 6.0, "frontier", fb, 6.0, want * 10, want * 1e3))


def shared_truth(sA, sB, al=0.34, be=0.37, A=400.0, B=2000.0):
    """True multiplier of a variant whose A and B are scaled by sA, sB (same E, alpha, beta): with
    G = (alpha A / (beta B))^(1/(alpha+beta)), L*(C) = E + c (C/6)^(-alpha beta/(alpha+beta)),
    c = A G^-alpha + B G^beta, so m = (c_B / c_A)^((alpha+beta)/(alpha beta)) at every budget."""

    def c(a, b):
        G = (al * a / (be * b)) ** (1 / (al + be))
        return a * G**-al + b * G**be

    return (c(A * sA, B * sB) / c(A, B)) ** ((al + be) / (al * be))


def pair(seed, sA=1.3, sB=1.8, sd=0.01, sizes=(2e7, 6e7, 2e8, 6e8, 2e9), tpp=(5, 15, 40, 100)):
    a = synthetic(seed=2 * seed, group="dense", sizes=sizes, tpp=tpp, sd=sd)
    b = synthetic(seed=2 * seed + 1, group="lowrank", A=400 * sA, B=2000 * sB, sizes=sizes, tpp=tpp, sd=sd)
    return pd.concat([a, b], ignore_index=True)


def fit(df, **kw):
    opts = dict(n_col="N", d_col="D", loss_col="loss", run_col="run", by=["group"], bootstrap=100)
    return fit_laws(df, **{**opts, **kw})


def test_shared_exponents_recovers_truth_and_multiplier_is_one_number():
    res = fit(pair(0), share_exponents=True, bootstrap=50)
    d, lr = res["dense"].params, res["lowrank"].params
    for k in ("E", "alpha", "beta"):
        assert d[k] == lr[k]  # one estimate
    assert d["alpha"] == pytest.approx(0.34, abs=0.05) and d["beta"] == pytest.approx(0.37, abs=0.05)
    rows = res.comparisons[0].multiplier
    assert rows[0].est == pytest.approx(rows[1].est, rel=1e-9)  # constant in C
    assert rows[0].est == pytest.approx(shared_truth(1.3, 1.8), rel=0.15)
    assert res.comparisons[0].crossover.C is None and res.comparisons[0].crossover.text.startswith("none")
    assert res.info.share_exponents and res["dense"].shared_exponents


@pytest.mark.slow
def test_shared_exponent_multiplier_interval_covers_truth():
    """Coverage on synthetic truth: 40 data sets, the 95% bootstrap interval of the multiplier at the
    largest fitted C covers the true multiplier in a plausible share of them (>= 80%)."""
    truth = shared_truth(1.3, 1.8)
    hits, n = 0, 40
    for s in range(n):
        rec = fit(pair(100 + s, sd=0.02), share_exponents=True, bootstrap=60).comparisons[0].multiplier[0]
        hits += rec.lo <= truth <= rec.hi
    assert hits / n >= 0.8, f"coverage {hits}/{n}"


def test_independent_fits_multiplier_interval_covers_truth():
    """The same without sharing (two separate fits, independent resamples combined): the interval is
    wider and still covers the truth in most data sets."""
    truth = shared_truth(1.3, 1.8)
    hits, n = 0, 20
    for s in range(n):
        rec = fit(pair(300 + s, sd=0.02), bootstrap=60).comparisons[0].multiplier[0]
        hits += rec.lo <= truth <= rec.hi
    assert hits / n >= 0.8, f"coverage {hits}/{n}"


def test_at_flops_budgets_and_extrapolation_flag():
    df = pair(1)
    res = fit(df, at_flops=[1e18, 1e24], bootstrap=30)
    rows = res.comparisons[0].multiplier
    assert [r.C for r in rows] == [1e18, 1e24]
    cmax = 6 * (df["N"] * df["D"]).max()
    assert rows[0].extrapolated is False and rows[1].extrapolated is bool(1e24 > cmax)
    assert res.to_dict()["comparisons"][0]["k"] == {"a": pytest.approx(6.0), "b": pytest.approx(6.0)}


def test_share_exponents_refusals_are_one_line():
    df = pair(2)
    with pytest.raises(ScalelabError, match="at least two groups"):
        fit(df[df.group == "dense"], share_exponents=True, bootstrap=0)
    with pytest.raises(ScalelabError, match="drop --share-e"):
        fit(df, share_exponents=True, share_e=True, bootstrap=0)
    with pytest.raises(ScalelabError, match="positive number of FLOPs"):
        fit(df, at_flops=[-1.0])


def _huber_objective(df, params_of, delta=1e-3):
    """Sum over points of Huber_delta(log L - log L_hat), written here from the definition (objective.py)."""
    tot = 0.0
    for name, sub in df.groupby("group"):
        p = params_of[name]
        hat = p["E"] + p["A"] / sub["N"] ** p["alpha"] + p["B"] / sub["D"] ** p["beta"]
        r = np.abs(np.log(sub["loss"]) - np.log(hat)).to_numpy()
        tot += np.sum(np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)))
    return tot


@pytest.fixture(scope="module")
def shared_pair():
    df = pair(4)
    return df, fit(df, share_exponents=True, bootstrap=60)


def test_share_exponents_reports_the_joint_fits_own_objective(shared_pair):
    """Each group's diagnostics are the joint fit's (its objective is the Huber sum at the joint parameters
    over both groups' points), not the separate fit's; the separate objectives, whose sum is lower (fewer
    constraints), stay in "separate_fit"."""
    df, res = shared_pair
    want = _huber_objective(df, {g.name: g.params for g in res})
    for g in res:
        d = g.diagnostics
        assert d["objective"] == pytest.approx(want, rel=1e-9)
        assert d["joint"] == {"groups": ["dense", "lowrank"], "shared": ["E", "alpha", "beta"]}
        assert d["objective_group"] == pytest.approx(_huber_objective(df[df.group == g.name], {g.name: g.params}))
        assert d["bootstrap"]["n_starts"] == 4 and 0 <= d["bootstrap"]["frac_agreed"] <= 1
    sep = [g.separate_fit.objective for g in res]
    assert sum(sep) < want and sum(sep) == pytest.approx(
        _huber_objective(df, {g.name: g.separate_fit.params for g in res}), rel=1e-9
    )


def test_share_exponents_compares_coefficients_not_zero_exponent_differences(shared_pair):
    """The comparison states what differs (A_b / A_a, B_b / B_a; truth 1.3 and 1.8) with paired intervals
    that cover the truth, and no exponent difference that is 0 by construction; the separate fits' exponent
    differences (truth 0) are reported as the check on sharing."""
    _, res = shared_pair
    c = res.comparisons[0]
    assert not c.differences and "d_alpha = +0.000" not in c.verdict
    (ea, la, ha), (eb, lb, hb) = c.ratios["A"].to_list(), c.ratios["B"].to_list()
    assert ea == pytest.approx(res["lowrank"].params["A"] / res["dense"].params["A"])
    assert la < ea < ha and lb < eb < hb and la <= 1.3 <= ha and lb <= 1.8 <= hb
    assert c.shared == ["E", "alpha", "beta"] and c.separate["alpha"].lo < 0 < c.separate["alpha"].hi
    assert "0 by construction" in c.verdict and "no detectable exponent difference" in c.verdict


def test_share_exponents_says_when_the_separate_fits_disagree_on_exponents():
    """Groups whose true alpha differ (0.34 vs 0.22): the joint fit forces one alpha; the verdict says the
    separate fits' exponents differ, where today's verdict read 'no detectable difference, d_alpha = 0'."""
    sizes, tpp = (2e7, 6e7, 2e8, 6e8, 2e9), (5, 15, 40, 100)
    a = synthetic(seed=11, group="dense", sizes=sizes, tpp=tpp, sd=0.005)
    b = synthetic(seed=12, group="lowrank", alpha=0.22, A=60.0, sizes=sizes, tpp=tpp, sd=0.005)
    c = fit(pd.concat([a, b], ignore_index=True), share_exponents=True, bootstrap=40).comparisons[0]
    assert c.separate["alpha"].hi < 0 and "do not support one set of exponents" in c.verdict


def test_share_exponents_table_prints_the_joint_fit_once(tmp_path):
    from typer.testing import CliRunner

    from scalelab.cli import app

    csv = tmp_path / "pair.csv"
    pair(5).to_csv(csv, index=False)
    r = CliRunner().invoke(
        app,
        [
            "fit",
            str(csv),
            "--group-col",
            "group",
            "--share-exponents",
            "--bootstrap",
            "20",
            "--out",
            str(tmp_path / "f.json"),
        ],
    )
    assert r.exit_code == 0, r.output
    out = " ".join(r.stdout.split())
    assert out.count("joint fit of dense, lowrank (E, alpha, beta shared): objective") == 1
    assert "dense: objective" not in out and "lowrank: objective" not in out  # no separate-fit diagnostics
    assert "d_alpha = +0.000 [+0.000, +0.000]" not in out and "lowrank's coefficients / dense's: A x" in out


def test_a_multiplier_interval_that_excludes_its_estimate_is_withheld():
    # samples whose B lies far above the point's: every sample's multiplier falls on one side of the estimate
    from scalelab.fit.multiplier import compare_compute

    pa = dict(E=1.8, A=400.0, B=2000.0, alpha=0.34, beta=0.37)
    pb = dict(pa, A=300.0)
    rng = np.random.default_rng(0)
    sa = {k: np.full(200, v) * np.exp(0.01 * rng.standard_normal(200)) for k, v in pa.items()}
    sb = {k: np.full(200, v) * np.exp(0.01 * rng.standard_normal(200)) for k, v in pb.items()}
    sb["B"] = sb["B"] * 1.5
    kw = dict(budgets=[1e20], level=0.95)
    rng_ = (1e18, 1e21)
    ok = compare_compute(
        "a", "chinchilla", pa, sa, 6.0, rng_, "b", "chinchilla", pb, {**sb, "B": sb["B"] / 1.5}, 6.0, rng_, **kw
    )
    row = ok["multiplier"][0]
    assert row["lo"] <= row["est"] <= row["hi"] and "interval_withheld" not in row
    bad = compare_compute("a", "chinchilla", pa, sa, 6.0, rng_, "b", "chinchilla", pb, sb, 6.0, rng_, **kw)
    row = bad["multiplier"][0]
    assert np.isnan(row["lo"]) and np.isnan(row["hi"]) and "lies outside" in row["interval_withheld"]
    assert "no 95% interval" in bad["multiplier_text"]


def test_default_comparisons_pair_each_variant_with_its_dense_twin():
    """With a group named dense, every group against it (as always); without one, each variant against the same
    variant with a dense FFN: lowrank-32+mup against dense+mup."""
    from types import SimpleNamespace

    from scalelab.fit.procedure import default_pairs

    def fits(*names):
        return [SimpleNamespace(name=n, key={"variant": n}) for n in names]

    assert default_pairs(fits("dense", "lowrank-32", "dense+mup")) == [("dense", "lowrank-32"), ("dense", "dense+mup")]
    got = default_pairs(fits("lowrank-16+mup", "dense+mup", "lowrank-63+mup", "gqa-kv1", "odd name"))
    assert got == [("dense+mup", "lowrank-16+mup"), ("dense+mup", "lowrank-63+mup")]
