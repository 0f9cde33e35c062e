"""The data-constrained law (fit/repetition.py, Muennighoff et al. 2023): the effective sizes against the paper's
own, R_D* and R_N* against the published ones, recovery of a known law, the auto choice and warning, bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from scalelab.errors import ScalelabError
from scalelab.fit import FitSpec, fit_laws
from scalelab.fit import repetition as R
from scalelab.fit.io import unique_tokens
from scalelab.fit.results import load_fit

# The paper's law (huggingface/datablations at 1370131): the release's N_eff, D_eff and pred_paper columns are
# these constants' effective sizes and predictions (published rounded: R_D* = 15.4, R_N* = 5.3).
PAPER = dict(
    E=1.86914368, A=520.824952, B=1487.71609, alpha=0.3526596, beta=0.3526596, R_D_star=15.387756, R_N_star=5.309743
)
COLS = dict(n_col="N", d_col="D", loss_col="loss", run_col="run")


@pytest.fixture(scope="module")
def blations(shared_data):
    return pd.read_csv(shared_data("external2/datablations.csv"))


def _cols(d):
    return (d[c].to_numpy(float) for c in ("N", "D", "U", "loss"))


def test_effective_sizes_and_prediction_are_the_papers(blations):
    N, D, U, _ = _cols(blations)
    Np, Dp = R.effective(PAPER, N, D, U)
    assert np.allclose(Np, blations.N_eff, rtol=1e-6) and np.allclose(Dp, blations.D_eff, rtol=1e-6)
    assert np.allclose(R.predict(PAPER, N, D, U), blations.pred_paper, rtol=1e-6)
    # one epoch of compute-optimal size: nothing decays
    assert R.effective(PAPER, 1e6, 1e9, 1e9) == pytest.approx((1e6, 1e9))


def test_decay_constants_refitted_on_the_papers_base_are_near_the_published(blations):
    """The paper's second stage: R_D*, R_N* on the repeated runs with its base law held (measured 13.6, 5.84)."""
    rep = blations[blations.epochs > 1]
    N, D, U, L = _cols(rep)
    rd, rn = np.exp(R.fit_decay(PAPER, N, D, U, L, np.ones((1, len(rep))))[0])
    assert rd == pytest.approx(15.4, rel=0.2) and rn == pytest.approx(5.3, rel=0.2)


def test_data_constrained_optimum():
    """Beyond the corpus the Chinchilla optimum; within it the least loss over N at C = 6ND (a bounded scalar
    search), per sample."""
    from scipy.optimize import minimize_scalar

    from scalelab.fit import laws

    C = 1e21
    free = laws.compute_optimal(PAPER, C)
    o = R.optimum(PAPER, C, 1e15)
    assert o["N_opt"][0] == pytest.approx(free["N_opt"], rel=1e-4) and o["L_opt"][0] == pytest.approx(free["L_opt"])
    for U in (1e9, 1e10):
        o = R.optimum({k: np.full(3, v) for k, v in PAPER.items()}, C, U)
        best = minimize_scalar(
            lambda x: R.predict(PAPER, np.exp(x), C / (6 * np.exp(x)), U),
            bounds=(np.log(1e6), np.log(1e12)),
            method="bounded",
        )
        assert o["N_opt"] == pytest.approx(np.exp(best.x), rel=1e-3) and o["L_opt"] == pytest.approx(best.fun, rel=1e-9)
        assert (o["epochs"] > 4).all() and (o["L_opt"] > free["L_opt"]).all()


def _synthetic(seed: int, sd: float = 0.01) -> pd.DataFrame:
    """The paper's law with 1% noise: single-epoch runs at 20-160 tokens/param, and runs repeating 2N and 20N
    unique tokens 2 to 64 times (the 2N ones with excess parameters)."""
    rows = []
    for N in (1e7, 3e7, 1e8, 3e8, 1e9):
        rows += [(N, N * tpp, N * tpp) for tpp in (20, 40, 80, 160)]
        rows += [(N, N * u * ep, N * u) for u in (2, 20) for ep in (2, 4, 8, 16, 32, 64)]
    df = pd.DataFrame(rows, columns=["N", "D", "U"])
    df["loss"] = R.predict(PAPER, df.N, df.D, df.U) * np.exp(np.random.default_rng(seed).normal(0, sd, len(df)))
    df["run"] = [f"r{i}" for i in range(len(df))]
    return df


def test_synthetic_truth_inside_the_intervals_in_most_seeds():
    seeds = range(10)
    inside = {k: 0 for k in R.PARAMS}
    for s in seeds:
        g = fit_laws(_synthetic(s), unique_col="U", bootstrap=100, seed=s, **COLS)["all"]
        assert g.form == "repetition"
        for k in R.PARAMS:
            lo, hi = g.conf_int[k]
            inside[k] += lo <= PAPER[k] <= hi
    assert all(v >= 0.8 * len(seeds) for v in inside.values()), inside


def test_auto_fits_it_on_repeated_runs_and_says_so_and_round_trips(blations, tmp_path):
    """The `epochs` column gives the unique tokens; auto picks the law and the identification says why."""
    fit = fit_laws(blations.drop(columns="U"), bootstrap=20, **COLS)
    g = fit["all"]
    assert g.form == "repetition" and "repeat" in g.identification.why
    assert g.repetition_law.n_single_epoch == int((blations.epochs <= 1).sum())
    assert set(R.DECAY) <= set(g.conf_int)
    back = load_fit(fit.to_json(tmp_path / "r.json"))["all"]
    assert back.params == pytest.approx(g.params) and back.repetition_law == g.repetition_law
    assert np.allclose(back.samples["R_D_star"], g.samples["R_D_star"])
    assert any("R_D*" in line for line in fit.summary().text().splitlines())


def test_other_forms_warn_in_one_line(blations):
    g = fit_laws(blations, form="chinchilla", bootstrap=0, unique_col="U", **COLS)["all"]
    many = int((blations.epochs > R.REPEAT_EPOCHS).sum())
    notes = [w for w in g.warnings if "repeat" in w]
    assert len(notes) == 1 and f"{many} of {len(blations)} points" in notes[0] and "\n" not in notes[0]
    assert f"up to {blations.epochs.max():.3g}" in notes[0] and "--form repetition" in notes[0]  # how much; the fix


def test_runs_within_a_few_epochs_keep_the_usual_law():
    df = _synthetic(0)
    df = df[df.D / df.U <= 4]
    g = fit_laws(df, unique_col="U", bootstrap=0, **COLS)["all"]
    assert g.form == "chinchilla" and not any("repeat" in w for w in g.warnings)


def test_unique_tokens_from_epochs_and_refusals():
    spec = FitSpec(**COLS)
    D = np.array([10.0, 10.0, 10.0])
    df = pd.DataFrame({"epochs": [5.0, 0.5, np.nan]})  # a part of the corpus, or unrecorded: each token once
    assert unique_tokens(df, spec, D, "x") == pytest.approx([2.0, 10.0, 10.0])
    assert unique_tokens(pd.DataFrame({"a": [1, 2, 3]}), spec, D, "x") is None
    with pytest.raises(ScalelabError, match="more unique tokens"):
        unique_tokens(pd.DataFrame({"U": [1.0, 20.0, 3.0]}), spec.replace(unique_col="U"), D, "x")
    with pytest.raises(ScalelabError, match="needs unique tokens"):
        fit_laws(_synthetic(0).drop(columns="U"), form="repetition", bootstrap=0, **COLS)


def test_cli_unique_above_tokens_is_one_line_exit_2(tmp_path):
    from typer.testing import CliRunner

    from scalelab.cli import app

    df = _synthetic(1)
    df.loc[3, "U"] = df.loc[3, "D"] * 2
    csv = tmp_path / "bad.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "x.json"
    r = CliRunner().invoke(app, ["fit", str(csv), "--unique-col", "U", "--bootstrap", "0", "--out", str(out)])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "unique tokens" in r.output, r.output
    assert not out.exists()
    df.loc[3, "U"] = df.loc[3, "D"]
    df.to_csv(csv, index=False)
    r = CliRunner().invoke(app, ["fit", str(csv), "--unique-col", "U", "--bootstrap", "0", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["groups"]["all"]["form"] == "repetition"


def test_run_store_epochs_give_unique_tokens(tmp_path):
    """The run store's `epochs` comes with its rows; a file without the column counts its runs as one epoch."""
    from scalelab.fit import io

    def rows(run_id, epochs=None):
        df = pd.DataFrame(
            dict(run_id=run_id, status="ok", final=True, params=1000, tokens=[6400, 12800], flops=1e12, val_loss=3.0)
        )
        df["variant"], df["step"], df["budget"] = "dense", [25, 50], [6400, 12800]
        if epochs is not None:
            df["epochs"] = epochs
        return df

    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    rows("a", [0.5, 8.0]).to_parquet(a)
    rows("b", [1.0, 2.0]).to_parquet(b)
    df = io.read_runs([a, b])
    assert sorted(df["epochs"]) == [0.5, 1.0, 2.0, 8.0]
    assert unique_tokens(df, FitSpec(), df["tokens"].to_numpy(float), "x") == pytest.approx(
        df["tokens"] / np.maximum(df["epochs"], 1)
    )
    rows("b").to_parquet(b)
    df = io.read_runs([a, b])
    U = unique_tokens(df, FitSpec(), df["tokens"].to_numpy(float), "x")
    assert U == pytest.approx(np.where(df["run_id"] == "a", df["tokens"] / np.maximum(df["epochs"], 1), df["tokens"]))


def test_points_unique_tokens_are_recorded_and_read_back(tmp_path):
    """The figures' epochs: each point's U by (run, D), through the fit file; NaN for a point not recorded."""
    df = _synthetic(2)
    fit = fit_laws(df, unique_col="U", bootstrap=0, **COLS)
    back = load_fit(fit.to_json(tmp_path / "u.json"))["all"]
    U = R.point_unique(back, list(df.run) + ["other"], list(df.D) + [1e9])
    assert U[:-1] == pytest.approx(df.U.to_numpy()) and np.isnan(U[-1])
    assert R.point_unique(fit_laws(df, form="chinchilla", bootstrap=0, **COLS)["all"], df.run, df.D) is None
