"""Groups fitted in worker processes (fit/parallel.py) give what the same groups give fitted one after another."""

import numpy as np
import pandas as pd
import pytest

from scalelab.fit import fit_laws, parallel

from .conftest import synthetic


def _groups():
    return pd.concat(
        [
            synthetic(sd=0.01, seed=21, group="a"),
            synthetic(E=2.0, A=300.0, B=1500.0, alpha=0.3, beta=0.4, sd=0.01, seed=22, group="b"),
            synthetic(E=1.6, A=500.0, B=2500.0, alpha=0.36, beta=0.33, sd=0.01, seed=23, group="c"),
        ]
    )


def test_worker_processes_give_the_serial_results(monkeypatch):
    kw = dict(n_col="N", d_col="D", loss_col="loss", run_col="run", by=("group",), bootstrap=60, seed=3)
    monkeypatch.setattr(parallel, "workers", lambda n_groups, n_boot: 0)
    serial = fit_laws(_groups(), **kw)
    seen: list = []
    monkeypatch.setattr(parallel, "workers", lambda n_groups, n_boot: 2)
    forked = fit_laws(_groups(), progress=seen.append, **kw)
    assert seen == ["a", "b", "c"]  # progress per group, in order, from this process
    assert list(forked.groups) == list(serial.groups)
    for k in serial.groups:
        a, b = serial[k], forked[k]
        assert a.params == pytest.approx(b.params, rel=1e-12)
        for p in ("E", "alpha", "beta"):  # the polish's blocks differ (no threads in a worker): rounding only
            np.testing.assert_allclose(a.conf_int[p], b.conf_int[p], rtol=1e-6)
        assert a.warnings == b.warnings


def test_small_or_single_group_fits_stay_in_this_process(monkeypatch):
    monkeypatch.setattr(parallel, "_in_worker", False)
    assert parallel.workers(1, 1000) == 0
    assert parallel.workers(10, 20) == 0  # too little work to pay for the fork
    monkeypatch.setenv(parallel.ENV, "1")
    assert parallel.workers(10, 1000) == 0


def test_a_worker_error_reaches_the_caller():
    with pytest.raises(ZeroDivisionError):
        parallel.map_groups(_divide, [(1, 1), (1, 0)], 2)


def _divide(a, b):
    return a / b
