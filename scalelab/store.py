"""The run store: one Parquet file per run under runs/, one row per evaluation.

`SCHEMA` holds every column of DESIGN.md's run-store table (plus a few extras), `write_run` writes a
run's rows atomically (temp file, fsync, rename: a reader never sees half a file) and `read_runs`
reads many files and validates them, naming the file and column of any problem. Torch-free.
"""
from __future__ import annotations

import glob as globlib
import os
from typing import Iterable, Union

import pyarrow as pa

from scalelab.errors import ScalelabError
from scalelab.fileio import atomic_write

# DESIGN.md's columns, in its order, then extras (documented in README).
SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("grid", pa.string()),
    ("variant", pa.string()),
    ("structure", pa.string()),
    ("d_model", pa.int64()),
    ("n_layers", pa.int64()),
    ("n_heads", pa.int64()),
    ("n_kv_heads", pa.int64()),
    ("d_ff", pa.int64()),
    ("rank", pa.int64()),      # nullable: lowrank/blockdense rank, LPA attention rank
    ("blocks", pa.int64()),    # nullable: blockdense/blockshuffle block count
    ("params", pa.int64()),
    ("params_nonembed", pa.int64()),
    ("seq_len", pa.int64()),
    ("batch_tokens", pa.int64()),
    ("step", pa.int64()),
    ("tokens", pa.int64()),
    ("flops", pa.float64()),
    ("flops_6nd", pa.float64()),
    ("train_loss", pa.float64()),
    ("val_loss", pa.float64()),
    ("lr", pa.float64()),
    ("final", pa.bool_()),
    ("wall_s", pa.float64()),
    ("tokens_per_s", pa.float64()),
    ("mfu", pa.float64()),
    ("status", pa.string()),
    ("seed", pa.int64()),
    ("corpus", pa.string()),
    ("corpus_sha", pa.string()),
    ("tokenizer", pa.string()),
    ("device", pa.string()),
    ("torch_version", pa.string()),
    ("scalelab_version", pa.string()),
    ("git_sha", pa.string()),   # nullable: None outside a git checkout
    ("config", pa.string()),
    # extras
    ("budget", pa.int64()),     # the token budget whose schedule this row belongs to
    ("schedule", pa.string()),  # cosine | wsd
    ("guide_flops", pa.float64()),  # self-guided dense-path FLOPs included in `flops`
])
COLUMNS = SCHEMA.names
NULLABLE = {"rank", "blocks", "git_sha", "val_loss", "train_loss", "mfu"}
STATUSES = ("ok", "diverged")


def to_table(df) -> pa.Table:
    """A DataFrame (or list of row dicts) as a table of exactly SCHEMA, in SCHEMA's column order."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        df = pd.DataFrame(list(df))
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"run rows lack column(s) {', '.join(missing)}")
    arrays = []
    for f in SCHEMA:
        col = df[f.name]
        vals = [None if (v is None or (isinstance(v, float) and v != v and f.name in ("rank", "blocks", "git_sha"))) else v
                for v in col.tolist()]
        arrays.append(pa.array(vals, type=f.type))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def write_run(path: str, df) -> str:
    """Write one run's rows atomically: temp file in the same folder, fsync, os.replace."""
    import pyarrow.parquet as pq

    table = to_table(df)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    atomic_write(path, lambda f: pq.write_table(table, f))
    return path


def expand_paths(paths: Union[str, Iterable[str]]) -> list[str]:
    """Files, folders (their *.parquet) and globs, in sorted order, deduplicated."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[str] = []
    for p in paths:
        p = str(p)
        if os.path.isdir(p):
            out += sorted(globlib.glob(os.path.join(p, "*.parquet")))
        elif globlib.has_magic(p):
            out += sorted(globlib.glob(p))
        else:
            out.append(p)
    seen, uniq = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            uniq.append(p)
    return uniq


def read_runs(paths: Union[str, Iterable[str]]):
    """Read and validate run files into one DataFrame (SCHEMA's columns first, extras kept).

    Raises ScalelabError naming the file and column when a file is unreadable, lacks a column, has a
    column of the wrong type, or repeats a (run_id, step, budget, final) row.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    files = expand_paths(paths)
    if not files:
        raise ScalelabError("no run files given: pass runs/*.parquet (written by `scalelab run`)")
    frames = []
    for path in files:
        if not os.path.isfile(path):
            raise ScalelabError(f"run file {path} not found")
        try:
            table = pq.read_table(path)
        except Exception as e:
            raise ScalelabError(f"run file {path} is not a readable Parquet file: {str(e).splitlines()[0]}") from None
        for f in SCHEMA:
            if f.name not in table.column_names:
                raise ScalelabError(f"run file {path} lacks column {f.name!r}: it was not written by `scalelab run` (or by an older version)")
            have = table.schema.field(f.name).type
            if have != f.type and not (pa.types.is_null(have) and f.name in NULLABLE) and not _compatible(have, f.type):
                raise ScalelabError(f"run file {path}: column {f.name!r} has type {have}, expected {f.type}")
        df = table.to_pandas()
        for c in ("run_id", "variant", "params", "tokens", "flops", "step", "status", "final"):
            if df[c].isna().any():
                raise ScalelabError(f"run file {path}: column {c!r} has missing values")
        bad = set(df["status"]) - set(STATUSES)
        if bad:
            raise ScalelabError(f"run file {path}: column 'status' has unknown value(s) {', '.join(map(str, bad))}")
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    key = ["run_id", "step", "budget", "final"]
    dup = out.duplicated(key)
    if dup.any():
        r = out[dup].iloc[0]
        raise ScalelabError(f"run {r['run_id']} appears twice (step {r['step']}): the same run is in two files; remove one")
    return out[COLUMNS + [c for c in out.columns if c not in COLUMNS]]


def _compatible(have: pa.DataType, want: pa.DataType) -> bool:
    if pa.types.is_integer(want):
        return pa.types.is_integer(have)
    if pa.types.is_floating(want):
        return pa.types.is_floating(have) or pa.types.is_integer(have)
    if pa.types.is_string(want):
        return pa.types.is_string(have) or pa.types.is_large_string(have)
    return False
