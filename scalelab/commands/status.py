"""`scalelab status runs/`: where every run of every grid stands, from the files alone (run/layout.py infers it)."""

from __future__ import annotations

import json
from typing import Optional

import typer

from scalelab.commands._common import stdout_console, user_errors


@user_errors
def status(
    out: str = typer.Argument("runs", help="The run store folder (what `scalelab run --out` wrote)."),
    grid: Optional[list[str]] = typer.Option(
        None, "--grid", "-g", help="Also count this grid's runs that have not started (pending); repeatable."
    ),
    runs: bool = typer.Option(
        False, "--runs", help="List every run that is not done, with its detail (errors of failed runs)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print {grids: per-grid counts, runs: per-run states} as JSON."),
) -> None:
    """Show done / running / interrupted / failed / diverged / pending runs per grid in a run store.

    Reads only files: the Parquet results, the per-run locks, checkpoints and worker notes, so it works
    while workers (local, torchrun or Slurm) are still writing.
    """
    from rich.table import Table

    from scalelab.run.layout import STATES, collect, summarize

    entries = collect(out, grid)
    summary = summarize(entries)
    if as_json:
        typer.echo(json.dumps({"grids": summary, "runs": entries}, indent=1, default=str))
        return
    console = stdout_console(markup=False)  # names from files print as given
    if not entries:
        console.print(f"no runs in {out}/ yet (give --grid G to list a grid's pending runs)")
        return
    t = Table(title=f"run store {out}/")
    t.add_column("grid")
    for c in ("runs",) + STATES:
        t.add_column(c, justify="right")
    for g, c in summary.items():
        t.add_row(g, str(c["runs"]), *[str(c[s]) if c[s] else "-" for s in STATES])
    console.print(t)
    if runs:
        rt = Table(title="runs not done")
        for c in ("grid", "run_id", "variant", "d", "state", "detail"):
            rt.add_column(c)
        for e in entries:
            if e["state"] != "done":
                rt.add_row(
                    str(e["grid"]),
                    str(e["run_id"]),
                    str(e["variant"]),
                    str(e["d_model"] or "?"),
                    e["state"],
                    str(e["detail"]),
                )
        console.print(rt)
