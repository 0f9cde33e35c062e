"""`scalelab plot` end to end through the CLI, on the synthetic run store and fit of tests/plot/helpers.py."""

from __future__ import annotations

import os

import pytest
from plot.helpers import ALL, NEEDS_MORE, write_fit, write_runs
from typer.testing import CliRunner

from scalelab.cli import app


def invoke(args):
    return CliRunner().invoke(app, ["plot", *args])


def test_cli_writes_every_figure_in_the_asked_formats(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    runs = write_runs("runs")
    fit = write_fit("fits", name="demo")
    r = invoke([*runs, "--fit", fit, "--out", "figs", "--format", "pdf,png", "--width", "single", "--style", "slides"])
    assert r.exit_code == 0, r.output
    assert r.output.count("wrote ") == len(ALL)
    # the figures skipped: those needing a sweep, shares, a curve or a repetition law (none in these runs)
    assert r.output.count("skipped") == len(NEEDS_MORE) and all(n in r.output for n in NEEDS_MORE)
    for name in ALL:
        for ext in ("pdf", "png"):
            assert os.path.isfile(f"figs/{name}.{ext}")
        assert not os.path.exists(f"figs/{name}.svg")
        with Image.open(f"figs/{name}.png") as im:
            assert im.size[0] == 1050
    index = open("figs/index.md").read()
    assert "demo.json" in index and "demo.samples.parquet" in index and "slides" in index


def test_cli_defaults_to_runs_folder_and_skips_fit_figures_with_notes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_runs("runs", variants=("dense",), widths=(32, 48), ratios=(10, 20))
    r = invoke([])
    assert r.exit_code == 0, r.output
    for name in ("fig3_compute_optimal", "fig4_exponents", "fig5_fit_diagnostics"):
        assert f"skipped {name}: needs a fit" in r.output
        assert not os.path.exists(f"figures/{name}.pdf")
    for name in ("fig1_loss_vs_flops", "fig2_loss_vs_params", "fig6_throughput"):
        assert os.path.isfile(f"figures/{name}.pdf") and os.path.isfile(f"figures/{name}.png")
    assert "## Skipped" in open("figures/index.md").read()


def _bad_parquet(tmp_path):
    p = tmp_path / "runs" / "torn.parquet"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"PAR1 this is not a parquet file")
    return [str(p)]


def _bad_fit_json(tmp_path):
    runs = write_runs(str(tmp_path / "runs"), variants=("dense",), widths=(32, 48), ratios=(10,))
    p = tmp_path / "fits" / "x.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("{not json")
    return [*runs, "--fit", str(p)]


def _not_a_run_store(tmp_path):
    import pandas as pd

    p = tmp_path / "other.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(p)
    return [str(p)]


def _torn_samples(tmp_path):
    fit = write_fit(str(tmp_path / "fits"))
    with open(fit.replace(".json", ".samples.parquet"), "wb") as f:
        f.write(b"garbage")
    return ["--fit", fit]


def _text_file(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    return [str(p)]


@pytest.mark.parametrize(
    "make_args, words",
    [
        (_bad_parquet, "cannot read as Parquet"),
        (_bad_fit_json, "cannot read JSON"),
        (_not_a_run_store, "column 'run_id' missing"),
        (_torn_samples, "bootstrap samples"),
        (lambda t: [str(t / "nope.parquet")], "no such file"),
        (_text_file, "unknown input type"),
        (lambda t: [*write_runs(str(t / "runs"), ("dense",), (32,), (10,)), "--format", "jpg"], "unknown format"),
        (lambda t: [*write_runs(str(t / "runs"), ("dense",), (32,), (10,)), "--width", "wide"], "unknown width"),
    ],
)
def test_cli_unreadable_inputs_exit_2_with_one_line_and_write_nothing(tmp_path, make_args, words):
    out = tmp_path / "out"
    r = invoke([*make_args(tmp_path), "--out", str(out)])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], r.output
    assert "Traceback" not in r.output
    assert not out.exists()


def test_cli_nothing_to_plot(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke([])
    assert r.exit_code == 2 and "nothing to plot" in r.output
