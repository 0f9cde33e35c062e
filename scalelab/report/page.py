"""The HTML shell of a report: escaping, tables, sections and the page with its inline CSS (screen and print)."""

from __future__ import annotations

import html
from typing import Iterable, Sequence


def esc(text) -> str:
    """Text from data as HTML text: markup characters escaped, newlines as <br>."""
    return "<br>".join(html.escape(line) for line in str(text).split("\n"))


def table(columns: Sequence[str], rows: Iterable[Sequence], right: Sequence[int] = (), caption: str = "") -> str:
    """A real <table>: header cells, body cells escaped; columns whose index is in `right` right-aligned."""

    def cell(tag: str, i: int, v) -> str:
        cls = ' class="num"' if i in right else ""
        return f"<{tag}{cls}>{esc(v)}</{tag}>"

    head = "".join(cell("th", i, c) for i, c in enumerate(columns))
    body = "\n".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>"


def paragraphs(lines: Iterable[str]) -> str:
    return "\n".join(f"<p>{esc(line)}</p>" for line in lines)


def code_block(text: str) -> str:
    return f"<pre><code>{html.escape(text)}</code></pre>"


def section(anchor: str, title: str, body: str) -> str:
    """A top-level section; `anchor` is ours (never data), the title is escaped."""
    return f'<section id="{anchor}">\n<h2>{esc(title)}</h2>\n{body}\n</section>'


# Readable on a laptop (one column, at most ~60em wide), printable (no navigation, figures kept whole).
CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;background:#fff;
 max-width:62em;margin:0 auto;padding:1em 1.5em 4em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em;margin-bottom:.3em}
nav ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.3em 1.2em}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:.88em;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f3f3f3}td.num,th.num{text-align:right}caption{text-align:left;font-weight:600;padding:.3em 0}
figure{margin:1.2em 0;page-break-inside:avoid;break-inside:avoid}
figure svg{max-width:100%;height:auto;display:block}figcaption{font-size:.88em;color:#333}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.85em;white-space:pre-wrap;word-break:break-all}
strong.warning{color:#8a5a00}.meta{color:#555;font-size:.9em}
@media print{body{max-width:none;font-size:10pt;padding:0}nav{display:none}
 h2{page-break-after:avoid;break-after:avoid}table,pre{page-break-inside:avoid;break-inside:avoid}
 a{color:inherit;text-decoration:none}}
"""


# Marks a page as a scalelab report, so that `report --out` overwrites an earlier report and nothing else.
GENERATOR = '<meta name="generator" content="scalelab report">'


def is_report(path: str) -> bool:
    """Whether an existing file is one `scalelab report` wrote (its head carries GENERATOR, or, for reports written
    before it, the page shell and CSS below), or is empty: those `report --out` may overwrite."""
    from scalelab.fileio import head_text

    head = head_text(path, 4096)
    if head is None:
        return False
    return not head or GENERATOR in head or (head.startswith("<!DOCTYPE html>") and f"<style>{CSS[:60]}" in head)


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    """The whole document: (anchor, title, body) sections with a table of contents."""
    toc = "".join(f'<li><a href="#{a}">{esc(t)}</a></li>' for a, t, _ in sections)
    body = "\n".join(section(a, t, b) for a, t, b in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"{GENERATOR}\n"
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f'<header><h1>{esc(title)}</h1><p class="meta">{esc(subtitle)}</p></header>\n'
        f"<nav><ul>{toc}</ul></nav>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
