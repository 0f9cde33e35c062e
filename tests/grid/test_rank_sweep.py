"""The built-in rank-sweep grid: dense and LowRank at three kept shares, five or more widths, IsoFLOP budgets,
one muP learning rate, in the shape the law across shares (fit/share.py) needs."""

from __future__ import annotations

import dataclasses

import numpy as np

from scalelab import structures
from scalelab.grid import Grid, builtin_grids


def test_the_builtin_rank_sweep_grid_spans_shares_widths_and_budgets():
    assert "rank-sweep" in builtin_grids()
    runs = Grid.load("rank-sweep").runs()
    widths = sorted({r.model.d_model for r in runs})
    assert len(widths) >= 5 and widths[-1] / widths[0] >= 3
    kinds = {r.model.ffn.kind for r in runs}
    assert kinds == {"dense", "lowrank"}
    # the shares each run really keeps (integer ranks), as `fit --share-col config` derives them
    shares = {
        (r.model.d_model, round(structures.ffn_fraction(r.model.ffn, r.model.d_model, r.model.ffn_width), 3))
        for r in runs
        if r.model.ffn.kind != "dense"
    }
    for d in widths:
        at = sorted(f for w, f in shares if w == d)
        assert len(at) == 3 and at[0] < 0.25 and at[-1] < 1, (d, at)  # three distinct shares below dense
        assert np.all(np.diff(at) > 0.1), (d, at)
    # IsoFLOP: every run trains the same FLOP budgets as WSD branches; one rate, muP, for all
    assert all(r.train.schedule == "wsd" and len(r.train.budgets) == 4 for r in runs)
    assert {r.model.param for r in runs} == {"mup"} and len({r.train.lr for r in runs}) == 1
    assert len(runs) == len({(r.model.variant, r.model.d_model) for r in runs}) == 4 * len(widths)


def test_the_demo_under_mup_is_the_demo_with_only_the_parametrisation_and_rate_changed():
    demo, mup = Grid.load("demo").runs(), Grid.load("demo-mup").runs()
    assert len(demo) == len(mup) == 14
    for a, b in zip(demo, mup):
        assert b.model.param == "mup" and a.model.param == "sp"
        assert dataclasses.replace(b.model, param="sp") == a.model  # same shapes, structures and ranks
        assert b.train.lr == 2e-3 and a.train.lr == 3e-3
        assert dataclasses.replace(b.train, lr=a.train.lr) == a.train  # same budgets, schedule, batch, eval
