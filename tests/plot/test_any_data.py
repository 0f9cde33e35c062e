"""Figures on anyone's data (issue 13, item 5): CSV tables read through the fit's columns, every fitted
point drawn, per-panel loss ranges with a log axis past a 2x span, 16 distinguishable groups, labels from
the loss column, compute multipliers in fig4.

The fit files here are written by hand in the documented format (docs/interfaces.md "Fit file"), so that
the figures are held to the contract and not to scalelab.fit's current choices.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from .helpers import write_fit, write_runs

LAW = dict(E=1.8, A=300.0, B=900.0, alpha=0.3, beta=0.28)


def law(p, N, D):
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


def write_table_and_fit(folder, n_groups=3, loss_col="train_loss", scale=None, holdout=True, checkpoints=3):
    """A CSV of points (several checkpoints per run) and a fit file naming its columns; group i's loss is
    multiplied by scale(i) (default 1). Returns (csv path, fit path, points per group)."""
    os.makedirs(folder, exist_ok=True)
    rows, groups, samples = [], {}, []
    rng = np.random.default_rng(0)
    for gi in range(n_groups):
        name = f"arch{gi:02d}"
        k = scale(gi) if scale else 1.0
        p = dict(LAW, E=LAW["E"] * k, A=LAW["A"] * k, B=LAW["B"] * k)
        pts = []
        for N in np.geomspace(2e7, 1e9, 4):
            for r in (5, 20, 80):
                for f in np.linspace(1.0 / checkpoints, 1.0, checkpoints):
                    D = f * r * N
                    pts.append(
                        dict(params=N, tokens=D, arch=name, run=f"{name}-{N:.3g}-{r}", **{loss_col: law(p, N, D)})
                    )
        rows += pts
        N = [x["params"] for x in pts]
        Dt = [x["tokens"] for x in pts]
        draws = {q: p[q] * np.exp(0.01 * rng.standard_normal(50)) for q in p}
        groups[name] = {
            "key": {"arch": name},
            "form": "chinchilla",
            "params": p,
            "conf_int": {q: [float(np.min(x)), float(np.max(x))] for q, x in draws.items()},
            "n_points": len(pts),
            "n_runs": len(pts) // checkpoints,
            "n_sizes": 4,
            "range": {
                "N": [min(N), max(N)],
                "D": [min(Dt), max(Dt)],
                "C": [6 * min(N) * min(Dt), 6 * max(N) * max(Dt)],
            },
            "runs": [],  # one entry per run in real files; left empty: the points must come from the CSV
        }
        if holdout:
            groups[name]["holdout"] = {"rule": "largest N", "value": 1e9, "n_points": 3 * checkpoints,
                                       "mean_rel_error": 0.01, "params": dict(p, A=p["A"] * 1.02)}  # fmt: skip
        samples.append(pd.DataFrame({"group": name, "sample": np.arange(50), **draws, "K": np.nan, "gamma": np.nan}))
    csv = os.path.join(folder, "points.csv")
    pd.DataFrame(rows).to_csv(csv, index=False)
    fit = {
        "format": "scalelab-fit/1",
        "flop_convention": "6ND",
        "by": ["arch"],
        "bootstrap": {"n": 50, "seed": 0, "level": 0.95, "unit": "run"},
        "samples": "t.samples.parquet",
        "columns": {"N": "params", "D": "tokens", "loss": loss_col, "C": "6ND", "run": "run"},
        "inputs": [{"path": csv}],
        # how the fit read the CSV: the upgrader (scalelab.fit.upgrade) rebuilds the fitted points with it
        "spec": {"n_col": "params", "d_col": "tokens", "loss_col": loss_col, "run_col": "run", "by": ["arch"]},
        "groups": groups,
        "comparisons": [],
    }
    path = os.path.join(folder, "t.json")
    with open(path, "w") as f:
        json.dump(fit, f)
    pd.concat(samples).to_parquet(os.path.join(folder, "t.samples.parquet"), index=False)
    return csv, path, len(rows) // n_groups


def figure(inputs, name):
    from scalelab import plot as plots

    for n, _, fig, skip, notes in plots.build(inputs, only=[name]):
        assert fig is not None, (n, skip)
        return fig, notes


def test_csv_input_accepted_and_every_fitted_point_in_fig2_and_fig5(tmp_path):
    import matplotlib.pyplot as plt

    from scalelab import plot as plots

    csv, fit, per_group = write_table_and_fit(str(tmp_path), n_groups=2)
    inputs = plots.load_inputs([csv], fit_path=fit)
    assert len(inputs.points) == 2 * per_group  # every checkpoint, not one point per run
    fig, _ = figure(inputs, "fig2_loss_vs_params")
    drawn = sum(
        len(c.get_offsets()) for ax in fig.axes for c in ax.collections if (c.get_gid() or "").startswith("points:")
    )
    assert drawn == 2 * per_group
    plt.close(fig)
    fig, notes = figure(inputs, "fig5_fit_diagnostics")
    ax = fig.axes[0]
    fitted = sum(len(c.get_offsets()) for c in ax.collections if (c.get_gid() or "").startswith("fitted:"))
    held = sum(len(c.get_offsets()) for c in ax.collections if (c.get_gid() or "").startswith("held:"))
    assert fitted == 2 * per_group
    assert held == 2 * 3 * 3  # the largest size: 3 runs x 3 checkpoints per group
    assert any("9 held-out point(s)" in n for n in notes), notes
    plt.close(fig)


def test_fit_alone_reads_its_recorded_csv_and_falls_back_with_a_note(tmp_path):
    from scalelab import plot as plots

    csv, fit, per_group = write_table_and_fit(str(tmp_path), n_groups=2)
    inputs = plots.load_inputs([], fit_path=fit)
    assert len(inputs.points) == 2 * per_group and "recorded input" in inputs.points_source
    os.remove(csv)  # moved away: the fit's runs list stands in (empty here), and nothing crashes
    inputs = plots.load_inputs([], fit_path=fit)
    assert inputs.points is None or len(inputs.points) < 2 * per_group


def test_csv_lacking_the_fits_columns_is_one_line_exit_2(tmp_path):
    from typer.testing import CliRunner

    from scalelab.cli import app

    _, fit, _ = write_table_and_fit(str(tmp_path), n_groups=2)
    other = tmp_path / "other.csv"
    pd.DataFrame({"N": [1, 2], "D": [3, 4], "loss": [5, 6]}).to_csv(other, index=False)
    r = CliRunner().invoke(app, ["plot", str(other), "--fit", fit, "--out", str(tmp_path / "f")])
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert "\n" not in line and "lacks column(s)" in line and "'params'" in line and "give the table" in line


def test_loss_axis_label_follows_the_loss_column(tmp_path):
    import matplotlib.pyplot as plt

    from scalelab import plot as plots

    csv, fit, _ = write_table_and_fit(str(tmp_path / "a"), loss_col="train_loss")
    fig, _ = figure(plots.load_inputs([csv], fit_path=fit), "fig2_loss_vs_params")
    labels = {ax.get_ylabel() for ax in fig.axes if ax.axison}
    assert labels and all(lab.startswith("training loss") for lab in labels), labels
    plt.close(fig)
    csv, fit, _ = write_table_and_fit(str(tmp_path / "b"), loss_col="ppl_loss")
    fig, _ = figure(plots.load_inputs([csv], fit_path=fit), "fig5_fit_diagnostics")
    assert "validation" not in fig.axes[0].get_ylabel() and "ppl_loss" in fig.axes[0].get_ylabel()
    plt.close(fig)


def test_per_panel_loss_ranges_log_past_2x_and_law_not_stretching_them(tmp_path):
    import matplotlib.pyplot as plt

    from scalelab import plot as plots

    # group i's losses scaled by 1 + i: the panels' ranges differ, and the largest spans more than 2x
    csv, fit, _ = write_table_and_fit(str(tmp_path / "wide"), n_groups=4, scale=lambda i: 1 + i, holdout=False)
    inputs = plots.load_inputs([csv], fit_path=fit)
    fig, _ = figure(inputs, "fig2_loss_vs_params")
    axes = [ax for ax in fig.axes if ax.axison]
    assert len(axes) == 4
    assert all(ax.get_yscale() == "log" for ax in axes)
    for ax in axes:
        g = ax.get_title().split()[0]
        loss = inputs.points.loc[inputs.points["group"] == g, "loss"]
        lo, hi = ax.get_ylim()
        assert lo <= loss.min() and hi >= loss.max()
        assert hi < 1.5 * loss.max() and lo > loss.min() / 1.5  # the panel's own range, not the figure's
    assert len({tuple(np.round(ax.get_ylim(), 3)) for ax in axes}) == 4  # no shared y axis
    plt.close(fig)
    # a narrow span stays linear
    csv, fit, _ = write_table_and_fit(str(tmp_path / "narrow"), n_groups=2, holdout=False)
    tiny = pd.read_csv(csv)
    tiny = tiny[(tiny["tokens"] / tiny["params"] >= 19) & (tiny["params"] > 5e7)]  # loss spans < 2x
    assert tiny["train_loss"].max() < 2 * tiny["train_loss"].min()
    tiny.to_csv(csv, index=False)
    fig, _ = figure(plots.load_inputs([csv], fit_path=fit), "fig2_loss_vs_params")
    assert all(ax.get_yscale() == "linear" for ax in fig.axes if ax.axison)
    plt.close(fig)


def test_law_solid_over_the_slice_points_and_dashed_beyond(tmp_path):
    import matplotlib.pyplot as plt

    from scalelab import plot as plots

    csv, fit, _ = write_table_and_fit(str(tmp_path), n_groups=1, holdout=False)
    inputs = plots.load_inputs([csv], fit_path=fit)
    fig, _ = figure(inputs, "fig2_loss_vs_params")
    ax = next(ax for ax in fig.axes if ax.axison)
    nmin, nmax = inputs.points["N"].min(), inputs.points["N"].max()
    lines = [ln for ln in ax.get_lines() if (ln.get_gid() or "").startswith("law:")]
    solid = [ln for ln in lines if ln.get_linestyle() == "-"]
    dashed = [ln for ln in lines if ln.get_linestyle() == "--"]
    assert solid and dashed
    for ln in solid:
        x = np.asarray(ln.get_xdata(), float)[np.isfinite(np.asarray(ln.get_ydata(), float))]
        assert x.min() >= nmin / 1.3 and x.max() <= nmax * 1.3  # at most one grid step beyond the points
    for ln in dashed:
        x = np.asarray(ln.get_xdata(), float)[np.isfinite(np.asarray(ln.get_ydata(), float))]
        assert x.min() < nmin or x.max() > nmax
    plt.close(fig)


def test_sixteen_groups_are_told_apart_by_colour_marker_and_line_style():
    from scalelab.plot import style

    for names in ([f"g{i:02d}" for i in range(16)], ["dense"] + [f"v{i:02d}" for i in range(15)]):
        c, m, ls = style.variant_colors(names), style.variant_markers(names), style.variant_linestyles(names)
        assert len({c[n] for n in names}) == 16  # no colour repeats within 16
        assert len({(m[n], str(ls[n])) for n in names}) == 16  # greyscale: marker + style still distinct
        assert len({(c[n], m[n], str(ls[n])) for n in names}) == 16
        assert all(ls[n] != style.EXTRAPOLATION for n in names)  # dashes mean extrapolation only


def test_fig3_lines_carry_markers_and_linestyles(tmp_path):
    import matplotlib.pyplot as plt

    from scalelab import plot as plots

    runs = write_runs(str(tmp_path / "runs"))
    fit = write_fit(str(tmp_path / "fits"))
    inputs = plots.load_inputs(runs, fit_path=fit)
    markers = plots.variant_markers(inputs.variants())
    fig, _ = figure(inputs, "fig3_compute_optimal")
    for v in ("dense", "lowrank-25"):
        lines = [ln for ln in fig.axes[0].get_lines() if ln.get_gid() == f"variant:{v}"]
        assert any(ln.get_marker() == markers[v] for ln in lines), v
    plt.close(fig)


def test_fig4_draws_compute_multipliers_or_notes_their_absence(tmp_path):
    import matplotlib.pyplot as plt

    from scalelab import plot as plots

    fit = write_fit(str(tmp_path / "fits"))
    _, _, notes = next(
        (f, s, n) for _, _, f, s, n in plots.build(plots.load_inputs([], fit_path=fit), only=["fig4_exponents"])
    )
    assert any("no compute multipliers" in n for n in notes), notes
    d = json.load(open(fit))
    # hand-written rows: the figure draws what the file holds (the fit itself withholds an interval that
    # excludes its estimate, fit/multiplier.py)
    d["comparisons"][0]["multiplier"] = [
        {"C": 1e12, "loss": 3.0, "est": 0.8, "lo": 0.7, "hi": 0.95, "frac_unreachable": 0.0, "extrapolated": False},
        {"C": 1e13, "loss": 2.9, "est": 0.6, "lo": 0.65, "hi": 0.9, "frac_unreachable": 0.0, "extrapolated": True},
        {"C": 1e14, "loss": 2.8, "est": None, "lo": None, "hi": None, "frac_unreachable": 1.0, "extrapolated": True},
    ]
    with open(fit, "w") as f:
        json.dump(d, f)
    fig, notes = figure(plots.load_inputs([], fit_path=fit), "fig4_exponents")
    ax = fig.axes[-1]
    assert "multiplier" in ax.get_ylabel() and ax.get_yscale() == "log"
    pts = [ln for ln in ax.get_lines() if ln.get_gid() == "variant:lowrank-25" and ln.get_marker() not in ("None", "")]
    ests = sorted(float(ln.get_ydata()[0]) for ln in pts if len(ln.get_ydata()) == 1)
    assert ests == pytest.approx([0.6, 0.8])
    assert any("never reaches" in n and "1.0e+14" in n for n in notes), notes
    plt.close(fig)


def test_a_fit_without_a_finite_optimum_skips_fig3_and_a_layout_failure_skips_its_figure(tmp_path, monkeypatch):
    # the loss does not depend on N: alpha sits at 0, N_opt is 0 and D_opt infinite; fig3 drew NaN on log axes and
    # `plot` (and `report`) ended in matplotlib's "Data cannot be log-scaled"
    import matplotlib

    matplotlib.use("Agg")
    from fit.conftest import synthetic

    from scalelab import plot as plots
    from scalelab.fit import FitSpec, fit_laws
    from scalelab.plot import style

    p, f = tmp_path / "t.csv", tmp_path / "t.json"
    synthetic(A=0.0).to_csv(p, index=False)
    fit_laws(pd.read_csv(p), FitSpec(n_col="N", d_col="D", loss_col="loss", run_col="run"), bootstrap=20).to_json(f)
    drawn = {d.name: d for d in plots.make_figures(plots.load_inputs([str(p), str(f)]), str(tmp_path / "figs"))}
    assert "identifies N_opt" in drawn["fig3_compute_optimal"].skipped
    assert any("left out" in n and "not identified" in n for n in drawn["fig3_compute_optimal"].notes)

    def refuse(*a, **k):
        raise ValueError("Data cannot be log-scaled because all values are <= 0.")

    monkeypatch.setattr(style, "save", refuse)
    drawn = plots.make_figures(plots.load_inputs([str(p), str(f)]), str(tmp_path / "figs2"))
    assert all(d.skipped for d in drawn) and any("cannot be log-scaled" in d.skipped for d in drawn)
