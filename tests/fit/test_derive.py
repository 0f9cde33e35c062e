"""Derived points (fit/derive.py): the curve law's final losses at (N, D) points of the schedule family, the
L(N, D) law fitted on them with the curve law's resamples carried through, and `fit --curves --derive`."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.config import RunConfig
from scalelab.fit import curves, derive, fit_laws, load_fit
from scalelab.schedule import estimate_tokens, lr_at, make_plan, wsd_branches

runner = CliRunner()
# an annealing-area law whose L(N, D) optimum falls inside the runs' tokens per parameter
LAW = {"E": 1.0, "A_N": 0.3, "a_N": 0.4, "A": 10.0, "alpha": 0.4, "C": 0.002, "lam": 0.99}
TPS = 512  # tokens per step: batch 4 x seq_len 128


def _config(width: int, N: float, ks=(1, 2, 4)) -> dict:
    model = {"d_model": width, "n_layers": 2, "n_heads": 2, "seq_len": 128, "vocab_size": 256}
    train = {"batch_size": 4, "budgets": [int(N * 5 * k) for k in ks], "cooldown": 0.2, "lr": 0.003}
    train.update(schedule="wsd", warmup=0.05, eval_points=10)
    return {"grid": "t", "model": model, "train": train, "data": {}, "seed": 0}


def true_final(N: float, run: RunConfig, plan, s_b: int, t: int | None = None) -> float:
    """LAW's loss after t steps (default: the end) of the branch ending at s_b."""
    t = s_b if t is None else t
    lr = np.array([lr_at(run, plan, s, branch_steps=s_b) for s in range(t)]) / 0.003
    s1, tt = curves.schedule_features(lr, np.array([t]), plan.warmup)
    return float(curves.predict("annealing-area", LAW, curves.make_design(np.array([N / 4e5]), s1, tt))[0])


def write_runs(tmp_path, widths=(24, 32, 40, 48, 64), noise=0.0, seed=0, ks=(1, 2, 4)):
    """One WSD run per width (trunk, two cooldown branches) following LAW, with run-store tokens and FLOPs."""
    rng = np.random.default_rng(seed)
    d = tmp_path / "runs"
    d.mkdir(exist_ok=True)
    for w in widths:
        N = 400.0 * w**2
        cfg = _config(w, N, ks)
        run, plan = RunConfig.from_dict(cfg), make_plan(RunConfig.from_dict(cfg))
        rows = [(plan.total, s, s == plan.total) for s in plan.eval_steps]
        rows += [(s_b, s_b, True) for _, s_b in wsd_branches(run, plan)]
        by_steps = dict(zip(plan.budget_steps, sorted(run.train.budgets)))
        out = []
        for s_b, t, final in rows:
            loss = true_final(N, run, plan, s_b, t) * np.exp(noise * rng.standard_normal())
            out.append(
                dict(run_id=f"r{w}", variant="dense", params=N, step=t, budget=by_steps[s_b], final=final,
                     val_loss=loss, tokens=t * TPS, flops=6.0 * N * t * TPS)
            )  # fmt: skip
        pd.DataFrame(out).assign(status="ok", config=json.dumps(cfg)).to_parquet(d / f"r{w}.parquet")
    return d


def test_derived_points_are_the_laws_final_losses_in_range(tmp_path):
    d = write_runs(tmp_path, ks=(1, 2, 4, 8))  # the smallest budget ends before the 20% early-transient cut
    fits, res = derive.derive_fit([d], None, 4, bootstrap=3, loss="lsq")
    g = res["dense"]
    pts = g.points
    assert pts["derived"].all() and len(pts) == 5 * 4
    for r in pts.itertuples():
        cfg = _config(int(r.run[1:]), r.N, (1, 2, 4, 8))
        run, plan = RunConfig.from_dict(cfg), make_plan(RunConfig.from_dict(cfg))
        lo, hi = min(run.train.budgets), max(run.train.budgets)
        first = 0.2 * plan.total * TPS  # the run's first fitted step: the early-transient cut
        assert max(lo, first) * 0.99 <= r.D <= hi * 1.01  # no extrapolation in D
        assert r.D == r.steps * TPS and r.C == pytest.approx(6 * r.N * r.D)
        # the WSD run ending at these steps under the true law (the noise-free curve law recovers it)
        assert r.loss == pytest.approx(true_final(r.N, run, plan, int(r.steps)), rel=2e-3)
    # no point in the early transient: each run's shortest derived budget is its first fitted step, past 1x
    assert (pts.groupby("run")["D"].min() > 5 * pts.groupby("run")["N"].first() * 1.2).all()
    assert g.form == "chinchilla" and g.compute_optimal.identified


def test_each_sample_is_the_law_refitted_on_that_resamples_points(tmp_path):
    """Intervals carry through: sample i of the L(N, D) fit is the fit of curve-law resample i's derived points."""
    d = write_runs(tmp_path, noise=0.004)
    fits, res = derive.derive_fit([d], None, 4, bootstrap=12, loss="lsq", seed=1)
    g = res["dense"]
    law = derive.curve_law_of(g)
    assert law is not None and len(g.samples) == 12
    i = 5
    p_i = {k: float(v[i]) for k, v in law.samples.items()}
    assert p_i != law.params  # the resample moved the curve law
    pts = g.points
    sched = law.schedule
    losses = []
    for r in pts.itertuples():
        lr = replace(sched, warmup=int(r.warmup)).lr(int(r.steps)) / law.lr_unit
        s1, tt = curves.schedule_features(lr, np.array([int(r.steps)]), int(r.warmup))
        losses.append(curves.predict(law.form, p_i, curves.make_design(np.array([r.N / law.n_ref]), s1, tt))[0])
    df = pts.assign(loss=losses, group="dense")
    cols = dict(n_col="N", d_col="D", c_col="C", loss_col="loss", run_col="run", by=["group"])
    one = fit_laws(df, **cols, bootstrap=0, loss="lsq")
    for k in ("E", "A", "B", "alpha", "beta"):
        assert g.samples[k].iloc[i] == pytest.approx(one["dense"].params[k], rel=2e-3), k
    # the noise moves the curve law between resamples, so N_opt gets an interval of nonzero width around it
    lo, hi = g.derived_conf_int["N_opt"]
    assert lo < g.derived["N_opt"] < hi and hi > lo * 1.001


def test_fit_derive_cli_writes_a_fit_the_planner_reads(tmp_path):
    d = write_runs(tmp_path, noise=0.003)
    out = tmp_path / "f.derived.json"
    r = runner.invoke(
        app,
        ["fit", str(d), "--curves", "--derive", "--holdout-branches", "--bootstrap", "6", "--out", str(out)],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "f.curves.json").exists() and "trunks to their cooldown start" in r.output
    fit = load_fit(out)
    g = fit["dense"]
    assert g.points["derived"].all() and g.diagnostics["curve_law"]["fitted_on"] == "without the held-out branches"
    assert fit.bootstrap.n == 6 and len(g.samples) == 6
    r = runner.invoke(app, ["plan", "budget", "--fit", str(out), "--flops", "3e14"])
    assert r.exit_code == 0, r.output
    assert "schedule: dense: the loss assumes WSD" in r.output and "1-sqrt cooldown" in r.output
    from scalelab.fit.curves import load_curves

    law = load_curves(tmp_path / "f.curves.json").fits["dense"]  # its resamples kept, for `check`'s intervals
    assert set(law.samples) == set(law.params) and all(len(v) == 6 for v in law.samples.values())


def test_tokens_trained_by_the_two_designs(tmp_path):
    d = write_runs(tmp_path, widths=(24, 32), ks=(1, 2, 4, 8))
    full = derive.tokens_trained([d], False)["dense"]
    cheap = derive.tokens_trained([d], True)["dense"]
    want_full, want_cheap = 0, 0
    for w in (24, 32):
        run = RunConfig.from_dict(_config(w, 400.0 * w**2, (1, 2, 4, 8)))
        plan = make_plan(run)
        want_full += estimate_tokens(run)
        shortest = min(s for _, s in wsd_branches(run, plan) if s >= 0.2 * plan.total)
        want_cheap += (plan.cooldown_start(plan.total, 0.2) + round(0.2 * shortest)) * TPS
    assert full == want_full and cheap == want_cheap and cheap < full


def _err(r):
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    return lines[0]


def test_derive_without_curves_is_one_line(tmp_path):
    d = write_runs(tmp_path, widths=(24,))
    assert "add --curves" in _err(runner.invoke(app, ["fit", str(d), "--derive"]))


def test_derive_on_a_csv_is_one_line(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("run,step,N,loss\na,1,10,3\n")
    line = _err(runner.invoke(app, ["fit", str(p), "--curves", "--derive", "--schedule", "decay=wsd"]))
    assert "--derive needs run files" in line


def test_derive_with_no_resamples_is_one_line(tmp_path):
    d = write_runs(tmp_path, widths=(24, 32, 40))
    line = _err(runner.invoke(app, ["fit", str(d), "--curves", "--derive", "--bootstrap", "0", "--out",
                                    str(tmp_path / "x.json")]))  # fmt: skip
    assert "--bootstrap 2 or more" in line and not (tmp_path / "x.json").exists()
