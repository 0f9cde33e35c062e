"""The data-constrained plan (plan/repetition.py): the optimum of a repetition-law fit at C with U unique tokens
against a brute-force search on the fitted law, per bootstrap draw too; its limit as U grows (the unconstrained
optimum); `plan budget --unique-tokens` end to end, and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.errors import ScalelabError
from scalelab.fit import fit_laws, laws
from scalelab.fit import repetition as R
from scalelab.fit.bootstrap import percentile_interval
from scalelab.plan import plan_budget
from scalelab.plan.repetition import constrained

# the paper's law (Muennighoff et al. 2023, tests/fit/test_repetition.py)
PAPER = dict(E=1.869, A=520.8, B=1487.7, alpha=0.3527, beta=0.3527, R_D_star=15.39, R_N_star=5.31)
COLS = dict(n_col="N", d_col="D", loss_col="loss", run_col="run")
C = 1e20
runner = CliRunner()


def _runs(seed: int = 0) -> pd.DataFrame:
    """The paper's law with 1% noise: single-epoch runs at 20-80 tokens/param, and runs repeating 5N unique
    tokens 2 to 50 times."""
    rows = [(N, N * t, N * t) for N in (1e7, 3e7, 1e8, 3e8) for t in (20, 40, 80)]
    rows += [(N, N * 5 * ep, N * 5) for N in (1e7, 3e7, 1e8, 3e8) for ep in (2, 5, 12, 25, 50)]
    df = pd.DataFrame(rows, columns=["N", "D", "U"])
    noise = np.exp(np.random.default_rng(seed).normal(0, 0.01, len(df)))
    return df.assign(loss=R.predict(PAPER, df.N, df.D, df.U) * noise, run=[f"r{i}" for i in range(len(df))])


@pytest.fixture(scope="module")
def fit():
    f = fit_laws(_runs(), unique_col="U", bootstrap=24, seed=1, **COLS)
    assert f["all"].form == "repetition"
    return f


@pytest.fixture(scope="module")
def fit_path(fit, tmp_path_factory):
    return str(fit.to_json(tmp_path_factory.mktemp("rep") / "rep.json"))


def _brute(params: dict, U: float, k: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """(N, L) of least loss on C = k N D, by evaluating the law at 400,001 sizes over 8 decades (per draw)."""
    p = {key: np.atleast_1d(np.asarray(params[key], float)) for key in R.PARAMS}
    n0 = laws.compute_optimal(p, C, k=k, outer=False)["N_opt"]
    out_n, out_l = [], []
    for i in range(len(n0)):
        N = n0[i] * np.logspace(-4, 4, 400_001)
        L = R.predict({key: v[i] for key, v in p.items()}, N, C / (k * N), U)
        j = int(np.nanargmin(L))
        out_n.append(N[j])
        out_l.append(L[j])
    return np.array(out_n), np.array(out_l)


@pytest.mark.parametrize("U", [3e8, 3e9])
def test_optimum_is_the_brute_force_one_for_the_fit_and_each_draw(fit, U):
    g = fit["all"]
    cp = constrained(g, C, U, k=6.0, level=0.9)
    N, L = _brute(g.params, U)
    assert cp.N_opt == pytest.approx(N[0], rel=2e-4) and cp.L_opt == pytest.approx(L[0], rel=1e-9)
    assert cp.D_opt == pytest.approx(C / (6 * cp.N_opt)) and cp.epochs == pytest.approx(cp.D_opt / U)
    assert cp.epochs > 1 and cp.L_opt > cp.free_L and cp.loss_cost == pytest.approx(cp.L_opt - cp.free_L)
    # intervals: percentiles of every draw's own optimum
    Ns, Ls = _brute(g.sample_arrays(R.PARAMS), U)
    assert np.allclose(cp.N_int, percentile_interval(Ns, 0.9), rtol=2e-3)
    assert np.allclose(cp.L_int, percentile_interval(Ls, 0.9), rtol=1e-6)
    assert np.allclose(cp.epochs_int, percentile_interval(C / (6 * Ns) / U, 0.9), rtol=2e-3)


def test_a_large_corpus_gives_the_unconstrained_optimum(fit):
    g = fit["all"]
    free = laws.compute_optimal({k: g.params[k] for k in ("E", "A", "B", "alpha", "beta")}, C)
    costs, gaps = [], []
    for U in np.geomspace(1e8, 1e13, 11):
        cp = constrained(g, C, U)
        costs.append(cp.loss_cost)
        gaps.append(abs(np.log(cp.N_opt / free["N_opt"])))
    assert np.all(np.diff(costs) <= 1e-12) and costs[0] > 0.01  # the limit costs less with more data
    assert costs[-1] == pytest.approx(0, abs=1e-12) and gaps[-1] < 1e-6  # and nothing beyond the corpus
    assert gaps[0] > 0.05
    assert cp.N_int == pytest.approx(cp.free_N_int, rel=1e-6) and cp.epochs < 1


def test_plan_budget_takes_unique_tokens_into_the_optimum(fit):
    r = plan_budget(fit, C, unique_tokens=3e8)
    p = r["all"]
    cp = constrained(fit["all"], C, 3e8, k=6.0, level=fit.level)
    assert p.N_opt == pytest.approx(cp.N_opt) and p.L_opt == pytest.approx(cp.L_opt) and p.N_int == cp.N_int
    assert any("epochs" in n and "data-constrained" in n for n in p.notes)
    assert any(n.startswith("unconstrained") for n in p.notes)
    free = plan_budget(fit, C)["all"]  # without U: the base law, unlimited data
    assert free.N_opt == pytest.approx(cp.free_N, rel=1e-6) and free.L_opt < p.L_opt


def test_cli_json_and_bad_unique_tokens(fit_path):
    ok = runner.invoke(
        app, ["plan", "budget", "--fit", fit_path, "--flops", "1e20", "--unique-tokens", "3e8", "--json"]
    )
    assert ok.exit_code == 0, ok.output
    d = json.loads(ok.output)["data_constrained"]["all"]
    assert d["epochs"] > 1 and d["U"] == 3e8 and d["loss_cost"] > 0 and len(d["N_int"]) == 2
    big = runner.invoke(app, ["plan", "budget", "--fit", fit_path, "--flops", "1e20", "--unique-tokens", "1e15"])
    assert big.exit_code == 0 and "not exhausted" in big.output, big.output  # U beyond the plan's D is fine
    for bad in ("0", "-3e8", "nan", "inf", "lots"):
        r = runner.invoke(app, ["plan", "budget", "--fit", fit_path, "--flops", "1e20", "--unique-tokens", bad])
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "--unique-tokens" in r.output, r.output
    r = runner.invoke(app, ["plan", "budget", "--fit", fit_path, "--target-loss", "3"])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "repetition" in r.output
    for bad in (0.0, float("nan"), -1.0):
        with pytest.raises(ScalelabError, match="unique-tokens"):
            plan_budget(fit_path, C, unique_tokens=bad)


def test_other_forms_keep_the_warning_and_name_the_repetition_form(tmp_path):
    df = _runs()
    f = fit_laws(df[df.D == df.U], bootstrap=8, **COLS)  # single-epoch runs: the chinchilla law
    assert f["all"].form == "chinchilla"
    r = plan_budget(f, C, unique_tokens=1e8)
    notes = [w for w in r.warnings if "unique tokens" in w]
    assert len(notes) == 1 and "epochs" in notes[0] and "--form repetition" in notes[0]
    with pytest.raises(ScalelabError, match="needs the repetition law"):
        constrained(f["all"], C, 1e8)


def test_far_from_the_data_it_notes_extrapolation_and_refuses_the_search_edge(fit, monkeypatch):
    from scalelab.plan import repetition as PR

    cp = constrained(fit["all"], C, 1e6)  # millions of epochs: beyond the fitted runs' 50
    assert cp.epochs > 1e5 and any("extrapolated" in n and "50 epochs" in n for n in cp.notes)
    monkeypatch.setattr(PR, "_WIDER", 4.0)  # the widened search no wider than the first: its end is reached
    with pytest.raises(ScalelabError, match="beyond 4 decades") as e:
        constrained(fit["all"], C, 1e4)
    assert "\n" not in str(e.value)
