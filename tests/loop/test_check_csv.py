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


def test_one_run_intervals_follow_the_bootstrap_policy(tmp_path):
    """The one-run interval is scalelab.fit.bootstrap's interval of the draws (its one policy): a resample whose
    law gives NaN is left out (the interval of the others' draws), an infinite loss is an outcome that stays in
    its tail (the end reaching into it is inf), and when fewer than half the draws are usable there is no
    interval (NaN ends, not covered, a note saying why)."""
    from scalelab.loop.check import check_fit

    rng = np.random.default_rng(0)
    rows = [
        dict(N=N, D=N * t, loss=(1.8 + 400 / N**0.34 + 2000 / (N * t) ** 0.37) * np.exp(0.01 * rng.standard_normal()))
        for N in (2e7, 5e7, 1e8, 2e8, 5e8, 1e9)
        for t in (5, 10, 20, 40, 80)
    ]
    df = pd.DataFrame(rows)
    df.to_csv(tmp_path / "all.csv", index=False)
    fit = fit_laws(df[df["N"] < 1e9], n_col="N", d_col="D", loss_col="loss", bootstrap=40)
    g = fit["all"]
    E0 = g.samples["E"].to_numpy().copy()

    def draws(p):  # the one-run draws at the checked points, from the samples as they are now
        s = g.sample_arrays()
        N, D = p["N"].to_numpy(), p["D"].to_numpy()
        with np.errstate(invalid="ignore"):
            law = (
                s["E"][:, None] + s["A"][:, None] / N ** s["alpha"][:, None] + s["B"][:, None] / D ** s["beta"][:, None]
            )
        return g.one_run_draws(law)

    g.samples["E"] = np.where(np.arange(40) < 3, np.inf, E0)
    g.samples["B"] = np.where(np.arange(40) < 3, -np.inf, g.samples["B"])  # 3 resamples: inf - inf = NaN
    res = check_fit(fit, [tmp_path / "all.csv"])
    p, flat = res.points, draws(res.points)
    assert np.isnan(flat).sum() == 3 * 16 * len(p) and not res.notes
    want = np.percentile(flat[~np.isnan(flat[:, 0])], [2.5, 97.5], axis=0)
    np.testing.assert_allclose(p[["lo", "hi"]].to_numpy().T, want, rtol=1e-12)
    g.samples["E"] = np.where(np.arange(40) < 3, np.inf, E0)  # 3 of 40 resamples predict an infinite loss
    g.samples["B"] = g.samples["B"].replace(-np.inf, 1.0)
    p = check_fit(fit, [tmp_path / "all.csv"]).points
    assert np.isinf(p["hi"]).all() and np.isfinite(p["lo"]).all()
    g.samples["E"] = np.where(np.arange(40) < 30, np.inf, E0)
    g.samples["B"] = np.where(np.arange(40) < 30, -np.inf, g.samples["B"])  # 30 of 40 NaN: too few left
    res = check_fit(fit, [tmp_path / "all.csv"])
    assert res.points[["lo", "hi"]].isna().all().all() and not res.points["covered"].any()
    assert len(res.notes) == 1 and "fewer than half" in res.notes[0]
