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


# ---- CSV tables (read_table: the one reader of users' CSVs) --------------------------------------------------
TABLE = "N,D,loss,run\n1e7,2e8,3.1,a#1\n2e7,4e8,2.9,b\n4e7,8e8,2.7,c\n"


def test_a_leading_comment_block_is_skipped_and_a_hash_inside_a_field_kept(tmp_path):
    p = tmp_path / "runs.csv"
    p.write_text("# scraped from the paper's Table 3\n  # second note\n" + TABLE)
    df = io.read_csv([p], ["N", "D", "loss"], ["run"])
    assert list(df["run"]) == ["a#1", "b", "c"]  # pandas' comment='#' would have cut 'a#1' to 'a'
    assert df["N"].tolist() == [1e7, 2e7, 4e7]
    assert io._csv_columns(p) == ["N", "D", "loss", "run"]


def test_a_comment_line_below_the_header_is_refused_naming_its_row(tmp_path):
    p = tmp_path / "runs.csv"
    p.write_text(TABLE.replace("2e7,", "# dropped\n2e7,"))
    with pytest.raises(ScalelabError, match=r"row 2 below the header is a '#' comment: delete it"):
        io.read_csv([p], ["N", "D", "loss"], ["run"])


def test_a_ragged_row_is_refused_with_pandas_reason(tmp_path):
    p = tmp_path / "runs.csv"
    p.write_text("# note\n" + TABLE + "8e7,1.6e9,2.5,d,extra\n")
    with pytest.raises(ScalelabError, match=r"Expected 4 fields in line 6, saw 5\)"):
        io.read_csv([p], ["N", "D", "loss"], ["run"])


def test_a_table_given_twice_or_a_run_in_two_files_is_refused(tmp_path):
    a, b, c = (tmp_path / f"{n}.csv" for n in "abc")
    a.write_text(TABLE)
    b.write_text(TABLE)  # a copy: its runs would count as independent ones
    c.write_text(TABLE.replace("a#1", "z").replace(",c\n", ",d\n"))  # run b again, others new
    for paths, needle in (
        ([a, a], "given twice"),
        ([a, b], "the same table as"),
        ([a, c], r"run 'b' \(column 'run'\) is in"),
    ):
        with pytest.raises(ScalelabError, match=needle):
            io.load_inputs(paths)
    assert len(io.load_inputs([a])[0]) == 3


def test_groups_named_na_or_none_are_names_and_an_empty_one_is_blank(tmp_path):
    p = tmp_path / "runs.csv"
    rows = "N,D,loss,run,group\n1e7,2e8,3.1,a,NA\n2e7,4e8,2.9,b,None\n4e7,8e8,2.7,c,null\n"
    p.write_text(rows)
    df = io.read_csv([p], ["N", "D", "loss"], ["run", "group"])
    assert list(df["group"]) == ["NA", "None", "null"] and df["N"].dtype.kind == "f"
    p.write_text(rows.replace(",null\n", ",\n"))
    with pytest.raises(ScalelabError, match="column 'group' is blank in 1 row"):
        io.read_csv([p], ["N", "D", "loss"], ["run", "group"])
