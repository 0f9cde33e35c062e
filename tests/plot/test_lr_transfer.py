"""fig7_lr_transfer: loss against learning rate, one curve per width, a panel per variant and parametrisation,
each width's optimum starred where the sweep's optimum is; skipped with a note without a sweep."""

from __future__ import annotations

import math
import os

import numpy as np

from .helpers import RATIOS, WIDTHS, run_rows, write_runs

LRS = [0.002, 0.004, 0.008, 0.016, 0.032]


def opt(variant, d):  # SP: the optimum falls as 1/width; muP: it stays
    return 0.008 * (64 / d) if "+mup" not in variant else 0.008


def write_sweep(folder):
    os.makedirs(folder, exist_ok=True)
    paths = []
    for v in ("dense", "dense+mup", "lowrank-25", "lowrank-25+mup"):
        for d in WIDTHS:
            for lr in LRS:
                df = run_rows(v.replace("+mup", ""), d, RATIOS[-1])
                df["variant"] = v
                df["run_id"] = f"{v}-{d}-{lr}"
                df["val_loss"] = df["val_loss"] + 0.05 * math.log(lr / opt(v, d)) ** 2
                df["peak_lr"], df["sweep"] = lr, "lr"
                p = os.path.join(folder, f"{v}-{d}-{lr}.parquet")
                df.to_parquet(p, index=False)
                paths.append(p)
    return paths


def test_transfer_figure_marks_each_widths_optimum(tmp_path):
    import matplotlib.pyplot as plt

    from scalelab import plot as plots
    from scalelab.plot import Context
    from scalelab.plot.fig_sweep import lr_transfer

    inputs = plots.load_inputs(write_sweep(str(tmp_path / "runs")))
    ctx = Context(inputs)
    ctx.colors = {}
    fig = lr_transfer(ctx)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert sorted(ax.get_title() for ax in panels) == sorted(["dense", "dense+mup", "lowrank-25", "lowrank-25+mup"])
    for ax in panels:
        v = ax.get_title()
        stars = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
        assert len(stars) == len(WIDTHS)
        curves = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
        for star, curve in zip(stars, curves):  # drawn width by width, smallest first
            d = WIDTHS[stars.index(star)]
            x = star.get_xdata()[0]
            truth = opt(v, d)
            if LRS[0] <= truth <= LRS[-1]:
                assert abs(math.log(x / truth)) < 0.05, (v, d, x, truth)
            assert np.allclose(curve.get_xdata(), LRS)
    plt.close(fig)


def test_no_sweep_no_figure_but_a_note(tmp_path):
    from scalelab import plot as plots

    runs = write_runs(str(tmp_path / "runs"), variants=("dense",))
    drawn = plots.make_figures(plots.load_inputs(runs), out_dir=str(tmp_path / "figs"), formats=("png",))
    fig7 = next(d for d in drawn if d.name == "fig7_lr_transfer")
    assert not fig7.files and "no learning-rate sweep" in fig7.skipped


def test_a_sweep_over_several_seeds_draws_the_seed_mean_with_each_rates_range(tmp_path):
    """One seed's curve can bump where the next seed's does not: with several seeds the points are the seed
    means and a bar at each rate spans the seeds' losses (min to max)."""
    from scalelab import plot as plots
    from scalelab.plot import Context
    from scalelab.plot.fig_sweep import lr_transfer
    from scalelab.plot.shape.sweep import lr_curves

    folder = tmp_path / "runs"
    folder.mkdir()
    paths, shift = [], {0: 0.0, 1: 0.03, 2: -0.06}
    for seed, dy in shift.items():
        for d in WIDTHS:
            for i, lr in enumerate(LRS):
                df = run_rows("dense", d, RATIOS[-1])
                df["variant"], df["run_id"], df["seed"] = "dense", f"dense-{d}-{lr}-{seed}", seed
                df["val_loss"] = df["val_loss"] + 0.05 * math.log(lr / opt("dense", d)) ** 2 + dy * (i % 2)
                df["peak_lr"], df["sweep"] = lr, "lr"
                p = str(folder / f"dense-{d}-{lr}-{seed}.parquet")
                df.to_parquet(p, index=False)
                paths.append(p)
    ctx = Context(plots.load_inputs(paths))
    curves, _ = lr_curves(ctx)
    assert len(curves) == len(WIDTHS)
    for c in curves:
        assert c["seeds"] == 3
        odd = [i % 2 == 1 for i in range(len(c["lrs"]))]
        width = [h - lo for lo, h in zip(c["lo"], c["hi"])]
        np.testing.assert_allclose(width, [0.09 if o else 0.0 for o in odd], atol=1e-9)
        for y, lo, hi in zip(c["losses"], c["lo"], c["hi"]):
            assert lo - 1e-12 <= y <= hi + 1e-12  # the mean lies inside its range
    ctx.colors = {}
    fig = lr_transfer(ctx)
    bars = [c for ax in fig.axes for c in ax.collections if (c.get_gid() or "").endswith(":seeds")]
    assert len(bars) == len(WIDTHS)
    assert any("mean over 3 seeds" in n for n in ctx.notes)
