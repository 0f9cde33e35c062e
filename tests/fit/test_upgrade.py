"""Fit files of the earlier format (scalelab-fit/1, written by scalelab 0.2: tests/fit/data/v1) load through
fit/upgrade.py, and refitting their inputs with today's code gives the same numbers."""

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from scalelab.errors import ScalelabError
from scalelab.fit import FitSpec, fit_laws, load_fit
from scalelab.fit.io import load_inputs
from scalelab.fit.records import FORMAT
from scalelab.fit.upgrade import POINTS_FROM_INPUTS, POINTS_FROM_RUNS

V1 = Path(__file__).parent / "data" / "v1"


@pytest.fixture
def v1(tmp_path) -> Path:
    """A copy of the v1 files, so that reading never depends on where the fit recorded its inputs."""
    dst = tmp_path / "v1"
    shutil.copytree(V1, dst)
    return dst


def _numbers_equal(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_numbers_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_numbers_equal(x, y) for x, y in zip(a, b))
    if a is None or b is None:
        return (a is None or (isinstance(a, float) and math.isnan(a))) and (
            b is None or (isinstance(b, float) and math.isnan(b))
        )
    return a == b


def _no_time(o):
    """A fit file's records less the time verdict's keys (fit/timing.py), which v1 files predate."""
    if isinstance(o, dict):
        return {k: _no_time(v) for k, v in o.items() if not k.startswith("time_")}
    return [_no_time(x) for x in o] if isinstance(o, list) else o


@pytest.mark.parametrize("name", ["tiny", "tiny_sweep", "chin"])
def test_a_v1_file_loads_with_its_numbers_and_what_the_upgrader_adds(v1, name):
    raw = json.loads((v1 / f"{name}.json").read_text())
    assert raw["format"] == "scalelab-fit/1"
    fit = load_fit(v1 / f"{name}.json")
    for gname, rec in raw["groups"].items():
        g = fit[gname]
        assert _numbers_equal(g.params, rec["params"]) and _numbers_equal(g.conf_int, rec["conf_int"])
        assert _numbers_equal(g.derived, rec["derived"]) and g.n_points == rec["n_points"]
        assert g.n_column == "params" and g.k_flops is not None and g.points is not None
    assert _numbers_equal([c.to_dict() for c in fit.comparisons], raw["comparisons"])
    assert fit.info.bootstrap.n == raw["bootstrap"]["n"] and fit.convention == raw["flop_convention"]
    assert fit.to_dict()["format"] == FORMAT  # written again, it is the current format


def test_v1_points_are_rebuilt_from_the_recorded_inputs_as_the_fit_read_them(v1):
    """The runs beside the fit (same sha256 as recorded): the points every group used; a sweep's envelope
    marks the points it kept, and their count is the one the fit recorded."""
    tiny = load_fit(v1 / "tiny.json")
    assert tiny.points_source == POINTS_FROM_INPUTS
    for g in tiny:
        assert int(g.points["fitted"].sum()) == g.n_points == len(g.points)
        assert g.k_flops == pytest.approx(np.median(g.points["C"] / (g.points["N"] * g.points["D"])), rel=1e-12)
    sweep = load_fit(v1 / "tiny_sweep.json")
    g = sweep["all"]
    assert sweep.points_source == POINTS_FROM_INPUTS and len(g.points) == 9  # 3 sizes x 3 learning rates
    assert int(g.points["fitted"].sum()) == sweep.info.sweep.n_kept == 3 and "lr" in g.points.columns
    best = g.points.loc[g.points.groupby("N")["loss"].idxmin()]
    assert best["fitted"].all()  # the envelope keeps each size's best learning rate
    assert g.loss_law_refused and g.lr_law is not None and g.lr_law.coef == pytest.approx(8.0, rel=1e-9)


def test_changed_inputs_leave_the_runs_list_to_stand_in(v1):
    d = json.loads((v1 / "tiny.json").read_text())
    for rec in d["inputs"]:
        rec["sha256"] = "0" * 64  # the run files changed since the fit
    (v1 / "tiny.json").write_text(json.dumps(d))
    fit = load_fit(v1 / "tiny.json")
    assert fit.points_source == POINTS_FROM_RUNS
    for g in fit:
        assert len(g.points) == g.n_runs and set(g.points["run"]) == {r["run_id"] for r in g.runs}


def test_refitting_the_v1_inputs_today_gives_the_v1_numbers(v1):
    """No change in behaviour: the run-store fit and the sweep fit, refitted from their recorded spec and
    inputs with the bootstrap search they were made with (0.3's, search = "starts"), write the same parameters,
    intervals, derived values, samples and comparisons, to the bit."""
    for name, files in (("tiny", sorted(v1.glob("tiny__*.parquet"))), ("tiny_sweep", [v1 / "tiny_sweep.csv"])):
        raw = json.loads((v1 / f"{name}.json").read_text())
        spec = FitSpec.from_dict(raw["spec"]).replace(search="starts")
        df, _ = load_inputs(
            files, n_col=spec.n_col, d_col=spec.d_col, loss_col=spec.loss_col, flops_col=spec.c_col,
            run_col=spec.run_col, by=list(spec.by), all_checkpoints=spec.all_checkpoints,
        )  # fmt: skip
        new = fit_laws(df, spec).to_dict()
        for gname, rec in raw["groups"].items():
            got = new["groups"][gname]
            for key in ("params", "conf_int", "derived", "derived_conf_int", "residual_sd", "hyper"):
                assert _numbers_equal(got.get(key), rec.get(key)), (name, gname, key)
            # the one wording changed since: an E the runs do not identify is no longer printed beside its interval
            was = [re.sub(r"(interval \[[^]]*\]) around [^)]*\)", r"\1)", w) for w in rec.get("warnings", [])]
            assert got.get("warnings", []) == was, (name, gname)
        assert _numbers_equal(_no_time(new["comparisons"]), raw["comparisons"]), name
        old = load_fit(v1 / f"{name}.json")
        back = fit_laws(df, spec)
        for g in old:
            cols = list(g.samples.columns)
            a, b = g.sample_arrays(cols), back[g.name].sample_arrays(cols)
            for k in a:
                np.testing.assert_array_equal(a[k], b[k])


def test_a_newer_format_is_refused_in_one_line(v1):
    d = json.loads((v1 / "tiny.json").read_text())
    d["format"] = "scalelab-fit/99"
    (v1 / "new.json").write_text(json.dumps(d))
    with pytest.raises(ScalelabError, match="newer than this scalelab reads .*upgrade scalelab"):
        load_fit(v1 / "new.json")
