"""The check figure: observed loss of runs a fit did not see against the fit's prediction, with each
prediction's one-run interval (scalelab.loop.check). On the diagonal = predicted exactly."""

from __future__ import annotations

import numpy as np

from scalelab.plot import style


def check_figure(result, loss_label: str = "loss (nats/token)", width: str = "single", fmt_style: str = "paper"):
    """A matplotlib Figure from a CheckResult: one marker per held-out point, vertical bar = interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = result.points
    with plt.rc_context(style.rc_params(fmt_style)):
        fig, axes = style.new_figure(width, 0.9)
        ax = axes[0, 0]
        variants = style.sort_variants(p["variant"].unique())
        colors, markers = style.variant_colors(variants), style.variant_markers(variants)
        for v in variants:
            s = p[p["variant"] == v]
            yerr = np.vstack([s["predicted"] - s["lo"], s["hi"] - s["predicted"]])
            cov = s["covered"].mean()
            ax.errorbar(
                s["observed"],
                s["predicted"],
                yerr=np.clip(yerr, 0, None),
                fmt=markers[v],
                color=colors[v],
                ms=4,
                lw=0.8,
                capsize=1.5,
                label=f"{style.literal(v)} ({cov:.0%} covered)",
            )
        lo = float(min(p["observed"].min(), p["lo"].min()))
        hi = float(max(p["observed"].max(), p["hi"].max()))
        pad = 0.03 * (hi - lo)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.5", lw=0.8, ls="--", zorder=0)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel(f"observed {loss_label}")
        ax.set_ylabel(f"predicted, {result.level:.0%} one-run interval")
        ax.legend(loc="upper left")
    return fig


def save_check_figure(result, stem: str, formats=("png", "pdf"), **kw) -> list[str]:
    import matplotlib.pyplot as plt

    fig = check_figure(result, **kw)
    try:
        return style.save(fig, stem, formats)
    finally:
        plt.close(fig)
