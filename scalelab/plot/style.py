"""Drawing primitives of every scalelab figure: look and size (fonts, widths, rcParams), log axes and their
ticks, interval bars, bands with extrapolation, legends, saving.

The palette (one colour, marker and line style per variant) is scalelab.plot.palette, re-exported here.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from scalelab.fileio import atomic_write
from scalelab.plot.palette import (  # noqa: F401  (re-exported: the figures' one style namespace)
    DENSE_COLOR,
    DENSE_LINESTYLE,
    DENSE_MARKER,
    EXTRAPOLATION,
    LINESTYLES,
    MARKERS,
    OKABE_ITO,
    PALETTE,
    TOL_MUTED,
    literal,
    sort_variants,
    variant_colors,
    variant_linestyles,
    variant_markers,
)

WIDTHS_IN = {"single": 3.5, "double": 7.0}  # journal column widths
STYLES = ("paper", "slides")
FORMATS = ("pdf", "png", "svg")
PNG_DPI = 300


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
        # atomic_write calls the writer before the loop moves on: `fmt` is still this format
        atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=PNG_DPI, metadata=_metadata(fmt)))
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


# ---------------------------------------------------------------------------------------------- primitives


def own_axes(ax, width: str, aspect: float):
    """(figure, axes, created): the given axes and its figure, else a new one-panel figure (created=True)."""
    if ax is not None:
        return ax.figure, ax, False
    fig, axs = new_figure(width, aspect)
    return fig, axs[0, 0], True


def place_legend(fig, ax, handles, created: bool) -> None:
    """A figure drawn on its own gets the legend above its panels; one drawn into a caller's axes gets it
    inside those axes (the caller composes the figure)."""
    if created:
        figure_legend(fig, handles, [h.get_label() for h in handles])
    elif handles:
        ax.legend(handles, [h.get_label() for h in handles])


def variant_handle(colors: dict, markers: dict, linestyles: dict, v: str):
    """A group's legend entry: its colour, marker and line style."""
    from matplotlib.lines import Line2D

    ls = linestyles.get(v, "-")
    return Line2D(
        [], [], color=colors[v], marker=markers[v], ls=ls, lw=1.0, markersize=4, label=literal(v), gid=f"variant:{v}"
    )


def law_legend(band_label: str, with_extrap: bool = True) -> list:
    """Legend entries of a fitted law: its line, its band, and (when drawn) its extrapolation."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    h = [Line2D([], [], color="0.3", lw=1.2, label="fitted law"), Patch(facecolor="0.3", alpha=0.25, label=band_label)]
    if with_extrap:
        h.append(Line2D([], [], color="0.3", lw=1.2, ls=EXTRAPOLATION, alpha=0.6, label="extrapolation"))
    return h


def finish_legend(fig, handles) -> None:
    figure_legend(fig, handles, [h.get_label() for h in handles])


def split_extrapolated(ax, x, y, lo, hi, extrap, color, gid=None, lw=None, band_alpha=0.15, ls="-", marker=None):
    """The group's line style (`ls`, solid by default) inside the fitted range, dashed and lighter outside
    (EXTRAPOLATION); band shaded throughout; `marker` every few points of the inside part."""
    extrap = np.asarray(extrap, bool)
    if np.isfinite(lo).any():
        ax.fill_between(x, lo, hi, color=color, alpha=band_alpha, lw=0, zorder=1)
    inside = ~extrap
    # Let the two pieces touch: extend the inside mask by one point on each side.
    grow = inside.copy()
    grow[1:] |= inside[:-1]
    grow[:-1] |= inside[1:]
    for mask, line, alpha in ((grow, ls, 1.0), (extrap, EXTRAPOLATION, 0.6)):
        if mask.any():
            yy = np.where(mask, y, np.nan)
            kw = {}
            if marker:  # every sixth of the curve, on whichever piece holds it
                every = np.arange(len(x))[:: max(len(x) // 6, 1)]
                idx = [int(i) for i in every if (inside[i] if line is ls else extrap[i])]
                kw = dict(marker=marker, markevery=idx, markersize=3.5) if idx else {}
            ax.plot(x, yy, ls=line, color=color, lw=lw, zorder=3, gid=gid, alpha=alpha, **kw)


def interval(ax, est, lo, hi, y, color, marker, gid, horizontal=True) -> None:
    """A point estimate with its interval drawn as a bar from lo to hi: a percentile bootstrap interval
    need not contain the point estimate, so the bar is not drawn as +/- errors around it."""
    if np.isfinite(lo) and np.isfinite(hi):
        seg = ([lo, hi], [y, y]) if horizontal else ([y, y], [lo, hi])
        ax.plot(*seg, color=color, lw=1.0, zorder=2, gid=gid, solid_capstyle="butt")
        cap = "|" if horizontal else "_"
        ax.plot(*seg, ls="", marker=cap, ms=4, color=color, zorder=2)
    if np.isfinite(est):
        xy = ([est], [y]) if horizontal else ([y], [est])
        ax.plot(*xy, ls="", marker=marker, ms=4, color=color, zorder=3, gid=gid)


def fixed_ticks(axis, values, fmt: str, minor_off: bool = True) -> None:
    """Major ticks at exactly `values` (widths, swept rates) labelled with `fmt`, no minor labels."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    axis.set_major_locator(FixedLocator(values))
    axis.set_major_formatter(lambda x, _: format(x, fmt))
    if minor_off:
        axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def log_axes(ax, x: bool = True, y: bool = False) -> None:
    """log_axis then ensure_decade_labels on the named axes (call after the limits are set)."""
    for which, on in (("x", x), ("y", y)):
        if on:
            log_axis(ax, which)
            ensure_decade_labels(ax, which)
