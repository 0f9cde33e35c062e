"""Training throughput (tokens/s, and MFU where recorded) per variant against width."""

from __future__ import annotations

from scalelab.plot import style
from scalelab.plot.shape import bench
from scalelab.plot.shape.context import Context

PANELS = {"tokens_per_s": ("training throughput (tokens/s)", 1.0), "mfu": ("model FLOPs utilisation, MFU (%)", 100.0)}


def throughput(ctx: Context):
    """Training tokens/s (and MFU where known) per variant against width."""
    t, src = bench.throughput_table(ctx)
    mfu = bench.has_mfu(t)
    single = ctx.single()
    npan = 2 if mfu else 1
    fig, axs = style.new_figure(
        ctx.width,
        (1.4 if single else 0.42) if mfu else (0.8 if single else 0.45),
        npan if single else 1,
        1 if single else npan,
    )
    cols = ["tokens_per_s"] + (["mfu"] if mfu else [])
    if not mfu:
        ctx.note("no MFU recorded: tokens/s only")
    for ax, col in zip(axs.flat, cols):
        throughput_panel(ctx, col, ax, t)
    style.finish_legend(
        fig,
        [style.variant_handle(ctx.colors, ctx.markers, ctx.linestyles, v) for v in style.sort_variants(t["variant"])],
    )
    ctx.note(f"from {src}; bars: min to max over runs of one width")
    return fig


def throughput_panel(ctx: Context, col: str = "tokens_per_s", ax=None, t=None):
    """`col` (tokens_per_s or mfu) per variant against width d_model (log 2), median with min-max bars."""
    t = bench.throughput_table(ctx)[0] if t is None else t
    ax = ax if ax is not None else style.new_figure(ctx.width, 0.6)[1][0, 0]
    label, scale = PANELS[col]
    for v in style.sort_variants(t["variant"]):
        s = bench.by_width(t, v, col, scale)
        if s is None:
            continue
        x, y, err = s
        ax.errorbar(
            x, y, yerr=err, color=ctx.colors[v], marker=ctx.markers[v], ms=4, lw=1.0, capsize=2, gid=f"variant:{v}"
        )
    widths = sorted(t["d_model"].unique())
    ax.set_xscale("log", base=2)
    style.fixed_ticks(ax.xaxis, widths, "g")
    if len(widths) == 1:
        ax.set_xlim(widths[0] / 1.5, widths[0] * 1.5)
    ax.set_xlabel("width d_model")
    ax.set_ylabel(label)
    if col == "tokens_per_s":
        style.log_axes(ax, y=True, x=False)
    return ax
