"""Learning-rate sweeps as the muTransfer figure draws them: one curve per width (or size and budget), its
optimum, the panel each belongs to (variant x parametrisation), and a y range on the basin."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from scalelab.plot.palette import literal, sort_variants
from scalelab.plot.shape.context import Context, Skip
from scalelab.plot.shape.runs import fit_loss_column


def _from_runs(ctx: Context) -> list:
    from scalelab.fit import hyper

    runs = ctx.ok_runs()
    if runs is None or "final" not in runs.columns:
        return []
    fin = runs[runs["final"].astype(bool)]
    loss = fit_loss_column(ctx)
    loss = loss if loss in fin.columns else "val_loss"
    spec = SimpleNamespace(
        n_col="params", d_col="tokens", c_col="flops", run_col="run_id", by=("variant",), loss_col=loss, seed=0
    )
    if fin.empty or "lr" not in hyper.swept(fin, spec):
        return []
    curves = hyper.sweep_curves(fin, spec)
    width = dict(zip(fin["params"].astype(float), fin["d_model"])) if "d_model" in fin.columns else {}
    for c in curves:
        c["d_model"] = width.get(c["N"])
    return curves


def lr_curves(ctx: Context):
    """(curves, source): each sweep's {group, N, D, lrs, losses, lr_opt, at_edge, d_model}, from the run
    files, else from the fit's lr law; Skip when there is no learning-rate sweep."""
    curves = _from_runs(ctx)
    if curves:
        return curves, "run files"
    if ctx.fit is not None:
        for g in ctx.fit:
            for p in (g.lr_law.per_size or []) if g.lr_law is not None else []:
                curves.append({**p, "group": g.name, "d_model": None})
        src = "the fit's lr law (per-size sweeps)"
    if not curves:
        raise Skip("no learning-rate sweep in the inputs (a grid's [sweep] lr = [...]): nothing to draw")
    return curves, src


@dataclass
class SweepLayout:
    curves: list
    src: str
    groups: list  # in the order their curves came
    rows: list  # "sp", "mup": the parametrisations present
    cols: list  # base variants (a group's name less "+mup")
    sizes: list  # one colour per width across panels
    swept: list  # every learning rate swept

    def cell(self, g: str) -> tuple[int, int]:
        return self.rows.index("mup" if "+mup" in g else "sp"), self.cols.index(g.replace("+mup", ""))


def size_key(c: dict):
    """One colour per width across panels (variants at one width differ in N)."""
    return c.get("d_model") or c["N"]


def sweep_layout(ctx: Context) -> SweepLayout:
    curves, src = lr_curves(ctx)
    groups = list(dict.fromkeys(c["group"] for c in curves))
    base = {g: g.replace("+mup", "") for g in groups}
    rows = [p for p in ("sp", "mup") if any(("+mup" in g) == (p == "mup") for g in groups)]
    cols = sort_variants(dict.fromkeys(base.values()))
    sizes = sorted({size_key(c) for c in curves})
    swept = sorted({x for c in curves for x in c["lrs"]})
    return SweepLayout(curves, src, groups, rows, cols, sizes, swept)


def curve_label(c: dict, several_d: bool) -> str:
    lab = f"d {c['d_model']}" if c.get("d_model") else f"N {c['N']:.3g}"
    if several_d and c.get("D"):  # one curve per (size, tokens): say which
        lab += f", D {c['D']:.2g}"
    return lab


def panel_title(ctx: Context, g: str) -> str:
    """The group's name and its fitted lr_opt ~ N^k exponent (with its interval) when the fit has one."""
    title = literal(g)
    law = ctx.fit[g].lr_law if ctx.fit is not None and g in ctx.fit.groups else None
    if law is not None:
        ci = (law.conf_int or {}).get("exp")
        title += f": lr_opt ~ N^{law.exp:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
    return title


def basin_top(losses):
    """(y limits, count clipped) that keep a panel on the basin: losses of diverged learning rates (far
    above the others) would flatten every curve into a line; None when nothing needs clipping."""
    y = np.asarray([v for v in losses if v is not None and np.isfinite(v)], float)
    if len(y) < 4:
        return None
    lo, q = float(y.min()), float(np.quantile(y, 0.75))
    top = max(lo + 3.0 * (q - lo), 1.3 * lo)  # 30% above the best loss at least: a basin, not a divergence
    if q > lo and y.max() > top:
        return (lo - 0.1 * (top - lo), top), int((y > top).sum())
    return None


def sweep_notes(ctx: Context, lay: SweepLayout) -> None:
    edge = sorted({c["group"] for c in lay.curves if c["at_edge"]})
    if edge:
        ctx.note(f"optimum at the edge of the sweep for some width of: {', '.join(edge)} (widen the sweep)")
    curves = lay.curves
    per_d = len({(c["group"], c["N"], c.get("D")) for c in curves}) > len({(c["group"], c["N"]) for c in curves})
    what = "one curve per size and token budget" if per_d else "each width's loss at its largest budget"
    seeds = max((c.get("seeds", 1) for c in curves), default=1)
    spread = f"; points: the mean over {seeds} seeds, bars: their range" if seeds > 1 else ""
    ctx.note(f"from {lay.src}; {what}; stars: the optimum (parabola in log lr){spread}")
