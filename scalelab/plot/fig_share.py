"""The law across FFN shares (fit --share-col): loss against share at fixed compute, one curve per budget with
its band, the best share starred and the fitted shares marked; and the compute (and time) multipliers of each
fitted share against dense over budgets. What is drawn is shaped in scalelab.plot.shape.share."""

from __future__ import annotations

import numpy as np

from scalelab.plot import style
from scalelab.plot.shape import labels
from scalelab.plot.shape import share as shape
from scalelab.plot.shape.context import Context

SHARE_LABEL = "kept FFN share f (structured / dense FFN)"


def share_law(ctx: Context):
    """One row per structure kind: loss against share at a few budgets, then multipliers against budget."""
    groups = shape.share_groups(ctx)
    single = ctx.single()
    n = len(groups)
    fig, axs = style.new_figure(ctx.width, (0.9 if single else 0.42) * n * (2 if single else 1),
                                2 * n if single else n, 1 if single else 2)  # fmt: skip
    panels = axs.reshape(n, 2)
    for (left, right), g in zip(panels, groups):
        loss_share_panel(ctx, g, left)
        multiplier_share_panel(ctx, g, right)
    return fig


def _legend_below(ax, handles) -> None:
    """The panel's own legend under its axes (constrained layout makes room), never over the curves."""
    ax.legend(handles=handles, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2)


def _budget_label(C: float) -> str:
    k = int(np.floor(np.log10(C)))
    m = C / 10**k
    return rf"$C={m:.2g}\times10^{{{k}}}$" if abs(m - 1) > 1e-6 else rf"$C=10^{{{k}}}$"


def loss_share_panel(ctx: Context, group: str | None = None, ax=None, data=None):
    """Compute-optimal loss against kept share f at a few budgets (darker: larger), bands, the best share
    starred with the interval of the resamples' best shares, the fitted shares as dotted verticals."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    group = group or shape.share_groups(ctx)[0]
    g = ctx.known_fit[group]
    data = shape.loss_vs_share(ctx.known_fit, g) if data is None else data
    fig, ax, created = style.own_axes(ax, ctx.width, 0.7)
    base = ctx.colors.get(ctx.variant_of(group), style.PALETTE[0])
    nb = len(data.curves)
    handles: list = []
    for i, c in enumerate(data.curves):
        col = style.shade(base, 0.25 + 0.75 * i / max(nb - 1, 1))
        extrap = np.ones_like(c.extrapolated) if c.budget_extrapolated else c.extrapolated
        style.split_extrapolated(
            ax, c.f, 100 * c.rel, 100 * c.lo, 100 * c.hi, extrap, col, gid=f"budget:{c.C:.3g}", lw=1.2
        )
        y = 100 * (c.best_loss / c.dense_loss - 1)
        style.interval(ax, c.best.est, c.best.lo, c.best.hi, y, col, "*", f"best:{c.C:.3g}")
        ax.plot([c.best.est], [y], ls="", marker="*", ms=9, color=col, mec="0.2", mew=0.4, zorder=5)
        tag = ", extrapolated" if c.budget_extrapolated else ""
        label = f"{_budget_label(c.C)} (dense {c.dense_loss:.3g}{tag})"
        handles.append(Line2D([], [], color=col, lw=1.2, label=label))
    ax.axhline(0.0, color="0.3", lw=0.8, zorder=1)
    for x in data.shares:
        ax.axvline(x, color="0.55", lw=0.7, ls=":", zorder=0)
    style.log_axis(ax, "x")
    lo = min(float(np.min(c.f)) for c in data.curves)
    ax.set_xlim(lo / 1.05, 1.05)
    style.fixed_ticks(ax.xaxis, data.shares, ".2g")
    ax.set_xlabel(SHARE_LABEL)
    ax.set_ylabel(f"compute-optimal {labels.loss_axis(ctx)}\nvs dense at the same budget (%)")
    ax.set_title(f"{style.literal(group)}: loss at fixed compute ({data.method})", fontsize="medium")
    handles.append(Line2D([], [], ls="", marker="*", ms=8, color="0.4", mec="0.2", label="best share [interval]"))
    if any(np.isfinite(c.lo).any() for c in data.curves):
        handles.append(Patch(facecolor="0.3", alpha=0.2, label=ctx.band_label()))
    handles.append(Line2D([], [], color="0.3", ls=style.EXTRAPOLATION, alpha=0.6, label="extrapolation"))
    handles.append(Line2D([], [], color="0.55", ls=":", lw=0.7, label="fitted shares"))
    _legend_below(ax, handles)
    for n in data.notes:
        ctx.note(n)
    return ax


def multiplier_share_panel(ctx: Context, group: str | None = None, ax=None, curves=None):
    """Compute multiplier of each fitted share against dense over budgets (solid; dashed outside the fitted
    FLOPs range) with bands, and the time multiplier (dotted) where the runs were timed on one device."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    group = group or shape.share_groups(ctx)[0]
    g = ctx.known_fit[group]
    curves = shape.share_multipliers(ctx.known_fit, g) if curves is None else curves
    fig, ax, created = style.own_axes(ax, ctx.width, 0.7)
    handles: list = []
    ys, timed = [1.0], False
    for i, c in enumerate(curves):
        col = style.PALETTE[i % len(style.PALETTE)]
        style.split_extrapolated(ax, c.C, c.est, c.lo, c.hi, c.extrapolated, col, gid=f"share:{c.share:.3g}", lw=1.2)
        ys += [y for y in (*c.est, *c.lo, *c.hi) if np.isfinite(y) and y > 0]
        handles.append(Line2D([], [], color=col, lw=1.2, label=f"f = {c.share:.2g}: compute"))
        if c.time_ratio is not None:
            t = c.est * c.time_ratio
            ax.plot(c.C, t, color=col, ls=":", lw=1.4, zorder=3, gid=f"time:{c.share:.3g}")
            ys += [y for y in t if np.isfinite(y) and y > 0]
            handles.append(Line2D([], [], color=col, ls=":", lw=1.4, label=f"f = {c.share:.2g}: time"))
            timed = True
        elif c.time_missing:
            ctx.note(f"no time multiplier: {c.time_missing}")
    ax.axhline(1.0, color="0.3", lw=0.8, zorder=1)
    c_lo, c_hi = g.c_range
    ax.axvspan(c_lo, c_hi, color="0.85", alpha=0.5, lw=0, zorder=0)
    style.log_axis(ax, "x")
    ax.set_yscale("log")
    if curves:
        ax.set_xlim(curves[0].C[0], curves[0].C[-1])
    bottom, top = min(ys) / 1.3, max(ys) * 1.3
    ax.set_ylim(bottom, top)
    nice = [m * 10.0**e for e in range(-3, 4) for m in (1, 2, 5)]
    style.fixed_ticks(ax.yaxis, [t for t in nice if bottom <= t <= top] or [1.0], "g")
    style.ensure_decade_labels(ax, "x")
    ax.set_xlabel("budget " + labels.c_axis(ctx).replace("training compute ", ""))
    what = "compute / time multiplier" if timed else "compute multiplier"
    ax.set_ylabel(f"{what} vs dense\n(< 1: reaches dense's loss with less)")
    ax.set_title(f"{style.literal(group)}: multipliers against budget", fontsize="medium")
    if any(np.isfinite(c.lo).any() for c in curves):
        handles.append(Patch(facecolor="0.3", alpha=0.2, label=ctx.band_label()))
    handles.append(Patch(facecolor="0.85", alpha=0.5, label="fitted FLOPs range"))
    _legend_below(ax, handles)
    rho = g.params["rho_N"] + g.params["rho_D"]
    ctx.note(
        f"{group}: one E and one set of exponents across shares make the compute multiplier f^-(rho_N + rho_D) "
        f"(rho_N + rho_D = {rho:.3g}) at every budget under C = k N D: flat lines"
    )
    if timed:
        ctx.note("time multiplier = compute multiplier x dense's median FLOP/s over the share's (fit/timing.py)")
    return ax
