"""The law-across-shares figure (fig8_share_law): loss against share at fixed compute equals a brute-force
optimum of the fitted law (closed form) and the planner's optimum (runs' shapes); the compute multiplier of a
share is f^-(rho_N + rho_D) at every budget; the time multiplier is the throughput ratio; drawn only when the
fit has a law across shares."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from scalelab import flops as F
from scalelab import structures
from scalelab.config import ModelConfig
from scalelab.fit import fit_laws, laws
from scalelab.plot.shape import share as shape

TRUTH = {"E": 1.8, "A": 60.0, "B": 400.0, "alpha": 0.3, "beta": 0.3, "rho_N": -0.4, "rho_D": 0.1}
WIDTHS = (64, 128, 192, 256, 320)
SLOWDOWN = {1.0: 1.0, 0.63: 0.9, 0.32: 0.8}  # FLOP/s of each share relative to dense


def share_frame(shapes: bool = False, timed: bool = False, seed: int = 0) -> pd.DataFrame:
    """Real lowrank shapes (4 layers) at shares 1, 0.63, 0.32 and five widths, three budgets each, losses
    from TRUTH with 0.5% noise; `shapes`: a config column (the runs' shapes); `timed`: throughput columns."""
    rng = np.random.default_rng(seed)
    rows = []
    for f in SLOWDOWN:
        for d in WIDTHS:
            cfg = ModelConfig(d_model=d, n_layers=4, n_heads=d // 32)
            if f < 1:
                cfg = cfg.replace(ffn=structures.for_fraction("lowrank", d, 4 * d, f))
            share = 1.0 if f == 1 else structures.ffn_fraction(cfg.ffn, d, 4 * d)
            N = F.param_counts(cfg).params
            for t in (10, 30, 90):
                L = laws.predict("share", TRUTH, N=N, D=N * t, share=share) * np.exp(0.005 * rng.standard_normal())
                row = dict(N=N, D=N * t, loss=float(L), share=share, run=f"{f}-{d}-{t}", kind="lowrank")
                if shapes:
                    row["config"] = json.dumps({"model": cfg.to_dict()})
                if timed:
                    row.update(flops=6.0 * N * N * t, tokens_per_s=1e9 / (6.0 * N) * SLOWDOWN[f], device="H100")
                rows.append(row)
    return pd.DataFrame(rows)


def fit(df: pd.DataFrame, bootstrap: int = 30):
    return fit_laws(
        df, n_col="N", d_col="D", loss_col="loss", run_col="run", share_col="share", by=("kind",), bootstrap=bootstrap
    )


@pytest.fixture(scope="module")
def closed():
    res = fit(share_frame())
    return res, res["lowrank"]


def test_closed_form_curve_is_the_laws_brute_force_optimum(closed):
    """At each budget and share: the least loss of the fitted law over N (D = C / (k N)), found by a grid."""
    res, g = closed
    data = shape.loss_vs_share(res, g)
    assert data.method == "closed form" and data.shares == pytest.approx([0.3125, 0.625, 1.0], rel=0.02)
    assert len(data.curves) == 4 and data.curves[-1].budget_extrapolated and not data.curves[0].budget_extrapolated
    N = np.geomspace(1e3, 1e12, 200001)
    for c in data.curves:
        for f in (data.shares[0], 0.5, 1.0):
            i = int(np.argmin(np.abs(c.f - f)))
            brute = laws.predict("share", g.params, N=N, D=c.C / (g.k_flops * N), share=c.f[i]).min()
            assert c.loss[i] == pytest.approx(brute, rel=1e-6)
        assert c.rel[np.argmin(np.abs(c.f - 1))] == 0.0  # relative to dense at the same budget
        assert np.all(c.lo <= c.rel + 1e-12) and np.all(c.rel <= c.hi + 1e-12)
        # rho_N + rho_D < 0: a structured share trains like dense on more compute, so the lowest share is best
        assert c.at_edge == "low" and c.best.est == pytest.approx(min(c.f[~c.extrapolated]))
        assert np.all(c.extrapolated == (c.f < data.shares[0] * 0.999))
    assert any("closed form" in n and "monotone" in n for n in data.notes)


def test_compute_multiplier_is_the_share_to_the_minus_rho_sum_at_every_budget(closed):
    res, g = closed
    curves = shape.share_multipliers(res, g)
    assert [round(c.share, 2) for c in curves] == [0.31, 0.62]
    rho = g.params["rho_N"] + g.params["rho_D"]
    s = g.sample_arrays()
    for c in curves:
        assert c.est == pytest.approx(np.full(c.C.shape, c.share**-rho), rel=1e-6)
        own = np.percentile(c.share ** -(s["rho_N"] + s["rho_D"]), [2.5, 97.5], method="nearest")
        assert c.lo == pytest.approx(np.full(c.C.shape, own[0]), rel=1e-6)  # the resamples' own f^-rho
        assert c.hi == pytest.approx(np.full(c.C.shape, own[1]), rel=1e-6)
        lo, hi = g.c_range
        assert np.array_equal(c.extrapolated, (c.C < lo) | (c.C > hi)) and c.extrapolated.any()
        assert c.time_ratio is None and "not timed" in c.time_missing


def test_time_multiplier_is_dense_over_share_throughput():
    res = fit(share_frame(timed=True), bootstrap=10)
    curves = shape.share_multipliers(res, res["lowrank"])
    assert [c.time_ratio for c in curves] == pytest.approx([1 / 0.8, 1 / 0.9])


def test_runs_shapes_curve_agrees_with_the_planner():
    """With the runs' configs the curve optimises over buildable widths (plan/share.py): at each budget its
    best share and loss are the plan's."""
    from scalelab.plan.share import plan_share

    res = fit(share_frame(shapes=True), bootstrap=10)
    g = res["lowrank"]
    cs = [3e13, 3e15]
    data = shape.loss_vs_share(res, g, cs)
    assert data.method == "runs' shapes"
    for C, c in zip(cs, data.curves):
        plan = plan_share(res, "lowrank", C)
        assert c.best.est == pytest.approx(plan.share.est) and c.best_loss == pytest.approx(plan.loss.est)
        assert c.best.lo <= c.best.est <= c.best.hi
        assert np.all(np.diff(c.f) > 0) and c.f[-1] == 1.0


def test_figure_drawn_for_a_share_fit_and_skipped_otherwise(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scalelab import plot as plots
    from scalelab.plot.fig_share import loss_share_panel, multiplier_share_panel

    res = fit(share_frame(), bootstrap=10)
    res.to_json(tmp_path / "s.json")
    inputs = plots.load_inputs([str(tmp_path / "s.json")])
    out = {name: (fig, skip, notes) for name, _, fig, skip, notes in plots.build(inputs, only=["fig8_share_law"])}
    fig, skip, notes = out["fig8_share_law"]
    assert fig is not None and not skip and len(fig.axes) == 2
    left, right = fig.axes
    assert sum((ln.get_gid() or "").startswith("budget:") for ln in left.lines) >= 4
    assert sum((ln.get_gid() or "").startswith("share:") for ln in right.lines) >= 2
    assert any("not timed" in n for n in notes) and any("flat lines" in n for n in notes)
    plt.close("all")
    ctx = plots.Context(inputs, colors=plots.variant_colors(["lowrank"]), markers=plots.variant_markers(["lowrank"]))
    fig, (a, b) = plt.subplots(1, 2)
    assert loss_share_panel(ctx, "lowrank", ax=a) is a and multiplier_share_panel(ctx, ax=b) is b
    assert a.lines and b.lines and a.get_legend() is not None
    plt.close("all")

    plain = fit_laws(share_frame(), n_col="N", d_col="D", loss_col="loss", run_col="run", bootstrap=0)
    plain.to_json(tmp_path / "p.json")
    out = {
        n: s for n, _, _, s, _ in plots.build(plots.load_inputs([str(tmp_path / "p.json")]), only=["fig8_share_law"])
    }
    assert "no law across FFN shares" in out["fig8_share_law"] and "--share-col" in out["fig8_share_law"]


def test_figures_of_l_n_d_groups_point_a_share_fit_to_its_own_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from scalelab import plot as plots

    fit(share_frame(), bootstrap=0).to_json(tmp_path / "s.json")
    built = plots.build(
        plots.load_inputs([str(tmp_path / "s.json")]), only=["fig1_loss_vs_flops", "fig3_compute_optimal"]
    )
    out = {name: (skip, notes) for name, _, _, skip, notes in built}
    assert "see fig8_share_law" in out["fig3_compute_optimal"][0]
    assert "not identified" not in out["fig3_compute_optimal"][0]  # the share law does identify the optimum
    assert any("no L*(C) drawn" in n and "fig8_share_law" in n for n in out["fig1_loss_vs_flops"][1])
