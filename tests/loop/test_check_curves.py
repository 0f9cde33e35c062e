"""`scalelab check --fit NAME.curves.json`: each new run's whole curve predicted from its recorded schedule
(scalelab/loop/check_curves.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fit.test_curves import write_runs  # run files whose val_loss follows a known annealing-area law
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.fit import curves
from scalelab.loop.check_curves import check_curves

runner = CliRunner()


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Runs of 5 widths; a curve law fitted (8 resamples) on 4 of them, the 40-wide one left for the check."""
    tmp = tmp_path_factory.mktemp("cc")
    d = write_runs(tmp, widths=(24, 32, 40, 48, 56))
    fit_dir = tmp / "fitted"
    fit_dir.mkdir()
    for w in (24, 32, 48, 56):
        (fit_dir / f"r{w}.parquet").write_bytes((d / f"r{w}.parquet").read_bytes())
    out = tmp / "c.curves.json"
    r = runner.invoke(app, ["fit", str(fit_dir), "--curves", "--bootstrap", "8", "--loss", "lsq", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return d, out


def test_new_run_curve_predicted_from_its_schedule(fitted):
    d, out = fitted
    res = check_curves(curves.load_curves(out), sorted(d.glob("*.parquet")))
    assert res.runs["run_id"].tolist() == ["r40"]  # the fitted runs are skipped
    r = res.runs.iloc[0]
    # the losses follow the law exactly: the prediction along the unseen run's whole curve is within 0.5%
    assert abs(r["rel_error"]) < 0.005 and r["curve_max_abs_rel_error"] < 0.005
    assert r["curve_points"] >= 3 and r["lo"] < r["observed"] < r["hi"] and r["covered"]
    pts = res.points[res.points["run"] == "r40"]
    np.testing.assert_allclose(pts["rel_error"], pts["loss"] / pts["pred"] - 1)


def test_a_run_off_the_law_is_reported_off(fitted, tmp_path):
    """The same run with every loss 4% higher: the final's error is +4% and its interval misses it."""
    d, out = fitted
    df = pd.read_parquet(d / "r40.parquet")
    df["val_loss"] *= 1.04
    df.to_parquet(tmp_path / "r40.parquet")
    r = check_curves(curves.load_curves(out), [tmp_path / "r40.parquet"]).runs.iloc[0]
    assert r["rel_error"] == pytest.approx(0.04, abs=0.006) and not r["covered"]
    assert r["curve_mean_abs_rel_error"] == pytest.approx(0.04 / 1.04, abs=0.006)


def test_check_cli_prints_each_run_and_writes_its_figure(fitted, tmp_path):
    d, out = fitted
    r = runner.invoke(app, ["check", "--fit", str(out), str(d), "--out", str(tmp_path / "figs")])
    assert r.exit_code == 0, r.output
    assert "r40" in r.output and "curve (" in r.output and "inside their interval" in r.output
    assert (tmp_path / "figs" / "check_curves.png").stat().st_size > 0
    doc = json.loads(runner.invoke(app, ["check", "--fit", str(out), str(d), "--json"]).output)
    assert [x["run_id"] for x in doc["runs"]] == ["r40"] and doc["runs"][0]["curve_points"] >= 3


def _one_line_error(r) -> str:
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    return lines[0]


def test_only_fitted_runs_is_one_line(fitted):
    d, out = fitted
    line = _one_line_error(runner.invoke(app, ["check", "--fit", str(out), str(d / "r24.parquet")]))
    assert "was fitted by" in line


def test_csv_is_refused_in_one_line(fitted, tmp_path):
    _, out = fitted
    p = tmp_path / "x.csv"
    p.write_text("N,D,loss\n1,2,3\n")
    assert "run-store runs" in _one_line_error(runner.invoke(app, ["check", "--fit", str(out), str(p)]))


def test_not_a_curves_file_is_one_line(fitted, tmp_path):
    d, _ = fitted
    bad = tmp_path / "x.curves.json"
    bad.write_text(json.dumps({"format": "something-else/1"}))
    assert "not a scalelab-curves/1 file" in _one_line_error(runner.invoke(app, ["check", "--fit", str(bad), str(d)]))
