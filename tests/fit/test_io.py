"""Fit inputs from the run store: which rows become (N, D, L) points."""

import pandas as pd
import pytest

from scalelab.errors import ScalelabError
from scalelab.fit import io


def _rows(run_id, status="ok", finals=((50, 12800), (25, 6400)), params=1000):
    rows = [
        dict(
            run_id=run_id,
            status=status,
            final=False,
            params=params,
            tokens=256,
            flops=1e9,
            val_loss=5.0,
            variant="dense",
            step=1,
            budget=12800,
        )
    ]
    for step, tok in finals:
        rows.append(
            dict(
                run_id=run_id,
                status=status,
                final=True,
                params=params,
                tokens=tok,
                flops=1e9 * tok,
                val_loss=3.0,
                variant="dense",
                step=step,
                budget=tok,
            )
        )
    return pd.DataFrame(rows)


def test_final_rows_of_ok_runs_every_wsd_branch_kept(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    _rows("a").to_parquet(a)
    _rows("b", status="diverged").to_parquet(b)
    df = io.read_runs([a, b])
    assert sorted(df["tokens"]) == [6400, 12800] and set(df["run_id"]) == {"a"}


def test_the_same_run_in_two_files_is_an_error_not_double_weight(tmp_path):
    a, c = tmp_path / "a.parquet", tmp_path / "copy.parquet"
    _rows("a").to_parquet(a)
    _rows("a").to_parquet(c)
    with pytest.raises(ScalelabError, match="copy.parquet"):
        io.read_runs([a, c])
