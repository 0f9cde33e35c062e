"""Every figure of the plot registry, drawn in memory as SVG and inlined: no file, no network. The SVG is made
fit for an HTML page: no XML prolog or DOCTYPE, no namespace URLs (HTML gives inline <svg> its namespace), no
comments (matplotlib writes each label's text in one), and each figure's ids prefixed so that two figures'
markers and clip paths never collide in one document."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

from scalelab.report.page import esc, paragraphs


@dataclass
class FigureSvg:
    """One registry figure: its inline SVG, or why it was skipped."""

    name: str
    description: str
    svg: str = ""
    skipped: str = ""
    notes: list = field(default_factory=list)


_ID = re.compile(r'\bid="([^"]+)"')


def inline_svg(svg: str, prefix: str, title: str) -> str:
    """matplotlib's SVG document as an inline <svg> with an accessible <title> (its alt text)."""
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    svg = svg.replace("xlink:href=", "href=")
    for old in set(_ID.findall(svg)):
        new = f"{prefix}-{old}"
        svg = (
            svg.replace(f'id="{old}"', f'id="{new}"').replace(f"#{old})", f"#{new})").replace(f'"#{old}"', f'"#{new}"')
        )
    svg = _unique_ids(svg)
    title_id = f"{prefix}-title"
    head_end = svg.index(">") + 1
    head = svg[: head_end - 1] + f' role="img" aria-labelledby="{title_id}">'
    return f'{head}<title id="{title_id}">{esc(title)}</title>{svg[head_end:]}'


def _unique_ids(svg: str) -> str:
    """Ids the plot code gives several artists (one per panel, e.g. "law:dense") made unique with a count:
    nothing refers to those, and an HTML page's ids must be unique."""
    seen: dict[str, int] = {}

    def one(m) -> str:
        n = seen[m.group(1)] = seen.get(m.group(1), 0) + 1
        return m.group(0) if n == 1 else f'id="{m.group(1)}-{n}"'

    return _ID.sub(one, svg)


def draw_figures(inputs, width: str = "double", style_name: str = "paper") -> list[FigureSvg]:
    """Each figure of scalelab.plot.registry as inline SVG (or its skip reason), in the registry's order."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from scalelab.plot import index, style

    out = []
    with plt.rc_context(style.rc_params(style_name)):
        for i, (name, desc, fig, skip, notes) in enumerate(index.build(inputs, width, style_name)):
            f = FigureSvg(name=name, description=desc, skipped=skip, notes=list(notes))
            if fig is not None:
                buf = io.StringIO()
                fig.savefig(buf, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
                plt.close(fig)
                f.svg = inline_svg(buf.getvalue(), f"fig{i + 1}", f"{name}: {desc}")
            out.append(f)
    return out


def figures_section(figures: list[FigureSvg], command: str) -> str:
    """The drawn figures with captions and notes, then the skipped ones with their reasons."""
    parts = [paragraphs([f"Drawn by the plot registry (scalelab/plot/registry.py); as files: {command}"])]
    for f in figures:
        if f.svg:
            notes = "".join(f"<br><small>note: {esc(n)}</small>" for n in f.notes)
            parts.append(
                f'<figure id="{f.name}">\n{f.svg}\n<figcaption><strong>{esc(f.name)}</strong>. '
                f"{esc(f.description)}{notes}</figcaption>\n</figure>"
            )
    skipped = [f for f in figures if not f.svg]
    if skipped:
        items = "".join(f"<li><strong>{esc(f.name)}</strong>: {esc(f.skipped)}</li>" for f in skipped)
        parts.append(f"<h3>Not drawn</h3>\n<ul>{items}</ul>")
    return "\n".join(parts)
