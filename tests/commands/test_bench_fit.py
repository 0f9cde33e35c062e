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


def _two_groups():
    from fit.conftest import synthetic

    from scalelab.fit import FitSpec

    df = pd.concat([synthetic(seed=1, group="a"), synthetic(seed=2, alpha=0.3, group="b")])
    df["C"] = 6 * df["N"] * df["D"]
    return df, FitSpec(n_col="N", d_col="D", c_col="C", loss_col="loss", run_col="run", by=("group",))


def test_reference_check_compares_the_searches_on_the_same_resamples():
    from scalelab.bench import fit as BF

    df, spec = _two_groups()
    same = BF.reference_check(df, spec, n_boot=40, ref_starts=3, check_starts=3, n_seeds=2)
    # one row per seed and group; two searches that are the same search on the same resamples differ by nothing
    assert [(r["seed"], r["group"]) for r in same["rows"]] == [(0, "a"), (0, "b"), (1, "a"), (1, "b")]
    for r in same["rows"]:
        assert (r["ref_vs_best"], r["ref_worse"]) == (r["check_vs_best"], r["check_worse"])
    assert same["max_ref_vs_best"] == max(r["ref_vs_best"] for r in same["rows"])


def test_best_of_scores_each_search_on_its_own_resamples():
    """best_of evaluates every search's parameters on the fit's own resample counts: each resample's optimum scores
    best on its own counts, the same optima handed to the wrong resamples (rows shuffled) score worse on most, and
    a search compared with itself has the intervals the fit printed."""
    import copy

    from scalelab.bench import fit as BF
    from scalelab.fit import fit_laws

    df, spec = _two_groups()
    ours = fit_laws(df, spec, bootstrap=40, seed=1)
    shuffled = copy.deepcopy(ours)
    for g in shuffled.groups.values():
        g.samples = g.samples.sample(frac=1.0, random_state=0).reset_index(drop=True)
    got = BF.best_of(df, spec.replace(bootstrap=40, seed=1), {"ours": ours, "shuffled": shuffled})
    for g in "ab":
        assert got[g]["ours"][1] <= 1 and got[g]["shuffled"][1] >= 30
        assert got[g]["ours"][0] < 1e-3
    same = BF.best_of(df, spec.replace(bootstrap=40, seed=1), {"ours": ours})
    assert all(v["ours"] == (0.0, 0) for v in same.values())


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
