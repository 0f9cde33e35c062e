"""The curve law drawn through the runs: each run's observed validation curve with the fitted law along its
schedule (trunk and cooldown branches), held-out branches marked, and the relative residual along the curve.
Data shaping: scalelab/plot/shape/curves.py."""

from __future__ import annotations

import numpy as np

from scalelab.plot import laws, style
from scalelab.plot.shape.context import Context
from scalelab.plot.shape.curves import CurvePanels, curve_panels, size_shade

MAX_COLUMNS = 3  # groups side by side; more groups wrap into further rows


def curve_law_figure(ctx: Context):
    """Per group of the curve law: loss against step with the law through every run (top), the relative
    residual (obs - pred) / pred along the curve (below)."""
    cp = curve_panels(ctx)
    groups = sorted(cp.points["group"].unique())
    ncols = min(len(groups), 1 if ctx.single() else MAX_COLUMNS)
    nrows = -(-len(groups) // ncols)
    fig, axs = style.new_figure(
        ctx.width, (0.95 if ctx.single() else 0.62) * nrows / (1 if ctx.single() else max(1, ncols / 2)),
        2 * nrows, ncols, height_ratios=[2, 1] * nrows, sharex="col",
    )  # fmt: skip
    for i, g in enumerate(groups):
        r, c = divmod(i, ncols)
        curve_panel(ctx, axs[2 * r, c], cp, g)
        residual_panel(ctx, axs[2 * r + 1, c], cp, g)
    for j in range(len(groups), nrows * ncols):
        r, c = divmod(j, ncols)
        axs[2 * r, c].set_visible(False)
        axs[2 * r + 1, c].set_visible(False)
    style.finish_legend(fig, _legend(ctx, cp))
    _notes(ctx, cp)
    return fig


def _color(ctx: Context, cp: CurvePanels, group: str) -> str:
    """The group's colour: its variant's when the group is one, else the first palette colour."""
    return ctx.colors.get(group) or next(iter(ctx.colors.values()), "C0")


def _points(ctx, ax, cp: CurvePanels, group: str, y: str, shade: dict) -> None:
    """Every point of the group: filled (fitted), hollow (held out), diamonds (runs the law did not fit),
    small grey (before the fit's early-transient cut)."""
    color = _color(ctx, cp, group)
    p = cp.points[cp.points["group"] == group]
    kinds = (
        ("early", p["early"], dict(marker="o", s=5, facecolor="0.75", edgecolor="none")),
        ("fitted", ~p["early"] & ~p["held_out"] & ~p["unseen"], dict(marker="o", s=12, edgecolor=color, lw=0.4)),
        ("held", ~p["early"] & p["held_out"] & ~p["unseen"], dict(marker="o", s=20, facecolor="white", lw=0.9)),
        ("unseen", ~p["early"] & p["unseen"], dict(marker="D", s=16, facecolor="white", lw=0.9)),
    )
    for kind, m, kw in kinds:
        sub = p[m.to_numpy()]
        if sub.empty:
            continue
        shades = [style.shade(color, shade[r]) for r in sub["run"]]
        kw = dict(kw)
        if kind in ("held", "unseen"):
            kw["edgecolor"] = shades
        elif kind == "fitted":
            kw["facecolor"] = shades
        ax.scatter(sub["step"], sub[y], zorder=4 if kind != "early" else 3, gid=f"{kind}:{group}", **kw)


def curve_panel(ctx: Context, ax=None, cp: CurvePanels | None = None, group: str | None = None):
    """Loss against optimizer step (log): the law along every run's trunk and branches, the points on it."""
    cp = cp if cp is not None else curve_panels(ctx)
    group = group if group is not None else sorted(cp.points["group"].unique())[0]
    fig, ax, created = style.own_axes(ax, ctx.width, 0.6)
    shade, color = size_shade(cp.points), _color(ctx, cp, group)
    for (run, _), line in cp.lines[cp.lines["group"] == group].groupby(["run", "budget"], sort=False):
        ax.plot(line["step"], line["pred"], color=style.shade(color, shade[run]), lw=0.8, zorder=2, gid=f"law:{group}")
    _points(ctx, ax, cp, group, "loss", shade)
    style.log_axis(ax, "x")
    f = cp.law.fits[group]
    ax.set_title(f"{style.literal(group)}: {f.form} law ({f.fitted_on})")
    ax.set_ylabel(laws.loss_label("val_loss"))  # the curve law fits the run store's validation loss
    if created:
        ax.set_xlabel("optimizer step")
        style.place_legend(fig, ax, _legend(ctx, cp), created)
    return ax


def residual_panel(ctx: Context, ax=None, cp: CurvePanels | None = None, group: str | None = None):
    """Relative residual (obs - pred) / pred in percent against step; each run's trunk points joined."""
    cp = cp if cp is not None else curve_panels(ctx)
    group = group if group is not None else sorted(cp.points["group"].unique())[0]
    fig, ax, created = style.own_axes(ax, ctx.width, 0.35)
    shade, color = size_shade(cp.points), _color(ctx, cp, group)
    ax.axhline(0, color="0.5", lw=0.8, ls="--", zorder=1)
    p = cp.points[(cp.points["group"] == group)]
    for run, r in p.groupby("run"):
        trunk = r[r["trunk"]].sort_values("step")
        ax.plot(trunk["step"], trunk["rel"], color=style.shade(color, shade[run]), lw=0.5, alpha=0.7, zorder=2)
    _points(ctx, ax, cp, group, "rel", shade)
    style.log_axis(ax, "x")
    kept = p[~p["early"]]["rel"].abs()
    if len(kept) and (p["rel"].abs() > 3 * kept.max()).any():  # early points far off: keep the fitted ones legible
        lim = 1.3 * kept.max()
        ax.set_ylim(-lim, lim)
        ctx.note(f"{group}: residual axis clipped to +-{lim:.2g}%: points before the cut lie beyond it")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("(obs - pred) / pred (%)")
    return ax


def _legend(ctx: Context, cp: CurvePanels) -> list:
    from matplotlib.lines import Line2D

    p = cp.points

    def dot(color: str, face: str, label: str, marker: str = "o"):
        return Line2D([], [], ls="", marker=marker, markersize=4, color=color, markerfacecolor=face, label=label)

    h = [Line2D([], [], color="0.3", lw=0.9, label="curve law along each run's schedule (lighter = smaller)")]
    h.append(dot("0.3", "0.5", f"fitted points ({_n(p, 'fitted')})"))
    if _n(p, "held"):
        h.append(dot("0.3", "white", f"held-out branches ({_n(p, 'held')})"))
    if _n(p, "unseen"):
        h.append(dot("0.3", "white", f"runs the law did not fit ({_n(p, 'unseen')} points)", marker="D"))
    if p["early"].any():
        h.append(dot("0.75", "0.75", f"before {cp.cut:.0%} of the run (not fitted)"))
    return h


def _n(p, kind: str) -> int:
    late = ~p["early"]
    m = {"fitted": late & ~p["held_out"] & ~p["unseen"], "held": late & p["held_out"] & ~p["unseen"],
         "unseen": late & p["unseen"]}[kind]  # fmt: skip
    return int(m.sum())


def _notes(ctx: Context, cp: CurvePanels) -> None:
    for g, f in cp.law.fits.items():
        sel = f.selection.get("forms", {}).get(f.form, {})
        if "final_mre" in sel:
            ctx.note(
                f"{g}: {f.form} law, held-out branch finals mean rel. error {100 * sel['final_mre']:.2f}% "
                f"(max {100 * sel['final_max']:.2f}%, {sel['n_finals']} finals, from {cp.law.path})"
            )
    late = cp.points[~cp.points["early"]]
    if len(late):
        ctx.note(
            f"residual along the curves past the cut: mean |rel.| {late['rel'].abs().mean():.2f}%, "
            f"max {late['rel'].abs().max():.2f}% ({len(late)} points)"
        )


# ---- the check of new runs (scalelab check --fit NAME.curves.json --out DIR) ---------------------------


def curve_check_figure(res, width: str = "double", fmt_style: str = "paper"):
    """Left: each new run's final, observed vs predicted with its one-run interval; right: the relative error
    along each new run's curve against step (trunk points joined, cooldown-branch finals hollow)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, pts = res.runs, res.points
    with plt.rc_context(style.rc_params(fmt_style)):
        fig, axs = style.new_figure(width, 0.42, 1, 2)
        groups = style.sort_variants(runs["group"].unique())
        colors, markers = style.variant_colors(groups), style.variant_markers(groups)
        a, b = axs[0]
        for g in groups:
            s = runs[runs["group"] == g]
            yerr = np.vstack([s["predicted"] - s["lo"], s["hi"] - s["predicted"]])
            a.errorbar(s["observed"], s["predicted"], yerr=np.clip(np.nan_to_num(yerr), 0, None), fmt=markers[g],
                       color=colors[g], ms=4, lw=0.8, capsize=1.5, label=style.literal(g))  # fmt: skip
            for run in s["run_id"]:  # the trunk's points joined; its branches' finals hollow
                p = pts[(pts["run"] == run) & pts["in_curve"]].sort_values("step")
                trunk = p["budget"] == p["budget"].max()
                b.plot(p["step"][trunk], 100 * p["rel_error"][trunk], marker=markers[g], color=colors[g], ms=3, lw=0.6)
                b.scatter(p["step"][~trunk], 100 * p["rel_error"][~trunk], marker=markers[g], s=14,
                          facecolor="white", edgecolor=colors[g], lw=0.8, zorder=3)  # fmt: skip
        lo = float(np.nanmin(np.r_[runs["observed"], runs["lo"], runs["predicted"]]))
        hi = float(np.nanmax(np.r_[runs["observed"], runs["hi"], runs["predicted"]]))
        pad = 0.03 * (hi - lo) or 0.01 * hi
        a.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.5", lw=0.8, ls="--", zorder=0)
        a.set_xlabel("observed final loss")
        a.set_ylabel(f"predicted, {res.level:.0%} one-run interval")
        a.legend(loc="upper left")
        b.axhline(0, color="0.5", lw=0.8, ls="--")
        style.log_axis(b, "x")
        b.set_xlabel("optimizer step")
        b.set_ylabel("(obs - pred) / pred along the curve (%)")
    return fig


def save_curve_check(res, stem: str, formats=("png", "pdf"), **kw) -> list[str]:
    import matplotlib.pyplot as plt

    fig = curve_check_figure(res, **kw)
    try:
        return style.save(fig, stem, formats)
    finally:
        plt.close(fig)
