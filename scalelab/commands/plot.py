"""`scalelab plot`: publication figures from run files, a fit file and bench files."""

from __future__ import annotations

import glob
import os
from typing import List, Optional

import typer

from scalelab.commands._common import check_out_dir, user_errors


@user_errors
def plot(
    inputs: Optional[List[str]] = typer.Argument(
        None,
        help="Run files (runs/*.parquet), folders of them, bench/*.json files, or a fit JSON. "
        "Default: runs/*.parquet in the current folder.",
    ),
    fit: Optional[str] = typer.Option(
        None,
        "--fit",
        help="Fit file (fits/NAME.json, with NAME.samples.parquet beside it) for fitted "
        "laws, bands, allocations, exponents and diagnostics.",
    ),
    out: str = typer.Option("figures", "--out", help="Folder for the figures and index.md."),
    format: str = typer.Option(
        "pdf,png", "--format", help="Comma list of pdf, png, svg (PDF with TrueType fonts; PNG at 300 dpi)."
    ),
    style: str = typer.Option("paper", "--style", help="paper (small type) or slides (larger type, thicker lines)."),
    width: str = typer.Option("double", "--width", help="single (3.5 in) or double (7 in) journal column."),
    n_col: Optional[str] = typer.Option(
        None, "--n-col", help="CSV without --fit: column of parameters N. Default: N, params or n_params."
    ),
    d_col: Optional[str] = typer.Option(
        None, "--d-col", help="CSV without --fit: column of tokens D. Default: D or tokens."
    ),
    loss_col: Optional[str] = typer.Option(
        None, "--loss-col", help="CSV without --fit: column of the loss. Default: loss, val_loss or train_loss."
    ),
    flops_col: Optional[str] = typer.Option(
        None, "--flops-col", help="CSV without --fit: column of FLOPs C. Default: C or flops, else 6ND."
    ),
    group_col: Optional[str] = typer.Option(
        None, "--group-col", help="CSV without --fit: column naming each point's group. Default: group or variant."
    ),
    run_col: Optional[str] = typer.Option(
        None, "--run-col", help="CSV without --fit: column of run ids (one curve per run). Default: run or run_id."
    ),
) -> None:
    """Draw every figure the inputs support; skip the others with a note; list them in OUT/index.md.

    Figures: loss vs FLOPs with fitted frontier; loss vs params per budget with the law; compute-optimal
    N and D vs budget; exponent forest plot; fit diagnostics; throughput vs width.
    """
    from scalelab.plot.index import check_index_owner, make_figures
    from scalelab.plot.inputs import load_inputs

    paths = _paths(inputs, fit)
    check_out_dir(out, "--out")
    check_index_owner(out)  # before the inputs are read: a user's own index.md is never overwritten
    formats = _formats(format)
    columns = dict(n=n_col, d=d_col, loss=loss_col, flops=flops_col, group=group_col, run=run_col)
    data = load_inputs(paths, fit_path=fit, columns=columns)
    drawn = make_figures(data, out_dir=out, formats=formats, width=width.lower(), style_name=style.lower())
    _print_drawn(drawn, out)


def _paths(inputs: Optional[List[str]], fit: Optional[str]) -> List[str]:
    """The inputs; without inputs or --fit, runs/*.parquet in the current folder."""
    from scalelab.errors import ScalelabError

    paths = list(inputs or [])
    if not paths and fit is None:
        paths = sorted(glob.glob("runs/*.parquet"))
        if not paths:
            raise ScalelabError("nothing to plot: give run files (runs/*.parquet) and/or --fit fits/NAME.json")
    return paths


def _formats(text: str) -> List[str]:
    from scalelab.errors import ScalelabError

    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    if not formats:
        raise ScalelabError("--format is empty: use a comma list of pdf, png, svg")
    return formats


def _print_drawn(drawn, out: str) -> None:
    """Each figure written (its formats) or skipped (why), with its notes; then the count and the index."""
    for d in drawn:
        if d.files:
            exts = ",".join(f.rsplit(".", 1)[1] for f in d.files)
            typer.echo(f"wrote   {d.files[0].rsplit('.', 1)[0]}.{{{exts}}}")
        else:
            typer.echo(f"skipped {d.name}: {d.skipped}")
        for n in d.notes:
            typer.echo(f"        note: {n}")
    n = sum(bool(d.files) for d in drawn)
    folder = os.path.normpath(out)
    typer.echo(f"{n} of {len(drawn)} figures in {folder}/ (see {os.path.join(folder, 'index.md')})")
