"""The loop's check in the report: the fit against runs it did not see (scalelab.loop.check: the numbers
`scalelab check` prints, same seed), as tables and the check figure (scalelab.plot.check) inline.

The report recomputes the check from the run files given with --check rather than reading a saved output:
`scalelab check` writes no result file (its --json goes to stdout), and a recomputation cannot belong to
another fit or other runs than the ones this report names and hashes."""

from __future__ import annotations

import glob
import io
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalelab import numfmt
from scalelab.errors import ScalelabError
from scalelab.report.page import esc, paragraphs, table

if TYPE_CHECKING:
    from scalelab.loop.check import CheckResult

CHECK_SUFFIXES = (".parquet", ".csv", ".tsv")


@dataclass
class Checked:
    """A check for the report: the files checked (as expanded from --check) and the result."""

    paths: list[str]
    result: CheckResult


def check_paths(given: list[str]) -> list[str]:
    """--check's paths as files: a folder means its *.parquet (else its *.csv and *.tsv), a quoted glob its
    matches; ScalelabError naming the path when one is missing or not a run file or CSV."""
    from scalelab.store import is_fit_output

    out: list[str] = []
    for p in given:
        if os.path.isdir(p):  # a fit's side files beside the runs are not runs (read through the fit's JSON)
            found = sorted(f for f in glob.glob(os.path.join(glob.escape(p), "*.parquet")) if not is_fit_output(f))
            found = found or sorted(
                f for e in ("csv", "tsv") for f in glob.glob(os.path.join(glob.escape(p), f"*.{e}"))
            )
            if not found:
                raise ScalelabError(f"--check {p}: the folder holds no run files (*.parquet) or CSV: give the new runs")
            out += found
        elif any(c in p for c in "*?[") and not os.path.exists(p):
            found = sorted(f for f in glob.glob(p) if not is_fit_output(f))
            if not found:
                raise ScalelabError(f"--check {p}: no file matches: check the path")
            out += found
        elif not os.path.isfile(p):
            raise ScalelabError(f"--check {p}: no such file or folder: check the path")
        else:
            out.append(p)
    bad = [p for p in out if not p.lower().endswith(CHECK_SUFFIXES) or p.endswith(".samples.parquet")]
    if bad:
        raise ScalelabError(f"--check {bad[0]}: not a run file or CSV: give the runs the fit did not see")
    return list(dict.fromkeys(out))


def refuse_overlap(run_paths: list[str], checked: list[str], given: list[str]) -> None:
    """A file both reported as the study's and checked as new, or a run file beside a --check FILE (the shell
    split an unquoted --check glob: its other files became the study's): one line, the fix."""
    same = {os.path.abspath(p) for p in run_paths} & {os.path.abspath(p) for p in checked}
    if same:
        raise ScalelabError(
            f"{sorted(same)[0]}: given both as a study run and under --check: check runs the fit did not see"
        )
    check_folders = {os.path.dirname(os.path.abspath(p)) for p in given if os.path.isfile(p)}
    beside = [p for p in run_paths if os.path.dirname(os.path.abspath(p)) in check_folders]
    if beside:
        folder = os.path.dirname(beside[0]) or "."
        raise ScalelabError(
            f"{beside[0]}: a study run in the folder of a --check file: give --check the folder ({folder}) or a "
            "quoted glob (--check 'new/*.parquet'), keeping new runs in their own folder"
        )


def run_check(fit, paths: list[str]) -> Checked:
    """The check of `fit` against the files `paths` (check_paths), as `scalelab check --fit FIT FILES` does."""
    from scalelab.loop.check import check_fit

    if fit is None:
        raise ScalelabError("--check compares new runs with a fit: give --fit fits/NAME.json")
    return Checked(paths, check_fit(fit, paths))


def check_svg(result) -> str:
    """The check figure (scalelab.plot.check) as inline SVG."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from scalelab.plot.check import check_figure
    from scalelab.report.figures import inline_svg

    fig = check_figure(result)
    try:
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    finally:
        plt.close(fig)
    return inline_svg(buf.getvalue(), "figcheck", f"check: {CAPTION}")


CAPTION = "observed loss of the runs the fit did not see against its prediction; bar = one-run interval"


def _points_rows(p, csv: bool) -> list[list[str]]:
    return [
        [
            r["variant"],
            str(r["run_id"]),
            numfmt.sig(r["N"], 4) if csv else numfmt.cell(r["d_model"]),
            numfmt.sig(r["D"], 4),
            numfmt.sig(r["C"], 4) + (" *" if r["extrapolated"] else ""),
            f"{r['observed']:.4f}",
            f"{r['predicted']:.4f}",
            f"[{r['lo']:.4f}, {r['hi']:.4f}]" if r["lo"] == r["lo"] else "-",
            f"{r['rel_error']:+.2%}",
            "yes" if r["covered"] else "NO",
        ]
        for _, r in p.iterrows()
    ]


def _isoflop_rows(iso) -> list[list[str]]:
    # a set that does not bracket its optimum has no observed N_opt: no ratio and no verdict (the note says why)
    return [
        [
            r["variant"],
            numfmt.sig(r["C"], 3),
            str(r["sizes"]),
            numfmt.sig(r["N_obs"], 3) if r["bracketed"] else "not bracketed",
            r["how"],
            f"{numfmt.sig(r['N_pred'], 3)} [{numfmt.sig(r['N_pred_lo'], 3)}, {numfmt.sig(r['N_pred_hi'], 3)}]",
            f"{r['ratio']:.2f}x" if r["bracketed"] else "-",
            ("yes" if r["covered"] else "NO") if r["bracketed"] else "-",
        ]
        for _, r in iso.iterrows()
    ]


def check_section(checked: Checked | None, svg: str = "") -> str:
    """Per variant: error and coverage; per point: predicted vs observed with its interval and whether it fell
    inside; per IsoFLOP set: observed vs planned optimum; the notes; the figure."""
    if checked is None:
        return paragraphs(
            [
                "No check: add --check NEW_RUNS (a folder, files or a quoted glob) to check the fit against runs "
                "it did not see, e.g. the grid `scalelab plan emit-grid` wrote, once trained."
            ]
        )
    res = checked.result
    p = res.points
    lvl = f"{res.level:.0%}"
    csv = all(x.lower().endswith((".csv", ".tsv")) for x in checked.paths)
    what = "CSV points" if csv else "runs"
    head = (
        f"The fit against {p['run_id'].nunique()} {what} it did not use ({len(checked.paths)} file(s), listed "
        f"under Provenance): each prediction with its {lvl} one-run interval, and whether the observation fell inside."
    )
    summary = [
        [s["variant"], str(s["points"]), f"{s['mean_abs_rel_error']:.2%}", f"{s['coverage']:.0%}"]
        for _, s in res.summary.iterrows()
    ]
    parts = [
        paragraphs([head]),
        table(
            ["variant", "points", "mean |rel. error|", f"inside the {lvl} interval"],
            summary,
            right=[1, 2, 3],
            caption="Check: error and coverage per variant",
        ),
        table(
            [
                "variant",
                "run",
                "N" if csv else "d_model",
                "tokens D",
                "FLOPs C",
                "observed",
                "predicted",
                f"{lvl} interval",
                "rel. error",
                "inside",
            ],
            _points_rows(p, csv),
            right=[2, 3, 4, 5, 6, 7, 8],
            caption="Check: predicted vs observed loss per new run",
        ),
    ]
    notes = []
    if p["extrapolated"].any():
        notes.append("* beyond the fit's largest FLOPs: a test of extrapolation")
    notes += list(res.notes)
    parts.append(paragraphs(notes))
    iso = res.isoflop
    if len(iso):
        parts.append(
            table(
                [
                    "variant",
                    "budget C",
                    "sizes",
                    "observed N_opt",
                    "how",
                    "planned N_opt [interval]",
                    "ratio",
                    "inside",
                ],
                _isoflop_rows(iso),
                right=[1, 2, 3, 5, 6],
                caption="Check: observed vs planned compute-optimal N per IsoFLOP set",
            )
        )
        if not iso["bracketed"].all():
            from scalelab.loop.check import bracket_advice

            unbracketed = iso[~iso["bracketed"].astype(bool)]
            parts.append(
                paragraphs(
                    f"{r['variant']} at {numfmt.sig(r['C'], 3)} FLOPs: {bracket_advice(r)}."
                    for _, r in unbracketed.iterrows()
                )
            )
    if svg:
        parts.append(
            f'<figure id="fig_check">\n{svg}\n<figcaption><strong>check</strong>. {esc(CAPTION)}'
            "</figcaption>\n</figure>"
        )
    return "\n".join(x for x in parts if x)
