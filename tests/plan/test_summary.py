"""PlanResult.summary() and the other plan summaries: what `scalelab plan` prints, as sections of rows and notes,
rendered to text, Markdown and HTML with names as data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scalelab.fit import fit_laws
from scalelab.numfmt import si
from scalelab.plan import plan_budget, sweep
from scalelab.plan.results import VariantPlan
from scalelab.plan.summary import _plan_cells, budgets_summary, lr_summary

HOSTILE = "<i>v</i>|*w*"


def synthetic(A: float, seed: int, group: str) -> pd.DataFrame:
    """One run per (N, D) from a Chinchilla law with 1% log-normal noise."""
    rng = np.random.default_rng(seed)
    rows = [
        {"N": N, "D": N * t, "run": f"{group}-{N:.0e}-{t}", "group": group}
        for N in (2e7, 5e7, 1e8, 2e8, 5e8, 1e9)
        for t in (5, 10, 20, 40, 80)
    ]
    df = pd.DataFrame(rows)
    law = 1.8 + A / df["N"] ** 0.34 + 2000.0 / df["D"] ** 0.37
    return df.assign(loss=law * np.exp(0.01 * rng.standard_normal(len(df))))


@pytest.fixture(scope="module")
def fit_path(tmp_path_factory):
    df = pd.concat([synthetic(400.0, 1, "dense"), synthetic(500.0, 2, HOSTILE)])
    fit = fit_laws(df, n_col="N", d_col="D", loss_col="loss", run_col="run", by=["group"], bootstrap=30, seed=0)
    return fit.to_json(tmp_path_factory.mktemp("plan") / "f.json")


def test_plan_summary_rows_and_notes(fit_path):
    r = plan_budget(fit_path, 1e21)
    s = r.summary()
    (table,) = [sec for sec in s.sections if sec.columns]
    assert f"at {r.C:.3g} FLOPs" in table.title and str(fit_path) in table.title
    assert [row[1] for row in table.rows] == [p.variant for p in r.plans]
    col = table.columns.index("params [N_opt int.]")
    for row, p in zip(table.rows, r.plans):  # a 6ND fit: no shapes, the ideal N_opt with its interval
        assert row[col] == f"{si(p.N_opt)}\n[{si(p.N_int[0])}, {si(p.N_int[1])}]"
    notes = [n.text for n in table.notes]
    assert f"P({r.plans[0].variant} beats {r.plans[1].variant}) = {r.p_beats:.3g} over bootstrap samples" in notes[0]
    assert [n.text for n in table.notes if n.label == "warning:"] == r.warnings


def test_plan_summary_html_and_markdown_keep_names_as_data(fit_path):
    s = plan_budget(fit_path, 1e21).summary()
    assert "<i>v</i>" not in s.html() and "&lt;i&gt;v&lt;/i&gt;|*w*" in s.html()
    assert "\\<i\\>v\\</i\\>\\|\\*w\\*" in s.markdown()
    assert HOSTILE in s.text()


def test_budgets_summary_one_row_per_variant_and_budget(fit_path):
    df = sweep(fit_path, 1e19, 1e21, 3)
    (sec,) = budgets_summary(df, fit_path).sections
    assert len(sec.rows) == len(df) == 6
    assert [row[1] for row in sec.rows] == [f"{c:.3g}" for c in df["C"]]
    assert sec.rows[0][2].startswith(si(df["N_opt"].iloc[0]))


def test_lr_summary_says_why_then_the_lr_per_size():
    lr = {"lr": 0.004, "lo": 0.002, "hi": 0.008, "extrapolated": False}
    rows = [{"N": 1e6, "D": 2e8, "d_model": 64, "lr_measured": 0.004, "at_edge": True, "lr": lr, "batch": None}]
    sweeps = [{"variant": "all", "why": "3 points for 3 parameters", "rows": rows, "lines": ["all: lr law"]}]
    why, table = lr_summary(sweeps, "f.json").sections
    assert [n.text for n in why.notes] == ["no loss-based plan for all: loss law not fitted: 3 points for 3 parameters"]
    assert table.rows == [["all", "64", "1M", "200M", "0.004 (edge)", "0.004\n[0.002, 0.008]"]]
    assert "batch tokens (law) [interval]" not in table.columns and [n.text for n in table.notes] == ["all: lr law"]
    rows[0]["batch"] = {"batch": 2.5e5, "lo": math.nan, "hi": math.nan, "extrapolated": True}
    (_, table) = lr_summary(sweeps, "f.json").sections
    assert table.columns[-1] == "batch tokens (law) [interval]" and table.rows[0][-1] == "250K (ext.)"


def test_plan_cells_bracket_each_interval_and_say_when_one_is_withheld():
    nan = (math.nan, math.nan)
    p = VariantPlan(
        "dense", "g", "chinchilla", 1e19, 1e8, (9e7, 1.1e8), 2e9, nan, 20.0, (18.0, 22.0), 3.0, (2.9, 3.1), (2.8, 3.2)
    )
    cells = _plan_cells(p, 0.0)
    assert cells[2:6] == ["100M\n[90M, 110M]", "2B\n(no interval)", "20\n[18, 22]", "3.000 [2.900, 3.100]"]
