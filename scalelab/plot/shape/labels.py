"""Axis labels that name what the fit read: its FLOPs convention or column, its loss column."""

from __future__ import annotations

from scalelab.plot import laws
from scalelab.plot.palette import literal
from scalelab.plot.shape import fitread
from scalelab.plot.shape.context import Context


def c_axis(ctx: Context) -> str:
    """The FLOPs axis label in the fit's convention; a table's own FLOPs column by its name."""
    if ctx.fit is None:
        return laws.convention_label("flops")
    col = fitread.measured_flops_column(ctx.fit)
    if col:
        return f"training compute C (FLOPs, column {literal(col)})"
    return laws.convention_label(ctx.fit.convention)


def loss_axis(ctx: Context) -> str:
    """The loss axis label, from the loss column the fit read (run files without a fit: val_loss)."""
    col = fitread.loss_column(ctx.fit) if ctx.fit is not None else None
    if col is None and ctx.runs is None and ctx.inputs.table_columns is not None:
        col = ctx.inputs.table_columns.loss
    return laws.loss_label(col or ("val_loss" if ctx.runs is not None else "loss"))


def curve_axes(ctx: Context, lcol: str) -> tuple[str, str]:
    """(x, y) labels of the training curves: a CSV plotted without a fit names them by its own columns."""
    tc = ctx.inputs.table_columns if ctx.fit is None and ctx.runs is None else None
    if tc is not None:
        x = f"training compute C ({literal(tc.c)})" if tc.c else "training compute C = 6ND (FLOPs)"
        return x, laws.loss_label(tc.loss)
    return c_axis(ctx), laws.loss_label(lcol)
