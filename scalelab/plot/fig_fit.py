"""Fit diagnostics: observed against predicted loss, and relative residual against size, with the held-out
check's points at the prediction of the refit that did not see them."""

from __future__ import annotations

from scalelab.plot import style
from scalelab.plot.shape import labels, points
from scalelab.plot.shape.context import Context, Skip


def diagnostics(ctx: Context):
    """Observed vs predicted loss, and relative residual vs size. Held-out points (the fit's
    `--holdout largest` check) drawn hollow at the prediction of the refit that did not see them."""
    d = residual_frame(ctx)
    single = ctx.single()
    fig, axs = style.new_figure(ctx.width, 1.6 if single else 0.42, 2 if single else 1, 1 if single else 2)
    ax1, ax2 = axs.flat
    observed_panel(ctx, ax1, d)
    residual_panel(ctx, ax2, d)
    style.finish_legend(fig, _legend(ctx, d))
    return fig


def residual_frame(ctx: Context):
    """The points with their predictions (shape.points.residuals) for the fit's groups with a loss law."""
    if ctx.fit is None:
        raise Skip("needs a fit (--fit fits/NAME.json)")
    for n in ctx.inputs.points_notes:
        ctx.note(n)
    groups = ctx.groups()
    if not groups:
        raise Skip("no group of the fit has a loss law to compare the points with (the notes say why)")
    if all(ctx.fit.groups[g].form == "allocation" for g in groups):
        raise Skip(
            "an approach-1/2 fit is an allocation N_opt(C), D_opt(C), not a loss law: no predicted loss to compare "
            "with the points (fit with --approach 3 for these diagnostics)"
        )
    return points.residuals(ctx, groups)


def _scatter(ctx: Context, ax, d, x: str, y: str) -> None:
    """Every point of d at (x, y): filled when fitted, hollow and larger when held out."""
    dense_cloud = len(d) > 200  # many points: smaller, translucent markers so that groups stay visible
    for v in style.sort_variants(d["variant"]):
        for held, sub in d[d["variant"] == v].groupby("held_out"):
            ax.scatter(
                sub[x],
                sub[y],
                marker=ctx.markers[v],
                s=(14 if dense_cloud else 24) if held else (5 if dense_cloud else 14),
                alpha=0.6 if dense_cloud and not held else 1.0,
                linewidths=0.9 if held else 0.4,
                edgecolor=ctx.colors[v],
                facecolor="white" if held else ctx.colors[v],
                zorder=4 if held else 3,
                gid=f"{'held' if held else 'fitted'}:{v}",
            )


def observed_panel(ctx: Context, ax=None, d=None):
    """Observed against predicted loss on equal axes (log when the loss spans more than 2x); the diagonal:
    predicted exactly."""
    d = residual_frame(ctx) if d is None else d
    ax = ax if ax is not None else style.new_figure(ctx.width, 0.9)[1][0, 0]
    lim = (min(d["loss"].min(), d["pred"].min()), max(d["loss"].max(), d["pred"].max()))
    log = points.use_log_loss([lim])
    lim = points.loss_limits(lim[0], lim[1], log, pad=0.06)
    ax.plot(lim, lim, color="0.5", lw=0.8, ls="--", zorder=1)
    _scatter(ctx, ax, d, "pred", "loss")
    if log:
        style.log_axis(ax, "x")
        style.log_axis(ax, "y")
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    if log:
        style.ensure_decade_labels(ax, "x")
        style.ensure_decade_labels(ax, "y")
    ax.set_aspect("equal", adjustable="box")
    label = labels.loss_axis(ctx)
    ax.set_xlabel(f"predicted {label}" + (" (log scale)" if log else ""))
    ax.set_ylabel(f"observed {label}" + (" (log scale)" if log else ""))
    return ax


def residual_panel(ctx: Context, ax=None, d=None):
    """Relative residual (obs - pred) / pred in percent against parameters N; 0: predicted exactly."""
    d = residual_frame(ctx) if d is None else d
    ax = ax if ax is not None else style.new_figure(ctx.width, 0.7)[1][0, 0]
    ax.axhline(0, color="0.5", lw=0.8, ls="--", zorder=1)
    _scatter(ctx, ax, d, "N", "rel")
    style.log_axes(ax, x=True)
    ax.set_xlabel("parameters N")
    ax.set_ylabel("relative residual (obs - pred) / pred (%)")
    return ax


def _legend(ctx: Context, d) -> list:
    from matplotlib.lines import Line2D

    handles = [
        style.variant_handle(ctx.colors, ctx.markers, ctx.linestyles, v) for v in style.sort_variants(d["variant"])
    ]
    n_fit = int((~d["held_out"]).sum())
    handles.append(Line2D([], [], ls="", marker="o", color="0.3", markersize=4, label=f"fitted points ({n_fit})"))
    if d["held_out"].any():
        handles.append(Line2D([], [], ls="", marker="o", markerfacecolor="white", markeredgecolor="0.3",
                              markersize=4.5, label="held out (refit without them)"))  # fmt: skip
    else:
        ctx.note("no held-out check in the fit (refit with `scalelab fit --holdout largest` to draw one)")
    return handles
