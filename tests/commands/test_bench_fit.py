"""`scalelab bench fit`: bad input is refused in one line before anything is timed or written (the timing
itself runs only as the benchmark, never here)."""

from typer.testing import CliRunner

from scalelab.cli import app

runner = CliRunner()


def test_missing_multi_group_data_is_refused_before_timing(tmp_path):
    out = tmp_path / "out"
    r = runner.invoke(app, ["bench", "fit", "--multi-data", str(tmp_path / "nope.csv"), "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert "nope.csv" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not out.exists()


def test_multi_group_data_without_the_group_column_is_refused(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("N,D,C,loss,run\n1e7,1e9,6e16,3.0,a\n")
    out = tmp_path / "out"
    r = runner.invoke(app, ["bench", "fit", "--multi-data", str(bad), "--out", str(out)])
    assert r.exit_code == 2 and "group" in r.output, r.output
    assert not out.exists()


def test_non_positive_resamples_are_refused(tmp_path):
    r = runner.invoke(app, ["bench", "fit", "--bootstrap", "0", "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "--bootstrap" in r.output, r.output
