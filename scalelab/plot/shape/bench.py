"""Throughput per run and width, from bench files or the run files' evaluations."""

from __future__ import annotations

import numpy as np

from scalelab.plot.shape.context import Context, Skip


def throughput_table(ctx: Context):
    """(table with variant, d_model, tokens_per_s, mfu per run or bench row, where it came from)."""
    import pandas as pd

    if ctx.inputs.bench is not None:
        return ctx.inputs.bench.copy(), "bench files"
    runs = ctx.ok_runs()
    if runs is None:
        raise Skip("needs run files or bench/*.json files for throughput")
    need = [c for c in ("tokens_per_s", "d_model") if c not in runs.columns]
    if need:
        raise Skip(f"the run files lack column {need[0]!r}")
    r = runs[runs["tokens_per_s"].notna() & (runs["tokens_per_s"] > 0)]
    if r.empty:
        raise Skip("the run files record no throughput (tokens_per_s)")
    mfu = r["mfu"] if "mfu" in r.columns else pd.Series(np.nan, index=r.index)
    r = r.assign(mfu=mfu)
    t = (
        r.groupby(["run_id"])
        .agg(
            variant=("variant", "first"),
            d_model=("d_model", "first"),
            tokens_per_s=("tokens_per_s", "median"),
            mfu=("mfu", "median"),
        )
        .reset_index()
    )
    if "device" in runs.columns and runs["device"].nunique() > 1:
        ctx.note(
            f"runs from {runs['device'].nunique()} devices pooled: {', '.join(map(str, runs['device'].unique()[:4]))}"
        )
    return t, "run files (median over each run's evaluations)"


def has_mfu(t) -> bool:
    return bool(t["mfu"].notna().any() and (t["mfu"] > 0).any())


def by_width(t, v: str, col: str, scale: float):
    """(widths, median, [below, above]) of variant v's `col` x scale per width: bars from min to max."""
    s = t[(t["variant"] == v) & t[col].notna()].groupby("d_model")[col].agg(["median", "min", "max"])
    if s.empty:
        return None
    y = s["median"].to_numpy() * scale
    return s.index.to_numpy(float), y, [y - s["min"].to_numpy() * scale, s["max"].to_numpy() * scale - y]
