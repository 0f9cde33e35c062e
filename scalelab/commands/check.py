"""`scalelab check --fit fits/NAME.json runs/*.parquet | points.csv`: was the fit right about runs it did not see?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from scalelab.commands._common import stdout_console, user_errors


@user_errors
def check(
    runs: list[Path] = typer.Argument(
        ...,
        help="Run-store files (runs/*.parquet), or CSV files with the columns the fit was fitted on (its N, D or "
        "FLOPs, loss, group and run columns). Runs or points the fit used are skipped.",
    ),
    fit_path: Path = typer.Option(
        ..., "--fit", help="The fit to check (fits/NAME.json with its samples file; or a curve law, NAME.curves.json)."
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Folder for the figure check.png / check.pdf (predicted vs observed). Default: none."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print points, IsoFLOP optima and summary as JSON."),
) -> None:
    """Check a fit against runs it did not see: predicted vs observed loss, error and coverage.

    For every final point of a run the fit did not use (or every CSV row it did not use): the prediction
    with its one-run interval, the relative error and whether the interval covered it. For an IsoFLOP set
    (>= 3 sizes of a variant at one budget, as `scalelab plan --emit-grid` writes), also the observed
    optimum N against the planned N_opt and its interval.
    """
    from scalelab.fit.curves import is_curves_file
    from scalelab.fit.results import load_fit
    from scalelab.loop.check import check_fit

    if is_curves_file(fit_path):  # a curve law: each new run's whole curve from its schedule
        return _check_curves(fit_path, runs, out, as_json)
    from scalelab.plot.check import save_check_figure

    res = check_fit(load_fit(fit_path), [str(p) for p in runs])
    written = _figure_and_json(res, out, "check", save_check_figure, as_json)
    if written is None:
        return
    con = stdout_console(markup=False)  # variant names from data print as given
    csv = all(p.suffix.lower() in (".csv", ".tsv") for p in runs)
    con.print(_points_table(res, fit_path, csv))
    _print_findings(res, con)
    for p in written:
        con.print(f"wrote {p}")


def _points_table(res, fit_path: Path, csv: bool):
    """One row per checked point: observed vs predicted loss with its interval, error and coverage."""
    from rich.table import Table

    t = Table(
        title=f"fit {fit_path} vs {res.points['run_id'].nunique()} {'CSV points' if csv else 'runs'} it did not use "
        f"({res.level:.0%} one-run intervals)"
    )
    for c in ("variant", "N" if csv else "d_model", "tokens", "FLOPs", "observed", "predicted [interval]",
              "rel. error", "covered"):  # fmt: skip
        t.add_column(c, justify="right" if c not in ("variant", "covered") else "left")
    for _, r in res.points.iterrows():
        t.add_row(
            r["variant"],
            f"{r['N']:.3g}" if csv else str(r["d_model"]),
            f"{r['D']:.3g}",
            f"{r['C']:.3g}" + (" *" if r["extrapolated"] else ""),
            f"{r['observed']:.4f}",
            f"{r['predicted']:.4f} [{r['lo']:.4f}, {r['hi']:.4f}]",
            f"{r['rel_error']:+.2%}",
            "yes" if r["covered"] else "NO",
        )
    return t


def _print_findings(res, con) -> None:
    """Per variant: mean error and coverage; notes; each IsoFLOP set's observed optimum vs the planned one (or,
    where the set does not bracket its optimum, the run that would)."""
    from scalelab.loop.check import bracket_advice

    for _, s in res.summary.iterrows():
        con.print(
            f"{s['variant']}: {s['points']} points, mean |rel. error| {s['mean_abs_rel_error']:.2%}, "
            f"{s['coverage']:.0%} inside their interval"
        )
    if res.points["extrapolated"].any():
        con.print("* beyond the fit's largest FLOPs: a test of extrapolation")
    for note in res.notes:  # intervals the bootstrap rule withheld, and why
        con.print(f"note: {note}")
    for _, r in res.isoflop.iterrows():
        head = f"{r['variant']} IsoFLOP set at {r['C']:.3g} FLOPs ({r['sizes']} sizes): "
        planned = f"predicted {r['N_pred']:.3g} [{r['N_pred_lo']:.3g}, {r['N_pred_hi']:.3g}]"
        if not r["bracketed"]:  # an edge size is a bound on the optimum, not an observation of it: no verdict
            con.print(head + bracket_advice(r) + f" ({planned})")
            continue
        con.print(
            head + f"observed optimum N = {r['N_obs']:.3g} ({r['how']}), {planned}: {r['ratio']:.2f}x, "
            f"{'inside' if r['covered'] else 'OUTSIDE'} the interval"
        )


def _check_curves(path: Path, runs: list[Path], out: Optional[Path], as_json: bool) -> None:
    """A curve law (`fit --curves`) against new runs: per run its final with interval and its curve's error."""
    from scalelab.fit.curves import load_curves
    from scalelab.loop.check_curves import check_curves, summary_lines
    from scalelab.plot.fig_curves import save_curve_check

    res = check_curves(load_curves(path), [str(p) for p in runs])
    written = _figure_and_json(res, out, "check_curves", save_curve_check, as_json)
    if written is None:
        return
    for line in summary_lines(res) + [f"wrote {p}" for p in written]:
        typer.echo(line)


def _figure_and_json(res, out: Optional[Path], stem: str, save, as_json: bool) -> Optional[list]:
    """The check's figure into `out` (when given), then its JSON on stdout: None when printed (nothing more to
    print), else the figure files written."""
    written = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        written = save(res, str(out / stem), formats=("png", "pdf"))
    if as_json:
        typer.echo(json.dumps(res.to_dict(), indent=1, default=str))
        return None
    return written
