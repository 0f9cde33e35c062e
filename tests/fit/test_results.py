"""Results object and fit file round trip; the fit package stays torch-free."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from scalelab.errors import ScalelabError
from scalelab.fit import fit_laws, load_fit

from .conftest import synthetic


def test_fit_package_never_imports_torch():
    code = ("import sys, scalelab.fit, scalelab.fit.io, scalelab.bench.fit, scalelab.commands.fit; "
            "assert 'torch' not in sys.modules, 'torch imported'")
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
    assert "alpha" in fit.summary() and "95% interval" in fit.summary()


def test_load_fit_errors(tmp_path):
    with pytest.raises(ScalelabError, match="no such fit file"):
        load_fit(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ScalelabError, match="bad.json"):
        load_fit(bad)
