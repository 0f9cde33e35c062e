"""`scalelab fit` through the CLI: run-store Parquet and CSV input, outputs, and one-line errors."""

import json

import numpy as np
import pandas as pd
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
    assert d["format"] == "scalelab-fit/1" and d["flop_convention"] == "flops" and d["by"] == ["variant"]
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
    assert list(s.columns) == ["group", "sample", "E", "A", "B", "alpha", "beta", "K", "gamma"]
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
