"""Loss against peak learning rate, one curve per width, one panel per variant and parametrisation: the
muTransfer plot."""

from __future__ import annotations

from typing import Optional

from scalelab.plot import style
from scalelab.plot.shape import labels
from scalelab.plot.shape.context import Context
from scalelab.plot.shape.sweep import (
    SweepLayout,
    basin_top,
    curve_label,
    panel_title,
    size_key,
    sweep_layout,
    sweep_notes,
)


def lr_transfer(ctx: Context):
    """Loss against peak learning rate, one curve per width, one panel per variant (rows: sp, mup when both
    are present): the muTransfer plot. Each width's optimum (fit/hyper.py: parabola in log lr) is starred."""
    lay = sweep_layout(ctx)
    fig, axs = style.new_figure(
        ctx.width, 0.36 * len(lay.rows) * (2 if ctx.single() else 1), len(lay.rows), len(lay.cols)
    )
    for ax in axs.flat:
        ax.set_visible(False)
    for g in lay.groups:
        ax = axs[lay.cell(g)]
        ax.set_visible(True)
        sweep_panel(ctx, g, ax, lay)
    sweep_notes(ctx, lay)
    return fig


def _size_colors(lay: SweepLayout) -> dict:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return {n: cmap(0.85 * i / max(len(lay.sizes) - 1, 1)) for i, n in enumerate(lay.sizes)}


def sweep_panel(ctx: Context, g: str, ax=None, lay: Optional[SweepLayout] = None):
    """Group g's sweeps: loss against learning rate per width, its optimum starred, y clipped to the basin."""
    lay = lay or sweep_layout(ctx)
    ax = ax if ax is not None else style.new_figure(ctx.width, 0.7)[1][0, 0]
    color = _size_colors(lay)
    mine = [c for c in lay.curves if c["group"] == g]
    several_d = len({(c["N"], c.get("D")) for c in mine}) > len({c["N"] for c in mine})
    for c in sorted(mine, key=lambda c: (c["N"], c.get("D") or 0)):
        col = color[size_key(c)]
        ax.plot(
            c["lrs"], c["losses"], "-o", color=col, ms=3, lw=1.0, label=curve_label(c, several_d), gid=f"{g}:{c['N']:g}"
        )
        if "lo" in c:  # the range over seeds at each rate, nudged sideways per width so bars do not overlap
            k = lay.sizes.index(size_key(c)) - (len(lay.sizes) - 1) / 2
            x = [lr * 1.04**k for lr in c["lrs"]]
            ax.vlines(x, c["lo"], c["hi"], color=col, lw=1.0, alpha=0.7, gid=f"{g}:{c['N']:g}:seeds")
        ax.plot([c["lr_opt"]], [min(c["losses"])], marker="*", ms=9, color=col, mec="black", mew=0.5, ls="")
    clip = basin_top([y for c in mine for y in [*c["losses"], *c.get("hi", [])]])
    if clip is not None:
        ax.set_ylim(*clip[0])
        ctx.note(f"{clip[1]} loss(es) far above the rest (diverged rates) clipped off the top")
    ax.set_title(panel_title(ctx, g), fontsize="small")
    ax.set_xscale("log")
    if len(lay.swept) <= 8:  # the swept values as the ticks
        style.fixed_ticks(ax.xaxis, lay.swept, ".2g")
    else:
        from matplotlib.ticker import NullFormatter

        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel(labels.loss_axis(ctx))
    ax.legend(fontsize="x-small", frameon=False)
    return ax
