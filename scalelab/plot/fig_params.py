"""The law's exponents per variant: a forest plot of alpha, beta and a with intervals, their differences
against dense, and (fig_compute) the compute multipliers."""

from __future__ import annotations

from typing import Callable, Optional

from scalelab.plot import style
from scalelab.plot.fig_compute import multiplier_panel
from scalelab.plot.shape import compute, params
from scalelab.plot.shape.context import Context, Skip

PARAM_LABELS = {"alpha": r"$\alpha$ (params)", "beta": r"$\beta$ (tokens)", "a": r"$a=\beta/(\alpha+\beta)$"}
A_ALLOCATION_LABEL = r"$a$ ($N_{\rm opt}\propto C^a$)"  # the same exponent, fitted directly (approaches 1, 2)


Estimate = tuple[float, float, float]  # (estimate, lo, hi)


def forest_panel(
    ctx: Context,
    est_of: Callable[[str, str], Optional[Estimate]],
    variants: list,
    names: list,
    labels: dict,
    xlabel: str,
    ax=None,
    step=None,
):
    """One row per exponent in `names`, one interval bar per variant (est_of(variant, name) -> (est, lo, hi)
    or None), variants side by side within a row, `step` apart (default: spread over 0.8 of a row)."""
    ax = ax if ax is not None else style.new_figure(ctx.width, 0.5)[1][0, 0]
    step = 0.8 / max(len(variants), 1) if step is None else step
    for pi, name in enumerate(names):
        for vi, v in enumerate(variants):
            e = est_of(v, name)
            if e is None:
                continue
            y = pi + (vi - (len(variants) - 1) / 2) * step
            style.interval(ax, *e, y, ctx.colors[v], ctx.markers[v], f"variant:{v}")
    ax.set_yticks(range(len(names)), [labels[n] for n in names])
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("exponent")
    ax.grid(axis="y", visible=False)
    for k in range(len(names) - 1):
        ax.axhline(k + 0.5, color="0.85", lw=0.5, zorder=0)
    return ax


def exponents(ctx: Context):
    """Forest plot of alpha, beta, a per variant; differences against dense when compared; the compute
    multiplier of each variant vs its reference at each budget where the fit records them."""
    if ctx.fit is None:
        raise Skip("needs a fit (--fit fits/NAME.json)")
    groups = ctx.groups(("chinchilla", "allocation"))
    mults = compute.multipliers(ctx)
    forest_ok = len({ctx.variant_of(g) for g in groups}) >= 2
    if not forest_ok and not mults:
        only = ", ".join(ctx.variant_of(g) for g in groups) or "none"
        raise Skip(
            f"a forest plot compares variants; the fit has fewer than two L(N, D) or allocation variants ({only}) "
            "and no compute multipliers: read the exponents from `scalelab fit`'s table"
        )
    if not mults:
        ctx.note("no compute multipliers in the fit's comparisons (refit with a scalelab that records them)")
    diffs = params.differences(ctx, groups) if forest_ok else {}
    names = [n for n in params.PARAMS if any(params.estimate(ctx, g, n) is not None for g in groups)] or ["a"]
    labels = dict(PARAM_LABELS)
    if groups and all(ctx.fit.groups[g].form == "allocation" for g in groups):
        labels["a"] = A_ALLOCATION_LABEL
        ctx.note("approach-1/2 fits estimate the allocation exponent a only (no alpha, beta)")
    variants = [ctx.variant_of(g) for g in groups] if forest_ok else []
    kinds = (["forest"] if forest_ok else []) + (["diff"] if diffs else []) + (["mult"] if mults else [])
    panel = dict(zip(kinds, _panels(ctx, kinds, len(variants), len(names)).flat))
    by_v = dict(zip(variants, groups))
    if forest_ok:
        xlabel = f"estimate ({ctx.fit.level:.0%} bootstrap interval)"
        forest_panel(
            ctx, lambda v, n: params.estimate(ctx, by_v[v], n), variants, names, labels, xlabel, panel["forest"]
        )
    _differences_panel(ctx, panel.get("diff"), diffs, variants, (names, labels), forest_ok, groups)
    if mults:
        multiplier_panel(ctx, panel["mult"], mults)
    shown = list(dict.fromkeys(variants + [ctx.variant_of(x) for m in mults for x in m[:2]]))
    handles = [style.variant_handle(ctx.colors, ctx.markers, ctx.linestyles, v) for v in style.sort_variants(shown)]
    style.finish_legend(panel[kinds[0]].figure, handles)
    return panel[kinds[0]].figure


def _panels(ctx: Context, kinds: list, nv: int, n_names: int):
    """The figure's panels: side by side (double column) or stacked (single), sized to their rows."""
    npan = len(kinds)
    nv = max(nv, 1)
    rows_h = max(0.3 + 0.085 * nv * max(n_names, 3), 1.6 if "mult" in kinds else 0)
    single = ctx.single()
    _, axs = style.new_figure(
        ctx.width,
        (rows_h * npan) / 3.5 if single else rows_h / 7 * 1.6 * (1 if npan < 3 else 0.8),
        npan if single else 1,
        1 if single else npan,
    )
    return axs


def _differences_panel(ctx: Context, ax, diffs, variants, rows: tuple[list, dict], forest_ok, groups) -> None:
    """The differences against dense (rows: the forest's names and labels, bars spaced as in the forest),
    or a note on why there are none."""
    if diffs:
        dv = [v for v in variants if v in diffs]
        step = 0.8 / max(len(variants), 1)
        what = "difference vs dense (variant - dense)"
        forest_panel(ctx, lambda v, n: diffs[v].get(n), dv, *rows, what, ax, step=step)
        ax.axvline(0, color="0.3", lw=0.8, zorder=1)
    elif forest_ok and params.shared_exponents(ctx, groups):
        ctx.note(
            "exponents shared by a joint fit (--share-exponents): their differences are 0 by construction, not drawn"
        )
    elif forest_ok:
        ctx.note("no comparison against dense in the fit: differences not drawn")
