"""plan --suggest from zero (a fit whose N_opt is not identified) and --emit-grid's reasons and names, on run
stores drawn from a known law (tests/loop/synth.py)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.errors import ScalelabError
from scalelab.fit import identify
from scalelab.fit.results import load_fit
from scalelab.flops import param_counts
from scalelab.grid import Grid
from scalelab.loop.suggest import design_runs, group_points

from .synth import TRUE, grid_file, law, write_store

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """2 widths x 2 tokens/param per variant: 2 sizes, ratios 2x apart, 4 points for the 5 parameters of
    L(N, D): the fit falls back to L(C) and N_opt is not identified (three rules unmet at once)."""
    d = tmp_path_factory.mktemp("small")
    g = grid_file(d, "small", [32, 48], "tokens_per_param = [10, 20]")
    paths = write_store(g, d / "runs")
    fit = d / "fits" / "small.json"
    r = invoke("fit", *paths, "--bootstrap", 10, "--out", fit)
    assert r.exit_code == 0, r.output
    return d, paths, fit


def _c_max(paths):
    return max(pd.read_parquet(p)["flops"].max() for p in paths)


def _true_n_opt(p, C, k):
    """The law's compute-optimal N at C = k N D, by a fine grid (independent of the fit's closed form)."""
    N = np.geomspace(1e3, 1e9, 200001)
    return float(N[np.argmin(law(p, N, C / (k * N)))])


def test_suggested_runs_make_the_fit_identify_the_form_and_n_opt(small, tmp_path):
    d, paths, fit = small
    f0 = load_fit(fit)
    assert {g.form for g in f0} == {"frontier"}  # the premise: not identified today
    cap = 4 * _c_max(paths)
    r = invoke("plan", "--fit", fit, "--suggest", 6, "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["mode"] == "identify" and set(s["gaps"]) == set(TRUE)
    rows = s["suggested"]
    assert 2 <= len(rows) <= 6 and [x["flops"] for x in rows] == sorted(x["flops"] for x in rows)
    new = []
    for i, row in enumerate(rows):
        assert row["flops"] <= cap * (1 + 1e-9) and row["rules"], row  # under the cap, and says why
        # train it: the suggested shape at the suggested tokens, its loss drawn from the true law with noise
        g = grid_file(tmp_path, f"s{i}", [row["config"]["d_model"]], f"tokens = [{int(row['D'])}]")
        run = next(x for x in Grid.load(str(g)).runs() if x.model.variant == row["variant"])
        assert param_counts(run.model).params == pytest.approx(row["N"], rel=1e-9)
        new += write_store(g, tmp_path / "new", variants=[row["variant"]], seed=3)
    out = tmp_path / "after.json"
    r = invoke("fit", *paths, *new, "--bootstrap", 0, "--out", out)
    assert r.exit_code == 0, r.output
    for g in load_fit(out):
        assert g.form == "chinchilla", g.identification
        assert g.compute_optimal.identified, g.warnings
        C = g.c_ref
        k = float(np.median(g.points["C"] / (g.points["N"] * g.points["D"])))
        assert g.derived["N_opt"] == pytest.approx(_true_n_opt(TRUE[g.variant], C, k), rel=0.5)


def test_design_runs_are_the_cheapest_set_that_identifies(small):
    """Against brute force over every set of one or two candidates, judged by identify.choose itself."""
    d, paths, fit = small
    f = load_fit(fit)
    s = design_runs(f, 2, 4 * _c_max(paths), variants=["dense"])
    gd = group_points(f)["dense"]
    assert len(gd) == 4 and gd["run"].nunique() == 2  # 2 runs (widths), each at 2 token budgets

    def form(extra):
        N = np.r_[gd["N"], [r.N for r in extra]]
        D = np.r_[gd["D"], [r.D for r in extra]]
        try:
            return identify.choose(N, D, np.r_[gd["C"], [r.flops for r in extra]])[0]
        except ScalelabError:
            return None

    assert form(s.runs) == "chinchilla" and form([]) != "chinchilla"
    pool = s.pool["dense"]
    best = min(
        sum(r.flops for r in c) for n in (1, 2) for c in itertools.combinations(pool, n) if form(c) == "chinchilla"
    )
    assert sum(r.flops for r in s.runs) == pytest.approx(best, rel=1e-9)
    for r in s.runs:  # each run is needed: without it the design misses the rule it names
        rest = [x for x in s.runs if x is not r]
        assert r.rules and form(rest) != "chinchilla"


def test_too_few_runs_or_too_small_a_cap_is_refused_in_one_line(small):
    d, paths, fit = small
    r = invoke("plan", "--fit", fit, "--suggest", 1)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "--suggest 2" in r.stderr or "--suggest 4" in r.stderr, r.stderr
    r = invoke("plan", "--fit", fit, "--suggest", 4, "--suggest-flops", 1e3)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1 and "--suggest-flops" in r.stderr


def test_allocation_rule_reaches_the_estimated_optimum(tmp_path):
    """L(N, D) is identified but its compute-optimal tokens/param lies beyond 10x the runs': the runs
    suggested reach it, by the rule the fit applies (identify.allocation_check on the recorded estimate)."""
    p = dict(E=1.0, A=3.0, B=100.0, alpha=0.36, beta=0.30)  # N barely matters: a very data-hungry optimum
    g = grid_file(tmp_path, "al", [32, 48, 64], "tokens_per_param = [5, 10, 20]")
    paths = write_store(g, tmp_path / "runs", laws={"dense": p}, variants=["dense"])
    fit = tmp_path / "al.json"
    assert invoke("fit", *paths, "--bootstrap", 0, "--out", fit).exit_code == 0
    gf = load_fit(fit).groups["dense"]
    co = gf.compute_optimal
    assert gf.form == "chinchilla" and co.identified is False
    r = invoke("plan", "--fit", fit, "--suggest", 3, "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    tpp = [x["D"] / x["N"] for x in s["suggested"]]
    ident = gf.identification
    lo, hi = min(ident.tpp_min, *tpp), max(ident.tpp_max, *tpp)
    assert identify.allocation_check(co.tokens_per_param, identify.plausible_tpp(lo, hi)) is None
    assert any("N_opt" in w for x in s["suggested"] for w in x["rules"])


def test_emit_grid_names_the_real_reason(small, tmp_path):
    d, paths, fit = small
    out = tmp_path / "next.toml"
    r = invoke("plan", "--fit", fit, "--flops", 4 * _c_max(paths), "--emit-grid", out)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "N_opt of" in r.stderr and "not identified" in r.stderr and "model size" in r.stderr, r.stderr
    assert "plan --suggest" in r.stderr and not out.exists()


def test_emitted_grid_escapes_names_from_data(tmp_path):
    """Variant names in the runs with quotes, newlines and ]: the grid loads with nothing injected and the
    names written as TOML strings that read back intact; a grid name unsafe as a file name (the loader's
    rule) is refused in one line, before anything is written."""
    g = grid_file(tmp_path, "base", [32, 48, 64, 96, 128], "tokens_per_param = [5, 10, 20, 40]")
    paths = write_store(g, tmp_path / "runs")
    hostile = 'de"n]\n[data]\nsource = "evil"'
    for p in paths:
        df = pd.read_parquet(p)
        df["variant"] = df["variant"].replace("dense", hostile)
        df.to_parquet(p)
    fit = tmp_path / "f.json"
    assert invoke("fit", *paths, "--bootstrap", 10, "--out", fit).exit_code == 0
    C = 4 * _c_max(paths)
    out = tmp_path / "next.toml"
    r = invoke("plan", "--fit", fit, "--flops", C, "--emit-grid", out)
    assert r.exit_code == 0, r.output
    grid = Grid.load(str(out))
    assert grid.name == "next" and grid.spec["data"]["source"] == "stdlib"
    assert {x.model.variant for x in grid.runs()} == {"dense", "lowrank-32"}
    text = out.read_text()
    assert set(tomllib.loads(text)) == {*grid.spec}  # no table or key the emitter did not write
    quoted = [line[4:].rsplit(": d_model", 1)[0] for line in text.splitlines() if line.startswith('#   "')]
    assert hostile in [tomllib.loads(f"k = {q}")["k"] for q in quoted]  # the name, escaped, reads back intact
    bad = tmp_path / 'we"ird]\n[x] name.toml'
    r = invoke("plan", "--fit", fit, "--flops", C, "--emit-grid", bad)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1 and not bad.exists()
    assert "not valid TOML" not in r.stderr and "file name" in r.stderr, r.stderr


def test_a_sweep_without_a_loss_law_gets_the_runs_that_would_give_it_one(tmp_path):
    """3 widths x 3 learning rates at one budget: the loss law is refused (3 points after the envelope), the lr
    law kept; --suggest lists the runs after which the design identifies L(N, D) (judged by identify.choose)."""
    rows = [
        dict(N=N, D=2e8, loss=2 + 40 / N**0.3 + 0.05 * np.log(lr / 1e-3) ** 2, lr=lr, run=f"{N:g}-{lr:g}")
        for N in (1e6, 2e6, 4e6)
        for lr in (3e-4, 1e-3, 3e-3)
    ]
    csv = tmp_path / "sweep.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    fit = tmp_path / "sweep.json"
    r = invoke("fit", csv, "--bootstrap", 0, "--out", fit)
    assert r.exit_code == 0 and "loss law not fitted" in r.output, r.output
    r = invoke("plan", "--fit", fit, "--suggest", 4, "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert "loss law not fitted" in s["gaps"]["all"]
    new = s["suggested"]
    N = np.r_[[1e6, 2e6, 4e6], [x["N"] for x in new]]
    D = np.r_[[2e8] * 3, [x["D"] for x in new]]
    assert identify.choose(N, D, 6 * N * D)[0] == "chinchilla"
    assert identify.choose(N[:-1], D[:-1], 6 * N[:-1] * D[:-1])[0] != "chinchilla"  # the last run is needed too
