"""The bootstrap's interval policy (scalelab/fit/bootstrap.py): a percentile range that measures no error, or a
difference that rests on one, is withheld with its reason, never printed as an interval or a verdict."""

import numpy as np
import pandas as pd
from refusal import refused
from typer.testing import CliRunner

from fit.conftest import synthetic
from scalelab.cli import app
from scalelab.fit import FitSpec, fit_laws
from scalelab.fit.bootstrap import bootstrap_interval, compare, intervals, no_spread, not_an_interval

runner = CliRunner()


def test_a_zero_width_range_is_not_an_interval_but_one_that_never_ends_is():
    assert "gave the same value" in no_spread(0.5, 0.5, 100)
    assert no_spread(0.5, 0.5 + 1e-6, 100) is None
    conf, withheld = intervals({"A": np.full(50, 3e-12), "E": np.linspace(2.9, 3.1, 50)}, {"A": 3e-12, "E": 3.0})
    assert list(conf) == ["E"] and "gave the same value" in withheld["A"]["why"]
    # an end never reached (inf) is an outcome: the range is open, not empty
    assert not_an_interval(1.0, np.inf, 2.0, 100, 100) is None and no_spread(np.inf, np.inf, 100) is None
    assert bootstrap_interval(np.r_[np.full(90, 0.5), np.full(10, np.inf)], 0.5) == ([0.5, np.inf], None)


def test_a_difference_without_an_interval_gives_no_verdict():
    rng = np.random.default_rng(0)
    a = {"alpha": np.full(200, 0.3), "beta": 0.30 + 0.01 * rng.standard_normal(200)}
    b = {"alpha": np.full(200, 0.5), "beta": 0.40 + 0.01 * rng.standard_normal(200)}
    out = compare("a", a, {"alpha": 0.3, "beta": 0.3}, "b", b, {"alpha": 0.5, "beta": 0.4})
    assert "d_alpha" not in out and "no 95% interval for d_alpha" in out["verdict"]
    assert "more steeply than a in N" not in out["verdict"]  # d_alpha = 0.2 [0.2, 0.2] is no evidence
    assert out["d_beta"][1] > 0 and "b scales more steeply than a in D" in out["verdict"]


def test_groups_of_one_run_get_no_intervals_and_no_comparison():
    # one run per group, each with several checkpoints: every run-level resample is that run
    df = pd.concat([synthetic(seed=s, group=g) for s, g in ((1, "x"), (2, "y"))])
    df["run"] = df["group"]
    res = fit_laws(df, FitSpec(n_col="N", d_col="D", loss_col="loss", run_col="run", by=("group",)), bootstrap=30)
    for g in res:
        assert g.conf_int == {} and g.samples is None
        assert any("one run to resample" in w for w in g.warnings), g.warnings
    assert not res.comparisons


def test_a_fixed_e_above_the_losses_is_refused(tmp_path):
    p = tmp_path / "runs.csv"
    synthetic().to_csv(p, index=False)
    out = tmp_path / "fit.json"
    refused(runner.invoke(app, ["fit", str(p), "--fix", "E=10", "--out", str(out)]), "--fix E=10", "smaller E")
    assert not out.exists()
