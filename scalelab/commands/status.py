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

    fit_names = _fit_outputs(out)
    # a fit side file comes back under its file name as an unreadable run file: left out (a run file that
    # happens to share the suffix but reads as a run is kept)
    everything = collect(out, grid)
    fit_files = [e["run_id"] for e in everything if e["run_id"] in fit_names and e["state"] == "failed"]
    entries = [e for e in everything if e["run_id"] not in fit_files]
    summary = summarize(entries)
    if as_json:
        extra = {"skipped_fit_outputs": sorted(fit_files)} if fit_files else {}
        typer.echo(json.dumps({"grids": summary, "runs": entries, **extra}, indent=1, default=str))
        return
    console = stdout_console(markup=False)  # names from files print as given
    if fit_files:
        from scalelab.store import fit_outputs_note

        console.print(f"note: {fit_outputs_note(len(fit_files), out)}")
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


def _fit_outputs(out: str) -> set[str]:
    """The names of the fit side files (NAME.samples.parquet, NAME.points.parquet) in `out`, which `collect`
    would list as unreadable runs. A folder holding those and no run file nor scalelab's run folders (.ckpt,
    .locks, .status, .logs, .submitit) is a fits folder, not a run store: refused."""
    import os

    from scalelab.errors import ScalelabError
    from scalelab.run import layout
    from scalelab.store import is_fit_output

    try:
        names = os.listdir(out)
    except OSError:
        return set()  # collect() names the problem
    fits = {n for n in names if is_fit_output(n)}
    marks = {layout.CKPT_DIR, layout.LOCK_DIR, layout.STATUS_DIR, layout.LOG_DIR, layout.SUBMITIT_DIR}
    runs = [n for n in names if n.endswith(".parquet") and n not in fits]
    if fits and not runs and not marks & set(names):
        raise ScalelabError(
            f"{out} is not a run store: its {len(fits)} Parquet file(s) are fit outputs (NAME.samples.parquet, "
            "NAME.points.parquet of `scalelab fit`), not runs: give the folder `scalelab run --out` wrote, "
            "e.g. `scalelab status runs/`"
        )
    return fits
