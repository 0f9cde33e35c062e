"""The run store: DESIGN.md's columns, atomic writes, validated reads."""

import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scalelab.errors import ScalelabError
from scalelab.store import COLUMNS, SCHEMA, read_runs, write_run

# DESIGN.md "Run store" table, transcribed by hand: name -> kind
DESIGN = {
    "run_id": "str",
    "grid": "str",
    "variant": "str",
    "structure": "str",
    "d_model": "int",
    "n_layers": "int",
    "n_heads": "int",
    "n_kv_heads": "int",
    "d_ff": "int",
    "rank": "int",
    "blocks": "int",
    "params": "int",
    "params_nonembed": "int",
    "seq_len": "int",
    "batch_tokens": "int",
    "step": "int",
    "tokens": "int",
    "flops": "float",
    "flops_6nd": "float",
    "train_loss": "float",
    "val_loss": "float",
    "lr": "float",
    "final": "bool",
    "wall_s": "float",
    "tokens_per_s": "float",
    "mfu": "float",
    "status": "str",
    "seed": "int",
    "corpus": "str",
    "corpus_sha": "str",
    "tokenizer": "str",
    "device": "str",
    "torch_version": "str",
    "scalelab_version": "str",
    "git_sha": "str",
    "config": "str",
}
KIND = {"str": pa.types.is_string, "int": pa.types.is_int64, "float": pa.types.is_float64, "bool": pa.types.is_boolean}


def _row(**kw):
    r = {c: 0 for c in COLUMNS}
    r.update({c: "x" for c, k in DESIGN.items() if k == "str"})
    r.update(
        run_id="abc",
        variant="dense",
        status="ok",
        final=False,
        rank=None,
        blocks=None,
        git_sha=None,
        flops=1.0,
        flops_6nd=1.0,
        train_loss=3.0,
        val_loss=3.1,
        lr=1e-3,
        wall_s=1.0,
        tokens_per_s=1.0,
        mfu=0.1,
        guide_flops=0.0,
        schedule="wsd",
        budget=100,
        sweep="",
    )
    r.update(kw)
    return r


def test_schema_has_every_design_column_with_its_type():
    for name, kind in DESIGN.items():
        assert name in SCHEMA.names, name
        assert KIND[kind](SCHEMA.field(name).type), (name, SCHEMA.field(name).type)


def test_write_is_atomic_and_reads_back(tmp_path):
    p = str(tmp_path / "runs" / "a.parquet")
    write_run(p, [_row(step=1, tokens=10), _row(step=2, tokens=20, final=True, rank=8)])
    assert os.listdir(tmp_path / "runs") == ["a.parquet"]  # no temp file left behind
    df = read_runs(str(tmp_path / "runs" / "*.parquet"))
    assert list(df.columns[: len(COLUMNS)]) == COLUMNS and len(df) == 2
    assert df["rank"].isna().tolist() == [True, False] and df["git_sha"].isna().all()


def test_read_runs_names_file_and_column(tmp_path):
    good = str(tmp_path / "g.parquet")
    write_run(good, [_row(step=1)])
    t = pq.read_table(good).drop(["flops"])
    pq.write_table(t, tmp_path / "m.parquet")
    with pytest.raises(ScalelabError, match=r"m.parquet lacks column 'flops'"):
        read_runs([str(tmp_path / "m.parquet")])
    t = pq.read_table(good)
    t = t.set_column(t.column_names.index("tokens"), "tokens", pa.array(["ten"]))
    pq.write_table(t, tmp_path / "t.parquet")
    with pytest.raises(ScalelabError, match=r"t.parquet: column 'tokens' has type string"):
        read_runs([str(tmp_path / "t.parquet")])
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(ScalelabError, match="junk.parquet is not a readable Parquet"):
        read_runs([str(tmp_path / "junk.parquet")])
    write_run(str(tmp_path / "dup.parquet"), [_row(step=1)])
    with pytest.raises(ScalelabError, match="appears twice"):
        read_runs([good, str(tmp_path / "dup.parquet")])
    with pytest.raises(ScalelabError, match="no run files"):
        read_runs(str(tmp_path / "none*.parquet"))


# ---- the one reader's options ----------------------------------------------------------------------
def _store(tmp_path):
    """Run a: ok, a checkpoint at 10 tokens, one at 100 and its final row; run b: diverged after one ok row."""
    write_run(
        str(tmp_path / "a.parquet"),
        [_row(step=1, tokens=10), _row(step=2, tokens=100), _row(step=2, tokens=100, final=True)],
    )
    write_run(
        str(tmp_path / "b.parquet"),
        [_row(run_id="b", step=1, tokens=50), _row(run_id="b", step=2, tokens=60, status="diverged")],
    )
    return str(tmp_path)


def test_read_runs_ok_only_drops_a_run_with_any_bad_row(tmp_path):
    folder = _store(tmp_path)
    assert set(read_runs(folder)["run_id"]) == {"abc", "b"}
    assert set(read_runs(folder, ok_only=True)["run_id"]) == {"abc"}


def test_read_runs_final_only_keeps_the_final_rows(tmp_path):
    folder = _store(tmp_path)
    fin = read_runs(folder, final_only=True)
    assert len(fin) == 1 and fin["final"].all() and fin["run_id"].iloc[0] == "abc"


def test_read_runs_min_fraction_cuts_early_rows_per_run(tmp_path):
    folder = _store(tmp_path)
    cut = read_runs(folder, min_fraction=0.2)  # a's 10-token row is below 0.2 x 100; b's rows (50, 60) stay
    assert sorted(cut["tokens"]) == [50, 60, 100, 100]


def test_read_runs_reduced_schema_columns_and_run_id(tmp_path):
    pd.DataFrame(
        {"run_id": ["x", "x"], "params": [10, 10], "tokens": [5, 9], "loss": [3.0, 2.5], "final": [False, True]}
    ).to_parquet(tmp_path / "foreign.parquet")
    p = str(tmp_path / "foreign.parquet")
    with pytest.raises(ScalelabError, match="lacks column"):
        read_runs(p)  # full validation refuses a foreign file
    df = read_runs(p, columns=["params", "tokens", "loss"], final_only=True)
    assert df["loss"].tolist() == [2.5] and df["_file"].tolist() == [p]
    with pytest.raises(ScalelabError, match=r"column 'flops' missing"):
        read_runs(p, columns=["params", "flops"])
    assert len(read_runs(p, columns=["loss"], run_id="x")) == 2
    with pytest.raises(ScalelabError, match="expected only run y"):
        read_runs(p, columns=["loss"], run_id="y")


def test_read_runs_refuses_one_run_in_two_files(tmp_path):
    folder = _store(tmp_path)
    os.makedirs(tmp_path / "copy")
    write_run(str(tmp_path / "copy" / "a.parquet"), [_row(step=1, tokens=10)])
    with pytest.raises(ScalelabError, match="run abc appears twice"):
        read_runs([folder, str(tmp_path / "copy")])


def test_run_row_is_the_schema_built_by_keyword_only():
    from scalelab.store import RunRow

    row = _row(step=3, tokens=30, rank=None)
    assert list(RunRow(**row).as_dict()) == COLUMNS  # a row's dict is in file order
    with pytest.raises(TypeError):
        RunRow(*row.values())  # positional values (wall_s and train_s swapped unnoticed) are refused
    with pytest.raises(TypeError):
        RunRow(**{k: v for k, v in row.items() if k != "wall_s"})  # no column has a default to fall back on
