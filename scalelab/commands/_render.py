"""Print a Summary (scalelab/fit/summary) to the terminal: rich tables, notes below them. Every string is
data: printed as Text, never read as markup or emoji codes."""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL and C1: an escape sequence in a name read from a file would recolour the
# terminal, retitle its window or move the cursor; shown as \x1b and the like instead
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(s: str) -> str:
    """`s` with every terminal control character written out as its escape (\x1b): names taken from files print
    as the characters they hold, never as commands to the terminal."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), s)


def print_summary(summary, console=None) -> None:
    from rich.table import Table
    from rich.text import Text

    from scalelab.commands._common import stdout_console

    con = console or stdout_console(markup=False)
    for s in summary.sections:
        if s.columns:
            t = Table(title=Text(visible(s.title)) if s.title else None)
            for i, c in enumerate(s.columns):
                t.add_column(Text(visible(c)), justify=s.alignment(i), overflow="fold" if s.fold else "ellipsis")
            for row in s.rows:
                t.add_row(*(Text(visible(c)) for c in row))
            con.print(t)
        elif s.title:
            con.print(Text(visible(s.title)))
        for n in s.notes:
            text = visible(n.text)
            con.print(Text.assemble((n.label, "yellow"), f" {text}") if n.label else Text(text))
