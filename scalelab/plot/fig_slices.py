"""Loss against parameters along fixed token budgets (or IsoFLOP slices), one panel per fit group, with the
fitted law along each slice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from scalelab.plot import style
from scalelab.plot.shape import frontier, labels
from scalelab.plot.shape.context import Context
from scalelab.plot.shape.points import loss_limits
from scalelab.plot.shape.slices import (
    ParamsLayout,
    n_is_nonembed,
    no_law_title,
    params_layout,
    slice_optimum,
    tokens_along,
)

MAX_SLICE_LABELS = 6  # more slices: one legend entry for the shade ramp


@dataclass
class Drew:
    """What a panel drew, for the legend: a law, its extrapolation, a slice minimum."""

    law: bool = False
    extrap: bool = False
    optimum: bool = False


def loss_vs_params(ctx: Context):
    """Loss vs parameters at fixed token budgets (or IsoFLOP slices), one panel per fit group (per variant
    without a fit), every fitted point, the law solid over each slice's points and dashed beyond; each
    panel's own y range (the data's), a log loss axis when a panel's loss spans more than 2x."""
    lay = params_layout(ctx)
    nrows, ncols = _panel_grid(len(lay.panels), ctx.single())
    aspect = (1.0 if ctx.single() else 0.42) * nrows
    if ncols == 1 and not ctx.single():
        aspect = 0.5
    fig, axs = style.new_figure(ctx.width, aspect, nrows, ncols)
    drew = Drew()
    for i, panel in enumerate(lay.panels):
        slice_panel(ctx, panel, axs[i // ncols, i % ncols], lay, drew)
    spare = [axs[j // ncols, j % ncols] for j in range(len(lay.panels), nrows * ncols)]
    for ax in spare:
        ax.axis("off")  # the first spare panel holds the legend; the rest stay blank
    if ctx.fit is None:
        ctx.note("no fit given: points only, no law overlaid")
    handles = _legend(ctx, lay, drew)
    if spare:
        spare[0].legend(handles, [h.get_label() for h in handles], loc="center", frameon=True)
    else:
        style.finish_legend(fig, handles)
    kind = "fixed tokens-per-parameter budgets" if lay.sl.kind == "ratio" else "IsoFLOP slices"
    ctx.note(
        f"{len(lay.pts)} points from {lay.src}, in {kind}"
        + ("; lines: the fitted law along each slice" if drew.law else "")
    )
    if drew.optimum:
        ctx.note("stars: each IsoFLOP slice's minimum N_opt as the fit found it, placed on the line through the points")
    return fig


def _panel_grid(n: int, single: bool) -> tuple[int, int]:
    ncols = min(n, 2 if single else 3)
    return (n + ncols - 1) // ncols, ncols


def _slice_color(ctx: Context, v: str, j: int, nsl: int):
    return style.shade(ctx.colors[v], 0.25 + 0.75 * j / max(nsl - 1, 1), lightest=0.7)


def slice_panel(ctx: Context, panel: str, ax=None, lay: Optional[ParamsLayout] = None, drew: Optional[Drew] = None):
    """One group's panel: its points per slice (shaded by slice), the law along each; returns the axes."""
    lay = lay or params_layout(ctx)
    drew = drew if drew is not None else Drew()
    ax = ax if ax is not None else style.new_figure(ctx.width, 1.0 if ctx.single() else 0.5)[1][0, 0]
    pv = lay.pts[lay.pts["group"] == panel]
    v, g = lay.variant[panel], (panel if panel in lay.law_groups else None)
    nmin, nmax = float(pv["N"].min()), float(pv["N"].max())
    Ngrid = np.logspace(np.log10(nmin / 1.3), np.log10(nmax * 1.3), 60)
    for j, val in enumerate(lay.sl.values):
        p = pv[lay.sl.index[pv.index] == j]
        if not p.empty:
            _draw_slice(ctx, ax, lay, panel, g, p, val, _slice_color(ctx, v, j, len(lay.sl.values)), Ngrid, drew)
    ax.set_title(style.literal(panel) + ("" if g or ctx.fit is None else no_law_title(ctx, panel)), color="black")
    style.log_axis(ax, "x")
    ax.set_xlim(Ngrid[0], Ngrid[-1])
    style.ensure_decade_labels(ax, "x")
    # the panel's own range: its points decide it, the law beyond them is clipped, never stretches it
    if lay.log:
        style.log_axis(ax, "y")
    ax.set_ylim(*loss_limits(*lay.spans[lay.panels.index(panel)], lay.log))
    if lay.log:
        style.ensure_decade_labels(ax, "y")
    ax.set_xlabel("parameters N" + (" (non-embedding)" if n_is_nonembed(ctx) else ""))
    ax.set_ylabel(labels.loss_axis(ctx) + (" (log scale)" if lay.log else ""))
    return ax


def _draw_slice(ctx: Context, ax, lay: ParamsLayout, panel: str, g, p, val, c, Ngrid, drew: Drew) -> None:
    """One slice of a panel: its points, (IsoFLOP without a law) the line through them, the fit's minimum,
    and the law along the slice, solid over the slice's points, dashed beyond, banded over them."""
    v = lay.variant[panel]
    ax.scatter(
        p["N"], p["loss"], marker=ctx.markers[v], s=12, facecolor=c, edgecolor=ctx.colors[v],
        linewidths=0.5, zorder=4, gid=f"points:{panel}",
    )  # fmt: skip
    if lay.sl.kind == "iso" and g is None and len(p) > 1:  # an IsoFLOP slice reads as a curve
        ps = p.sort_values("N")
        ax.plot(ps["N"], ps["loss"], color=c, lw=0.6, alpha=0.8, zorder=2)
    if lay.iso_fit and panel in ctx.known_fit.groups:
        star = slice_optimum(ctx, panel, p, val)
        if star is not None:
            ax.plot([star[0]], [star[1]], ls="", marker="*", ms=7, color=c, mec="black", mew=0.5, zorder=5,
                    gid=f"optimum:{panel}")  # fmt: skip
            drew.optimum = True
    if g is None:
        return
    curve = frontier.law_along(
        ctx, g, Ngrid, tokens_along(ctx, lay.sl, lay.pts[lay.pts["group"] == panel], g, val, Ngrid)
    )
    if curve is None:
        return
    y, lo, hi = curve
    inside = (Ngrid >= float(p["N"].min()) / 1.02) & (Ngrid <= float(p["N"].max()) * 1.02)
    if np.isfinite(lo).any():
        ax.fill_between(Ngrid, np.where(inside, lo, np.nan), np.where(inside, hi, np.nan), color=c,
                        alpha=0.15, lw=0, zorder=1)  # fmt: skip
    style.split_extrapolated(ax, Ngrid, y, lo * np.nan, hi * np.nan, ~inside, c, gid=f"law:{panel}")
    drew.law = True
    drew.extrap |= bool((~inside).any())


def _legend(ctx: Context, lay: ParamsLayout, drew: Drew) -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        style.variant_handle(ctx.colors, ctx.markers, ctx.linestyles, v) for v in dict.fromkeys(lay.variant.values())
    ]
    sl, nsl = lay.sl, len(lay.sl.values)
    if nsl <= MAX_SLICE_LABELS:
        for j, label in enumerate(sl.labels):
            grey = style.shade("#000000", 0.25 + 0.75 * j / max(nsl - 1, 1), lightest=0.7)
            handles.append(Line2D([], [], color=grey, ls="", marker="o", markersize=3, label=label))
    else:  # one entry for the whole ramp
        what = "IsoFLOP slices" if sl.kind == "iso" else "D/N slices"
        handles.append(Line2D([], [], color="0.4", ls="", marker="o", markersize=3,
                              label=f"{nsl} {what}, {sl.labels[0]} to {sl.labels[-1]} (darker = larger)"))  # fmt: skip
    if drew.optimum:
        handles.append(Line2D([], [], ls="", marker="*", markersize=7, color="0.6", mec="black", mew=0.5,
                              label="slice minimum N_opt (the fit's, on the points' line)"))  # fmt: skip
    if drew.law:
        handles.append(Line2D([], [], color="0.3", lw=1.0, label="law over the slice's points"))
        if drew.extrap:
            handles.append(
                Line2D([], [], color="0.3", lw=1.0, ls=style.EXTRAPOLATION, alpha=0.6, label="law beyond them")
            )
        handles.append(Patch(facecolor="0.3", alpha=0.25, label=ctx.band_label()))
    return handles
