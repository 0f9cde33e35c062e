"""The run store: one Parquet file per run under runs/, one row per evaluation.

`RunRow` declares every column of DESIGN.md's run-store table (plus a few extras) and `SCHEMA` follows
from it, `write_run` writes a run's rows atomically (temp file, fsync, rename: a reader never sees half a
file) and `read_runs` reads many files and validates them, naming the file and column of any problem. Torch-free.
"""

from __future__ import annotations

import glob as globlib
import os
from dataclasses import dataclass, fields
from typing import Iterable, Optional, Sequence, Union

import pyarrow as pa

from scalelab.errors import ScalelabError
from scalelab.fileio import atomic_write


@dataclass(frozen=True, kw_only=True)
class RunRow:
    """One row of the run store, one per evaluation: its fields are the columns, in file order, and their
    types give the Parquet schema (str string, int int64, float float64, bool bool; Optional: may be null).
    DESIGN.md's columns, in its order, then extras (documented in docs/running.md). Keyword-only: a swapped
    pair of same-typed values (wall_s, train_s) cannot slip in by position."""

    run_id: str
    grid: str
    variant: str
    structure: str
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_ff: int
    rank: Optional[int]  # lowrank/blockdense rank, LPA attention rank
    blocks: Optional[int]  # blockdense/blockshuffle block count
    params: int
    params_nonembed: int
    seq_len: int
    batch_tokens: int
    step: int
    tokens: int
    flops: float
    flops_6nd: float
    train_loss: float
    val_loss: float
    lr: float
    final: bool
    wall_s: float
    tokens_per_s: float
    mfu: float
    status: str
    seed: int
    corpus: str
    corpus_sha: str
    tokenizer: str
    device: str
    torch_version: str
    scalelab_version: str
    git_sha: Optional[str]  # None outside a git checkout
    config: str
    # extras
    budget: int  # the token budget whose schedule this row belongs to
    schedule: str  # cosine | wsd
    guide_flops: float  # self-guided dense-path FLOPs included in `flops`
    epochs: float  # tokens seen / unique training tokens of the corpus (> 1: data repeated)
    peak_lr: float  # the schedule's peak learning rate (`lr` is the rate at the row's step)
    warmup: float  # warmup fraction of the run's steps
    weight_decay: float
    sweep: str  # hyperparameters a grid's [sweep] varied, comma-separated ("lr"); "" = none

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_ARROW = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}


def _arrow_type(annotation: type | str) -> pa.DataType:
    # annotations are strings here (from __future__ import annotations): "int", "Optional[int]"
    assert isinstance(annotation, str), annotation
    return _ARROW[annotation.removeprefix("Optional[").removesuffix("]")]


SCHEMA = pa.schema([(f.name, _arrow_type(f.type)) for f in fields(RunRow)])
COLUMNS = SCHEMA.names
NULLABLE = {"rank", "blocks", "git_sha", "val_loss", "train_loss", "mfu", "epochs", "peak_lr", "warmup", "weight_decay"}
NULLABLE |= {"sweep"}
# added later: files written before them read as NaN (fit/hyper.py then reads the peak lr from `config`)
OPTIONAL = {"epochs", "peak_lr", "warmup", "weight_decay", "sweep"}
STATUSES = ("ok", "diverged")


def to_table(df) -> pa.Table:
    """A DataFrame (or list of row dicts) as a table of exactly SCHEMA, in SCHEMA's column order."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        df = pd.DataFrame(list(df))
    missing = [c for c in COLUMNS if c not in df.columns and c not in OPTIONAL]
    if missing:
        raise ValueError(f"run rows lack column(s) {', '.join(missing)}")
    arrays = []
    for f in SCHEMA:
        if f.name not in df.columns:
            arrays.append(pa.nulls(len(df), type=f.type))
            continue
        col = df[f.name]
        vals = [
            None if (v is None or (isinstance(v, float) and v != v and f.name in ("rank", "blocks", "git_sha"))) else v
            for v in col.tolist()
        ]
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


# The Parquet files `scalelab fit` writes beside fits/NAME.json (bootstrap samples, fitted points): not runs.
FIT_OUTPUT_SUFFIXES = (".samples.parquet", ".points.parquet")


def is_fit_output(path: str) -> bool:
    """Whether a file is named as a fit's side file (NAME.samples.parquet, NAME.points.parquet), not a run."""
    return os.path.basename(str(path)).endswith(FIT_OUTPUT_SUFFIXES)


def fit_outputs_note(n: int, where: str) -> str:
    """The one note for the fit side files a folder (or glob) held and that were left out as not runs."""
    return (
        f"skipped {n} fit output file(s) in {where.rstrip('/')}/ (*.samples.parquet, *.points.parquet of "
        "`scalelab fit`): not runs"
    )


def expand_paths(paths: Union[str, Iterable[str]], left_out: Optional[list[str]] = None) -> list[str]:
    """Files, folders (their *.parquet) and globs, in sorted order, deduplicated. A name that exists
    is taken as it is, even with glob characters in it. A folder or glob leaves out the fit side files it
    holds (is_fit_output: `fit --out` beside the runs writes them there), adding them to `left_out` when given,
    for a note; a side file named on its own is the caller's choice and kept."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[str] = []
    for p in paths:
        p = str(p)
        if os.path.isdir(p):
            found = sorted(globlib.glob(os.path.join(globlib.escape(p), "*.parquet")))
        elif globlib.has_magic(p) and not os.path.exists(p):
            found = sorted(globlib.glob(p))
        else:
            out.append(p)
            continue
        out += [f for f in found if not is_fit_output(f)]
        if left_out is not None:
            left_out += [f for f in found if is_fit_output(f) and f not in left_out]
    return list(dict.fromkeys(out))


def read_runs(
    paths: Union[str, Iterable[str]],
    *,
    columns: Optional[Sequence[str]] = None,
    ok_only: bool = False,
    final_only: bool = False,
    min_fraction: Optional[float] = None,
    run_id: Optional[str] = None,
):
    """Read run files into one DataFrame, with a `_file` column (the path each row came from).

    paths: files, folders (their *.parquet), globs, or a list of those.
    columns: None validates every file against SCHEMA (columns, types, values) and puts SCHEMA's columns
      first; a list accepts any file that has those columns (a reduced store written by another tool),
      keeping its columns as they are.
    ok_only: keep only runs whose rows all have status "ok" (a run with a diverged row goes whole).
    final_only: keep the `final` rows, the (N, D) points.
    min_fraction: keep rows with tokens > 0 and at least this fraction of their run's largest tokens
      (checkpoints past the early transient).
    run_id: the files must hold this one run and no other.

    Everywhere: a run in two files, or a (run_id, step, budget, final) row twice, is an error. Errors are
    ScalelabError naming the file and the column.
    """
    import pandas as pd

    files = expand_paths(paths)
    if not files:
        raise ScalelabError("no run files given: pass runs/*.parquet (written by `scalelab run`)")
    need = None
    if columns is not None:  # the columns asked for, and those the options read
        need = [
            "run_id",
            *columns,
            *(["status"] if ok_only else []),
            *(["final"] if final_only else []),
            *(["tokens"] if min_fraction is not None else []),
        ]
        need = list(dict.fromkeys(need))
    df = pd.concat([_read_file(path, need) for path in files], ignore_index=True)
    _check_one_file_per_run(df)
    if run_id is not None:
        found = sorted(set(df["run_id"]))
        if found != [run_id]:
            raise ScalelabError(
                f"run file(s) {', '.join(files)} hold run(s) {', '.join(found) or 'none'}, "
                f"expected only run {run_id}: remove the file that is not this run's"
            )
    if ok_only:
        ok = df.groupby("run_id")["status"].transform(lambda s: bool((s.astype(str) == "ok").all()))
        df = df[ok.astype(bool)]
    if min_fraction is not None:
        most = df.groupby("run_id")["tokens"].transform("max")
        df = df[(df["tokens"] >= min_fraction * most) & (df["tokens"] > 0)]
    if final_only:
        df = df[df["final"].astype(bool)]
    if columns is None:
        df = df[COLUMNS + [c for c in df.columns if c not in COLUMNS]]
    return df.reset_index(drop=True)


def _read_file(path: str, need: Optional[list[str]]):
    """One run file as a DataFrame: every SCHEMA check when need is None, else just the `need` columns."""
    import pyarrow.parquet as pq

    if not os.path.isfile(path):
        raise ScalelabError(f"run file {path}: no such file (check the path)")
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for damaged or foreign files
        first = str(e).splitlines()[0] if str(e) else ""
        raise ScalelabError(
            f"run file {path} is not a readable Parquet file (cannot read as Parquet: "
            f"{type(e).__name__}: {first}): check the path, or re-run `scalelab run`"
        ) from None
    names = table.column_names
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise ScalelabError(
            f"run file {path}: column(s) {', '.join(map(repr, twice))} appear more than once: rename or drop the "
            "copies (scalelab would not know which to read)"
        )
    if need is None:
        _check_schema(path, table)
    else:
        for c in need:  # a run-store column asked for must have its type (params as text, final as "yes": refused)
            if c in COLUMNS and c in names:
                have, want = table.schema.field(c).type, SCHEMA.field(c).type
                numeric = pa.types.is_integer(want) or pa.types.is_floating(want)
                if numeric and (pa.types.is_integer(have) or pa.types.is_floating(have)):
                    continue  # a reduced store may hold counts as floats: the reader converts
                if have != want and not pa.types.is_null(have) and not _compatible(have, want):
                    raise ScalelabError(
                        f"run file {path}: column {c!r} has type {have}, expected {want}: write it as {want} "
                        "(see DESIGN.md 'Run store')"
                    )
        missing = [c for c in need if c not in table.column_names]
        if missing:
            also = f" (and {', '.join(map(repr, missing[1:]))})" if len(missing) > 1 else ""
            raise ScalelabError(
                f"run file {path}: column {missing[0]!r} missing{also}: not a scalelab run-store "
                "file, or not the column asked for (see DESIGN.md 'Run store')"
            )
    df = table.to_pandas()
    if need is None:
        for c in OPTIONAL - set(df.columns):
            df[c] = float("nan")
        _check_values(path, df)
    key = [c for c in ("run_id", "step", "budget", "final") if c in df.columns]
    dup = df.duplicated(key) if "step" in key else None
    if dup is not None and dup.any():
        r = df[dup].iloc[0]
        raise ScalelabError(
            f"run file {path}: run {r['run_id']} has the row of step {r['step']} twice: the file "
            "is damaged; delete it and re-run `scalelab run`"
        )
    df["_file"] = str(path)
    return df


def _check_schema(path: str, table: pa.Table) -> None:
    for f in SCHEMA:
        if f.name not in table.column_names and f.name in OPTIONAL:
            continue
        if f.name not in table.column_names:
            raise ScalelabError(
                f"run file {path} lacks column {f.name!r}: it was not written by `scalelab run` "
                "(or by an older version)"
            )
        have = table.schema.field(f.name).type
        if have != f.type and not (pa.types.is_null(have) and f.name in NULLABLE) and not _compatible(have, f.type):
            raise ScalelabError(f"run file {path}: column {f.name!r} has type {have}, expected {f.type}")


def _check_values(path: str, df) -> None:
    for c in ("run_id", "variant", "params", "tokens", "flops", "step", "status", "final"):
        if df[c].isna().any():
            raise ScalelabError(f"run file {path}: column {c!r} has missing values")
    bad = set(df["status"]) - set(STATUSES)
    if bad:
        raise ScalelabError(f"run file {path}: column 'status' has unknown value(s) {', '.join(map(str, bad))}")


def runs_in_several_files(df, run_col: str = "run_id"):
    """The runs of `df` (a `_file` column naming each row's file) found in more than one file: a Series of their
    files by run, empty when each run is in one. A copied run would count twice: the callers refuse these."""
    where = df.groupby(df[run_col].astype(str) if run_col != "run_id" else df[run_col], sort=False)["_file"].unique()
    return where[where.map(len) > 1]


def _check_one_file_per_run(df) -> None:
    """A run in two files (a copied runs folder, an archive passed with it) would count twice."""
    twice = runs_in_several_files(df)
    if len(twice):
        rid, files = twice.index[0], twice.iloc[0]
        times = "twice" if len(files) == 2 else f"{len(files)} times"
        raise ScalelabError(
            f"run {rid} appears {times}, in {', '.join(map(str, files))}: pass each run's file "
            "once (remove the copy), or its rows would count twice"
        )


def _compatible(have: pa.DataType, want: pa.DataType) -> bool:
    if pa.types.is_integer(want):
        return pa.types.is_integer(have)
    if pa.types.is_floating(want):
        return pa.types.is_floating(have) or pa.types.is_integer(have)
    if pa.types.is_string(want):
        return pa.types.is_string(have) or pa.types.is_large_string(have)
    return False
