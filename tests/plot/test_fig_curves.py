"""The curve-law figure (scalelab/plot/fig_curves.py, data from plot/shape/curves.py): the law along every
run's schedule, held-out branches marked, the residual along the curve; skipped without a curve law."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from fit.test_curves import write_runs  # run files whose val_loss follows a known annealing-area law
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.fit import curves
from scalelab.plot.index import build
from scalelab.plot.inputs import load_inputs
from scalelab.plot.shape.context import Skip
from scalelab.plot.shape.curves import curve_law

runner = CliRunner()
NAME = "fig9_curve_law"


@pytest.fixture(scope="module")
def law(tmp_path_factory):
    """Runs of 4 widths and their curve law fitted without the held-out branches (no resamples)."""
    tmp = tmp_path_factory.mktemp("fc")
    d = write_runs(tmp)
    for f in d.glob("*.parquet"):  # the columns the plot's run reader wants besides the curve fit's
        df = pd.read_parquet(f)
        df.assign(tokens=df["step"] * 512, flops=6 * df["params"] * df["step"] * 512).to_parquet(f)
    out = tmp / "c.curves.json"
    args = ["fit", str(d), "--curves", "--holdout-branches", "--bootstrap", "0", "--loss", "lsq", "--out", str(out)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return d, out


def _draw(d, cpath):
    inputs = load_inputs([str(p) for p in sorted(d.glob("*.parquet"))])
    inputs.curves = cpath  # as `plot --fit NAME.curves.json` gives it
    return next(build(inputs, only=[NAME]))


def _gid_points(fig, prefix):
    return [c for ax in fig.axes for c in ax.collections if (c.get_gid() or "").startswith(prefix)]


def test_law_drawn_through_every_run_with_held_out_branches_marked(law):
    d, cpath = law
    name, _, fig, skipped, notes = _draw(d, cpath)
    assert fig is not None, skipped
    pts, _ = curves.read_curves(sorted(d.glob("*.parquet")), ["variant"])
    late = pts["step"] >= 0.2 * pts.groupby("run")["step"].transform("max")
    held = curves.held_out_branches(pts) & late
    curve_ax, resid_ax = fig.axes[0], fig.axes[1]
    n_held = sum(len(c.get_offsets()) for c in _gid_points(fig, "held:") if c.axes is curve_ax)
    assert n_held == int(held.sum()) > 0  # every held-out branch point hollow, nothing else
    # a law line per run and schedule (4 runs x trunk + 2 branches), each ending at its schedule's last point
    lines = [ln for ln in curve_ax.get_lines() if ln.get_gid() == "law:dense"]
    assert len(lines) == 4 * 3
    ends = sorted(int(ln.get_xdata()[-1]) for ln in lines)
    assert ends == sorted(pts.groupby(["run", "budget"])["step"].max().astype(int))
    # the residual panel: (obs - pred) / pred in percent at each point, near 0 for losses that follow the law
    res = np.concatenate([c.get_offsets()[:, 1] for c in _gid_points(fig, "") if c.axes is resid_ax])
    assert len(res) == len(pts) and np.abs(res).max() < 1.0
    assert any("held-out branch finals" in n for n in notes)


def test_law_lines_follow_the_fitted_law(law):
    """The drawn line of a branch is the law at its steps along that branch's own schedule."""
    d, cpath = law
    fig = _draw(d, cpath)[2]
    f = curves.load_curves(cpath).fits["dense"]
    cfg = json.loads(pd.read_parquet(d / "r24.parquet")["config"].iloc[0])
    budgets = sorted(cfg["train"]["budgets"])
    sched = curves.run_schedules("r24", json.dumps(cfg), budgets)
    lr, warmup = sched[budgets[0]]
    line = next(ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "law:dense" and ln.get_xdata()[-1] == len(lr))
    want = f.predict(400.0 * 24**2, lr, np.asarray(line.get_xdata(), int), warmup)
    np.testing.assert_allclose(line.get_ydata(), want, rtol=1e-12)


def test_skipped_with_a_reason_without_a_curve_law(law):
    d, _ = law
    inputs = load_inputs([str(p) for p in sorted(d.glob("*.parquet"))])
    _, _, fig, skipped, _ = next(build(inputs, only=[NAME]))
    assert fig is None and "needs a curve law" in skipped


def test_curve_law_found_beside_the_fit_file(law, tmp_path):
    _, cpath = law
    (tmp_path / "demo.curves.json").write_text(cpath.read_text())
    ctx = SimpleNamespace(inputs=SimpleNamespace(), fit=SimpleNamespace(path=tmp_path / "demo.json"))
    assert set(curve_law(ctx).fits) == {"dense"}
    ctx.fit.path = tmp_path / "other.json"
    with pytest.raises(Skip):
        curve_law(ctx)


def test_a_csv_fitted_law_is_drawn_through_its_rows(tmp_path):
    """A law fitted on a CSV (Gemstones-like: constant-lr checkpoints, cooldown ends) is drawn from the CSV
    given to plot, rebuilt with the schedule and branch options the curves file recorded; its held-out
    cooldown ends are the ones the fit held out."""
    from fit.test_curves_csv import DESC, gemstones_like

    p = gemstones_like(tmp_path)
    pd.read_csv(p).assign(D=lambda t: 1000.0 * t["step"]).to_csv(p, index=False)  # tokens: plot's table reader
    out = tmp_path / "g.curves.json"
    args = ["fit", str(p), "--curves", "--holdout-branches", "--schedule", DESC.replace("0.1,", "0.0909,")]
    args += ["--branch-col", "group=hot:cool_end", "--bootstrap", "0", "--loss", "lsq", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    inputs = load_inputs([str(p)])
    inputs.curves = out
    _, _, fig, skipped, _ = next(build(inputs, only=[NAME]))
    assert fig is not None, skipped
    n_held = sum(len(c.get_offsets()) for c in _gid_points(fig, "held:") if c.axes is fig.axes[0])
    sel = json.loads(out.read_text())["groups"]["all"]["selection"]["forms"]["annealing-area"]
    assert n_held == sel["n_finals"] == 24
    assert [ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "law:all"]


def test_plot_command_takes_the_curve_law_as_fit_or_among_the_inputs(law, tmp_path):
    d, cpath = law
    runs = [str(p) for p in sorted(d.glob("*.parquet"))]
    for args in (["--fit", str(cpath)], [str(cpath)]):
        out = tmp_path / ("as-fit" if args[0] == "--fit" else "positional")
        r = runner.invoke(app, ["plot", *runs, *args, "--out", str(out), "--format", "png"])
        assert r.exit_code == 0, r.output
        assert (out / f"{NAME}.png").is_file(), r.output
    inputs = load_inputs(runs, fit_path=str(cpath))
    assert inputs.fit is None and any(s.kind == "curves" for s in inputs.sources)
