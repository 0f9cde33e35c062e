"""`scalelab fit` through the CLI: run-store Parquet and CSV input, outputs, and one-line errors."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scalelab.cli import app

runner = CliRunner()


def law(N, D, alpha=0.34):
    return 1.8 + 400 / N**alpha + 2000 / D**0.37


def write_runs(tmp_path, variants=("dense", "lowrank-32"), sizes=(2e7, 5e7, 1e8, 2e8, 5e8), tpp=(5, 20, 80), seed=0):
    """Run-store files as DESIGN.md describes them: one file per run, curve rows plus a final row."""
    rng = np.random.default_rng(seed)
    d = tmp_path / "runs"
    d.mkdir(exist_ok=True)
    for v in variants:
        for N in sizes:
            for t in tpp:
                run_id = f"{v}-{N:.0e}-{t}"
                D_final = N * t
                toks = D_final * np.array([0.05, 0.5, 1.0])
                L = law(N, toks) * np.exp(0.005 * rng.standard_normal(3))
                model = {"d_model": 64, "n_layers": 2, "n_heads": 2, "ffn": {"kind": "dense"}}
                df = pd.DataFrame(
                    {
                        "run_id": run_id,
                        "grid": "test",
                        "variant": v,
                        "structure": v.split("-")[0],
                        "d_model": 64,
                        "params": N,
                        "params_nonembed": 0.9 * N,
                        "step": [1, 10, 20],
                        "tokens": toks,
                        "flops": 6.5 * N * toks,
                        "flops_6nd": 6 * N * toks,
                        "train_loss": L,
                        "val_loss": L,
                        "final": [False, False, True],
                        "status": "ok",
                        "tokens_per_s": 1000.0,
                        "mfu": 0.3,
                        "device": "cpu",
                        "config": json.dumps({"model": model, "seed": 0}),
                    }
                )
                df.to_parquet(d / f"{run_id}.parquet")
    return sorted(d.glob("*.parquet"))


def test_fit_run_store(tmp_path):
    files = write_runs(tmp_path)
    out = tmp_path / "fits" / "demo.json"
    r = runner.invoke(app, ["fit", *map(str, files), "--bootstrap", "100", "--out", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert d["format"] == "scalelab-fit/2" and d["flop_convention"] == "flops" and d["by"] == ["variant"]
    assert d["bootstrap"]["unit"] == "run" and len(d["inputs"]) == len(files)
    assert len(d["inputs"][0]["sha256"]) == 64
    g = d["groups"]["dense"]
    assert g["form"] == "chinchilla" and g["n_runs"] == 15 and g["n_points"] == 15  # final rows only
    run = g["runs"][0]
    assert run["model"]["d_model"] == 64 and run["tokens_per_s"] == 1000.0 and run["device"] == "cpu"
    assert set(g["conf_int"]) == {"E", "A", "B", "alpha", "beta"}
    assert abs(g["params"]["alpha"] - 0.34) < 0.1
    assert d["comparisons"][0]["a"] == "dense" and d["comparisons"][0]["b"] == "lowrank-32"
    s = pd.read_parquet(out.parent / d["samples"])
    # docs/interfaces.md "Fit file": the law's parameters, then the allocation exponents a, b (and kN, kD)
    assert list(s.columns)[:9] == ["group", "sample", "E", "A", "B", "alpha", "beta", "K", "gamma"]
    assert {"a", "b", "kN", "kD"} <= set(s.columns)
    ab = s[["alpha", "beta", "a"]].dropna()
    assert np.allclose(ab["a"], ab["beta"] / (ab["alpha"] + ab["beta"]))  # a = beta / (alpha + beta), per sample
    assert len(s) == 200 and s["K"].isna().all()
    from scalelab.fit import load_fit

    f = load_fit(out)
    assert np.isclose(f.params_.loc["dense", "alpha"], g["params"]["alpha"])
    lo, hi = f.conf_int(0.5).loc[("dense", "alpha")]
    assert g["conf_int"]["alpha"][0] <= lo <= hi <= g["conf_int"]["alpha"][1]


def test_fit_all_checkpoints_drops_early_points(tmp_path):
    files = write_runs(tmp_path, variants=("dense",))
    out = tmp_path / "f.json"
    r = runner.invoke(app, ["fit", *map(str, files), "--bootstrap", "20", "--all-checkpoints", "--out", str(out)])
    assert r.exit_code == 0, r.output
    g = json.loads(out.read_text())["groups"]["dense"]
    assert g["n_points"] == 30 and g["n_runs"] == 15  # 5% checkpoints dropped, 50% and final kept


def test_fit_csv_chinchilla_json(tmp_path, chinchilla_path):
    out = tmp_path / "c.json"
    r = runner.invoke(
        app,
        [
            "fit",
            str(chinchilla_path),
            "--n-col",
            "Model Size",
            "--flops-col",
            "Training FLOP",
            "--drop-top-loss",
            "5",
            "--bootstrap",
            "50",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    g = d["groups"]["all"]
    assert g["n_points"] == 240 and d["flop_convention"] == "6ND" and d["bootstrap"]["unit"] == "row"
    assert abs(g["params"]["alpha"] - 0.348) < 0.003 and out.exists()


def test_fit_bootstrap_zero_and_holdout(tmp_path):
    df = pd.DataFrame(
        [{"N": N, "D": N * t, "loss": law(N, N * t)} for N in (1e7, 3e7, 1e8, 3e8, 1e9) for t in (5, 20, 80)]
    )
    p = tmp_path / "t.csv"
    df.to_csv(p, index=False)
    out = tmp_path / "t.json"
    r = runner.invoke(app, ["fit", str(p), "--bootstrap", "0", "--holdout", "largest", "--out", str(out)])
    assert r.exit_code == 0, r.output
    g = json.loads(out.read_text())["groups"]["all"]
    assert g["conf_int"] == {} and g["holdout"]["mean_rel_error"] < 1e-3


def _err(r):
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    return lines[0]


def test_bad_inputs_one_line_errors(tmp_path):
    good = pd.DataFrame({"N": [1e7, 1e8, 1e9, 1e7], "D": [1e9, 1e9, 1e9, 2e9], "loss": [3.0, 2.8, 2.6, 2.9]})
    cases = {
        "missing.csv": (good.drop(columns=["loss"]), "'loss'"),
        "negative.csv": (good.assign(N=[1e7, -1.0, 1e9, 1e7]), "'N'"),
        "nan.csv": (good.assign(loss=[3.0, np.nan, 2.6, 2.9]), "'loss'"),
    }
    for name, (df, col) in cases.items():
        p = tmp_path / name
        df.to_csv(p, index=False)
        line = _err(runner.invoke(app, ["fit", str(p), "--out", str(tmp_path / "x.json")]))
        assert name in line and col in line, line
    # a group with 2 points
    p = tmp_path / "groups.csv"
    good.assign(g=["a", "a", "a", "b"]).pipe(lambda d: pd.concat([d, d.iloc[[3]]])).to_csv(p, index=False)
    line = _err(runner.invoke(app, ["fit", str(p), "--group-col", "g", "--out", str(tmp_path / "x.json")]))
    assert "groups.csv" in line and "'b'" in line and "2 point" in line
    # unreadable files
    bad = tmp_path / "corrupt.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    line = _err(runner.invoke(app, ["fit", str(bad)]))
    assert "corrupt.parquet" in line
    line = _err(runner.invoke(app, ["fit", str(tmp_path / "nope.csv")]))
    assert "nope.csv" in line
    # run store without a required column
    files = write_runs(tmp_path, variants=("dense",), sizes=(1e7, 1e8, 1e9))
    df = pd.read_parquet(files[0]).drop(columns=["flops"])
    df.to_parquet(files[0])
    line = _err(runner.invoke(app, ["fit", *map(str, files), "--out", str(tmp_path / "x.json")]))
    assert files[0].name in line and "'flops'" in line
    assert not (tmp_path / "x.json").exists()


def test_fit_cli_options_paths(tmp_path):
    files = write_runs(tmp_path)
    out = tmp_path / "o.json"
    r = runner.invoke(
        app,
        [
            "fit",
            *map(str, files),
            "--bootstrap",
            "30",
            "--share-e",
            "--weights",
            "compute",
            "--compare",
            "lowrank-32,dense",
            "--loss",
            "lsq",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert d["share_e"] and d["loss"] == {
        "kind": "lsq",
        "delta": 1e-3,
        "overestimate_penalty": 1.0,
        "weights": "compute",
    }
    assert d["groups"]["dense"]["params"]["E"] == d["groups"]["lowrank-32"]["params"]["E"]
    assert [(c["a"], c["b"]) for c in d["comparisons"]] == [("lowrank-32", "dense")]
    r = runner.invoke(app, ["fit", *map(str, files), "--approach", "1", "--all-checkpoints", "--out", str(out)])
    assert r.exit_code == 0, r.output
    g = json.loads(out.read_text())["groups"]["dense"]
    assert g["form"] == "allocation" and set(g["params"]) == {"a", "b", "kN", "kD"}
    line = _err(runner.invoke(app, ["fit", *map(str, files), "--compare", "dense,nope", "--out", str(out)]))
    assert "nope" in line


# ---- issue 13: identifiability, --fix, rollout, starts ------------------------------------------------------
def seed_paper_csv(tmp_path, seed=0):
    """The seed paper's design (Wei et al. 2024): 4 sizes per structure (the seed-s..xl presets' params), tokens
    about 20 x params with a few % spread (about 9% between extremes), loss from a Chinchilla law plus noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for v, f in (("dense", 1.0), ("lowrank-63", 1.1)):
        for N, t in zip((1.1e8, 3.4e8, 7.3e8, 1.3e9), (20.0, 19.7, 20.6, 18.9)):
            D = N * t
            L = (1.7 + f * 400 / N**0.34 + 2000 / D**0.37) * np.exp(0.003 * rng.standard_normal())
            rows.append({"N": N, "D": D, "loss": L, "structure": v})
    p = tmp_path / "seed.csv"
    pd.DataFrame(rows).to_csv(p, index=False)
    return p


def test_seed_paper_design_fits_frontier_and_no_compute_optimal_row(tmp_path):
    p = seed_paper_csv(tmp_path)
    out = tmp_path / "s.json"
    r = runner.invoke(app, ["fit", str(p), "--group-col", "structure", "--bootstrap", "50", "--out", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    for g in d["groups"].values():
        assert g["form"] == "frontier" and "N_opt" not in g["derived"]
        why = g["identification"]["why"]
        assert "confounded" in why and "fitting L(C)" in why and "5x and 50x" in why
        assert g["identification"]["separation"] < 1.2  # 9% spread: far below the 3x L(N, D) needs
    assert "compute-optimal at" not in r.output and "confounded" in r.output
    # the plan shows no compute-optimal N or D as if identified
    r = runner.invoke(app, ["plan", "--fit", str(out), "--flops", "1e20", "--json"])
    assert r.exit_code == 0, r.output
    for pl in json.loads(r.stdout)["plans"]:
        assert pl["identified"] is False and pl["N_int"] == [None, None]
    # asked for L(N, D) on that design: refused in one line, nothing written
    line = _err(
        runner.invoke(
            app, ["fit", str(p), "--group-col", "structure", "--form", "chinchilla", "--out", str(tmp_path / "x.json")]
        )
    )
    assert "confounded" in line and "add runs" in line and not (tmp_path / "x.json").exists()


def test_fewer_points_than_parameters_refused(tmp_path):
    df = pd.DataFrame({"N": [1e7, 1e8, 1e9], "D": [2e8, 4e9, 1e11], "loss": [3.5, 3.0, 2.6]})
    p = tmp_path / "three.csv"
    df.to_csv(p, index=False)
    for form in ("auto", "chinchilla", "frontier"):
        line = _err(runner.invoke(app, ["fit", str(p), "--form", form, "--out", str(tmp_path / "x.json")]))
        assert "3 points" in line or "confounded" in line or "sizes" in line, line
    line = _err(runner.invoke(app, ["fit", str(p), "--form", "frontier", "--out", str(tmp_path / "x.json")]))
    assert "3 points for the 3 free parameters" in line
    assert not (tmp_path / "x.json").exists()


def test_fix_is_held_and_recorded(tmp_path):
    df = pd.DataFrame(
        [{"N": N, "D": N * t, "loss": law(N, N * t)} for N in (1e7, 3e7, 1e8, 3e8, 1e9) for t in (5, 20, 80)]
    )
    p = tmp_path / "t.csv"
    df.to_csv(p, index=False)
    out = tmp_path / "t.json"
    r = runner.invoke(
        app, ["fit", str(p), "--fix", "E=1.8", "--fix", "beta=0.37", "--bootstrap", "30", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    g = d["groups"]["all"]
    assert d["spec"]["fix"] == {"E": 1.8, "beta": 0.37} and g["fixed"] == {"E": 1.8, "beta": 0.37}
    assert g["params"]["E"] == pytest.approx(1.8, rel=1e-12) and g["params"]["beta"] == pytest.approx(0.37, rel=1e-12)
    assert g["conf_int"]["E"] == pytest.approx([1.8, 1.8], rel=1e-12)
    # noise-free data from the law: with E and beta held at the truth the others are the truth
    assert g["params"]["alpha"] == pytest.approx(0.34, rel=1e-4) and g["params"]["B"] == pytest.approx(2000, rel=1e-3)
    assert not g["diagnostics"]["at_bound"] and "held fixed: E=1.8, beta=0.37" in " ".join(r.output.split())
    # fixed E away from the truth: the fit moves the rest, E stays
    r = runner.invoke(app, ["fit", str(p), "--fix", "E=1.5", "--bootstrap", "0", "--out", str(out)])
    assert r.exit_code == 0 and json.loads(out.read_text())["groups"]["all"]["params"]["E"] == pytest.approx(1.5)
    for bad, needle in (("E", "NAME=VALUE"), ("E=-1", "positive"), ("Q=1", "not a law parameter"), ("K=3", "no K")):
        line = _err(runner.invoke(app, ["fit", str(p), "--fix", bad, "--out", str(tmp_path / "y.json")]))
        assert needle in line, line


def test_rollout_table_on_noise_free_law_is_exact(tmp_path):
    sizes = (1e7, 2e7, 5e7, 1e8, 3e8, 1e9)
    df = pd.DataFrame([{"N": N, "D": N * t, "loss": law(N, N * t)} for N in sizes for t in (5, 20, 80)])
    p = tmp_path / "t.csv"
    df.to_csv(p, index=False)
    out = tmp_path / "t.json"
    r = runner.invoke(app, ["fit", str(p), "--rollout", "--bootstrap", "0", "--out", str(out)])
    assert r.exit_code == 0, r.output
    ro = json.loads(out.read_text())["groups"]["all"]["rollout"]
    assert [row["k"] for row in ro["rows"]] == [3, 4, 5]  # the first step that has 3 sizes, up to the 5th
    assert [row["predict"] for row in ro["rows"]] == pytest.approx(sizes[3:])
    for row in ro["rows"]:
        assert row["n_predicted"] == 3 and row["max_rel_error"] < 1e-3
    assert "rollout (fit on the k smallest sizes, predict the next)" in r.output


def test_starts_help_matches_auto_starts():
    from scalelab.fit.solver import auto_starts

    r = runner.invoke(app, ["fit", "--help"], env={"COLUMNS": "400"})
    text = " ".join(r.output.split())
    assert "2 from 81 points, 8 up to 30" in text
    assert auto_starts(81) == 2 and auto_starts(80) == 3 and auto_starts(30) == 8 and auto_starts(31) == 7
    # the 0.3 search (FitSpec.search "starts") keeps its own rule
    assert auto_starts(161, "starts") == 2 and auto_starts(160, "starts") == 3 and auto_starts(60, "starts") == 8


def test_row_bootstrap_with_repeated_sizes_warns_and_run_column_is_found(tmp_path):
    rows = []
    for N in (1e7, 3e7, 1e8, 3e8, 1e9):
        for t in (5, 10, 20, 40, 80):  # checkpoints of one run per size
            rows.append({"N": N, "D": N * t, "loss": law(N, N * t), "run": f"r{N:.0e}"})
    df = pd.DataFrame(rows)
    p = tmp_path / "ck.csv"
    df.drop(columns=["run"]).rename(columns={}).to_csv(p, index=False)
    out = tmp_path / "ck.json"
    r = runner.invoke(app, ["fit", str(p), "--bootstrap", "20", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "sizes repeat (up to 5 rows at one N)" in " ".join(r.output.split())
    p2 = tmp_path / "ck_run.csv"
    df.to_csv(p2, index=False)  # a column named run: the bootstrap unit without --run-col
    r = runner.invoke(app, ["fit", str(p2), "--bootstrap", "20", "--out", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert d["bootstrap"]["unit"] == "run" and d["groups"]["all"]["n_runs"] == 5
    assert "sizes repeat" not in r.output


GEMSTONES = Path(__file__).resolve().parents[3] / "shared" / "data" / "external" / "gemstones.csv"


@pytest.mark.skipif(not GEMSTONES.exists(), reason="needs ../shared/data/external/gemstones.csv")
def test_gemstones_fits_and_plans_without_warnings(tmp_path):
    gemstones_path = GEMSTONES
    out = tmp_path / "gem.json"
    r = runner.invoke(
        app, ["fit", str(gemstones_path), "--group-col", "group", "--bootstrap", "100", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert "warning" not in r.output
    d = json.loads(out.read_text())
    assert d["bootstrap"]["unit"] == "run"
    for g in d["groups"].values():
        assert g["form"] == "chinchilla" and g["compute_optimal"]["identified"] and not g["warnings"]
        lo, hi = g["compute_optimal"]["plausible_tokens_per_param"]
        assert lo <= g["derived"]["tokens_per_param"] <= hi
    r = runner.invoke(app, ["plan", "--fit", str(out), "--flops", "1e21"])
    assert r.exit_code == 0, r.output
    assert "warning" not in r.output and "assumed MFU" not in r.output
    assert "GPU-hours not shown" in " ".join(r.output.split())  # no throughput basis in a CSV of losses


def _csv(tmp_path):
    rows = [
        {"N": N, "D": N * t, "loss": law(N, N * t), "run": f"r{N:.0e}-{t}"}
        for N in (1e7, 3e7, 1e8, 3e8, 1e9)
        for t in (5, 20, 80)
    ]
    p = tmp_path / "pts.csv"
    pd.DataFrame(rows).rename(columns={"N": "n_params", "loss": "val"}).to_csv(p, index=False)
    return p


def test_spec_file_sets_the_fit_and_options_given_override_it(tmp_path):
    p = _csv(tmp_path)
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'n_col = "n_params"\nloss_col = "val"\nbootstrap = 12\nseed = 5\nat_flops = [1e20]\nfix = {E = 1.8}\n'
    )
    out = tmp_path / "f.json"
    r = runner.invoke(app, ["fit", str(p), "--spec", str(spec), "--seed", "9", "--out", str(out)])
    assert r.exit_code == 0, r.output
    s = json.loads(out.read_text())["spec"]
    assert (s["n_col"], s["loss_col"], s["bootstrap"], s["fix"]) == ("n_params", "val", 12, {"E": 1.8})
    assert s["seed"] == 9 and s["at_flops"] == [1e20] and s["c_ref"] == 1e20  # the flag over the file


def test_spec_file_unknown_key_is_one_line_naming_it(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text("bootstrap = 10\nn_colum = 'N'\n")
    r = runner.invoke(app, ["fit", str(_csv(tmp_path)), "--spec", str(spec)])
    assert r.exit_code == 2 and "unknown key 'n_colum'" in r.output and "n_col" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_commands_never_read_fit_file_keys():
    """Commands read a fit through its typed attributes (scalelab/fit/records.py), never its file's keys."""
    import re

    import scalelab.commands

    folder = Path(scalelab.commands.__file__).parent
    hits = [
        f"{f.name}:{i}: {line.strip()}"
        for f in sorted(folder.glob("*.py"))
        for i, line in enumerate(f.read_text().splitlines(), 1)
        if re.search(r"\.(extra|meta)\b|\.extra\[|\.meta\[", line)
    ]
    assert not hits, hits


def test_out_is_a_json_file_and_replaces_only_an_earlier_fit(tmp_path):
    p = tmp_path / "t.csv"
    pd.DataFrame(
        [{"N": N, "D": N * t, "loss": law(N, N * t)} for N in (1e7, 3e7, 1e8, 3e8, 1e9) for t in (5, 20, 80)]
    ).to_csv(p, index=False)
    table = p.read_text()
    # `--out t.csv` wrote the fit's JSON over the table it fitted
    assert "ending in .json" in _err(runner.invoke(app, ["fit", str(p), "--bootstrap", "0", "--out", str(p)]))
    assert p.read_text() == table
    other = tmp_path / "config.json"
    other.write_text('{"lr": 0.1}')
    assert "not a fit scalelab wrote" in _err(runner.invoke(app, ["fit", str(p), "--out", str(other)]))
    assert other.read_text() == '{"lr": 0.1}'
    out = tmp_path / "f.json"
    for _ in range(2):  # an earlier fit is replaced
        assert runner.invoke(app, ["fit", str(p), "--bootstrap", "0", "--out", str(out)]).exit_code == 0
