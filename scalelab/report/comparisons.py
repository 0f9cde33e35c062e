"""The fit's comparisons (B vs A): the verdict, the bootstrap differences of the exponents with their intervals,
the coefficient ratios under shared exponents, and where the compute frontiers cross. The compute-multiplier
table itself is the fit summary's (fits section), so the numbers printed by `scalelab fit` appear once."""

from __future__ import annotations

from scalelab import numfmt
from scalelab.report.page import esc, paragraphs, table


def _interval(e) -> str:
    return f"[{numfmt.sig(e.lo, 3)}, {numfmt.sig(e.hi, 3)}]" if e.has_interval else "-"


def _rows(kind: str, estimates: dict) -> list[list[str]]:
    return [
        [kind, name, numfmt.sig(e.est, 3, missing="nan"), _interval(e), _excludes(e, 1.0 if kind == "ratio" else 0.0)]
        for name, e in estimates.items()
    ]


def _excludes(e, null: float) -> str:
    if not e.has_interval:
        return "-"
    return "yes" if e.excludes(null) else "no"


def comparison_html(c, level: float) -> str:
    lvl = int(round(level * 100))
    rows = _rows("difference", c.differences) + _rows("ratio", c.ratios)
    parts = [f"<h3>{esc(c.b)} vs {esc(c.a)}</h3>", paragraphs([c.verdict] if c.verdict else [])]
    if rows:
        columns = ["kind", "parameter", "b - a (or b / a)", f"{lvl}% interval", "excludes no difference"]
        parts.append(
            table(
                columns, rows, right=[2, 3], caption=f"{c.b} vs {c.a}: {'paired' if c.paired else 'unpaired'} bootstrap"
            )
        )
    if c.crossover is not None and c.crossover.text:
        parts.append(paragraphs([f"frontiers cross: {c.crossover.text}"]))
    if c.multiplier_text:
        parts.append(paragraphs([c.multiplier_text]))
    return "\n".join(p for p in parts if p)


def comparisons_section(fit) -> str:
    if fit is None or not fit.comparisons:
        return paragraphs(["The fit compared no groups (fit two or more variants, or pass --compare A,B)."])
    return "\n".join(comparison_html(c, fit.level) for c in fit.comparisons)
