"""What `scalelab plan` refuses or flags rather than print as a finding: an allocation the fit has no finite
optimum for, an allocation interval reaching 0 or inf, a plan beyond the fitted sizes, tokens or compute, a loss
far out that rests on an unidentified E, and requests that cannot be met (checked before any plan is printed).

Fits are made here with scalelab.fit.fit_laws (or `scalelab fit` on a CSV written here) on generated data."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from refusal import refused
from typer.testing import CliRunner

import scalelab.fit as fitmod
from scalelab import plan as P
from scalelab.errors import ScalelabError

LAW = dict(E=1.8, A=482.0, B=2085.0, alpha=0.35, beta=0.37)
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app(), [str(a) for a in args])


def app():
    from scalelab.cli import app as a

    return a


def table(kind: str = "law", sizes=np.geomspace(5e6, 9e8, 8), ratios=(2, 8, 30, 120, 500), seed=0, groups=("g",)):
    """(N, D, loss, run[, variant]) rows: the Chinchilla-like LAW ("law"), a loss that depends on D only
    ("noN"), or a constant loss with 1% noise ("noise")."""
    rng = np.random.default_rng(seed)
    rows = []
    for grp in groups:
        for N in sizes:
            for tpp in ratios:
                D = N * tpp
                if kind == "noN":
                    L = 2.0 + 400 / D**0.3
                elif kind == "noise":
                    L = 3.0
                else:
                    L = LAW["E"] + LAW["A"] / N ** LAW["alpha"] + LAW["B"] / D ** LAW["beta"]
                L *= math.exp(0.01 * rng.standard_normal())
                rows.append(dict(N=N, D=D, loss=L, run=f"{grp}{len(rows)}", variant=grp))
    return pd.DataFrame(rows)


def fit(df: pd.DataFrame, **kw):
    return fitmod.fit_laws(
        df, n_col="N", d_col="D", loss_col="loss", run_col="run", bootstrap=40, seed=0, flop_convention="6ND", **kw
    )


# ---- item 5: alpha at 0 -> N_opt 0: not identified, never a division by zero ----------------------------------
@pytest.fixture(scope="module")
def no_n():
    res = fit(table("noN"))
    g = next(iter(res))
    g.params["alpha"] = 0.0  # what the search box gave on such data: the loss does not fall with N
    g.samples["alpha"] = 0.0
    return res


def test_alpha_at_zero_is_not_identified_with_the_reason(no_n):
    p = P.plan_budget(no_n, 1e19).plans[0]
    assert not p.identified and not p.loss_identified
    assert math.isnan(p.N_opt) and math.isnan(p.L_opt)
    assert any("alpha = 0" in n and "does not fall with N" in n for n in p.notes), p.notes
    text = P.plan_budget(no_n, 1e19).summary().text()
    assert "(not identified)" in text and "nan" not in text


def test_alpha_at_zero_sweep_gives_unidentified_rows(no_n):
    df = P.sweep(no_n, 1e17, 1e20, 3)
    assert len(df) == 3 and not df.identified.any() and df.N_opt.isna().all()


# ---- item 3: an interval reaching 0 or inf is refused -----------------------------------------------------------
def test_interval_reaching_zero_or_inf_is_not_identified():
    res = fit(table("noise"))
    p = P.plan_budget(res, 1e19).plans[0]
    assert not p.identified
    assert any("interval of" in n and "not identified" in n for n in p.notes), p.notes
    assert "(not identified)" in P.plan_budget(res, 1e19).summary().text()


def test_identified_plan_inside_the_range_is_unchanged():
    res = fit(table("law"))
    r = P.plan_budget(res, 1e19)
    p = r.plans[0]
    assert p.identified and p.loss_identified and p.extrapolation == {}
    assert 0 < p.N_int[0] <= p.N_opt <= p.N_int[1] < math.inf
    assert not any("extrapolation" in w for w in r.warnings)


# ---- item 2: N_opt, D_opt or C beyond the fitted runs is said, in the table and in --json ----------------------
def test_n_opt_beyond_the_fitted_sizes_is_said():
    res = fit(table("law", sizes=[5e6, 7e6, 1e7], ratios=(20, 60, 200, 600, 1200)))
    nmax = res["all"].range["N"][1]
    C = 2 * res["all"].c_range[1]  # within 10x in C: only N (and D) can flag
    r = P.plan_budget(res, C)
    p = r.plans[0]
    assert p.N_opt > P.planner.SIZE_EXTRAPOLATION_FACTOR * nmax  # the premise
    e = p.extrapolation["N"]
    assert e["factor"] == pytest.approx(p.N_opt / nmax) and "C" not in p.extrapolation
    assert any("N_opt" in w and f"{e['factor']:.3g}x the largest fitted size" in w for w in r.warnings), r.warnings
    assert "x the largest fitted size" in r.summary().text()
    assert json.loads(json.dumps(r.to_dict()))["plans"][0]["extrapolation"]["N"]["factor"] > 3


def test_compute_extrapolation_factor_is_readable():
    res = fit(table("law"))
    r = P.plan_budget(res, 1e6 * res["all"].c_range[1])
    w = next(w for w in r.warnings if "largest fitted run" in w)
    assert "1e+06x" in w, w  # not a 28-digit integer


# ---- item 3: far out, a loss resting on an unidentified E is flagged and P(beats) withheld ----------------------
def test_loss_far_out_on_an_unidentified_e_is_flagged():
    res = fit(table("law", groups=("dense", "lowrank")), by=("variant",))
    g = res["dense"]
    g.conf_int["E"] = [1e-4, 2.0]  # an interval reaching far below E: the fit's rule calls E not identified
    far = P.plan_budget(res, 1e4 * g.c_range[1])
    assert not far["dense"].loss_identified and far["lowrank"].loss_identified
    assert far.p_beats is None
    assert any("rests on E" in w and "--fix E=" in w for w in far.warnings)
    assert any(w.startswith("P(") and "not shown" in w for w in far.warnings)
    assert "(E not identified)" in far.summary().text()
    near = P.plan_budget(res, 2 * g.c_range[1])  # within the fitted range: the loss stands
    assert near["dense"].loss_identified and near.p_beats is not None
    # a target below that E is refused, and the refusal says the E it rests on is not identified
    with pytest.raises(ScalelabError, match="fit warns that E is not identified"):
        P.plan_budget(res, variants=["dense"], target_loss=0.5 * g.params["E"])


# ---- CLI: requests checked before any plan is printed -----------------------------------------------------------
@pytest.fixture(scope="module")
def csv_fit(tmp_path_factory):
    d = tmp_path_factory.mktemp("csvfit")
    table("law").drop(columns="variant").to_csv(d / "t.csv", index=False)
    out = d / "fits" / "t.json"
    r = invoke("fit", d / "t.csv", "--n-col", "N", "--d-col", "D", "--bootstrap", 20, "--out", out)
    assert r.exit_code == 0, r.output
    return d, out


@pytest.mark.parametrize(
    "args, word",
    [(["--sizes", 2], "--sizes 2"), (["--spread", 0.5], "--spread 0.5")],
)
def test_emit_grid_names_the_option_typed_before_planning(csv_fit, args, word):
    d, f = csv_fit
    r = invoke("plan", "emit-grid", d / "g.toml", "--fit", f, "--flops", 1e19, *args)
    refused(r, word)
    assert "Compute-optimal plan" not in r.stdout and not (d / "g.toml").exists()


def test_emit_grid_on_a_csv_fit_says_it_needs_runs(csv_fit):
    d, f = csv_fit
    r = invoke("plan", "emit-grid", d / "g.toml", "--fit", f, "--flops", 1e19)
    refused(r, "run-store Parquet", "t.csv")
    assert "Compute-optimal plan" not in r.stdout


def test_target_loss_above_every_fitted_loss(csv_fit):
    _, f = csv_fit
    refused(invoke("plan", "budget", "--fit", f, "--target-loss", 100), "above every loss", "lower target")


def test_suggest_k_below_one_names_k(csv_fit):
    _, f = csv_fit
    refused(invoke("plan", "suggest", "--fit", f, "--", -1), "K -1")
