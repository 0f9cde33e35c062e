"""`scalelab run` prints the report command as its next step (fit and plan: tests/report/test_report.py
test_next_step_hints), naming the fit file `scalelab fit OUT/*.parquet` writes."""

from __future__ import annotations

from grids import write_grid
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.report.hints import after_run


def test_run_prints_the_report_command_as_its_next_step(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALELAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    grid = write_grid(tmp_path, budgets="[budgets]\ntokens = [1024]\n")  # 4 steps of 8 x 32 tokens
    r = CliRunner().invoke(app, ["run", "--grid", grid, "--out", "runs", "--quiet"])
    assert r.exit_code == 0, r.output
    said = " ".join(r.output.split())  # rich wraps long lines at the console's width
    assert "Next: scalelab fit runs/*.parquet, then scalelab report runs/*.parquet --fit fits/runs.json" in said
    assert f"then {after_run('runs')}" in said
