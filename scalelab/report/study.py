"""The study report: the sections in order, assembled into one self-contained HTML page.

Inputs are read by scalelab.plot.inputs (the run store and the fit, each with its sha256), so that the report
draws exactly what `scalelab plot` draws from the same files."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

from scalelab.report.check import Checked, check_section, check_svg
from scalelab.report.comparisons import comparisons_section
from scalelab.report.design import design_section
from scalelab.report.figures import draw_figures, figures_section
from scalelab.report.page import page, paragraphs
from scalelab.report.provenance import Commands, flops_text, quote, spec_toml


def fit_section(fit) -> str:
    """The fit summary `scalelab fit` prints (table of laws with intervals, identifiability, warnings, checks,
    compute multipliers), as HTML tables."""
    if fit is None:
        return paragraphs(["No fit was given (--fit fits/NAME.json): the runs only."])
    return fit.summary().html()


def plan_section(plan) -> str:
    if plan is None:
        return paragraphs(["No plan: give --flops C to plan every variant at a training budget of C FLOPs."])
    return plan.summary().html()


def _line(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def commands(
    inputs,
    run_paths: list[str],
    fit_path: Optional[str],
    flops: Optional[float],
    out: str,
    check: Optional[list[str]] = None,
    checked: Optional[list[str]] = None,
) -> Commands:
    """The exact commands behind each part (paths as given to this report; check: the --check paths as given,
    checked: the files they named)."""
    c = Commands()
    fit = inputs.fit
    if fit is not None and fit.spec is not None:
        c.spec_toml = spec_toml(fit.spec.to_dict())
        fit_inputs = quote([i.path for i in fit.info.inputs])
        c.lines.append(
            (
                "Fit tables (as the fit was made):",
                _line("scalelab fit", fit_inputs, "--spec fit-spec.toml --out", quote([fit_path])),
            )
        )
    fit_opt = f"--fit {quote([fit_path])}" if fit_path else ""
    runs = quote(run_paths)
    c.lines.append(
        (
            "Figures (as SVG files, with figures/index.md):",
            _line("scalelab plot", runs, fit_opt, "--format svg --out figures"),
        )
    )
    flops_opt = f"--flops {flops_text(flops)}" if flops is not None else ""
    if flops is not None and fit_path:
        c.lines.append(("Plan:", _line("scalelab plan budget", fit_opt, flops_opt)))
    check_opt = " ".join(f"--check {shlex.quote(p)}" for p in check or [])  # a glob stays quoted: one value
    if checked and fit_path:
        c.lines.append(
            (
                "Check (tables; the figure as check/check.png and .pdf):",
                _line("scalelab check", fit_opt, quote(checked), "--out check"),
            )
        )
    c.lines.append(
        ("This report:", _line("scalelab report", runs, fit_opt, flops_opt, check_opt, "--out", quote([out])))
    )
    return c


def study_report(
    inputs,
    plan=None,
    figures=None,
    commands: Optional[Commands] = None,
    title: str = "",
    check: Optional[Checked] = None,
) -> str:
    """The report page. inputs: scalelab.plot.inputs.Inputs (runs, fit, sources); plan: a PlanResult or None;
    figures: the drawn FigureSvg list (None: drawn here); check: the fit checked against new runs, or None."""
    from scalelab.report.provenance import provenance_section

    fit = inputs.fit
    figures = draw_figures(inputs) if figures is None else figures
    commands = commands or Commands()
    plot_cmd = next((line for what, line in commands.lines if line.startswith("scalelab plot")), "scalelab plot")
    sections = [
        ("design", "Design", design_section(inputs.runs)),
        ("fits", "Fitted scaling laws", fit_section(fit)),
        ("comparisons", "Comparisons", comparisons_section(fit)),
        ("plan", "Plan", plan_section(plan)),
        ("check", "Check against new runs", check_section(check, check_svg(check.result) if check else "")),
        ("figures", "Figures", figures_section(figures, plot_cmd)),
        ("provenance", "Provenance", provenance_section(inputs.sources, fit, commands)),
    ]
    import scalelab

    subtitle = f"Written by scalelab {getattr(scalelab, '__version__', '?')} from {len(inputs.sources)} input file(s)"
    return page(title or study_title(inputs), subtitle, sections)


def study_title(inputs) -> str:
    """The grids the runs came from, else the fit's name."""
    if inputs.runs is not None and "grid" in inputs.runs.columns:
        grids = sorted(inputs.runs["grid"].dropna().astype(str).unique())
        if grids:
            return f"Study report: {', '.join(grids)}"
    if inputs.fit is not None and inputs.fit.path is not None:
        return f"Study report: {Path(inputs.fit.path).stem}"
    return "Study report"
