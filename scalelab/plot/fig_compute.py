"""Compute-optimal allocation N_opt(C), D_opt(C) per variant, and the compute multipliers of the fit's
comparisons: what compute buys, per variant."""

from __future__ import annotations

import numpy as np

from scalelab.plot import style
from scalelab.plot.shape import compute, frontier, labels
from scalelab.plot.shape.context import Context, Skip

OPTIMAL_LABELS = {"N": r"compute-optimal parameters $N_{\rm opt}$", "D": r"compute-optimal tokens $D_{\rm opt}$"}


def compute_optimal(ctx: Context):
    """N_opt(C) and D_opt(C) per variant with bands; data range shaded; extrapolation dashed. For
    approach-1/2 (allocation) fits the fitted power laws, and as points the optima they were fitted to."""
    groups = compute.optimal_groups(ctx)
    single = ctx.single()
    fig, axs = style.new_figure(ctx.width, 1.45 if single else 0.45, 2 if single else 1, 1 if single else 2)
    has_optima = any([optimal_panel(ctx, q, ax, groups) for ax, q in zip(axs.flat, ("N", "D"))])
    from matplotlib.patches import Patch

    handles = [_handle(ctx, ctx.variant_of(g)) for g in groups]
    handles += style.law_legend(ctx.band_label())
    handles.append(Patch(facecolor="0.85", alpha=0.6, label="range of fitted runs"))
    if has_optima:
        from matplotlib.lines import Line2D

        what = compute.optima_label(ctx)
        handles.append(Line2D([], [], ls="", marker="o", markerfacecolor="white", markeredgecolor="0.3", label=what))
        ctx.note(f"points: {what}, to which N_opt = kN C^a and D_opt = kD C^b were fitted")
    style.finish_legend(fig, handles)
    ctx.note(f"allocation from {ctx.allocation_source}")
    return fig


def _handle(ctx: Context, v: str):
    return style.variant_handle(ctx.colors, ctx.markers, ctx.linestyles, v)


def optimal_panel(ctx: Context, q: str, ax=None, groups=None) -> bool:
    """N_opt(C) (q="N") or D_opt(C) (q="D") of each group over budgets from a third of the fitted range to
    1000x beyond it, with the optima an approach-1/2 fit was fitted to. True when such optima were drawn."""
    groups = compute.optimal_groups(ctx) if groups is None else groups
    ax = ax if ax is not None else style.new_figure(ctx.width, 0.8)[1][0, 0]
    c_lo, c_hi = frontier.c_span(ctx, groups)
    c_min, c_max = c_lo / 3, c_hi * 1e3
    ax.axvspan(c_lo, c_hi, color="0.85", alpha=0.6, lw=0, zorder=0)
    has_optima = False
    for g in groups:
        v = ctx.variant_of(g)
        a = frontier.allocation(ctx, g, c_min, c_max)
        style.split_extrapolated(
            ax, a["C"].to_numpy(), a[f"{q}_opt"].to_numpy(), a[f"{q}_lo"].to_numpy(), a[f"{q}_hi"].to_numpy(),
            a["extrapolated"].to_numpy(), ctx.colors[v], gid=f"variant:{v}", lw=1.3,
            ls=ctx.linestyles.get(v, "-"), marker=ctx.markers[v],
        )  # fmt: skip
        optima = compute.optima(ctx, g)
        if optima is not None:
            ax.scatter(optima["C"], optima[f"{q}_opt"], marker=ctx.markers[v], s=14, facecolor="white",
                       edgecolor=ctx.colors[v], linewidths=0.8, zorder=4, gid=f"optima:{v}")  # fmt: skip
            has_optima = True
    style.log_axis(ax, "x")
    style.log_axis(ax, "y")
    ax.set_xlim(c_min, c_max)
    style.ensure_decade_labels(ax, "y")
    ax.set_xlabel(labels.c_axis(ctx))
    ax.set_ylabel(OPTIMAL_LABELS[q])
    return has_optima


def multiplier_panel(ctx: Context, ax=None, mults=None):
    """Multiplier of each variant vs its reference at each recorded budget, with its interval; 1 = parity.
    Hollow: extrapolated budget; a triangle at the top: the variant never reaches the reference's loss."""
    mults = compute.multipliers(ctx) if mults is None else mults
    if not mults:
        raise Skip("no compute multipliers in the fit's comparisons")
    ax = ax if ax is not None else style.new_figure(ctx.width, 0.6)[1][0, 0]
    m = compute.multiplier_marks(ctx, mults)
    for p in m.marks:
        c = ctx.colors[p.variant]
        style.interval(ax, p.est, p.lo, p.hi, p.x, c, ctx.markers[p.variant], f"variant:{p.variant}", horizontal=False)
        if p.extrapolated:
            ax.plot([p.x], [p.est], ls="", marker=ctx.markers[p.variant], ms=4, mfc="white", mec=c, zorder=4)
    ax.axhline(1.0, color="0.3", lw=0.8, zorder=1)
    style.log_axis(ax, "x")
    style.log_axis(ax, "y")
    ax.set_xlim(m.budgets[0] / 3, m.budgets[-1] * 3)
    ax.set_ylim(m.bottom, m.top)
    for x, lo, v in m.open_top:
        ax.plot([x, x], [lo if np.isfinite(lo) else m.top, m.top], color=ctx.colors[v], lw=1.0, zorder=3)
        ax.plot([x], [m.top], marker="^", color=ctx.colors[v], ms=4, clip_on=False, zorder=4)
    if m.open_top:
        ctx.note("an arrow at the top: the interval reaches 'never' (some resamples never reach the loss)")
    style.ensure_decade_labels(ax, "x")
    style.ensure_decade_labels(ax, "y")
    ax.set_xlabel("budget " + labels.c_axis(ctx).replace("training compute ", ""))
    ax.set_ylabel(f"compute multiplier vs {style.literal(', '.join(m.refs))}\n(< 1: reaches its loss with less)")
    if m.unreachable:
        ctx.note(f"never reaches the reference's loss (no multiplier): {', '.join(m.unreachable)}")
    if m.any_extrapolated:
        ctx.note("multipliers at budgets outside the fitted FLOPs range drawn hollow (extrapolated)")
    return ax
