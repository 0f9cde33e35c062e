"""A plot run owns the figure files it names in its output folder: those of figures it skipped (or formats it was
not asked for) left by an earlier run are removed once index.md is written, with a note; nothing else goes."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from scalelab.cli import app

from .helpers import write_fit, write_runs

FIT_ONLY = ("fig3_compute_optimal", "fig4_exponents", "fig5_fit_diagnostics")
# Files near the figure names that are not scalelab's: they must survive.
OTHERS = ("fig3_mine.pdf", "fig3_compute_optimal.pdf.bak", "notes.txt", "fig4_exponents.jpg")


@pytest.fixture
def folder(tmp_path):
    """A folder holding a full earlier plot run (with a fit, png+svg) and some unrelated files; the run files."""
    from scalelab import plot as plots

    runs = write_runs(str(tmp_path / "runs"), widths=(32, 48), ratios=(10, 20))
    fit = write_fit(str(tmp_path / "fits"))
    out = tmp_path / "figs"
    drawn = plots.make_figures(plots.load_inputs(runs, fit), out_dir=str(out), formats=("png", "svg"), width="single")
    assert all({d.name: d for d in drawn}[n].files for n in FIT_ONLY)
    for name in OTHERS:
        (out / name).write_text("not scalelab's")
    os.mkdir(out / "fig5_fit_diagnostics.pdf")  # a folder with a figure's name: not a figure file
    return runs, out


def test_skipped_figures_and_formats_not_asked_are_removed_and_said(folder):
    runs, out = folder
    r = CliRunner().invoke(app, ["plot", *runs, "--out", str(out), "--format", "png"])
    assert r.exit_code == 0, r.output
    index = (out / "index.md").read_text()
    skipped = index.split("## Skipped")[1]
    for name in FIT_ONLY:
        assert not (out / f"{name}.png").exists() and not (out / f"{name}.svg").exists()
        assert name in skipped
        assert f"removed {name}.png, {name}.svg" in r.output  # one line per figure
        escaped = name.replace("_", "\\_")  # index.md writes notes as literal Markdown
        assert f"removed {escaped}.png, {escaped}.svg" in skipped
    # drawn this time in png only: the svg of the earlier run goes, the png is the new one
    for name in ("fig1_loss_vs_flops", "fig2_loss_vs_params", "fig6_throughput"):
        assert (out / f"{name}.png").is_file() and not (out / f"{name}.svg").exists()
        assert f"removed {name}.svg" in r.output and "not in this run's formats" in r.output
    for name in OTHERS:
        assert (out / name).read_text() == "not scalelab's"
    assert (out / "fig5_fit_diagnostics.pdf").is_dir()
    # every figure file left is one index.md links
    figures = {f for f in os.listdir(out) if f.startswith("fig") and f not in OTHERS and (out / f).is_file()}
    assert figures and all(f"]({f})" in index for f in figures), (figures, index)


def test_index_write_failing_removes_nothing(folder, monkeypatch):
    from scalelab import plot as plots
    from scalelab.plot import index

    runs, out = folder

    def boom(*a, **k):
        raise OSError("index not written")

    monkeypatch.setattr(index, "write_index", boom)
    with pytest.raises(OSError):
        plots.make_figures(plots.load_inputs(runs), out_dir=str(out), formats=("png",), width="single")
    for name in FIT_ONLY:
        assert (out / f"{name}.png").is_file() and (out / f"{name}.svg").is_file()
