"""The curve-law case of `scalelab bench fit` (scalelab/bench/fit_curves.py): its stored demo curves and
its timing record. The 30 s target itself is measured by the bench, not here."""

from __future__ import annotations

import pandas as pd
from fit.test_curves import write_runs  # run files whose val_loss follows a known annealing-area law
from typer.testing import CliRunner

from scalelab.bench import fit_curves
from scalelab.cli import app
from scalelab.fit import curves

runner = CliRunner()


def test_stored_copy_fits_as_the_run_files_do(tmp_path):
    d = write_runs(tmp_path)
    copy = fit_curves.store_copy(sorted(d.glob("*.parquet")), tmp_path / "c.parquet")
    a = curves.fit_curves([d], bootstrap=0, loss="lsq")["dense"]
    b = curves.fit_curves([copy], bootstrap=0, loss="lsq")["dense"]
    assert a.params == b.params and a.n_points == b.n_points and a.runs == b.runs


def test_bench_times_the_stored_demo_curves():
    out = fit_curves.run(None, n_boot=2, log=lambda m: None)
    assert out["data"].endswith("demo_curves.parquet") and out["bootstrap"] == 2
    assert set(out["groups"]) == {"dense", "lowrank-32"} and out["wall_s"] > 0 and out["cpu_s"] > 0
    assert all(g["runs"] == 7 and g["sizes"] == 7 for g in out["groups"].values())  # the demo's 7 widths
    assert out["within_target"] == (out["wall_s"] <= fit_curves.TARGET_S)


def test_missing_curves_data_is_one_line_before_anything_is_timed(tmp_path):
    r = runner.invoke(app, ["bench", "fit", "--curves-data", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "--curves-data" in lines[0] and not list(tmp_path.iterdir())


def test_synthetic_demo_has_the_demo_grid_shape(tmp_path):
    """The stand-in for the demo's curves: its 14 runs, each a trunk's eval points plus 3 branch ends."""
    df = pd.read_parquet(fit_curves.synthetic_demo(tmp_path / "s.parquet"))
    assert df["run_id"].nunique() == 14 and df.groupby("run_id")["budget"].nunique().eq(4).all()
    assert set(df["variant"]) == {"dense", "lowrank-32"} and df["config"].str.startswith("{").all()
