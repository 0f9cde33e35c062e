"""The figure registry, composable panels (ax=None or a caller's axes), and the fitted points taken from the
fit itself (FitResults.points), not re-derived from the raw files."""

from __future__ import annotations

from .helpers import write_fit, write_runs
from .test_lr_transfer import write_sweep


def test_registry_lists_each_figure_once_with_what_it_needs_and_build_follows_it(tmp_path):
    import matplotlib.pyplot as plt

    from scalelab import plot as plots
    from scalelab.plot import registry

    names = registry.names()
    numbers = [int(n[3:].split("_")[0]) for n in names]  # fig1_..., fig10_...: listed in figure order
    assert len(names) == len(set(names)) == 10 and numbers == list(range(1, 11))
    for f in registry.FIGURES:
        assert callable(f.draw) and f.description and f.needs
    runs = write_runs(str(tmp_path / "runs"), variants=("dense",), widths=(32, 48), ratios=(10, 20))
    built = []
    for name, _, fig, _, _ in plots.build(plots.load_inputs(runs)):
        built.append(name)
        if fig is not None:
            plt.close(fig)
    assert built == names


def test_single_panel_figures_draw_into_a_callers_axes_or_their_own(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scalelab import plot as plots
    from scalelab.plot.fig_fit import residual_panel
    from scalelab.plot.fig_loss import loss_vs_flops

    runs = write_runs(str(tmp_path / "runs"))
    inputs = plots.load_inputs(runs, fit_path=write_fit(str(tmp_path / "fits")))
    vs = inputs.variants()
    ctx = plots.Context(inputs, colors=plots.variant_colors(vs), markers=plots.variant_markers(vs))
    fig, (left, right) = plt.subplots(1, 2)
    assert loss_vs_flops(ctx, ax=right) is fig
    assert not left.lines and right.lines and right.get_legend() is not None  # its legend in its own axes
    assert any((ln.get_gid() or "").startswith("variant:") for ln in right.lines)  # the fitted L*(C)
    ax = residual_panel(ctx)  # no axes given: a figure of its own
    assert ax.figure is not fig and len(ax.collections) >= 2
    plt.close("all")


def test_fitted_points_are_the_fits_own_and_curves_keep_the_swept_ones(tmp_path):
    """A sweep fit keeps the best learning rate per (size, budget) (the envelope): the figures' fitted points
    are those it used, while the training curves still show every swept run."""
    from typer.testing import CliRunner

    from scalelab import plot as plots
    from scalelab.cli import app

    paths = write_sweep(str(tmp_path / "runs"))
    fit = str(tmp_path / "f" / "s.json")
    r = CliRunner().invoke(app, ["fit", *paths, "--out", fit, "--bootstrap", "0"])
    assert r.exit_code == 0, r.output
    inputs = plots.load_inputs(paths, fit_path=fit)
    assert len(inputs.points) == sum(g.n_points for g in inputs.fit)
    assert inputs.points["fitted"].all() and not inputs.all_points["fitted"].all()
    assert len(inputs.all_points) == len(inputs.fit.points)
    assert set(inputs.points["variant"]) == {g.variant for g in inputs.fit}
