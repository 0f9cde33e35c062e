"""`scalelab check` on CSV points in the columns the fit recorded: someone else's held-out runs get the
prediction with its interval (fit on part of a public table, check the rest)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.fit import fit_laws

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def chinchilla_split(chinchilla_path, tmp_path_factory):
    """Epoch AI's Chinchilla points: fit on budgets below 1e21 FLOPs, hold out the rest (23 points)."""
    d = tmp_path_factory.mktemp("chin")
    df = pd.read_csv(chinchilla_path)
    big = df["Training FLOP"] > 1e21
    df[~big].to_csv(d / "train.csv", index=False)
    df[big].to_csv(d / "held.csv", index=False)
    df.to_csv(d / "all.csv", index=False)
    r = invoke(
        "fit", d / "train.csv", "--n-col", "Model Size", "--flops-col", "Training FLOP", "--bootstrap", 100,
        "--out", d / "fit.json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    return d, df[big]


def test_check_takes_held_out_csv_points_in_the_fits_columns(chinchilla_split):
    d, held = chinchilla_split
    fit = json.loads((d / "fit.json").read_text())
    p = fit["groups"]["all"]["params"]
    r = invoke("check", "--fit", d / "fit.json", d / "all.csv", "--json")  # the fitted rows are skipped
    assert r.exit_code == 0, r.output
    pts = pd.DataFrame(json.loads(r.stdout)["points"])
    assert len(pts) == len(held) == 23
    N = held["Model Size"].to_numpy()
    D = held["Training FLOP"].to_numpy() / (6 * N)  # the fit's D = C / (6N), from its recorded columns
    np.testing.assert_allclose(pts["N"], N)
    np.testing.assert_allclose(pts["D"], D, rtol=1e-12)
    law = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]
    np.testing.assert_allclose(pts["predicted"], law, rtol=1e-9)
    np.testing.assert_allclose(pts["observed"], held["loss"])
    assert (pts["lo"] < pts["predicted"]).all() and (pts["predicted"] < pts["hi"]).all()
    assert pts["extrapolated"].all()  # every held-out budget is beyond the fitted ones
    # the law extrapolates a few x in compute within a few percent (measured: mean |error| 1.5%, all covered)
    assert np.mean(np.abs(pts["rel_error"])) < 0.03 and pts["covered"].mean() >= 0.8
    table = invoke("check", "--fit", d / "fit.json", d / "held.csv")
    assert table.exit_code == 0 and "23 CSV points it did not use" in " ".join(table.stdout.split())


def test_check_csv_skips_the_fits_runs_by_run_id_per_group(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for g, A in (("dense", 400.0), ("wide", 500.0)):
        for N in (2e7, 5e7, 1e8, 2e8, 5e8, 1e9):
            for t in (5, 10, 20, 40, 80):
                L = (1.8 + A / N**0.34 + 2000 / (N * t) ** 0.37) * np.exp(0.01 * rng.standard_normal())
                rows.append({"N": N, "D": N * t, "loss": L, "run": f"{g}-{N:.0e}-{t}", "group": g})
    df = pd.DataFrame(rows)
    used = df["N"] < 1e9  # hold out the largest size of each group
    fit = fit_laws(df[used], n_col="N", d_col="D", loss_col="loss", run_col="run", by=["group"], bootstrap=30)
    fit.to_json(tmp_path / "f.json")
    df.to_csv(tmp_path / "all.csv", index=False)
    res = json.loads(invoke("check", "--fit", tmp_path / "f.json", tmp_path / "all.csv", "--json").stdout)
    pts = pd.DataFrame(res["points"])
    assert sorted(pts["run_id"]) == sorted(df.loc[~used, "run"])
    for g in ("dense", "wide"):
        p, sub = fit[g].params, pts[pts.variant == g]
        np.testing.assert_allclose(
            sub["predicted"], p["E"] + p["A"] / sub["N"] ** p["alpha"] + p["B"] / sub["D"] ** p["beta"]
        )
    extra = df[~used].assign(group="other")
    extra.to_csv(tmp_path / "other.csv", index=False)
    r = invoke("check", "--fit", tmp_path / "f.json", tmp_path / "other.csv")
    assert r.exit_code == 2 and "group(s) other (column group) are not in fit" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_check_csv_refusals_are_one_line(chinchilla_split, tmp_path):
    d, _ = chinchilla_split
    cases = {
        "train.csv": "every point given (222) was used",  # nothing the fit did not see
    }
    for name, msg in cases.items():
        r = invoke("check", "--fit", d / "fit.json", d / name)
        assert r.exit_code == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.output
    other = tmp_path / "renamed.csv"
    pd.read_csv(d / "held.csv").rename(columns={"Model Size": "N"}).to_csv(other, index=False)
    r = invoke("check", "--fit", d / "fit.json", other)
    assert r.exit_code == 2 and "'Model Size'" in r.stderr and "was fitted on columns" in r.stderr
    grouped = tmp_path / "g.csv"
    pd.read_csv(d / "held.csv").assign(group="x").to_csv(grouped, index=False)
    assert invoke("check", "--fit", d / "fit.json", grouped).exit_code == 0  # extra columns are ignored
    r = invoke("check", "--fit", d / "fit.json", grouped, tmp_path / "runs.parquet")
    assert r.exit_code == 2 and "mixed CSV" in r.stderr
