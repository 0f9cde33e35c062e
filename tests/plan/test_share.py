"""The plan over width, FFN share and tokens (plan/share.py) equals a brute-force search over (d, f, D) on
the fitted law, with exact params and FLOPs of every shape, and says when the best share is at an edge."""

import numpy as np
import pandas as pd
import pytest

from scalelab import flops as F
from scalelab import structures
from scalelab.config import ModelConfig
from scalelab.errors import ScalelabError
from scalelab.fit import fit_laws, laws
from scalelab.plan import throughput_model
from scalelab.plan.families import ShapeRule
from scalelab.plan.share import build, nominal_shares, plan_share, plan_share_time

from .test_throughput_model import bench_doc, write

BASE = {"E": 1.8, "A": 60.0, "B": 400.0, "alpha": 0.3, "beta": 0.3}
WIDTHS = (64, 128, 192, 256, 320)


def runs(rho_N, rho_D=0.0, shares=(1.0, 0.63, 0.32), seed=0):
    """Real lowrank shapes (4 layers) at three shares and five widths; losses from the share law + noise."""
    rng = np.random.default_rng(seed)
    truth = {**BASE, "rho_N": rho_N, "rho_D": rho_D}
    rows, cfgs = [], []
    for f in shares:
        for d in WIDTHS:
            cfg = ModelConfig(d_model=d, n_layers=4, n_heads=d // 32)
            if f < 1:
                cfg = cfg.replace(ffn=structures.for_fraction("lowrank", d, 4 * d, f))
            share = 1.0 if f == 1 else structures.ffn_fraction(cfg.ffn, d, 4 * d)
            N = F.param_counts(cfg).params
            cfgs.append(cfg)
            for t in (10, 30, 90):
                mean = laws.predict("share", truth, N=N, D=N * t, share=share)
                rows.append(
                    dict(
                        N=N,
                        D=N * t,
                        loss=mean * np.exp(0.005 * rng.standard_normal()),
                        share=share,
                        run=f"{f}-{d}-{t}",
                        kind="lowrank",
                    )
                )
    return pd.DataFrame(rows), cfgs


def fitted(rho_N, rho_D=0.0):
    df, cfgs = runs(rho_N, rho_D)
    fit = fit_laws(
        df, n_col="N", d_col="D", loss_col="loss", run_col="run", share_col="share", by=("kind",), bootstrap=30
    )
    return fit, ShapeRule.from_runs(cfgs, multiple=32)


def brute_force(fit, rule, C, shares, d_max=4096):
    """Every (d, f) shape up to d_max, every D up to what the budget buys: the least loss of the fitted law. C:
    FLOPs, or a function of the shape giving the most tokens it can train (a time budget)."""
    g = fit["lowrank"]
    best = (np.inf, None, None)
    for d in range(32, d_max + 1, 32):
        for f in shares:
            s = build(rule, "lowrank", d, f, "params", fit.convention)
            if s is None or not g.range["share"][0] * (1 - 1e-6) <= s.share <= 1:
                continue
            most = C(s) if callable(C) else C / s.flops_per_token
            for frac in (0.25, 0.5, 0.9, 1.0):  # tokens below the budget only lose
                D = frac * most
                L = float(g.predict(s.N, D, share=s.share))
                if L < best[0]:
                    best = (L, s, D)
    return best


@pytest.mark.parametrize("rho_N, edge", [(0.5, "dense"), (-0.5, "low edge")])
def test_optimum_equals_brute_force(rho_N, edge):
    fit, rule = fitted(rho_N)
    C = 3e15
    plan = plan_share(fit, "lowrank", C, rule=rule)
    L, s, D = brute_force(fit, rule, C, nominal_shares(fit["lowrank"].share_law.shares))
    assert plan.shape.d_model < 4096 / 2  # inside what the brute force covers
    assert (plan.shape.d_model, plan.shape.share) == (s.d_model, s.share)
    assert plan.D == pytest.approx(D) and plan.loss.est == pytest.approx(L)
    assert any(edge in n for n in plan.notes)
    # a finer grid of shares finds nothing better than the plan's by more than rounding of the rank
    L_fine = brute_force(fit, rule, C, np.geomspace(0.32, 1.0, 60), d_max=2048)[0]
    assert plan.loss.est <= L_fine * (1 + 1e-3)


def test_interior_optimum_equals_brute_force():
    """rho_N and rho_D of opposite signs: the best share lies between the fitted ones, no edge note."""
    fit, rule = fitted(0.0)
    g = fit["lowrank"]
    g.params.update(rho_N=-1.0, rho_D=1.0)
    g.samples = None  # the point law only: its samples were drawn for other rhos
    C = 3e15
    plan = plan_share(fit, "lowrank", C, rule=rule)
    L, s, D = brute_force(fit, rule, C, nominal_shares(g.share_law.shares))
    assert (plan.shape.d_model, plan.shape.share) == (s.d_model, s.share)
    assert plan.loss.est == pytest.approx(L)
    assert 0.4 < plan.shape.share < 0.95 and not plan.notes
    assert not plan.loss.has_interval


def test_plan_has_intervals_and_exact_counts():
    fit, rule = fitted(-0.5)
    plan = plan_share(fit, "lowrank", 3e15, rule=rule)
    c = plan.shape.cfg
    assert plan.shape.N == F.param_counts(c).params
    assert plan.shape.share == pytest.approx(structures.ffn_fraction(c.ffn, c.d_model, c.ffn_width))
    assert plan.structure.kind == "lowrank" and plan.structure.rank is not None
    for e in (plan.loss, plan.tokens, plan.d_model, plan.params):
        assert e.has_interval and e.lo <= e.est <= e.hi
    assert plan.fitted_shares[0] <= plan.share.lo <= plan.share.hi <= 1.0
    text = "\n".join(plan.lines())
    assert "rank" in text and "predicted loss" in text


def test_refusals():
    fit, rule = fitted(0.5)
    with pytest.raises(ScalelabError, match="positive budget"):
        plan_share(fit, "lowrank", -1.0, rule=rule)
    with pytest.raises(ScalelabError, match="records no model configs"):
        plan_share(fit, "lowrank", 1e15)  # a CSV fit: no shapes to build without a rule
    plain = fit_laws(runs(0.5)[0], n_col="N", d_col="D", loss_col="loss", by=("kind",), bootstrap=0)
    with pytest.raises(ScalelabError, match="law across shares"):
        plan_share(plain, "lowrank", 1e15, rule=rule)


# ---- a time budget: tokens from measured throughput ---------------------------------------------------------
def table(tmp_path, rate=None, **kw) -> throughput_model.ThroughputModel:
    return throughput_model.load(write(tmp_path, bench_doc(**({"rate": rate} if rate else {}), **kw)))


@pytest.mark.parametrize("rho_N", [0.5, -0.5])
def test_time_budget_equals_brute_force(tmp_path, rho_N):
    fit, rule = fitted(rho_N)
    model = table(tmp_path)
    plan = plan_share_time(fit, "lowrank", 8.0, model, rule=rule)
    tokens = lambda s: 8.0 * 3600 * model.rate(s.cfg).tokens_per_s  # noqa: E731  (what 8 hours buy)
    L, s, D = brute_force(fit, rule, tokens, nominal_shares(fit["lowrank"].share_law.shares), 2048)
    assert plan.shape.d_model < 2048 / 2
    assert (plan.shape.d_model, plan.shape.share) == (s.d_model, s.share)
    assert plan.D == pytest.approx(D) and plan.loss.est == pytest.approx(L)
    tps = model.rate(plan.shape.cfg).tokens_per_s
    assert plan.tokens_per_s == pytest.approx(tps) and plan.D == pytest.approx(8.0 * 3600 * tps)
    assert plan.C == pytest.approx(plan.D * plan.shape.flops_per_token) and plan.flops.est == plan.C
    for e in (plan.loss, plan.tokens, plan.flops):
        assert e.has_interval and e.lo <= e.est <= e.hi
    assert "cuda:H100" in plan.basis and "commit abc123" in plan.basis
    text = "\n".join(plan.lines())
    assert "8 device-hours" in text and "bench train on cuda:H100" in text
    out = plan.to_dict()
    assert out["hours"] == 8.0 and out["flops"][0] == pytest.approx(plan.C) and out["throughput_basis"]


def test_time_budget_tokens_use_the_bench_flops_and_the_plan_the_fits(tmp_path):
    """FLOP/s the same at every shape: the hours buy H x 3600 x R / (the shape's FLOPs per token as the bench
    counts them, scalelab.flops), and the plan's FLOPs are those tokens in the fit's convention (here 6N)."""
    fit, rule = fitted(-0.5)
    R = 2e11
    plan = plan_share_time(fit, "lowrank", 4.0, table(tmp_path, rate=lambda d, f: np.log(R)), rule=rule)
    assert plan.D == pytest.approx(4 * 3600 * R / F.flops_per_token(plan.shape.cfg), rel=1e-9)
    assert plan.C == pytest.approx(plan.D * 6 * plan.shape.N, rel=1e-9)


def test_a_slow_structure_moves_the_time_optimum_toward_dense(tmp_path):
    """Structured shapes are better per FLOP (rho_N < 0: the FLOP plan takes the lowest share), but if they run
    at a small fraction of dense's FLOP/s the time plan keeps more of the dense FFN."""
    fit, rule = fitted(-0.5)
    R = 2e11
    slow = table(tmp_path, rate=lambda d, f: np.log(R) - 6.0 * (1 - f))
    flop = plan_share(fit, "lowrank", 4 * 3600 * R, rule=rule)
    timed = plan_share_time(fit, "lowrank", 4.0, slow, rule=rule)
    assert timed.shape.share > flop.shape.share * 1.5


def test_time_budget_refusals(tmp_path):
    fit, rule = fitted(0.5)
    dense_only = table(tmp_path, shares=(1.0,))
    with pytest.raises(ScalelabError, match=r"lowrank throughput on cuda:H100.*scalelab bench train .*lowrank-63"):
        plan_share_time(fit, "lowrank", 8.0, dense_only, rule=rule)
    with pytest.raises(ScalelabError, match="positive number of device-hours"):
        plan_share_time(fit, "lowrank", 0.0, table(tmp_path), rule=rule)


def test_extrapolated_throughput_is_said(tmp_path):
    fit, rule = fitted(0.5)
    one_width = table(tmp_path, widths=(64,))
    plan = plan_share_time(fit, "lowrank", 8.0, one_width, rule=rule)
    assert plan.shape.d_model != 64
    assert any(
        "throughput of the chosen shape extrapolated" in n and "outside the measured 64-64" in n for n in plan.notes
    )


GRID = """
name = "shares"
seeds = [0]
[data]
source = "stdlib"
[model]
widths = [32, 48, 64, 96]
n_layers = 2
head_dim = 16
seq_len = 128
[[variants]]
structure = "dense"
[[variants]]
structure = "lowrank"
fraction = 0.63
[[variants]]
structure = "lowrank"
fraction = 0.32
[budgets]
tokens_per_param = [10, 30, 90]
[schedule]
kind = "wsd"
[optimizer]
lr = 3e-3
batch_size = 4
"""


def test_run_store_end_to_end(tmp_path, monkeypatch):
    """Run-store input: shares and the kind from each run's config (--share-col config), then `plan share`."""
    import json
    import sys
    from pathlib import Path

    from typer.testing import CliRunner

    from scalelab.cli import app

    sys.path.insert(0, str(Path(__file__).parents[1] / "loop"))
    from synth import write_store

    truth = {**BASE, "rho_N": -0.3, "rho_D": 0.0}
    laws_by_variant = {
        v: laws.at_share(truth, f) for v, f in (("dense", 1.0), ("lowrank-63", 0.63), ("lowrank-32", 0.32))
    }
    (tmp_path / "g.toml").write_text(GRID)
    write_store(tmp_path / "g.toml", tmp_path / "runs", laws=laws_by_variant, noise=0.002)
    monkeypatch.chdir(tmp_path)
    files = sorted(str(p) for p in (tmp_path / "runs").glob("*.parquet"))
    r = CliRunner().invoke(app, ["fit", *files, "--share-col", "config", "--bootstrap", "30", "--out", "fits/s.json"])
    assert r.exit_code == 0, r.output
    assert "lowrank: L = E + A/(N f^rho_N)^alpha" in r.output
    from scalelab.fit import load_fit

    g = load_fit("fits/s.json")["lowrank"]
    assert g.form == "share" and len(g.share_law.shares) == 3 and g.share_law.shares[-1] == 1.0
    assert g.params["rho_N"] < 0  # structured parameters worth more, as the runs were drawn
    r = CliRunner().invoke(app, ["plan", "share", "--fit", "fits/s.json", "--flops", "1e14", "--json"])
    assert r.exit_code == 0, r.output
    plan = json.loads(r.output)[0]
    assert plan["kind"] == "lowrank" and plan["ffn"]["kind"] == "lowrank" and plan["ffn"]["rank"]
    assert plan["share"][0] == pytest.approx(min(g.share_law.shares), rel=0.05)
    assert any("low edge" in n for n in plan["notes"])
    r = CliRunner().invoke(app, ["plan", "budget", "--fit", "fits/s.json", "--flops", "1e14"])
    assert r.exit_code == 2 and "use `scalelab plan share`" in r.output  # the plan a share fit takes
    # a time budget: hours at the throughput of a bench train table
    share = ["plan", "share", "--fit", "fits/s.json"]
    r = CliRunner().invoke(app, [*share, "--gpu-hours", "0.01"])
    assert r.exit_code == 2 and "no bench/train.json" in r.output and "scalelab bench train" in r.output
    assert len(r.output.strip().splitlines()) == 1
    (tmp_path / "t").mkdir()
    dense = [str(p) for p in write(tmp_path / "t", bench_doc(widths=(32, 64), shares=(1.0,)))]
    r = CliRunner().invoke(app, [*share, "--gpu-hours", "0.01", *sum((["--throughput", p] for p in dense), [])])
    assert r.exit_code == 2 and "lowrank throughput" in r.output and "lowrank-63" in r.output
    assert len(r.output.strip().splitlines()) == 1
    files = write(tmp_path / "t", bench_doc(widths=(32, 64, 96)), stem="lr")
    r = CliRunner().invoke(app, [*share, "--gpu-hours", "0.01", *sum((["--throughput", str(p)] for p in files), [])])
    assert r.exit_code == 0, r.output
    assert "0.01 device-hours" in r.output and "throughput: bench train on cuda:H100" in r.output
    r = CliRunner().invoke(app, [*share, "--gpu-hours", "0.01", "--flops", "1e14"])
    assert r.exit_code == 2 and "give one budget" in r.output


def test_a_size_outside_the_fitted_sizes_is_said():
    """A budget far below the runs' puts the optimum below the smallest fitted size: the plan says the law is
    extrapolated in N there, and says nothing of N inside the fitted sizes."""
    fit, rule = fitted(0.5)
    n_lo, n_hi = fit["lowrank"].range["N"]
    small = plan_share(fit, "lowrank", 1e11, rule=rule)
    assert small.shape.N < n_lo and any("below the smallest fitted size" in n for n in small.notes), small.notes
    inside = plan_share(fit, "lowrank", 3e15, rule=rule)
    assert n_lo <= inside.shape.N <= n_hi and not any("fitted size" in n for n in inside.notes)
