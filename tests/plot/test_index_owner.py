"""`scalelab plot --out DIR` replaces DIR/index.md only when an earlier plot run wrote it: a user's own index.md
is refused before anything is drawn (one line naming the file and the fix, exit 2, nothing written)."""

from __future__ import annotations

import pytest
import refusal
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.plot.index import is_plot_index

from .helpers import write_runs

NOTES = "# scalelab figures\n\nmy own notes about these figures\n"  # scalelab's title, not its 'Written by' line


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return write_runs(str(tmp_path_factory.mktemp("runs")), variants=("dense",), widths=(32, 48), ratios=(10, 20))


def _plot(runs, out):
    return CliRunner().invoke(app, ["plot", *runs, "--out", str(out), "--format", "png"])


@pytest.mark.parametrize("text", ["my notes\n", NOTES, "Written by `scalelab plot`, not really\n"])
def test_a_users_index_md_is_refused_and_kept(runs, tmp_path, text):
    out = tmp_path / "figs"
    out.mkdir()
    (out / "index.md").write_text(text)
    refusal.refused(_plot(runs, out), str(out / "index.md"), "not written by scalelab plot", "--out", "move")
    assert (out / "index.md").read_text() == text
    assert refusal.files(out) == ["index.md"]  # no figure drawn, nothing else written


def test_a_folder_named_index_md_is_refused(runs, tmp_path):
    out = tmp_path / "figs"
    (out / "index.md").mkdir(parents=True)
    refusal.refused(_plot(runs, out), "index.md", "not written by scalelab plot")
    assert refusal.files(out) == []


def test_an_earlier_plot_runs_index_is_replaced(runs, tmp_path):
    out = tmp_path / "figs"
    r = _plot(runs[:2], out)
    assert r.exit_code == 0, r.output
    first = (out / "index.md").read_text()
    assert is_plot_index(str(out / "index.md"))
    r = _plot(runs, out)
    assert r.exit_code == 0, r.output
    second = (out / "index.md").read_text()
    assert second != first and all(p.rsplit("/", 1)[1] in second for p in runs)  # the new inputs are listed


def test_an_empty_index_md_is_replaced(runs, tmp_path):
    out = tmp_path / "figs"
    out.mkdir()
    (out / "index.md").write_text("")
    assert _plot(runs, out).exit_code == 0
    assert is_plot_index(str(out / "index.md")) and (out / "index.md").read_text().startswith("# scalelab figures")


def test_the_library_call_refuses_too(runs, tmp_path):
    from scalelab import plot as plots
    from scalelab.errors import ScalelabError

    out = tmp_path / "figs"
    out.mkdir()
    (out / "index.md").write_text("my notes\n")
    with pytest.raises(ScalelabError, match="not written by scalelab plot"):
        plots.make_figures(plots.load_inputs(runs), out_dir=str(out), formats=("png",))
    assert refusal.files(out) == ["index.md"]
