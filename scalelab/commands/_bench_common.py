"""Parsing and printing shared by the `scalelab bench` subcommands."""

from __future__ import annotations

from scalelab.commands._common import stdout_console


def int_list(text: str, what: str) -> list:
    from scalelab.errors import ScalelabError

    try:
        vals = [int(float(v)) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ScalelabError(f"{what} {text!r}: give comma-separated integers, e.g. 256,512") from None
    if not vals or any(v < 1 for v in vals):
        raise ScalelabError(f"{what} {text!r}: give positive integers, e.g. 256,512")
    return vals


def show(rows: list, columns: list, title: str, paths: tuple) -> None:
    from rich.table import Table

    from scalelab import numfmt

    t = Table(title=title)
    for c in columns:
        t.add_column(c, justify="left" if c == "variant" else "right")
    for r in rows:
        t.add_row(*[numfmt.cell(r.get(c)) for c in columns])
    con = stdout_console()
    con.print(t)
    con.print(f"wrote {paths[0]} and {paths[1]}")
