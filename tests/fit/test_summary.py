"""FitResults.summary(): one structured summary (sections of title, table rows and notes) rendered as text,
Markdown and HTML; names read from files are data in every rendering."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from scalelab.fit import fit_laws
from scalelab.fit.summary import Note, Section, Summary

from .conftest import synthetic

HOSTILE = "<b>x</b>|*y*[z](w)"  # a group name that is markup in HTML and in Markdown


@pytest.fixture(scope="module")
def fit():
    df = pd.concat([synthetic(seed=1, group="dense"), synthetic(A=500.0, seed=2, group=HOSTILE)])
    return fit_laws(df, n_col="N", d_col="D", loss_col="loss", run_col="run", by=["group"], bootstrap=30, seed=0)


def test_summary_table_has_one_row_per_group_with_estimates_and_intervals(fit):
    s = fit.summary()
    table = next(sec for sec in s.sections if sec.columns)
    assert table.columns[:3] == ["group", "form", "E"]
    assert [row[0] for row in table.rows] == [g.name for g in fit]
    for row, g in zip(table.rows, fit):
        lo, hi = g.conf_int["E"]
        assert row[2] == f"{g.params['E']:.3g}\n[{lo:.3g}, {hi:.3g}]"
        assert row[-2:] == [str(g.n_points), str(g.n_runs)]
    assert f"{fit.bootstrap.n} resamples of runs" in table.title


def test_an_e_the_runs_do_not_identify_is_printed_as_such_with_its_interval_never_as_a_number():
    """No floor in the data (E = 0): the estimate sits at the search's floor, which is not a reading of the data;
    the table says so over the interval, the warning says why, and the fit keeps the estimate for predictions."""
    res = fit_laws(synthetic(E=0.0), n_col="N", d_col="D", loss_col="loss", bootstrap=30)
    g = res["all"]
    table = next(sec for sec in res.summary().sections if sec.columns)
    lo, hi = g.conf_int["E"]
    assert table.rows[0][2] == f"not identified\n[{lo:.3g}, {hi:.3g}]"
    assert any(w.startswith("E is not identified") for w in g.warnings) and g.params["E"] > 0


def test_summary_notes_carry_warnings_labelled_and_the_compute_optimal_allocation(fit):
    s = fit.summary()
    notes = [n for sec in s.sections for n in sec.notes]
    warned = {(n.text) for n in notes if n.label == "warning"}
    assert warned == {f"{g.name}: {w}" for g in fit for w in g.warnings}
    g = fit["dense"]
    line = next(n.text for n in notes if n.text.startswith("dense: compute-optimal at C"))
    assert f"N = {g.derived['N_opt']:.3g}" in line and f"C = {g.c_ref:.3g}" in line


def test_text_rendering_is_the_content_of_every_section(fit):
    s = fit.summary()
    text = s.text()
    assert str(s) == text and "alpha|gamma" in s
    for sec in s.sections:
        assert all(note.text in text for note in sec.notes)
        for row in sec.rows:
            for cell in row:
                assert all(part in text for part in cell.split("\n"))


def test_html_is_tables_with_names_escaped(fit):
    h = fit.summary().html()
    assert "<b>x</b>" not in h and "&lt;b&gt;x&lt;/b&gt;|*y*[z](w)" in h
    assert h.count("<table>") == len([sec for sec in fit.summary().sections if sec.columns])
    first = h[: h.index("</table>")]  # the laws' table (the compute multipliers' follows)
    rows = re.findall(r"<tr>(.*?)</tr>", first, re.S)
    assert len(rows) == 1 + len(fit.groups)  # the header and one row per group
    assert "<br>[" in rows[1]  # an interval on the estimate's second line


def test_markdown_escapes_names_and_keeps_one_line_per_row(fit):
    md = fit.summary().markdown()
    assert "\\<b\\>x\\</b\\>\\|\\*y\\*\\[z\\](w)" in md and "<b>x" not in md
    start = md.index("\n|") + 1  # the laws' table: from its header to the blank line after it
    table = md[start : md.index("\n\n", start)].splitlines()
    assert len(table) == 2 + len(fit.groups) and all(line.count(" | ") == 9 for line in table if "---" not in line)


def test_renderers_on_a_hand_built_summary():
    s = Summary(
        [
            Section(notes=[Note("before")]),
            Section("T & co", ["a", "bb"], [["1", "x\ny"]], [Note("careful", "warning")], align=["right"]),
        ]
    )
    assert s.text().splitlines() == ["before", "T & co", "a  bb", "-  --", "1  x", "   y", "warning careful"]
    assert "<h3>T &amp; co</h3>" in s.html() and '<th style="text-align:right">a</th>' in s.html()
    assert "|---:|---|" in s.markdown() and "- **warning** careful" in s.markdown()
    assert (s + Summary([Section(notes=[Note("after")])])).text().endswith("after")
