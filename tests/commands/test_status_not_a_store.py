"""`scalelab status` on a folder of fit outputs: NAME.samples.parquet / NAME.points.parquet are not runs. A folder of
only those is refused as not a run store; beside real run files they are skipped with a note, never 'failed'."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from plot.helpers import write_runs
from refusal import refused
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.fit import fit_laws


def status(*args):
    return CliRunner().invoke(app, ["status", *map(str, args)])


@pytest.fixture
def fits(tmp_path):
    """A folder holding what `scalelab fit` writes: NAME.json, NAME.samples.parquet, NAME.points.parquet."""
    rng = np.random.default_rng(0)
    rows = [
        {"N": N, "D": N * t, "loss": (1.8 + 400 / N**0.34 + 2000 / (N * t) ** 0.37) * np.exp(0.01 * rng.normal())}
        for N in (2e7, 5e7, 1e8, 2e8)
        for t in (5, 10, 20, 40)
    ]
    folder = tmp_path / "fits"
    folder.mkdir()
    fit_laws(pd.DataFrame(rows), n_col="N", d_col="D", loss_col="loss", bootstrap=10).to_json(folder / "f.json")
    side = sorted(p.name for p in folder.glob("*.parquet"))
    assert side == ["f.points.parquet", "f.samples.parquet"], side
    return folder


def test_a_folder_of_fit_outputs_is_not_a_run_store(fits):
    line = refused(status(fits), "not a run store", "fit outputs", "scalelab status runs/")
    assert "failed" not in line
    refused(status(fits, "--json"), "not a run store")


def test_fit_outputs_beside_runs_are_skipped_with_a_note(fits):
    runs = write_runs(str(fits), variants=("dense",), widths=(32, 48), ratios=(10,))
    r = status(fits)
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    assert "note: skipped 2 fit output file(s)" in text and "not runs" in text
    rows = json.loads(status(fits, "--json").stdout)
    assert sorted(e["run_id"] for e in rows["runs"]) == sorted(p.rsplit("/", 1)[1][: -len(".parquet")] for p in runs)
    assert {e["state"] for e in rows["runs"]} == {"done"}
    assert rows["skipped_fit_outputs"] == ["f.points.parquet", "f.samples.parquet"]
    assert sum(c["failed"] for c in rows["grids"].values()) == 0
