"""Summaries of results as data (document.py), built once and rendered as text, Markdown or HTML; the fit's
summary (build.py)."""

from scalelab.fit.summary.build import fit_summary
from scalelab.fit.summary.document import Note, Section, Summary

__all__ = ["Note", "Section", "Summary", "fit_summary"]
