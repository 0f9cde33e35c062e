"""`scalelab report`: one self-contained HTML file for a study (design, fits, comparisons, plan, figures,
provenance). Each section is a pure function from typed results to an HTML string; study.py assembles them.

Every name read from files (variants, runs, notes quoting them) is data, never markup: escaped with
html.escape. The page needs no network: inline CSS, figures as inline SVG, no scripts, no external URLs."""

from scalelab.report.study import study_report

__all__ = ["study_report"]
