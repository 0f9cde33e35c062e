"""`scalelab report`: one self-contained HTML file for a study. Parse, read, call scalelab.report, write."""

from __future__ import annotations

import os
from typing import List, Optional

import typer

from scalelab.commands._common import check_out_file, user_errors


@user_errors
def report(
    inputs: Optional[List[str]] = typer.Argument(None, help="Run files (runs/*.parquet) or folders of them."),
    fit: Optional[str] = typer.Option(
        None, "--fit", help="Fit file (fits/NAME.json, its samples and points beside it)."
    ),
    flops: Optional[str] = typer.Option(
        None, "--flops", "-C", help="Add the plan of every variant at this training budget in FLOPs, e.g. 1e21."
    ),
    check: Optional[List[str]] = typer.Option(
        None,
        "--check",
        help="Runs the fit did not see (a folder, a file or a quoted glob; repeatable): add the fit checked against "
        "them, as `scalelab check` computes it (predicted vs observed loss with intervals, the check figure).",
    ),
    out: str = typer.Option("report.html", "--out", help="The HTML file to write (one file, opens offline)."),
) -> None:
    """Write one self-contained HTML report of a study: design, fitted laws with intervals, comparisons, the plan
    at --flops, the check against new runs (--check), every figure (inline SVG) and provenance (inputs with
    sha256, versions, commands)."""
    from scalelab.commands.plan_budget import number
    from scalelab.errors import ScalelabError
    from scalelab.fileio import atomic_write_text
    from scalelab.plot.inputs import load_inputs
    from scalelab.report import study_report
    from scalelab.report.study import commands

    paths = list(inputs or [])
    if not paths and fit is None:
        raise ScalelabError("nothing to report: give run files (runs/*.parquet) and/or --fit fits/NAME.json")
    check_out_file(out, "--out")
    from scalelab.report.page import is_report

    if os.path.isfile(out) and not is_report(out):  # an earlier report is replaced; anything else is kept
        raise ScalelabError(
            f"--out {out} exists and is not a report scalelab wrote: choose another --out (a report overwrites "
            "only an earlier report)"
        )
    C = number(flops, "--flops")
    if C is not None and fit is None:
        raise ScalelabError("--flops plans from a fit: give --fit fits/NAME.json")
    if check and fit is None:
        raise ScalelabError("--check compares new runs with a fit: give --fit fits/NAME.json")
    data = load_inputs(paths, fit_path=fit)
    checked = None
    if check:
        from scalelab.plot.inputs import Source, sha256
        from scalelab.report.check import check_paths, refuse_overlap, run_check

        files = check_paths(check)
        refuse_overlap([s.path for s in data.sources if s.kind == "runs"], files, check)
        checked = run_check(data.fit, files)
        data.sources += [Source(p, sha256(p), "check") for p in checked.paths]
    plan = None
    if C is not None:
        from scalelab.plan import plan_budget

        plan = plan_budget(data.fit, C)
    run_paths = [s.path for s in data.sources if s.kind == "runs"]
    cmds = commands(data, run_paths, fit, C, out, check=list(check or []), checked=checked.paths if checked else [])
    text = study_report(data, plan=plan, commands=cmds, check=checked)
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    atomic_write_text(out, text)
    n_fig = text.count("<figure ")
    done = f", the check of {checked.result.points['run_id'].nunique()} new run(s)" if checked else ""
    typer.echo(f"wrote {out}: {len(text.encode()) / 1e3:.0f} kB, {n_fig} figures{done}, opens offline")
