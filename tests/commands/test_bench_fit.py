"""`scalelab bench fit`: bad input is refused in one line before anything is timed or written (the timing
itself runs only as the benchmark, never here)."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from scalelab.cli import app

runner = CliRunner()


def test_missing_multi_group_data_is_refused_before_timing(tmp_path):
    out = tmp_path / "out"
    r = runner.invoke(app, ["bench", "fit", "--multi-data", str(tmp_path / "nope.csv"), "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert "nope.csv" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not out.exists()


def test_multi_group_data_without_the_group_column_is_refused(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("N,D,C,loss,run\n1e7,1e9,6e16,3.0,a\n")
    out = tmp_path / "out"
    r = runner.invoke(app, ["bench", "fit", "--multi-data", str(bad), "--out", str(out)])
    assert r.exit_code == 2 and "group" in r.output, r.output
    assert not out.exists()


def test_non_positive_resamples_are_refused(tmp_path):
    r = runner.invoke(app, ["bench", "fit", "--bootstrap", "0", "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "--bootstrap" in r.output, r.output


def test_reference_check_compares_the_three_searches_on_the_same_resamples():
    from fit.conftest import synthetic

    from scalelab.bench import fit as BF
    from scalelab.fit import FitSpec, fit_laws

    df = pd.concat([synthetic(seed=1, group="a"), synthetic(seed=2, alpha=0.3, group="b")])
    df["C"] = 6 * df["N"] * df["D"]
    spec = FitSpec(n_col="N", d_col="D", c_col="C", loss_col="loss", run_col="run", by=("group",))
    same = BF.reference_check(df, spec, n_boot=40, ref_starts=3, check_starts=3, n_seeds=2)
    # one row per seed and group; a search compared with itself on the same resamples differs by nothing
    assert [(r["seed"], r["group"]) for r in same["rows"]] == [(0, "a"), (0, "b"), (1, "a"), (1, "b")]
    assert same["max_ref_vs_check"] == 0.0
    assert all(r["ours_vs_ref"] == r["ours_vs_check"] for r in same["rows"])
    # the seed-1 differences are those of separate fits at that seed
    ours = fit_laws(df, spec, bootstrap=40, seed=1)
    ref = fit_laws(df, spec, bootstrap=40, seed=1, n_starts=3)
    want = max(
        abs(ours[g].conf_int[p][i] - ref[g].conf_int[p][i])
        for g in "ab"
        for p in ("E", "alpha", "beta")
        for i in (0, 1)
    )
    assert max(r["ours_vs_ref"] for r in same["rows"] if r["seed"] == 1) == want


@pytest.mark.parametrize("n", ["0", "-3"])
def test_non_positive_ref_starts_are_refused_before_timing(n, tmp_path):
    # 0 used to end, after the timings, in a ZeroDivisionError from bench.fit.grid_starts
    out = tmp_path / "out"
    args = ["bench", "fit", "--ref-starts", n, "--bootstrap", "20", "--repeats", "1", "--no-curves", "--out", str(out)]
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert "--ref-starts" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not out.exists()


def test_multi_group_case_with_too_few_resamples_for_intervals_runs_to_the_end(tmp_path):
    # 3 resamples: intervals are withheld, and the comparisons skip them rather than index them
    from fit.conftest import synthetic

    from scalelab.bench import fit as BF

    df = pd.concat([synthetic(seed=1, group="a"), synthetic(seed=2, alpha=0.3, group="b")])
    df["C"] = 6 * df["N"] * df["D"]
    p = tmp_path / "multi.csv"
    df.to_csv(p, index=False)
    rows, meta = BF.run_multi(p, n_boot=3, repeats=1, check_seeds=1, log=lambda m: None)
    assert len(rows) == 3 and meta["n_groups"] == 2
    assert [r["group"] for r in meta["reference_check"]["rows"]] == ["a", "b"]
