"""`scalelab plot` on every kind of input it may be given (issue 21, item 3): a CSV without a fit, a fit
alone, run files without a fit, approach-1/2 allocation fits, a fit with a group whose loss law was not
fitted; and names read from files printed literally in figures and figures/index.md (item 9).

Each figure is drawn or skipped with a reason; none fails. The data are synthetic, drawn from a known
Chinchilla law, so that what the figures draw can be checked against the law itself.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scalelab.cli import app

from .helpers import run_rows, write_fit

LAW = dict(E=1.7, A=400.0, B=1200.0, alpha=0.34, beta=0.28)
FAILED = "could not be drawn"  # the driver's reason when a figure raised
LRS = [0.002, 0.004, 0.008, 0.016, 0.032]


def law(N, D, p=LAW):
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


def isoflop_table(path, groups=("g1", "g2"), budgets=(1e17, 4e17, 1.6e18, 6.4e18), per_slice=7):
    """IsoFLOP slices (C = 6ND fixed, N spread around the law's optimum), every point its own run."""
    rows = []
    for gi, g in enumerate(groups):
        p = dict(LAW, A=LAW["A"] * (1 + 0.2 * gi))
        for C in budgets:
            n_opt = (p["alpha"] * p["A"] / (p["beta"] * p["B"]) * (C / 6) ** p["beta"]) ** (
                1 / (p["alpha"] + p["beta"])
            )
            for N in n_opt * np.geomspace(1 / 6, 6, per_slice):
                D = C / (6 * N)
                rows.append(dict(N=N, D=D, C=C, loss=law(N, D, p), group=g, run=f"{g}-{C:.0e}-{N:.4g}"))
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def curves_table(path, groups=("a", "b")):
    """Training curves: 4 sizes x 4 checkpoints per run, one run per size, several groups."""
    rows = []
    for g in groups:
        for N in np.geomspace(1e7, 3e8, 4):
            for f in (0.25, 0.5, 0.75, 1.0):
                D = f * 20 * N
                rows.append(dict(N=N, D=D, loss=law(N, D), group=g, run=f"{g}-{N:.3g}"))
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def draw_all(inputs, tmp_path, write=False):
    """Every figure of `inputs` ({name: Drawn} with the Figure kept); saved with figures/index.md only when
    `write` (saving is most of the time and only the index tests need the files)."""
    from scalelab import plot as plots

    out = str(tmp_path / "figs")
    if write:
        drawn = plots.make_figures(inputs, out_dir=out, formats=("svg",), width="single", keep=True)
    else:
        drawn = [
            plots.Drawn(n, desc, files=["(kept)"] if fig is not None else [], skipped=skip, notes=notes, figure=fig)
            for n, desc, fig, skip, notes in plots.build(inputs, width="single")
        ]
    for d in drawn:
        assert FAILED not in d.skipped, (d.name, d.skipped)
        assert bool(d.files) != bool(d.skipped), d.name  # drawn, or skipped with a reason
    return {d.name: d for d in drawn}, out


def close(drawn):
    import matplotlib.pyplot as plt

    for d in drawn.values():
        if d.figure is not None:
            plt.close(d.figure)


# ---------------------------------------------------------------------------------------- kinds of input


def test_csv_without_a_fit_draws_curves_and_points_per_group(tmp_path):
    """A table of someone's runs, no fit (failed with KeyError: 'all' in loss_vs_flops)."""
    from scalelab import plot as plots

    csv = curves_table(str(tmp_path / "runs.csv"))
    drawn, _ = draw_all(plots.load_inputs([csv]), tmp_path)
    fig1 = drawn["fig1_loss_vs_flops"].figure
    ax = fig1.axes[0]
    assert len([ln for ln in ax.get_lines() if len(ln.get_xdata()) == 4]) == 8  # 2 groups x 4 runs, 4 points each
    labels = {t.get_text() for t in fig1.legends[0].get_texts()}
    assert {"a", "b"} <= labels
    assert ax.get_ylabel() == "loss" and "6ND" in ax.get_xlabel()  # the table's loss, C computed as 6ND
    fig2 = drawn["fig2_loss_vs_params"].figure
    assert sorted(a.get_title() for a in fig2.axes if a.get_title()) == ["a", "b"]
    for name in ("fig3_compute_optimal", "fig4_exponents", "fig5_fit_diagnostics"):
        assert "needs a fit" in drawn[name].skipped
    close(drawn)


def test_csv_without_a_fit_with_fewer_points_than_a_fit_needs(tmp_path):
    """Two points in a group, one size in another: too few for a fit, not for a figure."""
    from scalelab import plot as plots

    csv = str(tmp_path / "few.csv")
    pd.DataFrame(
        dict(N=[1e7, 1e8, 1e7, 1e7], D=[1e9, 1e9, 2e9, 2e9], loss=[3, 2.5, 2.9, 2.9], group=list("aabb"))
    ).to_csv(csv, index=False)
    drawn, _ = draw_all(plots.load_inputs([csv]), tmp_path)
    fig2 = drawn["fig2_loss_vs_params"].figure
    pts = {a.get_title(): sum(len(c.get_offsets()) for c in a.collections) for a in fig2.axes if a.get_title()}
    assert pts == {"a": 2, "b": 2}
    close(drawn)


def test_csv_without_a_fit_through_the_cli_with_column_options(tmp_path, monkeypatch, chinchilla_path):
    """Epoch's Chinchilla table names its columns 'Model Size' and 'Training FLOP': one line naming the
    options without them, figures with them."""
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["plot", str(chinchilla_path), "--format", "png"])
    assert r.exit_code == 2, r.output
    assert "--n-col" in r.output and "Model Size" in r.output and "Traceback" not in r.output
    assert not os.path.exists("figures/index.md")
    args = ["plot", str(chinchilla_path), "--n-col", "Model Size", "--flops-col", "Training FLOP", "--format", "pdf"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert os.path.isfile("figures/fig1_loss_vs_flops.pdf") and os.path.isfile("figures/fig2_loss_vs_params.pdf")
    assert "Traceback" not in r.output and "could not" not in r.output
    r = CliRunner().invoke(app, ["plot", str(chinchilla_path), "--fit", "x.json", "--n-col", "Model Size"])
    assert r.exit_code == 2  # column options are for tables plotted without a fit


def test_fit_alone_whose_data_moved_draws_from_its_runs_list(tmp_path):
    """A fit file and nothing else, its recorded input gone: the figures that need only the law are drawn."""
    from scalelab import plot as plots

    fit = write_fit(str(tmp_path / "fits"), name="solo")
    doc = json.load(open(fit))
    doc["inputs"] = [{"path": str(tmp_path / "gone.csv"), "sha256": "0" * 64}]
    json.dump(doc, open(fit, "w"))
    drawn, _ = draw_all(plots.load_inputs([], fit_path=fit), tmp_path)
    for name in ("fig2_loss_vs_params", "fig3_compute_optimal", "fig4_exponents", "fig5_fit_diagnostics"):
        assert drawn[name].figure is not None, drawn[name].skipped
    assert any("runs list" in n for n in drawn["fig2_loss_vs_params"].notes)
    close(drawn)


def test_runs_without_a_fit_wsd_branches_and_a_diverged_run(tmp_path):
    """Run-store files as a tiny WSD grid writes them (a trunk and a cooldown branch per run: `budget`
    column), one run diverged (NaN loss, status 'diverged'), no fit."""
    from scalelab import plot as plots

    paths = []
    for v in ("dense", "lowrank-25"):
        for d in (32, 64):
            df = run_rows(v, d, 20, n_eval=6)
            short = df.iloc[[2]].assign(budget=int(df["tokens"].iloc[2]), final=True)
            df = pd.concat([df.assign(budget=int(df["tokens"].max())), short], ignore_index=True)
            if (v, d) == ("lowrank-25", 64):
                df = df.assign(status="diverged", val_loss=np.nan, final=False)
            p = str(tmp_path / f"{v}-{d}.parquet")
            df.to_parquet(p, index=False)
            paths.append(p)
    drawn, _ = draw_all(plots.load_inputs(paths), tmp_path)
    assert drawn["fig1_loss_vs_flops"].files and drawn["fig2_loss_vs_params"].files
    assert any("diverged" in n for n in drawn["fig1_loss_vs_flops"].notes)
    assert not any("fitted law" in n for n in drawn["fig2_loss_vs_params"].notes)  # no fit: no law claimed
    close(drawn)


@pytest.fixture(scope="module")
def approach2(tmp_path_factory):
    """An approach-2 fit of two groups' IsoFLOP slices, with its table (scalelab fit --approach 2)."""
    from scalelab.fit import fit_laws

    tmp = tmp_path_factory.mktemp("a2")
    csv = isoflop_table(str(tmp / "iso.csv"))
    df = pd.read_csv(csv)
    fit = fit_laws(df, n_col="N", d_col="D", c_col="C", loss_col="loss", run_col="run", by=["group"], approach=2,
                   bootstrap=30, inputs=[{"path": csv}])  # fmt: skip
    path = str(tmp / "a2.json")
    fit.to_json(path)
    return csv, path


def test_approach2_fit_draws_allocation_slices_and_exponent(approach2, tmp_path):
    """Nothing was drawn for allocation fits but curves; now fig3 draws N_opt = kN C^a through the slice
    minima, fig2 the IsoFLOP slices with each slice's minimum starred, fig4 the exponent a."""
    from scalelab import plot as plots
    from scalelab.fit import load_fit

    csv, path = approach2
    fit = load_fit(path)
    drawn, _ = draw_all(plots.load_inputs([csv], fit_path=path), tmp_path)
    fig3 = drawn["fig3_compute_optimal"].figure
    axN = fig3.axes[0]
    for g in ("g1", "g2"):
        p = fit[g].params
        line = next(ln for ln in axN.get_lines() if ln.get_gid() == f"variant:{g}")
        x, y = line.get_xdata(), line.get_ydata()
        ok = np.isfinite(y)
        assert np.allclose(y[ok], p["kN"] * x[ok] ** p["a"], rtol=1e-6)  # the fitted power law itself
        opt = fit[g].diagnostics["optima"]
        pts = next(c for c in axN.collections if c.get_gid() == f"optima:{g}").get_offsets()
        assert np.allclose(np.asarray(pts), np.column_stack([opt["C"], opt["N_opt"]]))
    fig2 = drawn["fig2_loss_vs_params"].figure
    stars = [ln for ax in fig2.axes for ln in ax.get_lines() if (ln.get_gid() or "").startswith("optimum:")]
    assert len(stars) == sum(len(fit[g].diagnostics["optima"]["C"]) for g in ("g1", "g2"))
    assert any("IsoFLOP slices" in n for n in drawn["fig2_loss_vs_params"].notes)
    assert drawn["fig4_exponents"].files
    assert "allocation" in drawn["fig5_fit_diagnostics"].skipped
    close(drawn)


def test_approach1_fit_draws_compute_optimal(tmp_path):
    from scalelab import plot as plots
    from scalelab.fit import fit_laws

    csv = curves_table(str(tmp_path / "curves.csv"), groups=("a",))
    df = pd.read_csv(csv)
    rows = []
    for N in np.geomspace(1e7, 1e9, 6):  # dense curves: the envelope needs many checkpoints
        for D in np.geomspace(2e8, 4e10, 24):
            rows.append(dict(N=N, D=D, loss=law(N, D), group="a", run=f"a-{N:.3g}"))
    df = pd.DataFrame(rows)
    df.to_csv(csv, index=False)
    fit = fit_laws(df, n_col="N", d_col="D", loss_col="loss", run_col="run", by=["group"], approach=1, bootstrap=0)
    path = str(tmp_path / "a1.json")
    fit.to_json(path)
    drawn, _ = draw_all(plots.load_inputs([csv], fit_path=path), tmp_path)
    assert drawn["fig3_compute_optimal"].files, drawn["fig3_compute_optimal"].skipped
    assert any("approach 1" in n for n in drawn["fig3_compute_optimal"].notes)
    close(drawn)


def _lr_only_fit(folder, params=None):
    """A fit file (documented format) with one L(N, D) group and one whose loss law was refused: form
    "none", no parameters, the warning, and its lr law with the per-size sweeps."""
    path = write_fit(folder, variants=("dense", "lowrank-25"), name="mixed")
    doc = json.load(open(path))
    g = doc["groups"]["lowrank-25"]
    why = "3 points for the 3 free parameters of L(N)"
    per_size = [
        {"N": float(n), "D": 1e8, "lrs": LRS, "losses": [3 + 0.05 * np.log(lr / (0.008 * 64 / d)) ** 2 for lr in LRS],
         "lr_opt": 0.008 * 64 / d, "method": "parabola", "at_edge": False}
        for n, d in ((1e6, 32), (3e6, 64), (1e7, 128))
    ]  # fmt: skip
    g.update(form="none", params={} if params is None else params, conf_int={}, derived={}, derived_conf_int={},
             warnings=[f"loss law not fitted: {why}"], loss_law={"fitted": False, "why": why},
             hyper={"lr": {"coef": 0.5, "exp": -0.5, "conf_int": {}, "per_size": per_size, "n_sizes": 3}})  # fmt: skip
    doc["comparisons"] = []
    json.dump(doc, open(path, "w"))
    return path, why


def test_group_whose_loss_law_was_not_fitted_is_left_out_with_a_note_and_fig7_draws(tmp_path):
    from scalelab import plot as plots

    path, why = _lr_only_fit(str(tmp_path / "fits"))
    drawn, out = draw_all(plots.load_inputs([], fit_path=path), tmp_path, write=True)
    fig3 = drawn["fig3_compute_optimal"]
    assert fig3.files
    gids = {ln.get_gid() for ax in fig3.figure.axes for ln in ax.get_lines()}
    assert "variant:dense" in gids and "variant:lowrank-25" not in gids
    assert "needs run files" in drawn["fig1_loss_vs_flops"].skipped  # a fit alone holds no training curves
    for name in ("fig2_loss_vs_params", "fig3_compute_optimal", "fig5_fit_diagnostics"):
        assert any("lowrank-25" in n and why in n for n in drawn[name].notes), (name, drawn[name].notes)
    fig7 = drawn["fig7_lr_transfer"]
    assert fig7.files, fig7.skipped
    stars = [ln for ax in fig7.figure.axes for ln in ax.get_lines() if ln.get_marker() == "*"]
    assert len(stars) == 3
    assert why in open(os.path.join(out, "index.md")).read()
    close(drawn)


def test_group_without_params_in_memory_is_left_out(tmp_path):
    """The same group held in memory with params None (a FitResults built by hand): no figure fails."""
    from scalelab import plot as plots

    path, why = _lr_only_fit(str(tmp_path / "fits"))
    inputs = plots.load_inputs([], fit_path=path)
    inputs.fit.groups["lowrank-25"].params = None
    inputs.fit.groups["lowrank-25"].form = "chinchilla"  # a loss-law form lacking its parameters
    drawn, _ = draw_all(inputs, tmp_path)
    assert drawn["fig3_compute_optimal"].files and drawn["fig5_fit_diagnostics"].files
    assert any("lowrank-25 left out" in n for n in drawn["fig5_fit_diagnostics"].notes)
    close(drawn)


def test_a_figure_that_raises_is_skipped_with_its_reason_not_a_traceback(tmp_path, monkeypatch):
    from scalelab import plot as plots
    from scalelab.plot import registry

    def broken(ctx):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(registry, "FIGURES", [("figX", broken, "x")] + registry.FIGURES[:1])
    csv = curves_table(str(tmp_path / "t.csv"))
    drawn = plots.make_figures(plots.load_inputs([csv]), out_dir=str(tmp_path / "o"), formats=("png",))
    assert not drawn[0].files and "ZeroDivisionError: boom" in drawn[0].skipped
    assert drawn[1].files  # the next figure still drawn


# ---------------------------------------------------------------------------------------- names from data

NAMES = ["$\\alpha$", "[bold]x[/bold]", "a|b", "$x^$"]  # the last is bad mathtext: parsing it would raise


def _shown(t) -> tuple:
    """What matplotlib displays for a Text: (string, parsed as math?)."""
    return t._preprocess_math(t.get_text())


def test_names_from_data_are_literal_in_figures_and_index(tmp_path):
    import matplotlib.pyplot as plt

    from scalelab import plot as plots

    csv = str(tmp_path / "names.csv")
    rows = [r for g, name in zip(("g1", "g2", "g3", "g4"), NAMES) for r in _renamed(curves_table, tmp_path, g, name)]
    pd.DataFrame(rows).to_csv(csv, index=False)
    drawn, out = draw_all(plots.load_inputs([csv]), tmp_path, write=True)
    for name in ("fig1_loss_vs_flops", "fig2_loss_vs_params"):
        fig = drawn[name].figure
        fig.canvas.draw()  # rendering parses every text: a name read as mathtext would raise here
        texts = [t for leg in fig.legends for t in leg.get_texts()]
        texts += [t for ax in fig.axes for leg in [ax.get_legend()] if leg for t in leg.get_texts()]
        texts += [ax.title for ax in fig.axes if ax.get_title()]
        shown = {_shown(t) for t in texts}
        for n in NAMES:
            assert (n, False) in shown, (name, n, shown)
    plt.close("all")
    index = open(os.path.join(out, "index.md")).read()
    rows = [ln for ln in index.splitlines() if ln.startswith("| ") and "`#" in ln]  # the variants table
    assert len(rows) == len(NAMES)
    for ln in rows:
        assert len(re.split(r"(?<!\\)\|", ln)) == 6, ln  # 4 cells: no name splits a row
    assert "\\[bold\\]x\\[/bold\\]" in index and "a\\|b" in index and "\\$\\\\alpha\\$" in index
    assert "[bold]" not in index and "<" not in index and "| $" not in index


def _renamed(make, tmp_path, group, name):
    df = pd.read_csv(make(str(tmp_path / f"{group}.csv"), groups=(group,)))
    return df.assign(group=name, run=df["run"].str.replace(group, name, regex=False)).to_dict("records")


def test_names_from_a_fit_are_literal_in_legends_titles_and_lr_panels(tmp_path):
    """Group names in a fit file (here a loss-law group and an lr-only group) reach legends and fig7's
    panel titles unparsed."""
    import matplotlib.pyplot as plt

    from scalelab import plot as plots

    path, _ = _lr_only_fit(str(tmp_path / "fits"))
    doc = json.load(open(path))
    ren = {"dense": NAMES[0], "lowrank-25": NAMES[1]}
    doc["groups"] = {ren[k]: dict(g, key={"variant": ren[k]}) for k, g in doc["groups"].items()}
    json.dump(doc, open(path, "w"))
    samples = path.replace(".json", ".samples.parquet")
    s = pd.read_parquet(samples)
    s.assign(group=s["group"].map(ren)).to_parquet(samples, index=False)
    drawn, _ = draw_all(plots.load_inputs([], fit_path=path), tmp_path)
    fig3, fig7 = drawn["fig3_compute_optimal"].figure, drawn["fig7_lr_transfer"].figure
    for fig in (fig3, fig7):
        fig.canvas.draw()
    assert (NAMES[0], False) in {_shown(t) for t in fig3.legends[0].get_texts()}
    title = next(ax.title for ax in fig7.axes if ax.get_visible())
    assert _shown(title)[0].startswith(NAMES[1]) and not _shown(title)[1]
    plt.close("all")


def test_check_figure_labels_names_literally():
    """`scalelab check`'s figure: one legend entry per variant, the name as written."""
    from types import SimpleNamespace

    import matplotlib.pyplot as plt

    from scalelab.plot.check import check_figure

    pts = pd.DataFrame(
        [dict(variant=v, observed=3.0 + i, predicted=3.01 + i, lo=2.9 + i, hi=3.1 + i, covered=True)
         for i, v in enumerate(NAMES)]
    )  # fmt: skip
    fig = check_figure(SimpleNamespace(points=pts, level=0.95))
    fig.canvas.draw()
    shown = {_shown(t) for t in fig.axes[0].get_legend().get_texts()}
    assert shown == {(f"{n} (100% covered)", False) for n in NAMES}
    plt.close(fig)


def test_fig7_sweeps_at_several_token_budgets_and_a_diverged_rate(tmp_path):
    """An lr x tokens sweep (the lr law's per-size sweeps at two D per size), one rate diverged: one
    labelled curve per (N, D), the y axis kept on the basin with a note."""
    from scalelab import plot as plots

    path, _ = _lr_only_fit(str(tmp_path / "fits"))
    doc = json.load(open(path))
    hyper = doc["groups"]["lowrank-25"]["hyper"]["lr"]
    more = [dict(p, D=4e8, losses=[y - 0.1 for y in p["losses"]]) for p in hyper["per_size"]]
    more[0]["losses"][-1] = 9.0  # diverged at the largest rate
    hyper["per_size"] += more
    json.dump(doc, open(path, "w"))
    drawn, _ = draw_all(plots.load_inputs([], fit_path=path), tmp_path)
    fig7 = drawn["fig7_lr_transfer"]
    ax = next(a for a in fig7.figure.axes if a.get_visible())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(labels) == 6 and len(set(labels)) == 6 and all(", D " in t for t in labels)
    assert ax.get_ylim()[1] < 9.0 and ax.get_ylim()[1] > max(max(p["losses"]) for p in hyper["per_size"][:3])
    assert any("clipped" in n for n in fig7.notes)
    close(drawn)
