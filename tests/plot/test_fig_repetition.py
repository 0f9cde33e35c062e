"""Loss against epochs at fixed unique data (fig10, plot/fig_repetition.py and plot/shape/repetition.py): the
curves are the fitted repetition law at each (U, N) with the percentiles of its draws, the runs sit at their
own epochs, the figure draws into a caller's axes, and fits without the law are skipped with the reason."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from scalelab import plot as plots  # noqa: E402
from scalelab.fit import fit_laws  # noqa: E402
from scalelab.fit import repetition as R  # noqa: E402
from scalelab.fit.bootstrap import percentile_interval  # noqa: E402
from scalelab.plot.shape import repetition as shape  # noqa: E402

PAPER = dict(E=1.869, A=520.8, B=1487.7, alpha=0.3527, beta=0.3527, R_D_star=15.39, R_N_star=5.31)
COLS = dict(n_col="N", d_col="D", loss_col="loss", run_col="run")


def _runs() -> pd.DataFrame:
    """Single-epoch runs, and three (U, N) settings repeated 2 to 40 times (five with the 3e8 one, three
    otherwise) plus one setting repeated once only (U = 1e8 at N = 1e7, two epochs)."""
    rows = [(N, N * t, N * t) for N in (1e7, 3e7, 1e8, 3e8) for t in (20, 40, 80)]
    rows += [(3e7, 3e7 * 5 * ep, 3e7 * 5) for ep in (2, 5, 12, 25, 40)]
    rows += [(N, N * 5 * ep, N * 5) for N in (1e8, 3e8) for ep in (3, 9, 27)]
    rows += [(1e7, 2e8, 1e8)]
    df = pd.DataFrame(rows, columns=["N", "D", "U"])
    noise = np.exp(np.random.default_rng(0).normal(0, 0.01, len(df)))
    return df.assign(loss=R.predict(PAPER, df.N, df.D, df.U) * noise, run=[f"r{i}" for i in range(len(df))])


@pytest.fixture(scope="module")
def fit_path(tmp_path_factory):
    f = fit_laws(_runs(), unique_col="U", bootstrap=16, seed=0, **COLS)
    assert f["all"].form == "repetition"
    return str(f.to_json(tmp_path_factory.mktemp("rep") / "rep.json"))


def _ctx(path: str):
    inputs = plots.load_inputs([], fit_path=path)
    vs = inputs.variants()
    return plots.Context(inputs, colors=plots.variant_colors(vs), markers=plots.variant_markers(vs))


def test_curves_are_the_law_and_its_draws_and_runs_sit_at_their_epochs(fit_path):
    ctx = _ctx(fit_path)
    (p,) = shape.panels(ctx, max_curves=3)
    g, df = ctx.fit["all"], _runs()
    # the three settings with the most repeated runs, in order of U; the once-repeated U = 1e8 left out
    assert [(c.U, c.N) for c in p.curves] == [(1.5e8, 3e7), (5e8, 1e8), (1.5e9, 3e8)]
    assert any("points drawn" in n for n in p.notes)
    draws = g.sample_arrays(R.PARAMS)
    for c in p.curves:
        assert c.epochs[0] == 1 and c.epochs[-1] >= shape.MIN_EPOCHS_SHOWN
        assert np.allclose(c.loss, R.predict(g.params, c.N, c.epochs * c.U, c.U))
        s = R.predict({k: v[:, None] for k, v in draws.items()}, c.N, c.epochs[None, :] * c.U, c.U)
        lo, hi = percentile_interval(s, ctx.fit.level, axis=0)
        assert np.allclose(c.lo, lo) and np.allclose(c.hi, hi)
        assert np.all(c.as_new <= c.loss + 1e-12) and c.as_new[-1] < c.loss[-1]  # repetition costs loss
        mine = df[np.isclose(df.U, c.U) & np.isclose(df.N, c.N)]
        assert sorted(c.points["epochs"]) == pytest.approx(sorted(mine.D / mine.U))
        assert sorted(c.points["loss"]) == pytest.approx(sorted(mine.loss))


def test_figure_and_panel_into_a_callers_axes(fit_path):
    import matplotlib.pyplot as plt

    from scalelab.plot.fig_repetition import epochs_panel, loss_vs_epochs

    ctx = _ctx(fit_path)
    fig = loss_vs_epochs(ctx)
    (ax,) = [a for a in fig.axes if a.get_visible() and a.lines]
    laws = [ln for ln in ax.lines if (ln.get_gid() or "").startswith("law:")]
    assert len(laws) == shape.MAX_CURVES and ax.get_xscale() == "log"
    fig2, (left, right) = plt.subplots(1, 2)
    assert epochs_panel(ctx, ax=right) is right and not left.lines and right.get_legend() is not None
    plt.close("all")


def test_built_by_plot_and_skipped_without_the_law(fit_path, tmp_path):
    only = ["fig10_loss_vs_epochs"]
    ((name, _, fig, why, _),) = plots.build(plots.load_inputs([], fit_path=fit_path), only=only)
    assert fig is not None and not why
    df = _runs()
    plain = fit_laws(df[df.D == df.U], bootstrap=4, **COLS)  # single-epoch runs: the chinchilla law
    path = str(plain.to_json(tmp_path / "plain.json"))
    with pytest.raises(plots.Skip, match="repetition"):
        shape.panels(_ctx(path))


def test_a_fit_without_unique_tokens_per_point_is_skipped(fit_path):
    ctx = _ctx(fit_path)
    ctx.fit["all"].diagnostics.pop(R.POINT_U)  # a fit file written before the fit recorded them
    with pytest.raises(plots.Skip, match="unique tokens per point"):
        shape.panels(ctx)


@pytest.mark.parametrize("width,style_name", [("single", "slides"), ("double", "paper")])
def test_text_inside_and_apart(fit_path, width, style_name):
    import matplotlib.pyplot as plt

    from .test_figures import assert_text_inside_and_apart

    inputs = plots.load_inputs([], fit_path=fit_path)
    ((name, _, fig, _, _),) = plots.build(inputs, width=width, style_name=style_name, only=["fig10_loss_vs_epochs"])
    assert_text_inside_and_apart(name, fig)
    plt.close(fig)
