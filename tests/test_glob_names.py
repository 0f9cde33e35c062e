"""Folder names are data: a folder whose name holds glob characters ("runs[1]", "a*b") expands to its own files,
not to whatever the name matches as a pattern (store.expand_paths, plot/inputs.expand_paths, run/layout)."""

from __future__ import annotations

import os
import re

import pytest
from plot.helpers import write_runs
from typer.testing import CliRunner

from scalelab import store
from scalelab.cli import app
from scalelab.plot import inputs as plot_inputs


@pytest.mark.parametrize("name, sibling", [("runs[1]", "runs1"), ("a*b?", "aXbY")])
def test_a_folder_named_like_a_pattern_expands_to_its_own_files(tmp_path, name, sibling):
    # the sibling's name matches the folder's name read as a pattern: its files must not come in
    write_runs(str(tmp_path / sibling), widths=(64,), ratios=(40,))
    runs = sorted(write_runs(str(tmp_path / name), widths=(32, 48), ratios=(10, 20)))
    assert runs and all(os.path.dirname(r) == str(tmp_path / name) for r in runs)
    assert store.expand_paths(str(tmp_path / name)) == runs
    assert plot_inputs.expand_paths([str(tmp_path / name)]) == runs
    n_runs = store.read_runs(str(tmp_path / name), columns=["run_id"])["run_id"].nunique()
    r = CliRunner().invoke(app, ["status", str(tmp_path / name)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    # every run counted and done; before, the name matched no file as a pattern and status listed no runs
    assert re.search(rf"synthetic\s*│\s*{n_runs}\s*│\s*{n_runs}\s*│", r.output), r.output
