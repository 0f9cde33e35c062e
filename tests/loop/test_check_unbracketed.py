"""An IsoFLOP set whose loss still falls toward its smallest (or largest) size does not bracket its optimum: a
parabola's vertex beyond the sizes trained is not an observation, so `scalelab check` gives it no observed
optimum, no ratio and no verdict, and names the run one size step beyond that edge that would bracket it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.fit import fit_laws

TRUE = dict(E=1.8, A=400.0, alpha=0.34, B=2000.0, beta=0.37)
C_SET = 3e19


def law(N, D):
    return TRUE["E"] + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / D ** TRUE["beta"]


def true_opt(C: float) -> float:
    N = np.geomspace(1e6, 1e12, 200001)
    return float(N[np.argmin(law(N, C / (6 * N)))])


def iso_set(name: str, sizes: np.ndarray) -> list[dict]:
    return [{"N": N, "D": C_SET / (6 * N), "loss": law(N, C_SET / (6 * N)), "run": f"{name}-{N:.3g}"} for N in sizes]


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    d = tmp_path_factory.mktemp("unbracketed")
    rng = np.random.default_rng(0)
    rows = [
        {"N": N, "D": N * t, "loss": law(N, N * t) * np.exp(0.005 * rng.standard_normal()), "run": f"fit-{N:.0e}-{t}"}
        for N in (2e7, 5e7, 1e8, 2e8, 5e8)
        for t in (5, 10, 20, 40, 80)
    ]
    fit = fit_laws(pd.DataFrame(rows), n_col="N", d_col="D", loss_col="loss", run_col="run", bootstrap=30)
    fit.to_json(d / "f.json")
    opt = true_opt(C_SET)
    steps = 2.0 ** np.arange(4)
    # three sets at one budget would be one IsoFLOP slice: the three sets are three CSV files, checked one by one
    for name, sizes in (("big", opt * 4 * steps), ("small", opt / 32 * steps), ("around", opt / 2 * steps)):
        pd.DataFrame(iso_set(name, sizes)).to_csv(d / f"{name}.csv", index=False)
    return d, opt


def check_json(d, name):
    r = CliRunner().invoke(app, ["check", "--fit", str(d / "f.json"), str(d / f"{name}.csv"), "--json"])
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)["isoflop"]
    return row


@pytest.mark.parametrize("name, side, edge", [("big", "below", min), ("small", "above", max)])
def test_unbracketed_set_gets_no_observed_optimum_and_no_verdict(checked, name, side, edge):
    d, opt = checked
    row = check_json(d, name)
    sizes = pd.read_csv(d / f"{name}.csv")["N"].to_numpy()
    assert not row["bracketed"] and row["side"] == side
    assert row["N_obs"] is None and row["ratio"] is None and row["covered"] is None
    assert row["edge_N"] == pytest.approx(edge(sizes))
    assert "not bracketed" in row["how"] and f"{'smallest' if side == 'below' else 'largest'} size" in row["how"]
    # the suggested run: one step (the set's spacing, 2x) beyond the edge, at the set's budget (C = 6ND here)
    step = 0.5 if side == "below" else 2.0
    assert row["next_N"] == pytest.approx(edge(sizes) * step, rel=1e-9)
    assert 6 * row["next_N"] * row["next_D"] == pytest.approx(C_SET, rel=1e-9)

    r = CliRunner().invoke(app, ["check", "--fit", str(d / "f.json"), str(d / f"{name}.csv")])
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    line = text[text.index("IsoFLOP set") :]
    assert "not bracketed" in line and f"lies {side} it" in line and f"(N ~ {row['next_N']:.3g}," in line
    assert "OUTSIDE" not in line and "inside the interval" not in line and "observed optimum N =" not in line


def test_bracketed_set_is_still_compared(checked):
    d, opt = checked
    row = check_json(d, "around")
    assert row["bracketed"] and row["side"] == ""
    assert row["N_obs"] == pytest.approx(opt, rel=0.3)
    assert row["ratio"] == pytest.approx(row["N_obs"] / row["N_pred"]) and isinstance(row["covered"], bool)


def test_report_rows_give_no_ratio_or_verdict_to_an_unbracketed_set(checked):
    from scalelab.fit.results import load_fit
    from scalelab.loop.check import check_fit
    from scalelab.report.check import Checked, check_section

    d, _ = checked
    res = check_fit(load_fit(d / "f.json"), [str(d / "big.csv")])
    html = check_section(Checked(paths=[str(d / "big.csv")], result=res))
    iso = html.split("per IsoFLOP set</caption>")[1].split("</table>")
    row = iso[0].split("<tbody>")[1]
    assert "not bracketed" in row and "x</td>" not in row and "NO</td>" not in row and "yes</td>" not in row
    assert "lies below it" in iso[1] and f"(N ~ {res.isoflop['next_N'][0]:.3g}," in iso[1]
