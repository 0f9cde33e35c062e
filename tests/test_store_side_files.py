"""A folder (or glob) of run files that also holds a fit's side files (NAME.samples.parquet, NAME.points.parquet,
written by `scalelab fit --out` beside the runs) expands to the run files only (store.expand_paths); a side file
named on its own is kept as given, and read_runs refuses it as today."""

from __future__ import annotations

import json
import os

import pytest
from plot.helpers import write_runs
from refusal import refused
from typer.testing import CliRunner

from scalelab import store
from scalelab.cli import app


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """runs/ with the run files and the side files of a real `scalelab fit runs --out runs/f.json`."""
    root = tmp_path_factory.mktemp("study")
    runs = write_runs(str(root / "runs"), widths=(32, 48, 64), ratios=(10, 20, 40))
    r = CliRunner().invoke(app, ["fit", *runs, "--out", str(root / "runs" / "f.json"), "--bootstrap", "10"])
    assert r.exit_code == 0, r.output
    side = sorted(str(root / "runs" / f"f.{k}.parquet") for k in ("points", "samples"))
    assert all(os.path.isfile(p) for p in side)
    return root, sorted(runs), side


def test_a_folder_and_a_glob_leave_side_files_out_and_say_which(folder):
    root, runs, side = folder
    for given in (str(root / "runs"), str(root / "runs" / "*.parquet")):
        left_out: list[str] = []
        assert store.expand_paths(given, left_out=left_out) == runs
        assert sorted(left_out) == side
    assert store.expand_paths([str(root / "runs")]) == runs  # left_out is optional
    finals = store.read_runs(str(root / "runs"), columns=["final"], final_only=True)
    assert sorted(set(finals["_file"])) == runs and len(finals) == len(runs)  # one final row per run


def test_a_side_file_named_on_its_own_is_kept_as_given(folder):
    root, runs, side = folder
    left_out: list[str] = []
    assert store.expand_paths([runs[0], side[0]], left_out=left_out) == [runs[0], side[0]]
    assert left_out == []
    r = CliRunner().invoke(app, ["fit", side[0], "--out", str(root / "x.json")])
    refused(r, os.path.basename(side[0]), "not a scalelab run-store file")


def test_fit_of_the_folder_reads_the_runs_only(folder):
    from scalelab.fit.results import load_fit

    root, runs, side = folder
    out = root / "fits" / "g.json"
    r = CliRunner().invoke(app, ["fit", str(root / "runs"), "--out", str(out), "--bootstrap", "10"])
    assert r.exit_code == 0, r.output  # before: refused, f.points.parquet read as a run file
    inputs = [os.path.basename(i["path"]) for i in json.loads(out.read_text())["inputs"]]
    assert inputs == [os.path.basename(p) for p in runs]  # the runs, no side file
    by_folder, by_name = load_fit(str(out)), load_fit(str(root / "runs" / "f.json"))  # f: the files one by one
    assert {g.variant: (g.n_runs, g.params) for g in by_folder} == {g.variant: (g.n_runs, g.params) for g in by_name}


@pytest.mark.parametrize("command", ["plot", "report"])
def test_plot_and_report_of_the_folder_read_the_runs_and_the_fit_not_its_side_files(folder, command, tmp_path):
    """plot and report expand a folder themselves (plot/inputs.expand_paths: runs, tables and a fit JSON); a fit's
    side files are read through its JSON, never as run files (before: refused, f.points.parquet read as runs)."""
    root, runs, side = folder
    out = tmp_path / ("figs" if command == "plot" else "study.html")
    r = CliRunner().invoke(app, [command, str(root / "runs"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.exists()


def test_check_paths_of_a_folder_leave_side_files_out(folder):
    """report --check FOLDER: the runs in it, not a fit's side files (before: refused as not a run file)."""
    from scalelab.report.check import check_paths

    root, runs, side = folder
    assert check_paths([str(root / "runs")]) == runs
    assert check_paths([str(root / "runs" / "*.parquet")]) == runs
