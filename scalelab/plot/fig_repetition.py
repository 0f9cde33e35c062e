"""Loss against epochs at fixed unique data: the data-constrained (repetition) law of each group at a few
(unique tokens, params) settings of its runs, with its bootstrap band, the base law counting repeated tokens as
new, and the observed runs at their epochs (Muennighoff et al. 2023; numbers from shape/repetition.py)."""

from __future__ import annotations

import numpy as np

from scalelab.numfmt import si
from scalelab.plot import style
from scalelab.plot.palette import OKABE_ITO, literal
from scalelab.plot.shape import labels
from scalelab.plot.shape import repetition as shape
from scalelab.plot.shape.context import Context
from scalelab.plot.shape.points import loss_limits, use_log_loss


def loss_vs_epochs(ctx: Context):
    """One panel per repetition-law group: loss against epochs D / U at fixed unique tokens U and params N,
    the law solid with its band, the base law (repeated tokens counted as new) dotted, the runs as markers."""
    panels = shape.panels(ctx)
    n = len(panels)
    ncols = 1 if ctx.single() or n == 1 else 2
    nrows = -(-n // ncols)
    fig, axs = style.new_figure(ctx.width, (1.2 if ctx.single() else 0.5) * nrows, nrows, ncols)  # single: legend above
    one = n == 1  # its settings join the legend above, off the data; several panels keep theirs inside
    for i, p in enumerate(panels):
        epochs_panel(ctx, p, axs[i // ncols, i % ncols], legend=not one)
    for j in range(n, nrows * ncols):
        axs[j // ncols, j % ncols].axis("off")
    settings = axs[0, 0].get_legend_handles_labels()[0] if one else []
    style.finish_legend(fig, [*settings, *_legend(ctx)])
    for p in panels:
        for msg in p.notes:
            ctx.note(msg)
    ctx.note(
        "curves: the data-constrained law at each (unique tokens U, params N) over epochs D / U; dotted: the same "
        "N with every token new (the base law), the gap is what repetition costs"
    )
    return fig


def epochs_panel(ctx: Context, p: shape.Panel | None = None, ax=None, legend: bool = True):
    """One group's panel (default: the first repetition-law group's) into `ax`, or a figure of its own; its
    (U, N) settings labelled, in a legend inside it unless `legend` is False (the caller places them)."""
    p = p if p is not None else shape.panels(ctx)[0]
    fig, ax, created = style.own_axes(ax, ctx.width, 0.7)
    ys = []
    for i, c in enumerate(p.curves):
        color = OKABE_ITO[i % len(OKABE_ITO)]
        if np.isfinite(c.lo).any():
            ax.fill_between(c.epochs, c.lo, c.hi, color=color, alpha=0.18, lw=0, zorder=1)
        ax.plot(c.epochs, c.loss, color=color, lw=1.3, zorder=3, gid=f"law:{p.group}:{i}",
                label=f"U = {si(c.U)}, N = {si(c.N)}")  # fmt: skip
        ax.plot(c.epochs, c.as_new, color=color, lw=0.9, ls=":", zorder=2, gid=f"as_new:{p.group}:{i}")
        if len(c.points):
            ax.scatter(c.points["epochs"], c.points["loss"], s=16, color=color, edgecolor="black", linewidths=0.4,
                       zorder=4, gid=f"runs:{p.group}:{i}")  # fmt: skip
        ys += [c.loss, c.points["loss"].to_numpy(float), c.lo[np.isfinite(c.lo)], c.hi[np.isfinite(c.hi)]]
    y = np.concatenate(ys) if ys else np.array([1.0])
    lo, hi = float(np.nanmin(y)), float(np.nanmax(y))
    log = use_log_loss([(lo, hi)])
    ylim = loss_limits(lo, hi, log)
    ax.set_ylim(*ylim)  # the law and the runs: the base law may fall below, off the panel
    style.log_axes(ax, x=True, y=log)
    if log:  # a loss spans less than a decade: 1-2-5 labels leave one or two, so label the steps between
        ticks = [
            m * 10.0**e
            for e in range(-2, 4)
            for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8)
            if ylim[0] <= m * 10.0**e <= ylim[1]
        ]
        if len(ticks) >= 3:
            style.fixed_ticks(ax.yaxis, ticks, "g", minor_off=False)
    ax.set_xlabel("epochs D / U (tokens seen / unique tokens)")
    ax.set_ylabel(labels.loss_axis(ctx))
    ax.set_title(
        f"{literal(p.variant)}: " + rf"$R_D^*$ = {p.R_D_star:.3g}, $R_N^*$ = {p.R_N_star:.3g}", fontsize="small"
    )
    if legend:
        ax.legend(fontsize="x-small", frameon=False)
    if created:
        style.place_legend(fig, ax, _legend(ctx), created)
    return ax


def _legend(ctx: Context) -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    return [
        Line2D([], [], color="0.3", lw=1.3, label="repetition law"),
        Patch(facecolor="0.3", alpha=0.25, label=ctx.band_label()),
        Line2D([], [], color="0.3", lw=0.9, ls=":", label="every token new (base law)"),
        Line2D([], [], ls="", marker="o", color="0.3", mec="black", mew=0.4, markersize=4, label="runs"),
    ]
