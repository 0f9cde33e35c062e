"""Draw every figure the inputs support, write them atomically, and list them in figures/index.md; the folder's
files of scalelab's figure names that this run did not write (an earlier run's) go once the index is written."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from scalelab.errors import ScalelabError
from scalelab.fileio import atomic_write_text
from scalelab.plot import registry, style
from scalelab.plot.inputs import Inputs
from scalelab.plot.shape.context import Context, Skip


@dataclass
class Drawn:
    """One figure: its files, or the reason it was skipped, and remarks."""

    name: str
    description: str
    files: list = field(default_factory=list)
    skipped: str = ""
    notes: list = field(default_factory=list)
    figure: object = None  # the matplotlib Figure when keep=True


def build(inputs: Inputs, width: str = "double", style_name: str = "paper", only=None):
    """Yield (name, description, Figure or None, skip reason, notes) for each figure; nothing written."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    variants = inputs.variants()
    ctx = Context(
        inputs=inputs,
        width=width,
        style=style_name,
        colors=style.variant_colors(variants),
        markers=style.variant_markers(variants),
        linestyles=style.variant_linestyles(variants),
    )
    with plt.rc_context(style.rc_params(style_name)):
        for entry in registry.FIGURES:
            name, fn, desc = entry[:3]
            if only and name not in only:
                continue
            ctx.notes = []
            open_before = set(plt.get_fignums())
            if inputs.fit is not None and inputs.fit.samples_note:
                ctx.note(f"{inputs.fit.samples_note}: fitted lines drawn without bands")
            try:
                fig = fn(ctx)
            except Skip as e:
                _close_new(plt, open_before)
                yield name, desc, None, str(e), list(ctx.notes)
                continue
            except Exception as e:  # noqa: BLE001 - one figure's failure must not cost the others
                _close_new(plt, open_before)
                why = f"{type(e).__name__}: {e}".splitlines()[0][:300]
                yield name, desc, None, f"could not be drawn from these inputs ({why}); please report it", []
                continue
            yield name, desc, fig, "", list(ctx.notes)


def _close_new(plt, before: set) -> None:
    """Close the figures a skipped or failed figure function left open (not those kept by the caller)."""
    for num in set(plt.get_fignums()) - before:
        plt.close(num)


def make_figures(
    inputs: Inputs,
    out_dir: str = "figures",
    formats=("pdf", "png"),
    width: str = "double",
    style_name: str = "paper",
    keep: bool = False,
) -> list[Drawn]:
    """Draw, save and index. Returns what was drawn and what was skipped."""
    import matplotlib.pyplot as plt

    bad = [f for f in formats if f not in style.FORMATS]
    if bad:
        raise ScalelabError(f"unknown format {bad[0]!r}: use a comma list of {', '.join(style.FORMATS)}")
    if width not in style.WIDTHS_IN:
        raise ScalelabError(f"unknown width {width!r}: use single (3.5 in) or double (7 in)")
    if style_name not in style.STYLES:
        raise ScalelabError(f"unknown style {style_name!r}: use paper or slides")
    check_index_owner(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise ScalelabError(f"{out_dir}: cannot create the output folder ({e.strerror}): choose another --out")
    drawn = []
    with plt.rc_context(style.rc_params(style_name)):
        for name, desc, fig, skip, notes in build(inputs, width, style_name):
            d = Drawn(name=name, description=desc, skipped=skip, notes=notes)
            if fig is not None:
                try:
                    d.files = style.save(fig, os.path.join(out_dir, name), formats)
                except ValueError as e:  # matplotlib refused to lay out what was drawn (e.g. no finite value)
                    plt.close(fig)
                    fig = None
                    d.skipped = (
                        f"could not be drawn from these inputs ({str(e).splitlines()[0][:300]}); please report it"
                    )
            if fig is not None:
                if keep:
                    d.figure = fig
                else:
                    plt.close(fig)
            drawn.append(d)
    stale = _stale_files(out_dir, drawn)
    # The index says first which files went; they go only once it is written (a failed index write removes
    # nothing), so index.md never links a file that is missing and never calls skipped a figure still shown.
    write_index(os.path.join(out_dir, "index.md"), inputs, drawn, width, style_name)
    _remove(stale)
    return drawn


def _stale_files(out_dir: str, drawn: list[Drawn]) -> list[str]:
    """This folder's files of scalelab's own figure names (registry name . a format scalelab writes) that this
    run did not write: figures skipped this time, or formats not asked this time, left by an earlier plot run.
    Each one's figure gets a note naming them; nothing else in the folder is touched."""
    stale = []
    for d in drawn:
        gone = [
            f"{d.name}.{ext}"
            for ext in style.FORMATS
            if os.path.join(out_dir, f"{d.name}.{ext}") not in d.files
            and os.path.isfile(os.path.join(out_dir, f"{d.name}.{ext}"))
        ]
        if gone:
            why = "skipped this time" if d.skipped else "not in this run's formats"
            d.notes.append(f"removed {', '.join(gone)} (from an earlier plot run; {why})")
            stale += [os.path.join(out_dir, f) for f in gone]
    return stale


def _remove(paths: list[str]) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ScalelabError(
                f"{path}: cannot remove this figure of an earlier plot run ({e.strerror}), which index.md lists "
                "as skipped: remove it by hand or choose another --out"
            )


# The first two lines of every index.md plot writes: how plot knows an index.md as its own, the one it replaces.
INDEX_TITLE = "# scalelab figures"
INDEX_MARK = "Written by `scalelab plot`"


def is_plot_index(path: str) -> bool:
    """Whether an existing index.md is one `scalelab plot` wrote (INDEX_TITLE, then INDEX_MARK), or is empty:
    those a plot run may replace; anything else (a user's notes) is not overwritten."""
    from scalelab.fileio import head_text

    head = head_text(path, 4096)
    if head is None:
        return False
    return not head or (head.startswith(INDEX_TITLE + "\n") and INDEX_MARK in head)


def check_index_owner(out_dir: str) -> None:
    """Refuse, before anything is drawn or written, an output folder whose index.md plot did not write."""
    path = os.path.join(out_dir, "index.md")
    if os.path.lexists(path) and not is_plot_index(path):
        raise ScalelabError(
            f"{path} exists and was not written by scalelab plot: choose another --out, or move that file away "
            "(plot replaces only an index.md it wrote)"
        )


def write_index(path: str, inputs: Inputs, drawn: list[Drawn], width: str, style_name: str) -> None:
    import scalelab

    out_dir = os.path.dirname(path)
    lines = [
        INDEX_TITLE,
        "",
        f"{INDEX_MARK} (scalelab {getattr(scalelab, '__version__', '?')}), "
        f"style {style_name}, {width} column ({style.WIDTHS_IN[width]} in wide), PNG at {style.PNG_DPI} dpi, "
        "PDF with TrueType (Type 42) fonts.",
        "",
        "## Inputs",
        "",
        "| kind | file | sha256 |",
        "| --- | --- | --- |",
    ]
    for s in inputs.sources:
        lines.append(f"| {s.kind} | {md_code(s.path)} | `{s.sha256[:16]}` |")
    lines += ["", "## Figures", ""]
    for d in drawn:
        if d.files:
            links = ", ".join(f"[{os.path.basename(f)}]({os.path.relpath(f, out_dir)})" for f in d.files)
            lines += [f"### {d.name}", "", d.description, "", f"Files: {links}", ""]
            lines += [f"- {md(n)}" for n in d.notes] + ([""] if d.notes else [])
    skipped = [d for d in drawn if not d.files]
    if skipped:
        lines += ["## Skipped", ""]
        for d in skipped:
            lines.append(f"- **{d.name}**: {md(d.skipped)}")
            lines += [f"  - {md(n)}" for n in d.notes]
        lines.append("")
    colors = style.variant_colors(inputs.variants())
    markers = style.variant_markers(inputs.variants())
    styles = style.variant_linestyles(inputs.variants())
    lines += ["## Variants", "", "| variant | colour | marker | line style |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {md(v)} | `{colors[v]}` | `{markers[v]}` | {md_code(styles[v])} |"
        for v in style.sort_variants(inputs.variants())
    ]
    text = "\n".join(lines) + "\n"
    atomic_write_text(path, text)


# Characters Markdown (and the HTML it may hold, and GitHub's $math$) would read as syntax inside a line
# (every line here starts with our own "- " or "| "): backslash-escaped, or as entities.
_MD_ESCAPE = {c: "\\" + c for c in "\\`*_[]|~$"}
_MD_ESCAPE.update({"<": "&lt;", ">": "&gt;", "&": "&amp;", "\n": " ", "\r": " "})


def md(text) -> str:
    """Text taken from data (names, and the notes that quote them) as literal Markdown: no emphasis,
    links, HTML or table cells split by `|`."""
    return "".join(_MD_ESCAPE.get(c, c) for c in str(text))


def md_code(text) -> str:
    """A code span holding `text` as written: a fence longer than any backtick run inside, `|` escaped so
    that a table row keeps its cells (GitHub tables split on `|` even inside code spans)."""
    import re

    text = str(text).replace("\n", " ").replace("|", "\\|")
    run = max((len(m) for m in re.findall("`+", text)), default=0)
    fence = "`" * (run + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
