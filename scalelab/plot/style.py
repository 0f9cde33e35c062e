"""Look and size of every scalelab figure: palette, markers, fonts, widths, log axes, saving.

One colour, one marker and one line style per variant (or fit group), the same in every figure of one
`scalelab plot` call: Okabe-Ito (colour-blind safe) then Paul Tol's muted set, 16 distinct colours, dense
always black, the others in sorted-name order. Markers and line styles differ per variant as well, so that
a greyscale print still tells up to 16 groups apart. Dashed is kept for extrapolation (the law beyond the
fitted data), so no group is drawn dashed.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from scalelab.fileio import atomic_write

# Okabe & Ito (2008) "Color Universal Design". Dense is the reference: always black.
DENSE_COLOR = "#000000"
OKABE_ITO = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#f0e442"]
# Tol (2021) "muted", for groups 8 to 16; its pale grey is left out (it reads as a missing value).
TOL_MUTED = ["#332288", "#882255", "#117733", "#999933", "#aa4499", "#88ccee", "#44aa99", "#cc6677", "#ddcc77"]
PALETTE = OKABE_ITO + TOL_MUTED  # 16 distinct colours besides dense's black
DENSE_MARKER = "o"
MARKERS = ["s", "^", "D", "v", "P", "X", "<", ">", "*", "h", "p", "H", "d"]  # 13: pairs with 4 styles repeat at 52
DENSE_LINESTYLE = "-"
# Group line styles: solid, dotted, dash-dot, dash-dot-dot. Plain dashes ("--") mean extrapolation.
LINESTYLES = ["-", ":", "-.", (0, (4, 1.2, 1, 1.2, 1, 1.2))]
EXTRAPOLATION = "--"

WIDTHS_IN = {"single": 3.5, "double": 7.0}  # journal column widths
STYLES = ("paper", "slides")
FORMATS = ("pdf", "png", "svg")
PNG_DPI = 300


def literal(name) -> str:
    """A name read from data (variant, group, run) as figure text: printed as written, never parsed as
    mathtext. Matplotlib parses text with an even number of unescaped `$` as math; escaped, none is math,
    and outside math `\\frac`, `_` and `^` are plain characters."""
    return str(name).replace("$", r"\$")


def sort_variants(variants: Iterable[str]) -> list[str]:
    """dense first, then the others by name: the order of every legend and forest plot."""
    vs = sorted(set(variants))
    return (["dense"] if "dense" in vs else []) + [v for v in vs if v != "dense"]


def _by_variant(variants: Iterable[str], cycle: Sequence[str], dense_value: str) -> dict[str, str]:
    """Dense gets its own fixed value; the others take `cycle` in sort_variants order."""
    variants = list(variants)
    others = [v for v in sort_variants(variants) if v != "dense"]
    out = {v: cycle[i % len(cycle)] for i, v in enumerate(others)}
    if "dense" in variants:
        out["dense"] = dense_value
    return out


def variant_colors(variants: Iterable[str]) -> dict[str, str]:
    """Variant -> hex colour. Deterministic: dense black, others Okabe-Ito then Tol muted by sorted name
    (16 distinct colours; a 17th group repeats the first)."""
    return _by_variant(variants, PALETTE, DENSE_COLOR)


def variant_markers(variants: Iterable[str]) -> dict[str, str]:
    """Variant -> matplotlib marker, same ordering rule as the colours."""
    return _by_variant(variants, MARKERS, DENSE_MARKER)


def variant_linestyles(variants: Iterable[str]) -> dict:
    """Variant -> matplotlib line style (never plain dashes: those mark extrapolation), same ordering rule.
    With 13 markers and 4 styles, (marker, style) pairs stay distinct for 52 groups."""
    return _by_variant(variants, LINESTYLES, DENSE_LINESTYLE)


def shade(color: str, t: float, lightest: float = 0.65) -> tuple:
    """Mix `color` with white: t=1 the full colour (largest model), t=0 the lightest shade."""
    from matplotlib.colors import to_rgb

    w = lightest * (1.0 - min(max(t, 0.0), 1.0))
    r, g, b = to_rgb(color)
    return (r + (1 - r) * w, g + (1 - g) * w, b + (1 - b) * w)


def rc_params(style: str = "paper") -> dict:
    """rcParams for a style. Type 42 fonts so that PDFs embed TrueType (journals reject Type 3)."""
    if style not in STYLES:
        raise ValueError(style)
    paper = style == "paper"
    base = 7.0 if paper else 9.0
    return {
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
        "svg.fonttype": "path",
        "font.family": "DejaVu Sans",
        "mathtext.fontset": "dejavusans",
        "font.size": base,
        "axes.labelsize": base,
        "axes.titlesize": base,
        "xtick.labelsize": base - 1,
        "ytick.labelsize": base - 1,
        "legend.fontsize": base - 1,
        "legend.frameon": True,
        "legend.framealpha": 0.9,
        "lines.linewidth": 1.0 if paper else 1.6,
        "lines.markersize": 3.5 if paper else 5.5,
        "axes.linewidth": 0.6 if paper else 0.9,
        "grid.linewidth": 0.4 if paper else 0.6,
        "grid.alpha": 0.35,
        "axes.grid": True,
        "axes.grid.which": "major",
        "figure.dpi": 100,
        "savefig.dpi": PNG_DPI,
        "figure.constrained_layout.use": True,
    }


def new_figure(width: str, aspect: float, nrows: int = 1, ncols: int = 1, **kw):
    """A constrained-layout figure of the requested column width; height = width * aspect."""
    import matplotlib.pyplot as plt

    w = WIDTHS_IN[width]
    if plt.rcParams["font.size"] > 8:  # slides: larger type needs taller panels
        aspect *= 1.2
    fig, axes = plt.subplots(nrows, ncols, figsize=(w, w * aspect), layout="constrained", squeeze=False, **kw)
    return fig, axes


def log_axis(ax, which: str = "x") -> None:
    """Log scale with 10^k labels (matplotlib's mathtext formatter)."""
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(LogLocator(base=10, numticks=12))
    axis.set_major_formatter(LogFormatterSciNotation(base=10))


def ensure_decade_labels(ax, which: str = "x") -> None:
    """Make sure a log axis shows at least two labelled ticks (a narrow range has no 10^k inside)."""
    import math

    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    lo, hi = ax.get_xlim() if which == "x" else ax.get_ylim()
    if lo <= 0 or math.floor(math.log10(hi)) - math.ceil(math.log10(lo)) >= 1:
        return
    # Fewer than two powers of ten visible: label 1, 2, 5 x 10^k, or every m x 10^k, or linear ticks.
    ks = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
    ticks = []
    for ms in ((1, 2, 5), range(1, 10)):
        ticks = [m * 10.0**k for k in ks for m in ms if lo <= m * 10.0**k <= hi]
        if len(ticks) >= 2:
            break
    if len(ticks) < 2:
        from matplotlib.ticker import MaxNLocator

        ticks = [t for t in MaxNLocator(4).tick_values(lo, hi) if lo <= t <= hi]
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(_sci_label))
    axis.set_minor_formatter(NullFormatter())


def _sci_label(x: float, _pos=None) -> str:
    import math

    if x <= 0:
        return ""
    k = math.floor(math.log10(x) + 1e-9)
    m = x / 10.0**k
    if abs(m - 1) < 1e-6:
        return rf"$\mathdefault{{10^{{{k}}}}}$"
    return rf"$\mathdefault{{{m:.2g}\times10^{{{k}}}}}$"


def figure_legend(fig, handles: Sequence, labels: Sequence[str]):
    """One legend above the panels (outside the axes, so it never covers data), read row by row,
    with as many columns as fit the figure's width."""
    if not handles:
        return None
    renderer = fig.canvas.get_renderer()
    n = len(handles)
    for ncols in range(min(n, 6), 0, -1):
        # matplotlib fills legends column by column; reorder so that entries read row by row
        order = [k for c in range(ncols) for k in range(c, n, ncols)]
        leg = fig.legend(
            [handles[k] for k in order],
            [labels[k] for k in order],
            loc="outside upper center",
            ncols=ncols,
            frameon=True,
            handlelength=1.8,
            columnspacing=1.0,
        )
        if ncols == 1 or leg.get_window_extent(renderer).width <= 0.98 * fig.bbox.width:
            return leg
        leg.remove()
    return None


def save(fig, stem: str, formats: Sequence[str]) -> list[str]:
    """Write `stem.FORMAT` for each format, atomically (temp file + fsync + rename)."""
    paths = []
    for fmt in formats:
        path = f"{stem}.{fmt}"
        atomic_write(path, lambda f, fmt=fmt: fig.savefig(f, format=fmt, dpi=PNG_DPI, metadata=_metadata(fmt)))
        paths.append(path)
    return paths


def _metadata(fmt: str) -> dict:
    # Reproducible files: no creation date, so that re-plotting the same inputs gives the same bytes.
    if fmt == "pdf":
        return {"Creator": "scalelab", "CreationDate": None}
    if fmt == "svg":
        return {"Creator": "scalelab", "Date": None}
    if fmt == "png":
        return {"Software": "scalelab"}
    return {}
