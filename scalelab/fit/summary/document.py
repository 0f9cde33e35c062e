"""A results summary as data: sections of a title, a table and notes, built once and rendered as plain
text, Markdown or HTML (rich tables for the terminal: scalelab/commands/_render.py).

Every string in a summary is data (group names and notes may come from input files): the Markdown and HTML
renderers escape it, so that a name such as "<b>" or "[x](y)" prints as written.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Note:
    """One line below (or, in a section without a table, instead of) a table. `label` ("warning") is drawn
    apart: yellow in a terminal, bold in Markdown and HTML."""

    text: str
    label: str = ""


@dataclass
class Section:
    """A titled table (cells are text; a newline in a cell starts a second line) and the notes after it.
    `align` gives "left" or "right" per column (default left); `fold` wraps long cells instead of cutting
    them (terminal rendering)."""

    title: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    align: list[str] = field(default_factory=list)
    fold: bool = False

    def alignment(self, i: int) -> str:
        return self.align[i] if i < len(self.align) else "left"


@dataclass
class Summary:
    """The sections of a summary, in order."""

    sections: list[Section] = field(default_factory=list)

    def __add__(self, other: "Summary") -> "Summary":
        return Summary(self.sections + other.sections)

    def __str__(self) -> str:
        return self.text()

    def __contains__(self, text: str) -> bool:
        return text in self.text()

    def text(self) -> str:
        return "\n".join(line for s in self.sections for line in _text_section(s))

    def markdown(self) -> str:
        return "\n".join(_md_section(s) for s in self.sections)

    def html(self) -> str:
        return "\n".join(_html_section(s) for s in self.sections)


def note_line(n: Note) -> str:
    return f"{n.label} {n.text}" if n.label else n.text


# ---- plain text -----------------------------------------------------------------------------------------
def _text_section(s: Section) -> list[str]:
    out = []
    if s.columns:
        out += ([s.title] if s.title else []) + _text_table(s)
    elif s.title:
        out.append(s.title)
    return out + [note_line(n) for n in s.notes]


def _text_table(s: Section) -> list[str]:
    rows = [[str(c).split("\n") for c in r] for r in [s.columns, *s.rows]]
    widths = [max(len(line) for r in rows for line in r[i]) if rows else 0 for i in range(len(s.columns))]

    def fmt(cells: list[list[str]]) -> list[str]:
        height = max(len(c) for c in cells)
        lines = []
        for k in range(height):
            parts = []
            for i, c in enumerate(cells):
                t = c[k] if k < len(c) else ""
                parts.append(t.rjust(widths[i]) if s.alignment(i) == "right" else t.ljust(widths[i]))
            lines.append("  ".join(parts).rstrip())
        return lines

    rule = "  ".join("-" * w for w in widths)
    return fmt(rows[0]) + [rule] + [line for r in rows[1:] for line in fmt(r)]


# ---- Markdown ---------------------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~&])")


def md_escape(text: str) -> str:
    """Text as Markdown that renders as written (no emphasis, links or HTML); newlines as <br>."""
    return "<br>".join(_MD_SPECIAL.sub(r"\\\1", line) for line in str(text).split("\n"))


def _md_section(s: Section) -> str:
    out = [f"### {md_escape(s.title)}", ""] if s.title else []
    if s.columns:
        right = [s.alignment(i) == "right" for i in range(len(s.columns))]
        out.append("| " + " | ".join(md_escape(c) for c in s.columns) + " |")
        out.append("|" + "|".join("---:" if r else "---" for r in right) + "|")
        out += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in s.rows]
        out.append("")
    for n in s.notes:
        out.append(f"- **{md_escape(n.label)}** {md_escape(n.text)}" if n.label else f"- {md_escape(n.text)}")
    return "\n".join(out) + "\n"


# ---- HTML -------------------------------------------------------------------------------------------------
def _h(text: str) -> str:
    return "<br>".join(html.escape(line) for line in str(text).split("\n"))


def _html_section(s: Section) -> str:
    out = ["<section>"]
    if s.title:
        out.append(f"<h3>{_h(s.title)}</h3>")
    if s.columns:
        style = [' style="text-align:right"' if s.alignment(i) == "right" else "" for i in range(len(s.columns))]
        out.append("<table>")
        out.append("<thead><tr>" + "".join(f"<th{a}>{_h(c)}</th>" for a, c in zip(style, s.columns)) + "</tr></thead>")
        out.append("<tbody>")
        out += ["<tr>" + "".join(f"<td{a}>{_h(c)}</td>" for a, c in zip(style, row)) + "</tr>" for row in s.rows]
        out.append("</tbody>")
        out.append("</table>")
    for n in s.notes:
        label = f'<strong class="{html.escape(n.label.rstrip(":"))}">{_h(n.label)}</strong> ' if n.label else ""
        out.append(f"<p>{label}{_h(n.text)}</p>")
    out.append("</section>")
    return "\n".join(out)
