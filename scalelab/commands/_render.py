"""Print a Summary (scalelab/fit/summary) to the terminal: rich tables, notes below them. Every string is
data: printed as Text, never read as markup or emoji codes."""

from __future__ import annotations


def print_summary(summary, console=None) -> None:
    from rich.table import Table
    from rich.text import Text

    from scalelab.commands._common import stdout_console

    con = console or stdout_console(markup=False)
    for s in summary.sections:
        if s.columns:
            t = Table(title=Text(s.title) if s.title else None)
            for i, c in enumerate(s.columns):
                t.add_column(Text(c), justify=s.alignment(i), overflow="fold" if s.fold else "ellipsis")
            for row in s.rows:
                t.add_row(*(Text(c) for c in row))
            con.print(t)
        elif s.title:
            con.print(Text(s.title))
        for n in s.notes:
            con.print(Text.assemble((n.label, "yellow"), f" {n.text}") if n.label else Text(n.text))
