"""Printing summaries (scalelab/commands/_render.py): names read from files reach the terminal as text, never as
control sequences."""

import io

from rich.console import Console

from scalelab.commands._render import print_summary, visible
from scalelab.fit.summary.document import Note, Section, Summary


def test_control_characters_in_names_are_written_out():
    evil = "g\x1b[31mRED\x1b]0;title\x07"
    assert visible(evil) == "g\\x1b[31mRED\\x1b]0;title\\x07" and visible("a\tb\nc") == "a\tb\nc"
    buf = io.StringIO()
    s = Summary([Section(title=f"fits of {evil}", columns=["group"], rows=[[evil]], notes=[Note(evil, "warning")])])
    print_summary(s, Console(file=buf, width=200, markup=False))
    out = buf.getvalue()
    assert "\x1b" not in out and "\x07" not in out and out.count("g\\x1b[31mRED") == 3
