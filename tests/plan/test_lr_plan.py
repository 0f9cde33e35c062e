"""The planner recommends a learning rate from the fit's lr law (fit/hyper.py), with its interval, and
plan --emit-grid writes it as a per-width lr_table. Runs drawn from a known law with a known lr_opt(N)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from loop.synth import GRID, write_store
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.fit import hyper, load_fit
from scalelab.grid import Grid

C_TRUE, K_TRUE, CURV = 30.0, -0.5, 0.04
LRS = [0.0025, 0.005, 0.01, 0.02, 0.04]
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    d = tmp_path_factory.mktemp("lrplan")
    text = GRID.format(
        name="sw", widths=[32, 48, 64, 96, 128], budgets="tokens_per_param = [5, 10, 20, 40]", schedule="wsd"
    )
    text = text.replace("lr = 3e-3\n", "") + f"[sweep]\nlr = {LRS}\n"
    g = d / "sw.toml"
    g.write_text(text)
    paths = write_store(g, d / "runs", noise=0.001)
    for p in paths:  # add the lr penalty around the true lr_opt(N) and the sweep columns
        df = pd.read_parquet(p)
        lr = json.loads(df["config"].iloc[0])["train"]["lr"]
        opt = C_TRUE * df["params"].astype(float) ** K_TRUE
        df["val_loss"] = df["val_loss"] + CURV * np.log(lr / opt) ** 2
        df["peak_lr"], df["sweep"] = lr, "lr"
        df.to_parquet(p)
    fit = d / "fits" / "sw.json"
    r = invoke("fit", *paths, "--bootstrap", 200, "--out", fit)
    assert r.exit_code == 0, r.output
    assert "envelope over a 5-value lr sweep" in r.output
    return d, paths, fit


def test_plan_recommends_the_law_lr_at_the_planned_size(swept, tmp_path):
    d, paths, fit_path = swept
    fit = load_fit(fit_path)
    C = 2 * max(pd.read_parquet(p)["flops"].max() for p in paths)
    r = invoke("plan", "--fit", fit_path, "--flops", C, "--json")
    assert r.exit_code == 0, r.output
    plans = json.loads(r.stdout)["plans"]
    for p in plans:
        N, D = p["shape"]["params"], p["shape"]["tokens"]
        law = fit[p["group"]].lr_law
        # budgets 5-40 tokens/param at every size (8x apart): the law has a D term, evaluated at the shape's N, D
        assert law.formula == "lr_opt = c N^a D^b" and law.conf_int["exp_D"][0] <= 0 <= law.conf_int["exp_D"][1]
        want = law.coef * N**law.exp * D**law.exp_D
        assert p["lr"]["lr"] == pytest.approx(want, rel=1e-9) and p["lr"]["D"] == pytest.approx(D)
        truth = C_TRUE * N**K_TRUE
        assert p["lr"]["lo"] <= p["lr"]["lr"] <= p["lr"]["hi"]
        assert abs(math.log(p["lr"]["lr"] / truth)) < 0.2  # near the optimum the runs were drawn around
        assert p["batch"] is None  # batch size was not swept: no batch law, no recommendation
    table = invoke("plan", "--fit", fit_path, "--flops", C)
    assert table.exit_code == 0 and all(f"{p['lr']['lr']:.3g}" in table.output for p in plans)


def test_emit_grid_writes_the_law_lr_per_width(swept, tmp_path):
    d, paths, fit_path = swept
    fit = load_fit(fit_path)
    C = 2 * max(pd.read_parquet(p)["flops"].max() for p in paths)
    out = tmp_path / "iso.toml"
    r = invoke("plan", "--fit", fit_path, "--flops", C, "--emit-grid", out, "--variant", "dense")
    assert r.exit_code == 0, r.output
    law = fit["dense"].lr_law
    from scalelab.flops import param_counts

    for run in Grid.load(str(out)).runs():
        N = param_counts(run.model).params
        want = hyper.predict_lr(law, N, D=run.train.budgets[0])["lr"]  # every width at the budget: its own tokens
        assert run.train.lr == pytest.approx(want, rel=1e-3)  # 4 significant digits in the file
    assert "lr_table" in out.read_text()


# ---- a sweep whose loss law the fit refused: no plan, but the lr per size ---------------------------------------
def _tiny_fit(tmp_path, extra=None):
    from fit.test_hyper import tiny_sweep

    df = tiny_sweep(group="tiny")
    if extra is not None:
        df = pd.concat([extra, df], ignore_index=True)
    csv = tmp_path / "sweep.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "sweep.json"
    r = invoke("fit", csv, "--group-col", "group", "--bootstrap", 100, "--out", out)
    assert r.exit_code == 0, r.output
    return out


def test_plan_refuses_the_loss_plan_of_a_sweep_without_a_loss_law_but_gives_its_lr(tmp_path):
    from fit.test_hyper import TINY_N, tiny_lr_opt

    fit_path = _tiny_fit(tmp_path)
    g = load_fit(fit_path)["tiny"]
    why = g.loss_law_refused
    for args in (("--flops", 1e18), ()):  # a budget changes nothing: there is no loss law to spend it with
        r = invoke("plan", "--fit", fit_path, *args)
        assert r.exit_code == 0, r.output
        text = " ".join(r.output.split())  # rich wraps long lines
        assert f"no loss-based plan for tiny: loss law not fitted: {why}" in text
        for N in TINY_N:  # the law's lr at each swept size (exact here: the truth)
            assert f"{tiny_lr_opt(N):.3g}" in text
    r = invoke("plan", "--fit", fit_path, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["plans"] == [] and [s["why"] for s in d["sweeps"]] == [why]
    rows = d["sweeps"][0]["rows"]
    assert sorted(r["N"] for r in rows) == sorted(TINY_N)
    law = g.lr_law
    for row in rows:
        want = hyper.predict_lr(law, row["N"], hyper.law_samples(g), load_fit(fit_path).level)
        assert (row["lr"]["lr"], row["lr"]["lo"], row["lr"]["hi"]) == pytest.approx(
            (want["lr"], want["lo"], want["hi"])
        )
        assert row["lr"]["lo"] <= row["lr"]["lr"] <= row["lr"]["hi"] and row["batch"] is None
    r = invoke("plan", "--fit", fit_path, "--flops", 1e18, "--emit-grid", tmp_path / "g.toml")
    assert r.exit_code == 2 and "--emit-grid needs a loss law" in r.output and not (tmp_path / "g.toml").exists()


def test_plan_of_a_fit_with_and_without_loss_laws_plans_one_and_gives_the_others_lr(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for N in (1e6, 2e6, 4e6, 8e6, 1.6e7):
        for tpp in (5, 20, 80):
            D = N * tpp
            L = (1.8 + 400 / N**0.34 + 400 / D**0.28) * math.exp(0.002 * rng.standard_normal())
            rows.append(dict(N=N, D=D, loss=L, lr=0.004, run=f"big-{N:g}-{tpp}", group="big"))
    fit_path = _tiny_fit(tmp_path, pd.DataFrame(rows))
    fit = load_fit(fit_path)
    assert fit["big"].form == "chinchilla" and fit["tiny"].form == "none"
    r = invoke("plan", "--fit", fit_path, "--flops", 1e17, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert [p["variant"] for p in d["plans"]] == ["big"] and [s["variant"] for s in d["sweeps"]] == ["tiny"]
    assert any("tiny: loss law not fitted" in w for w in d["warnings"])
    r = invoke("plan", "--fit", fit_path, "--flops", 1e17)
    assert r.exit_code == 0 and "no loss-based plan for tiny" in " ".join(r.output.split())


def test_plan_recommends_lr_and_batch_size_at_the_planned_N_and_D(tmp_path):
    from fit.test_hyper import bs_true, lr_batch_frame, lr_true

    csv = tmp_path / "lrbs.csv"
    lr_batch_frame().to_csv(csv, index=False)
    fit_path = tmp_path / "lrbs.json"
    r = invoke("fit", csv, "--bootstrap", 200, "--out", fit_path)
    assert r.exit_code == 0, r.output
    g = load_fit(fit_path)["all"]
    r = invoke("plan", "--fit", fit_path, "--flops", 3e16, "--json")
    assert r.exit_code == 0, r.output
    (p,) = json.loads(r.stdout)["plans"]
    N, D = p["N_opt"], p["D_opt"]  # a 6ND fit: no shapes, the plan's N_opt and D_opt
    level = load_fit(fit_path).level
    want = hyper.predict_lr(g.lr_law, N, hyper.law_samples(g), level, D=D)
    assert p["lr"]["lr"] == pytest.approx(want["lr"]) and p["lr"]["lo"] == pytest.approx(want["lo"])
    wb = hyper.predict_batch(g.batch_law, D, hyper.law_samples(g, "batch"), level)
    assert p["batch"]["batch"] == pytest.approx(wb["batch"]) and p["batch"]["hi"] == pytest.approx(wb["hi"])
    assert p["lr"]["lo"] <= lr_true(N, D) <= p["lr"]["hi"] and p["batch"]["lo"] <= bs_true(D) <= p["batch"]["hi"]
    table = invoke("plan", "--fit", fit_path, "--flops", 3e16)
    from scalelab.commands.plan import _si

    assert table.exit_code == 0 and "batch" in table.output and _si(wb["batch"]) in table.output
