"""Loss against training compute: every run's curve, final points, each variant's fitted frontier L*(C)."""

from __future__ import annotations

from scalelab.plot import style
from scalelab.plot.shape import compute, frontier, labels
from scalelab.plot.shape.context import Context
from scalelab.plot.shape.runs import RunCurves, run_curves, variant_runs


def loss_vs_flops(ctx: Context, ax=None):
    """Every run's validation curve against training FLOPs, final points, fitted frontier L*(C).
    Draws into `ax` (a new figure when None); returns the figure."""
    rc = run_curves(ctx)
    fig, ax, created = style.own_axes(ax, ctx.width, 0.85 if ctx.single() else 0.5)
    for v in rc.variants:
        _draw_runs(ctx, ax, rc, v)
    handles = [_handle(ctx, v) for v in rc.variants]
    handles += _draw_frontiers(ctx, ax, rc)
    ax.set_ylim(*rc.ylim)
    ax.set_xlim(*rc.xlim)
    style.log_axes(ax, x=True)
    xlabel, ylabel = labels.curve_axes(ctx, rc.lcol)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    handles.append(_runs_handle())
    style.place_legend(fig, ax, handles, created)
    return fig


def _handle(ctx: Context, v: str):
    return style.variant_handle(ctx.colors, ctx.markers, ctx.linestyles, v)


def _draw_runs(ctx: Context, ax, rc: RunCurves, v: str) -> None:
    """Variant v's runs: curves shaded by size (lighter = smaller), final points as markers."""
    for t, lines, fin in variant_runs(rc, v):
        c = style.shade(ctx.colors[v], t)
        for x, y in lines:
            ax.plot(x, y, color=c, lw=0.5, alpha=0.9, zorder=2)
        ax.scatter(
            fin[rc.ccol],
            fin["val_loss"],
            marker=ctx.markers[v],
            s=14,
            facecolor=c,
            edgecolor=ctx.colors[v],
            linewidths=0.5,
            zorder=4,
        )


def _draw_frontiers(ctx: Context, ax, rc: RunCurves) -> list:
    """Each fitted group's L*(C) with its band; returns the legend entries they add."""
    if ctx.fit is None:
        ctx.note("no fit given: curves and final points only (add --fit for L*(C))")
        return []
    handles = []
    lines = frontier.frontiers(ctx, rc.xlim)
    for v, x, y, lo, hi, extrap in lines:
        style.split_extrapolated(
            ax, x, y, lo, hi, extrap, ctx.colors[v], gid=f"variant:{v}", lw=1.3, ls=ctx.linestyles.get(v, "-")
        )
        if v not in rc.variants:
            handles.append(_handle(ctx, v))
    if not lines:
        where = compute.elsewhere(ctx)
        ctx.note("no chinchilla or frontier group in the fit: no L*(C) drawn" + (f" ({where})" if where else ""))
        return handles
    handles += style.law_legend(ctx.band_label())
    if ctx.allocation_source:
        ctx.note(f"L*(C) of L(N, D) fits: compute-optimal loss from {ctx.allocation_source}")
    return handles


def _runs_handle():
    from matplotlib.lines import Line2D

    return Line2D(
        [],
        [],
        color="0.55",
        lw=0.6,
        marker="o",
        markersize=3,
        markerfacecolor="0.8",
        markeredgecolor="0.3",
        label="runs (lighter = smaller), final points",
    )
