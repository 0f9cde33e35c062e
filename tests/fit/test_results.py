"""Results object and fit file round trip; the fit package stays torch-free."""

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from scalelab.errors import ScalelabError
from scalelab.fit import FitSpec, fit_laws, load_fit
from scalelab.fit.records import Bootstrap

from .conftest import synthetic


def test_fit_package_never_imports_torch():
    code = (
        "import sys, scalelab.fit, scalelab.fit.io, scalelab.bench.fit, scalelab.commands.fit; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_round_trip_and_statsmodels_style_api(tmp_path):
    df = synthetic(sd=0.01, seed=2)
    fit = fit_laws(df, n_col="N", d_col="D", loss_col="loss", run_col="run", bootstrap=60, seed=3)
    path = fit.to_json(tmp_path / "fits" / "x.json")
    d = json.loads(path.read_text())
    assert d["samples"] == "x.samples.parquet" and (tmp_path / "fits" / "x.samples.parquet").exists()
    back = load_fit(path)
    pd.testing.assert_frame_equal(back.params_, fit.params_)
    pd.testing.assert_frame_equal(back.conf_int(), fit.conf_int())
    # another level is recomputed from the stored samples, nested inside the 95% one
    c50 = back.conf_int(0.5).loc[("all", "alpha")]
    c95 = back.conf_int().loc[("all", "alpha")]
    assert c95["lower"] < c50["lower"] < c50["upper"] < c95["upper"]
    N, D = np.array([1e8, 1e9]), np.array([2e9, 2e10])
    p = fit.params_.loc["all"]
    expect = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]
    np.testing.assert_allclose(back.predict(N=N, D=D), expect, rtol=1e-12)
    text = fit.summary().text()
    assert "alpha" in text and "95% bootstrap intervals" in text and "[" in text
    assert "<table>" in fit.summary().html() and "| chinchilla |" in fit.summary().markdown()


def test_load_fit_errors(tmp_path):
    with pytest.raises(ScalelabError, match="no such fit file"):
        load_fit(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ScalelabError, match="bad.json"):
        load_fit(bad)


def test_every_field_survives_to_json_and_load_fit(tmp_path):
    """FitResults' typed fields (path, convention, level, columns, bootstrap, paired, spec, samples, groups)
    read back equal from the file they were written to."""
    df = pd.concat([synthetic(seed=1, group="dense"), synthetic(alpha=0.3, seed=2, group="lowrank")])
    df["params"], df["tokens"] = df.pop("N"), df.pop("D")
    fit = fit_laws(df, loss_col="loss", run_col="run", by="group", bootstrap=40, seed=1, holdout="largest")
    before = {
        k: getattr(fit, k) for k in ("convention", "level", "info", "bootstrap", "paired", "spec", "samples_note")
    }
    path = fit.to_json(tmp_path / "f.json")
    assert fit.path == path
    back = load_fit(path)
    assert back.path == path and list(back.groups) == ["dense", "lowrank"]
    for k, v in before.items():
        assert getattr(back, k) == v, k
    assert back.convention == "6ND" and back.info.columns.N == "params" and back.info.by == ["group"]
    assert back.bootstrap == Bootstrap(n=40, seed=1, level=0.95, unit="run", paired=False)
    assert back.info == fit.info and back.comparisons == fit.comparisons
    assert back.spec == FitSpec(
        n_col="params", loss_col="loss", run_col="run", by=("group",), bootstrap=40, seed=1, holdout="largest"
    )
    assert back.samples_note == "" and not back.paired
    back.require_samples()
    for name, g in fit.groups.items():
        h = back[name]
        assert (h.variant, h.form, h.n_column, h.c_range) == (g.variant, g.form, g.n_column, g.c_range)
        assert h.variant == name and h.n_column == "params" and h.c_range == tuple(g.range["C"])
        for f in dataclasses.fields(g):  # every typed field as written; the frames below
            if f.name not in ("samples", "sample_index", "points"):
                assert _same(getattr(h, f.name), getattr(g, f.name)), f.name
        assert h.holdout is not None and h.identification is not None and h.k_flops == pytest.approx(6.0)
        pd.testing.assert_frame_equal(h.points, g.points)
        assert list(h.points.columns) == ["run", "N", "D", "C", "loss", "fitted"] and h.points["fitted"].all()
        a, b = g.sample_arrays(), h.sample_arrays()
        assert list(b) == ["E", "A", "B", "alpha", "beta"] and len(b["E"]) == 40
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(h.sample_ids, np.arange(40))


def test_samples_missing_paired_and_convention_rules(tmp_path):
    """No samples file: a note, not an error, until require_samples; identical E samples mean paired; a
    file without flop_convention takes what `scalelab fit` would have recorded."""
    from scalelab.fit import as_fit, newest_fit

    df = pd.concat([synthetic(seed=1, group="a"), synthetic(seed=1, group="b")])
    fit = fit_laws(df, n_col="N", d_col="D", loss_col="loss", run_col="run", by="group", bootstrap=20, share_e=True)
    path = fit.to_json(tmp_path / "j.json")
    assert load_fit(path).paired and as_fit(str(path)).paired and as_fit(fit) is fit
    d = json.loads(path.read_text())
    for k in ("share_e", "flop_convention", "points", "points_sha256"):  # as scalelab-fit/1 files may lack them
        d.pop(k)
    d["format"] = "scalelab-fit/1"  # the upgrader's rules (fit/upgrade.py)
    d["bootstrap"].pop("paired")
    assert as_fit(d | {"_path": str(path)}).paired  # equal E sample for sample
    assert as_fit(d).convention == "6ND"  # columns.C records C = 6ND
    d.pop("columns")
    assert as_fit(d).convention == "6ND"  # no model configs: a table of N, D
    d["groups"]["a"]["runs"][0]["model"] = {"d_model": 64}
    assert as_fit(d).convention == "flops"  # run-store input
    (tmp_path / "j.samples.parquet").unlink()
    bare = load_fit(path)
    assert "j.samples.parquet is missing" in bare.samples_note and len(bare["a"].sample_arrays()["E"]) == 0
    with pytest.raises(ScalelabError, match="no bootstrap samples .*--bootstrap 1000"):
        bare.require_samples()
    none = fit_laws(df, n_col="N", d_col="D", loss_col="loss", by="group", bootstrap=0)
    with pytest.raises(ScalelabError, match="fitted with --bootstrap 0"):
        none.require_samples()
    assert newest_fit(tmp_path) == path
    with pytest.raises(ScalelabError, match="no fit files"):
        newest_fit(tmp_path / "empty")


def test_fit_spec_validates_and_keywords_build_it():
    from scalelab.fit import FitSpec

    with pytest.raises(ScalelabError, match="unknown form"):
        FitSpec(form="cubic")
    with pytest.raises(ScalelabError, match="level"):
        FitSpec(level=1.5)
    with pytest.raises(ScalelabError, match="--compare"):
        FitSpec(compare=[("dense",)])
    s = FitSpec(by=["variant"], compare=[["dense", "lowrank"]])
    assert s.by == ("variant",) and s.compare == (("dense", "lowrank"),) and FitSpec.from_dict(s.to_dict()) == s
    df = synthetic(seed=3)
    a = fit_laws(df, n_col="N", d_col="D", loss_col="loss", bootstrap=0)
    b = fit_laws(df, FitSpec(n_col="N", d_col="D", loss_col="loss"), bootstrap=0)
    assert a["all"].params == b["all"].params and a.spec == b.spec


def test_weak_identification_is_said_in_words():
    from scalelab.fit.procedure import _weakly_identified

    params = {"E": 0.85, "A": 100.0, "alpha": 1.2, "B": 80.0, "beta": 0.33}
    conf = {"E": [0.003, 1.15], "A": [1e-12, 1e12], "alpha": [0.2, 3.0], "B": [15.0, 700.0], "beta": [0.15, 0.52]}
    w = _weakly_identified(params, conf, 0.95)
    assert len(w) == 2  # E reaches below a tenth of itself; alpha spans 15x; beta (3.5x) and coefficients pass
    assert w[0].startswith("E is not identified") and "--fix E=" in w[0]
    assert w[1].startswith("alpha is weakly identified") and "15x" in w[1]
    assert _weakly_identified(params, {"E": [0.5, 1.1], "alpha": [0.3, 0.5]}, 0.95) == []


def test_derived_compute_optimum_uses_the_groups_flops_per_param_token():
    """C = 7 N D data: the fit's N_opt at c_ref is the closed form at k = 7 (as the multipliers use), not 6."""
    import numpy as np
    import pandas as pd

    from scalelab.fit import fit_laws

    p = dict(E=1.2, A=40.0, B=25.0, alpha=0.32, beta=0.26)
    rows = []
    for N in np.geomspace(2e4, 3e5, 5):
        for t in (5, 20, 80):
            D = t * N
            rows.append(dict(N=N, D=D, C=7 * N * D, loss=p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]))
    f = fit_laws(pd.DataFrame(rows), n_col="N", d_col="D", c_col="C", loss_col="loss", bootstrap=0, c_ref=1e15)
    q = f.groups["all"].params
    a, b = q["alpha"], q["beta"]
    G = (a * q["A"] / (b * q["B"])) ** (1 / (a + b))
    n_at = lambda k: G * (1e15 / k) ** (b / (a + b))  # noqa: E731
    assert f.groups["all"].derived["N_opt"] == pytest.approx(n_at(7.0), rel=1e-6)
    assert abs(f.groups["all"].derived["N_opt"] / n_at(6.0) - 1) > 0.03


def _same(a, b) -> bool:
    """Equal, with NaN equal to NaN (a float field the file writes as null)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b
