"""plan --emit-grid and scalelab check on a run store drawn from a known law (tests/loop/synth.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.flops import budget_flops, param_counts
from scalelab.grid import Grid

from .synth import TRUE, grid_file, law, write_store

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Fitted runs: 5 widths x 4 budgets per variant, and their fit."""
    d = tmp_path_factory.mktemp("loop")
    g = grid_file(d, "base", [32, 48, 64, 96, 128], "tokens_per_param = [5, 10, 20, 40]")
    paths = write_store(g, d / "runs")
    fit = d / "fits" / "base.json"
    r = invoke("fit", *paths, "--bootstrap", 100, "--out", fit)
    assert r.exit_code == 0, r.output
    return d, paths, fit


def _c_max(paths):
    import pandas as pd

    return max(pd.read_parquet(p)["flops"].max() for p in paths)


def test_emitted_grid_is_an_isoflop_set_bracketing_the_plan(base, tmp_path):
    d, paths, fit = base
    C = 4 * _c_max(paths)
    out = tmp_path / "iso.toml"
    r = invoke("plan", "--fit", fit, "--flops", C, "--emit-grid", out, "--json")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    runs = Grid.load(str(out)).runs()
    by_variant = {}
    for run in runs:
        tokens = max(run.train.budgets)
        assert budget_flops(run.model, tokens) == pytest.approx(C, rel=0.05)  # every run spends the budget
        by_variant.setdefault(run.model.variant, []).append(run.model)
    for p in plan["plans"]:
        models = by_variant[p["variant"]]
        assert len(models) >= 3
        shape = p["shape"]["config"]
        # the planned shape is one the grid builds, with the planned params
        match = [m for m in models if m.d_model == shape["d_model"] and m.n_layers == shape["n_layers"]]
        assert match and param_counts(match[0]).params == p["shape"]["params_total"]
        n = sorted(param_counts(m).params for m in models)
        assert n[0] < p["N_opt"] < n[-1]  # the sizes bracket the predicted optimum
    r = invoke("run", "--grid", out, "--dry-run")  # and `scalelab run` takes the file
    assert r.exit_code == 0, r.output


def test_emit_refuses_a_plan_without_a_flops_budget_and_bad_sizes(base, tmp_path):
    d, paths, fit = base
    r = invoke("plan", "--fit", fit, "--target-loss", 2.5, "--emit-grid", tmp_path / "x.toml")
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    r = invoke(
        "plan", "--fit", fit, "--flops", 4 * _c_max(paths), "--emit-grid", tmp_path / "x.toml", "--emit-sizes", 9
    )
    assert r.exit_code == 2 and "3 to 7" in r.stderr
    assert not (tmp_path / "x.toml").exists()


def test_check_covers_runs_from_the_true_law_and_flags_a_shifted_one(base, tmp_path):
    d, paths, fit = base
    g = grid_file(tmp_path, "bigger", [160, 192], "tokens_per_param = [10, 20]")
    new = write_store(g, tmp_path / "new", seed=1)
    r = invoke("check", "--fit", fit, *paths, *new, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    pts = res["points"]
    assert len(pts) == 8 and {p["run_id"] for p in pts}.isdisjoint({p.split("__")[-1][:-8] for p in paths})
    for p in pts:  # the law the runs came from: predictions within a few percent, intervals cover
        assert abs(p["rel_error"]) < 0.03
    assert np.mean([p["covered"] for p in pts]) >= 0.75
    # the same runs 0.5 nats (about 20%) worse than the law: the intervals should not cover them
    shifted = {v: dict(p, E=p["E"] + 0.5) for v, p in TRUE.items()}
    bad = write_store(g, tmp_path / "bad", laws=shifted, seed=1)
    res = json.loads(invoke("check", "--fit", fit, *bad, "--json").stdout)
    assert np.mean([p["covered"] for p in res["points"]]) <= 0.25
    assert all(p["rel_error"] > 0.1 for p in res["points"])


def test_check_finds_the_optimum_of_an_emitted_isoflop_set(base, tmp_path):
    d, paths, fit = base
    C = 2 * _c_max(paths)
    out = tmp_path / "iso.toml"
    assert invoke("plan", "--fit", fit, "--flops", C, "--emit-grid", out, "--emit-sizes", 5).exit_code == 0
    new = write_store(out, tmp_path / "iso", seed=2)
    res = json.loads(invoke("check", "--fit", fit, *new, "--json").stdout)
    assert {r["variant"] for r in res["isoflop"]} == set(TRUE)
    for r in res["isoflop"]:
        # the true optimum along the set's own models, from the law the runs were drawn from
        runs = [run for run in Grid.load(str(out)).runs() if run.model.variant == r["variant"]]
        N = np.array([param_counts(run.model).params for run in runs], float)
        D = np.array([max(run.train.budgets) for run in runs], float)
        best = N[np.argmin(law(TRUE[r["variant"]], N, D))]
        assert r["N_obs"] == pytest.approx(best, rel=0.6)  # within the set's spacing of the true best size
        assert 0.25 < r["ratio"] < 4


def test_check_refusals_are_one_line(base, tmp_path):
    d, paths, fit = base
    r = invoke("check", "--fit", fit, *paths)  # nothing the fit did not see
    assert r.exit_code == 2 and "did not see" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    g = tmp_path / "other.toml"
    g.write_text(grid_file(tmp_path, "o", [32], "tokens = [100000]").read_text().replace("fraction = 0.32", "rank = 4"))
    other = write_store(g, tmp_path / "o", laws={"dense": TRUE["dense"], "lowrank-r4": TRUE["dense"]})
    r = invoke("check", "--fit", fit, *other)
    assert r.exit_code == 2 and "lowrank-r4" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    nofit = tmp_path / "f0.json"
    assert invoke("fit", *paths, "--bootstrap", 0, "--out", nofit).exit_code == 0
    r = invoke("check", "--fit", nofit, *other)
    assert r.exit_code == 2 and "bootstrap" in r.stderr


def test_plan_suggest_lists_runs_within_the_budget_that_narrow_the_interval(base):
    d, paths, fit = base
    budget = _c_max(paths)
    r = invoke("plan", "--fit", fit, "--suggest", 2, "--suggest-flops", budget, "--suggest-bootstrap", 40, "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert 1 <= len(s["suggested"]) <= 2
    for c in s["suggested"]:
        assert c["flops"] <= budget * (1 + 1e-9) and c["reduction"] > 0 and c["width"] < s["baseline_log_width"]
    per_flop = [c["per_flop"] for c in s["suggested"]]
    assert per_flop == sorted(per_flop, reverse=True)
