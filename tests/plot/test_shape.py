"""The data-shaping layer (scalelab.plot.shape) works with matplotlib unimportable, and gives the numbers
the figures draw: each test runs its body in a subprocess where `import matplotlib` fails."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from .helpers import LAWS, write_fit, write_runs

BLOCK = "import sys; sys.modules['matplotlib'] = None\n"


def run_blocked(body: str) -> dict:
    """Run `body` (which sets `out`, a JSON-able dict) with matplotlib blocked; return `out`."""
    code = BLOCK + textwrap.dedent(body) + "\nimport json; print(json.dumps(out))\n"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_the_block_is_real():
    """The subprocess really cannot import matplotlib (else the tests below prove nothing)."""
    code = BLOCK + "import matplotlib\n"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode != 0 and "matplotlib" in res.stderr


def test_every_shape_module_imports_without_matplotlib():
    out = run_blocked(
        """
        import importlib, pkgutil
        import scalelab.plot.shape as shape
        names = [m.name for m in pkgutil.iter_modules(shape.__path__)]
        for n in names:
            importlib.import_module(f"scalelab.plot.shape.{n}")
        import scalelab.plot.palette, scalelab.plot.laws, scalelab.plot.inputs
        out = {"modules": names}
        """
    )
    assert {"context", "fitread", "runs", "frontier", "slices", "points", "params", "compute", "sweep"} <= set(
        out["modules"]
    )


def test_fit_shapes_computed_without_matplotlib(tmp_path):
    """Differences oriented as variant - dense, residuals with held-out points at the refit's prediction,
    slices and the L*(C) band, all from a fit and its runs with matplotlib blocked."""
    runs = write_runs(str(tmp_path / "runs"))
    fit = write_fit(str(tmp_path / "fits"))
    out = run_blocked(
        f"""
        import numpy as np
        from scalelab.plot.inputs import load_inputs
        from scalelab.plot.shape import frontier, params, points, slices
        from scalelab.plot.shape.context import Context
        ctx = Context(inputs=load_inputs({runs!r}, fit_path={fit!r}))
        d = params.differences(ctx, ctx.groups(("chinchilla",)))
        r = points.residuals(ctx, ctx.groups())
        lay = slices.params_layout(ctx)
        x, y, lo, hi, ex = frontier.frontier(ctx, "dense", np.logspace(9, 13, 20))
        out = dict(
            d_alpha=d["lowrank-25"]["alpha"],
            n_held=int(r["held_out"].sum()),
            rel_max=float(r.loc[~r["held_out"], "rel"].abs().max()),
            n_slices=len(lay.sl.values), kind=lay.sl.kind,
            band_ok=bool(np.all(lo <= y) and np.all(y <= hi)),
        )
        """
    )
    est, lo, hi = out["d_alpha"]
    assert abs(est - (LAWS["lowrank-25"]["alpha"] - LAWS["dense"]["alpha"])) < 1e-9 and lo < est < hi
    assert out["n_held"] == 6  # the largest width x 3 ratios of each variant
    assert out["rel_max"] < 1.0  # synthetic points on the law, within their noise (percent)
    assert out["kind"] == "ratio" and out["n_slices"] == 3
    assert out["band_ok"]


def test_wsd_curves_and_run_config_parsed_without_matplotlib():
    out = run_blocked(
        """
        import json
        import pandas as pd
        from scalelab.plot.shape.runs import cooldown_fraction, curves
        rows = [dict(step=s, tokens=s * 100, flops=6e4 * s, val_loss=5.0 - 0.1 * s, final=s == 10, budget=1000)
                for s in range(1, 11)]
        rows.append(dict(step=5, tokens=500, flops=3e5, val_loss=4.2, final=True, budget=500))
        r = pd.DataFrame(rows)
        r["config"] = json.dumps({"train": {"cooldown": 0.2}})
        c = curves(r, r, "flops")
        bad = r.assign(config="{not json")
        out = dict(n=len(c), branch_x=[float(v) for v in c[1][0]], cool=cooldown_fraction(r),
                   cool_bad=cooldown_fraction(bad))
        """
    )
    assert out["n"] == 2 and out["cool"] == 0.2 and out["cool_bad"] == 0.0
    assert out["branch_x"] == [3e5 * 0.8, 3e5]  # the branch forks a cooldown (20%) before its end


def test_multiplier_marks_without_matplotlib():
    """Multiplier rows laid out as marks: variants side by side, 'never' as an open top, unreachable listed."""
    out = run_blocked(
        """
        from types import SimpleNamespace as NS
        from scalelab.fit.records import MultiplierRow
        from scalelab.plot.shape.compute import multiplier_marks
        ctx = NS(variant_of=lambda g: g)
        rows = [MultiplierRow(C=1e18, est=0.5, lo=0.4, hi=0.6),
                MultiplierRow(C=1e19, est=0.7, lo=0.5, hi=float("inf"), extrapolated=True),
                MultiplierRow(C=1e20)]
        m = multiplier_marks(ctx, [("b", "a", rows)])
        out = dict(n=len(m.marks), open=len(m.open_top), unreachable=m.unreachable, ex=m.any_extrapolated,
                   top=m.top, bottom=m.bottom, refs=m.refs, x=[p.x for p in m.marks])
        """
    )
    assert out["n"] == 2 and out["open"] == 1 and out["unreachable"] == ["b at 1.0e+20"]
    assert out["ex"] and out["refs"] == ["a"]
    assert out["top"] == 2.0 and out["bottom"] == 0.2  # 2x the largest of parity (1) and the values, half the least
    assert out["x"] == [1e18, 1e19]  # one comparison: no offset
