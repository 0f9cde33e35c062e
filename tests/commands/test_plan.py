"""`scalelab plan` end to end through the CLI: tables, --json, --sweep, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scalelab.cli import app

EPOCH = dict(E=1.817, A=482.0, B=2085.0, alpha=0.348, beta=0.366)


def closed_form(p, C):
    _E, A, B, a, b = p["E"], p["A"], p["B"], p["alpha"], p["beta"]
    G = (a * A / (b * B)) ** (1 / (a + b))
    return G * (C / 6) ** (b / (a + b)), (C / 6) ** (a / (a + b)) / G


def write_fit(folder: Path, name: str = "fit", samples: bool = True, groups=("chinchilla",)) -> Path:
    """A 6ND fit file in the documented format, with draws around EPOCH's point estimate."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n = 200
    doc = {
        "format": "scalelab-fit/1",
        "flop_convention": "6ND",
        "by": ["variant"],
        "approach": 3,
        "bootstrap": {"n": n, "seed": 0, "level": 0.95, "unit": "row"},
        "samples": f"{name}.samples.parquet",
        "groups": {},
        "comparisons": [],
    }
    frames = []
    for i, g in enumerate(groups):
        point = dict(EPOCH, E=EPOCH["E"] + 0.01 * i)
        doc["groups"][g] = {
            "key": {"variant": g},
            "form": "chinchilla",
            "params": point,
            "residual_sd": 0.01,
            "range": {"N": [5.7e7, 1.6e10], "D": [1e9, 5e11], "C": [1.4e18, 1.3e22]},
            "runs": [],
        }
        frames.append(
            pd.DataFrame(
                dict(
                    group=g,
                    sample=np.arange(n),
                    E=point["E"] + 0.02 * rng.standard_normal(n),
                    A=point["A"] * np.exp(0.05 * rng.standard_normal(n)),
                    B=point["B"] * np.exp(0.05 * rng.standard_normal(n)),
                    alpha=point["alpha"] + 0.005 * rng.standard_normal(n),
                    beta=point["beta"] + 0.005 * rng.standard_normal(n),
                    K=np.nan,
                    gamma=np.nan,
                )
            )
        )
    path = folder / f"{name}.json"
    path.write_text(json.dumps(doc))
    if samples:
        pd.concat(frames).to_parquet(folder / f"{name}.samples.parquet")
    return path


runner = CliRunner()


def invoke(args, cwd: Path):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(app, args)
    finally:
        os.chdir(old)


def test_plan_table_defaults_to_newest_fit(tmp_path):
    write_fit(tmp_path / "fits", "old")
    write_fit(tmp_path / "fits", "new", groups=("dense", "lowrank-63"))
    os.utime(tmp_path / "fits" / "old.json", (1, 1))
    r = invoke(["plan", "--flops", "3.2e20"], tmp_path)
    assert r.exit_code == 0, r.output
    assert "new.json" in r.output and "dense" in r.output and "lowrank-63" in r.output
    assert "P(dense beats lowrank-63)" in r.output


def test_plan_json_matches_closed_form(tmp_path):
    path = write_fit(tmp_path)
    r = invoke(["plan", "--flops", "1e21", "--fit", str(path), "--json"], tmp_path)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    p = doc["plans"][0]
    N, D = closed_form(EPOCH, 1e21)
    assert p["N_opt"] == pytest.approx(N, rel=1e-10) and p["D_opt"] == pytest.approx(D, rel=1e-10)
    assert 6 * p["N_opt"] * p["D_opt"] == pytest.approx(1e21, rel=1e-10)
    assert p["N_int"][0] < p["N_opt"] < p["N_int"][1]
    assert p["L_pred_int"][0] < p["L_int"][0] < p["L_int"][1] < p["L_pred_int"][1]


def test_plan_sweep_json(tmp_path):
    path = write_fit(tmp_path)
    r = invoke(["plan", "--fit", str(path), "--sweep", "1e19:1e23", "--sweep-points", "5", "--json"], tmp_path)
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["rows"]
    assert [row["C"] for row in rows] == pytest.approx(list(np.geomspace(1e19, 1e23, 5)))
    for row in rows:
        assert row["N_opt"] == pytest.approx(closed_form(EPOCH, row["C"])[0], rel=1e-10)
    r = invoke(["plan", "--fit", str(path), "--sweep", "1e19:1e23", "--sweep-points", "3"], tmp_path)
    assert r.exit_code == 0 and "chinchilla" in r.output


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--flops", "1e15"], "below the smallest fitted run"),
        (["--flops", "1e21", "--variant", "nope"], "not in fit"),
        (["--flops", "abc"], "not a number"),
        (["--flops", "-1e21"], "positive"),
        ([], "give a budget"),
        (["--flops", "1e21", "--gpu", "tpu"], "unknown --gpu"),
        (["--sweep", "1e19"], "C_MIN:C_MAX"),
        (["--flops", "1e21", "--gpu-hours", "10"], "not both"),
        (["--target-loss", "-1"], "positive"),
        (["--target-loss", "1.5"], "below chinchilla's fitted irreducible loss E = 1.82"),
    ],
)
def test_user_errors_one_line_exit_2(tmp_path, args, needle):
    path = write_fit(tmp_path)
    r = invoke(["plan", "--fit", str(path), *args], tmp_path)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.output


def test_missing_samples_and_missing_fit(tmp_path):
    path = write_fit(tmp_path, samples=False)
    r = invoke(["plan", "--fit", str(path), "--flops", "1e21"], tmp_path)
    assert r.exit_code == 2 and "no bootstrap samples" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = invoke(["plan", "--flops", "1e21"], tmp_path)  # no fits/ folder
    assert r.exit_code == 2 and "no fit files" in r.stderr


def test_gpu_hours_and_target_loss_json(tmp_path):
    path = write_fit(tmp_path)
    r = invoke(["plan", "--fit", str(path), "--gpu-hours", "1000", "--gpu", "a100", "--mfu", "0.5", "--json"], tmp_path)
    assert r.exit_code == 0, r.output
    p = json.loads(r.stdout)["plans"][0]
    C = 1000 * 3600 * 312e12 * 0.5
    assert p["C"] == pytest.approx(C) and p["gpu_hours"] == pytest.approx(1000)
    assert p["N_opt"] == pytest.approx(closed_form(EPOCH, C)[0], rel=1e-10)
    r = invoke(["plan", "--fit", str(path), "--target-loss", "2.1", "--json"], tmp_path)
    assert r.exit_code == 0, r.output
    t = json.loads(r.stdout)["plans"][0]["target"]
    # L_opt(C) = E + (A G^-alpha + B G^beta) (C/6)^(-alpha beta/(alpha+beta)) = 2.1, solved by hand
    E, A, B, a, b = (EPOCH[k] for k in ("E", "A", "B", "alpha", "beta"))
    G = (a * A / (b * B)) ** (1 / (a + b))
    C = 6 * ((2.1 - E) / (A * G**-a + B * G**b)) ** (-(a + b) / (a * b))
    assert t["C"] == pytest.approx(C, rel=1e-9) and t["C_int"][0] < C < t["C_int"][1]


def test_fit_then_plan_end_to_end(tmp_path, chinchilla_path):
    """`scalelab fit chinchilla_epoch.csv` -> `scalelab plan --flops 1e21` (newest fit), checked against
    REFERENCE.md section 3's closed form on the fitted point estimate."""
    r = invoke(
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
            "100",
            "--out",
            "fits/chinchilla.json",
        ],
        tmp_path,
    )
    assert r.exit_code == 0, r.output
    r = invoke(["plan", "--flops", "1e21", "--json"], tmp_path)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["fit_path"].endswith("chinchilla.json")
    fit = json.loads((tmp_path / "fits" / "chinchilla.json").read_text())
    (g,) = fit["groups"].values()
    p = doc["plans"][0]
    N, D = closed_form(g["params"], 1e21)
    assert p["N_opt"] == pytest.approx(N, rel=1e-10) and p["D_opt"] == pytest.approx(D, rel=1e-10)
    assert p["N_opt"] == pytest.approx(closed_form(EPOCH, 1e21)[0], rel=0.05)  # the replication's law
    assert p["N_int"][0] < p["N_opt"] < p["N_int"][1]


def test_fit_without_bootstrap_is_refused(tmp_path, chinchilla_path):
    r = invoke(
        [
            "fit",
            str(chinchilla_path),
            "--n-col",
            "Model Size",
            "--flops-col",
            "Training FLOP",
            "--bootstrap",
            "0",
            "--out",
            "fits/nob.json",
        ],
        tmp_path,
    )
    assert r.exit_code == 0, r.output
    r = invoke(["plan", "--flops", "1e21"], tmp_path)
    assert r.exit_code == 2
    (line,) = r.stderr.strip().splitlines()
    assert "no usable bootstrap samples" in line or "no bootstrap samples" in line


def test_pairing_words_and_no_assumed_gpu_hours(tmp_path):
    """ "paired: joint fit" only for a joint fit; no GPU-hours without a measured or stated throughput."""
    path = write_fit(tmp_path, groups=("dense", "lowrank-63"))
    r = invoke(["plan", "--fit", str(path), "--flops", "1e21"], tmp_path)
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "(independent fits)" in out and "joint fit" not in out
    assert "h100-hours" not in out and "GPU-hours not shown" in out and "--mfu" in out
    doc = json.loads(path.read_text())
    doc["share_e"] = True
    path.write_text(json.dumps(doc))
    r = invoke(["plan", "--fit", str(path), "--flops", "1e21", "--mfu", "0.5"], tmp_path)
    out = " ".join(r.output.split())
    assert r.exit_code == 0 and "(paired: joint fit)" in out and "h100-hours" in out
    # stated MFU: hours = C / (0.5 x 989e12) / 3600, to 3 significant digits
    assert f"{1e21 / (0.5 * 989e12) / 3600:.3g}" in out


@pytest.mark.parametrize(
    "sub, classic",
    [
        (["budget", "--flops", "1e21"], ["--flops", "1e21"]),
        (["budget", "--target-loss", "2.1", "--json"], ["--target-loss", "2.1", "--json"]),
        (["sweep", "1e19:1e23", "--points", "3", "--json"], ["--sweep", "1e19:1e23", "--sweep-points", "3", "--json"]),
        (["sweep", "1e19:1e23", "--points", "3"], ["--sweep", "1e19:1e23", "--sweep-points", "3"]),
        (["emit-grid", "g.toml", "--flops", "1e21"], ["--flops", "1e21", "--emit-grid", "g.toml"]),
        (["suggest", "2", "--bootstrap", "20"], ["--suggest", "2", "--suggest-bootstrap", "20"]),
    ],
)
def test_subcommands_answer_as_the_one_command_form(tmp_path, sub, classic):
    path = write_fit(tmp_path / "fits", groups=("dense", "lowrank-63"))
    a = invoke(["plan", *sub, "--fit", str(path)], tmp_path)
    b = invoke(["plan", "--fit", str(path), *classic], tmp_path)
    assert a.exit_code == b.exit_code and a.output == b.output
    assert "Traceback" not in a.output


def test_plan_help_lists_the_modes_and_the_one_command_form_still_documents_its_options(tmp_path):
    r = invoke(["plan", "--help"], tmp_path)
    assert r.exit_code == 0 and all(m in r.output for m in ("budget", "sweep", "emit-grid", "lr", "suggest"))
    r = invoke(["plan", "classic", "--help"], tmp_path)
    assert r.exit_code == 0 and "--suggest-for" in r.output and "--emit-grid" in r.output


def test_plan_lr_without_an_lr_law_is_one_line(tmp_path):
    path = write_fit(tmp_path)
    r = invoke(["plan", "lr", "--fit", str(path)], tmp_path)
    assert r.exit_code == 2 and "no group with an lr law" in r.output and len(r.output.strip().splitlines()) == 1


def test_table_headers_print_as_written(tmp_path):
    """Column names such as "loss [interval]" are text, not console markup (which would drop "[interval]")."""
    path = write_fit(tmp_path)
    r = invoke(["plan", "--fit", str(path), "--flops", "1e21"], tmp_path)
    assert r.exit_code == 0 and "loss [interval]" in r.output
