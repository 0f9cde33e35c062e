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
    "run_id": "str", "grid": "str", "variant": "str", "structure": "str",
    "d_model": "int", "n_layers": "int", "n_heads": "int", "n_kv_heads": "int", "d_ff": "int",
    "rank": "int", "blocks": "int", "params": "int", "params_nonembed": "int", "seq_len": "int",
    "batch_tokens": "int", "step": "int", "tokens": "int", "flops": "float", "flops_6nd": "float",
    "train_loss": "float", "val_loss": "float", "lr": "float", "final": "bool", "wall_s": "float",
    "tokens_per_s": "float", "mfu": "float", "status": "str", "seed": "int", "corpus": "str",
    "corpus_sha": "str", "tokenizer": "str", "device": "str", "torch_version": "str",
    "scalelab_version": "str", "git_sha": "str", "config": "str",
}
KIND = {"str": pa.types.is_string, "int": pa.types.is_int64, "float": pa.types.is_float64, "bool": pa.types.is_boolean}


def _row(**kw):
    r = {c: 0 for c in COLUMNS}
    r.update({c: "x" for c, k in DESIGN.items() if k == "str"})
    r.update(run_id="abc", variant="dense", status="ok", final=False, rank=None, blocks=None, git_sha=None,
             flops=1.0, flops_6nd=1.0, train_loss=3.0, val_loss=3.1, lr=1e-3, wall_s=1.0, tokens_per_s=1.0,
             mfu=0.1, guide_flops=0.0, schedule="wsd", budget=100)
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
    assert list(df.columns[:len(COLUMNS)]) == COLUMNS and len(df) == 2
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
