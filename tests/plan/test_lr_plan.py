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
        N = p["shape"]["params"]
        law = fit[p["group"]].extra["hyper"]["lr"]
        assert p["lr"]["lr"] == pytest.approx(law["coef"] * N ** law["exp"], rel=1e-9)  # the law at the shape's N
        truth = C_TRUE * N**K_TRUE
        assert p["lr"]["lo"] <= p["lr"]["lr"] <= p["lr"]["hi"]
        assert abs(math.log(p["lr"]["lr"] / truth)) < 0.2  # near the optimum the runs were drawn around
    table = invoke("plan", "--fit", fit_path, "--flops", C)
    assert table.exit_code == 0 and all(f"{p['lr']['lr']:.3g}" in table.output for p in plans)


def test_emit_grid_writes_the_law_lr_per_width(swept, tmp_path):
    d, paths, fit_path = swept
    fit = load_fit(fit_path)
    C = 2 * max(pd.read_parquet(p)["flops"].max() for p in paths)
    out = tmp_path / "iso.toml"
    r = invoke("plan", "--fit", fit_path, "--flops", C, "--emit-grid", out, "--variant", "dense")
    assert r.exit_code == 0, r.output
    law = fit["dense"].extra["hyper"]["lr"]
    from scalelab.flops import param_counts

    for run in Grid.load(str(out)).runs():
        N = param_counts(run.model).params
        want = hyper.predict_lr(law, N)["lr"]
        assert run.train.lr == pytest.approx(want, rel=1e-3)  # 4 significant digits in the file
    assert "lr_table" in out.read_text()
