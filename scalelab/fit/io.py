"""Reading fit inputs: the run store (runs/*.parquet, DESIGN.md schema) or a CSV of anyone's results.

Errors name the file and the column, in one line (ScalelabError).

Run store rules:
- each run_id in one file only (a run passed twice is an error, not double weight);
- only runs whose rows all have status == "ok" (a run with any diverged row is dropped whole);
- by default only `final` rows (end of a schedule or of a cooldown branch: valid (N, D) points);
- `all_checkpoints=True` also uses the curve points of each run, dropping the early ones: a checkpoint
  is kept when its tokens are at least CHECKPOINT_MIN_FRACTION (20%) of that run's final tokens
  (warm-up and the initial transient are not on the law; Choshen et al. 2024 drop early checkpoints).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.fileio import sha256_file

CHECKPOINT_MIN_FRACTION = 0.2
# columns of the run store the fitter needs (DESIGN.md)
RUN_COLUMNS = ("run_id", "status", "final", "params", "tokens", "flops")


def sha256(path: Path) -> str:
    return sha256_file(path)


# Larger values are a unit mistake or a damaged file, and their products (6ND, N^alpha) overflow float64.
MAX_VALUE = 1e30


def _check_positive(df: pd.DataFrame, path, cols) -> None:
    for c in cols:
        if pd.api.types.is_bool_dtype(df[c]):
            raise ScalelabError(f"{path}: column {c!r} holds true/false values: N, D, FLOPs and loss must be numbers")
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(float)
        huge = np.isfinite(v) & (v > MAX_VALUE)
        if huge.any():
            raise ScalelabError(
                f"{path}: column {c!r} has {int(huge.sum())} value(s) above {MAX_VALUE:.0e} (first: "
                f"{v[huge][0]:.3g}): check the column's units (N, D and FLOPs as plain counts, loss in nats)"
            )
        bad = ~np.isfinite(v) | (v <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            if str(df[c].iloc[i]).lstrip().startswith("#"):
                raise ScalelabError(
                    f"{path}: row {i + 1} below the header is a '#' comment: delete it (only comment lines above "
                    "the header are skipped)"
                )
            raise ScalelabError(
                f"{path}: column {c!r} has {int(bad.sum())} missing, non-numeric or non-positive "
                f"value(s) (first: {show_value(df[c].iloc[i])}); "
                "N, D, FLOPs and loss must be positive numbers"
            )


def read_runs(
    paths, loss_col: str = "val_loss", n_col: str = "params", by=("variant",), all_checkpoints: bool = False
) -> pd.DataFrame:
    """Read run-store Parquet files into one frame of fit points (see module docstring)."""
    from scalelab import store

    need = list(dict.fromkeys([*RUN_COLUMNS, n_col, loss_col, *by]))
    df = store.read_runs(
        paths,
        columns=need,
        ok_only=True,
        final_only=not all_checkpoints,
        min_fraction=CHECKPOINT_MIN_FRACTION if all_checkpoints else None,
    )
    if df.empty:
        raise ScalelabError(
            f"{', '.join(map(str, paths))}: no usable rows (need status == 'ok' runs with "
            "final rows; use --all-checkpoints for runs without a final row)"
        )
    for f, sub in df.groupby("_file"):
        _check_positive(sub, f, [n_col, "tokens", "flops", loss_col])
        _check_labels(sub, f, ["run_id", *by])
    return df


def unique_tokens(df: pd.DataFrame, spec, D: np.ndarray, source: str) -> np.ndarray | None:
    """Unique tokens per row: the --unique-col column (at most the row's tokens), else tokens / epochs from an
    `epochs` column (the run store's; epochs below 1, a part of the corpus, count as 1; a missing value as 1).
    None when neither is there."""
    col = getattr(spec, "unique_col", None)
    if col:
        if col not in df.columns:
            raise ScalelabError(
                f"{source}: --unique-col {col!r} is not a column; columns: {', '.join(map(str, df.columns))}"
            )
        U = pd.to_numeric(df[col], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(U) | (U <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ScalelabError(
                f"{source}: column {col!r} has {int(bad.sum())} missing or non-positive unique-token count(s) "
                f"(first at row {i}): give every row's unique tokens"
            )
        over = U > D * (1 + 1e-6)
        if over.any():
            i = int(np.flatnonzero(over)[0])
            raise ScalelabError(
                f"{source}: {int(over.sum())} row(s) have more unique tokens (column {col!r}) than tokens trained "
                f"(first at row {i}: {U[i]:.4g} > {D[i]:.4g}): unique tokens count each token once, so at most D"
            )
        return U
    if "epochs" not in df.columns:
        return None
    ep = pd.to_numeric(df["epochs"], errors="coerce").to_numpy(float)
    if not np.isfinite(ep).any():
        return None
    if (np.isfinite(ep) & (ep <= 0)).any():
        raise ScalelabError(f"{source}: column 'epochs' has non-positive values: epochs are tokens / unique tokens")
    return D / np.where(np.isfinite(ep), np.maximum(ep, 1.0), 1.0)


def _check_labels(df: pd.DataFrame, path, cols, first_line: int | None = None) -> None:
    """Group and run columns: a blank value (empty, spaces, missing) would drop its rows from every group or
    make a run of them all; refused, naming the row (its CSV line when `first_line` is given)."""
    for c in cols:
        col = df[c]
        blank = col.isna() | col.astype(str).str.strip().eq("")
        if blank.any():
            i = int(np.flatnonzero(blank.to_numpy())[0])
            where = f"line {i + first_line}" if first_line is not None else f"row {i + 1}"
            raise ScalelabError(
                f"{path}: column {c!r} is blank in {int(blank.sum())} row(s) (first: {where}): fill in every "
                "group and run value, or drop those rows"
            )


CHOOSE_COLUMNS = "choose them with --n-col, --d-col, --loss-col, --flops-col, --group-col, --run-col"


MAX_COMMENT_LINES = 10_000  # a leading comment block longer than this is not a table's preamble


def _sep(p: Path) -> str:
    return "\t" if p.suffix.lower() == ".tsv" else ","


def comment_lines(p: Path) -> int:
    """Lines starting with '#' before the header (a provenance note, as many published tables carry). Only the
    leading block: pandas' comment= would also cut every field holding a '#', run names included."""
    n = 0
    try:
        with open(p, encoding="utf-8-sig", errors="replace") as f:
            for line in f:
                if not line.lstrip().startswith("#") or n >= MAX_COMMENT_LINES:
                    break
                n += 1
    except OSError:
        return 0  # the reader names the problem
    return n


def read_table(path, nrows: int | None = None, labels=()) -> pd.DataFrame:
    """One CSV (or .tsv) file as pandas reads it: a byte-order mark dropped, a leading block of '#' comment lines
    skipped (the header follows it). Unreadable files are refused in one line with pandas' reason. The one reader
    of users' CSV tables: fit, check and plot all come here. `labels`: columns of names (groups, runs), read as
    written: pandas would read a group named NA or None as missing."""
    p = Path(path)
    skip = comment_lines(p)
    kw = dict(sep=_sep(p), encoding="utf-8-sig", skiprows=skip, nrows=nrows)
    try:
        df = pd.read_csv(p, **kw)
        names = [c for c in labels if c in df.columns]
        if names:
            raw = pd.read_csv(p, usecols=names, dtype=str, keep_default_na=False, **kw)
            for c in names:  # what pandas took for missing but holds text (NA, None, null) is that text
                df[c] = df[c].where(df[c].notna() | (raw[c] == ""), raw[c])
        return df
    except FileNotFoundError:
        raise ScalelabError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise ScalelabError(f"{p}: a folder, not a CSV file: give the table's file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
        # pandas' reason names the file's own line number (skipped comment lines counted)
        reason = str(e).strip().splitlines()[-1].replace("Error tokenizing data. C error: ", "") if str(e) else ""
        raise ScalelabError(
            f"{p}: not a readable CSV file ({type(e).__name__}{': ' + reason if reason else ''}): give a "
            f"{'tab' if _sep(p) == chr(9) else 'comma'}-separated table with one header line"
        ) from None


def read_csv(paths, numeric_cols, other_cols=(), hint: str = CHOOSE_COLUMNS) -> pd.DataFrame:
    """Read CSV files (same columns) into one frame, checking that `numeric_cols` (N, D, FLOPs, loss)
    are present and positive and `other_cols` (group, run) present, file by file. `hint`: the fix a
    missing column's error names."""
    frames = []
    for p in map(Path, paths):
        _check_header(p)
        df = read_table(p, labels=[c for c in other_cols if c not in numeric_cols])
        missing = [c for c in [*numeric_cols, *other_cols] if c not in df.columns]
        if missing:
            raise ScalelabError(
                f"{p}: missing column(s) {', '.join(map(repr, missing))}; columns present: "
                f"{', '.join(map(str, df.columns))} ({hint})"
            )
        if df.empty:
            raise ScalelabError(f"{p}: no rows below the header: add the points to fit")
        _check_positive(df, p, numeric_cols)
        _check_labels(df, p, other_cols, first_line=2)
        df["_file"] = str(p)
        frames.append(df)
    if not frames:
        raise ScalelabError("no input files given")
    return pd.concat(frames, ignore_index=True)


def _check_header(p: Path) -> None:
    """Refuse a header that repeats a column name (pandas would rename the copy "N.1" and fit the first) or that
    is one field holding another delimiter (a CSV saved with ';' or tabs)."""
    import csv

    try:
        with open(p, newline="", encoding="utf-8-sig", errors="replace") as f:
            for _ in range(comment_lines(p)):
                next(f)
            head = next(csv.reader(f, delimiter=_sep(p)), [])
    except (csv.Error, OSError):
        return  # not CSV at all: pandas names the problem
    names = [h.strip() for h in head]
    twice = sorted({h for h in names if names.count(h) > 1})
    if twice:
        raise ScalelabError(
            f"{p}: column name(s) {', '.join(map(repr, twice))} appear more than once in the header: rename or "
            "remove the copies"
        )
    if len(names) == 1:
        for sep, what in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
            if sep in names[0]:
                raise ScalelabError(
                    f"{p}: the header is one column holding {what}: save the file comma-separated"
                    + (" (or name it .tsv)" if sep == "\t" else "")
                )


def _once_each(paths: list[Path]) -> None:
    """Refuse a table given twice (the same file, or another with the same contents): its points would count
    double, and the bootstrap would take the copies for independent runs (intervals too narrow)."""
    seen: dict[str, Path] = {}
    for p in paths:
        try:
            h = sha256(p)
        except OSError:
            continue  # the reader names the problem
        if h in seen:
            same = Path(seen[h]).resolve() == p.resolve()
            raise ScalelabError(
                f"{p}: "
                + ("given twice" if same else f"the same table as {seen[h]} (identical contents)")
                + ": give it once, or its points count double"
            )
        seen[h] = p


def _runs_in_one_file(df: pd.DataFrame, run_col: str) -> None:
    """Refuse a run named in two input files (the run store's rule for run ids): a copy of a run, whose points
    would count twice, as far as the tables can tell."""
    from scalelab.store import runs_in_several_files

    twice = runs_in_several_files(df, run_col)
    if len(twice):
        run, where = twice.index[0], twice.iloc[0]
        raise ScalelabError(
            f"run {run!r} (column {run_col!r}) is in {where[0]} and {where[1]}"
            + (f", and {len(twice) - 1} more run(s) are in several files" if len(twice) > 1 else "")
            + ": give each run's rows in one file (or rename the copies' runs if they are different runs)"
        )


def provenance(paths) -> list[dict]:
    """Path and sha256 of every input file; a folder of run files counts as its *.parquet files."""
    from scalelab import store

    files = [f for p in paths for f in (store.expand_paths([p]) if Path(p).is_dir() else [p])]
    return [{"path": str(p), "sha256": sha256(Path(p))} for p in files]


def show_value(v) -> str:
    """A value read from a table as a reader would write it (5173248, not np.int64(5173248))."""
    v = v.item() if hasattr(v, "item") else v
    return repr(v)


def load_inputs(
    paths,
    n_col=None,
    d_col=None,
    loss_col=None,
    flops_col=None,
    run_col=None,
    by=None,
    group_col=None,
    all_checkpoints: bool = False,
) -> tuple[pd.DataFrame, dict]:
    """Read run-store Parquet or CSV files into fit points, and the FitSpec column fields that fit them.

    Defaults by kind: the run store fits val_loss on params and tokens, C from its `flops` column, the run
    as the bootstrap unit, grouped by variant; a CSV fits loss on N and D (D = C/(6N) when it has no D
    column and --flops-col is given), C = 6ND unless its FLOPs column differs from 6ND by more than 1%.
    Returns (frame, {n_col, d_col, loss_col, c_col, run_col, by, flop_convention, all_checkpoints})."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ScalelabError("give run-store files (runs/*.parquet) or a CSV")
    kinds = {("csv" if p.suffix.lower() in (".csv", ".tsv") else "parquet") for p in paths}
    if len(kinds) > 1:
        raise ScalelabError("mixed CSV and Parquet inputs: fit them separately")
    by = list(by) if by is not None else None
    if kinds.pop() == "parquet":
        if group_col:
            by = by or [group_col]
        by = by if by is not None else ["variant"]
        n_col, d_col, loss_col = n_col or "params", d_col or "tokens", loss_col or "val_loss"
        flops_col, run_col = flops_col or "flops", run_col or "run_id"
        df = read_runs(paths, loss_col=loss_col, n_col=n_col, by=by, all_checkpoints=all_checkpoints)
        for c in (d_col, flops_col, run_col):
            if c not in df.columns:
                raise ScalelabError(f"{paths[0]}: missing column {c!r}")
        convention = flops_col
    else:
        if all_checkpoints:
            raise ScalelabError("--all-checkpoints needs run-store Parquet input (CSV rows are used as given)")
        n_col, loss_col = n_col or "N", loss_col or "loss"
        if d_col is None:
            d_col = "D" if "D" in _csv_columns(paths[0]) or not flops_col else None
        if by is None:
            by = [group_col] if group_col else []
        if run_col is None:  # a column named run or run_id is the bootstrap unit unless told otherwise
            present = _csv_columns(paths[0])
            run_col = next((c for c in ("run", "run_id") if c in present), None)
        numeric = [c for c in (n_col, d_col, loss_col, flops_col) if c]
        _once_each(paths)
        df = read_csv(paths, numeric, [c for c in (*by, run_col) if c])
        if run_col:
            _runs_in_one_file(df, run_col)
        convention = "6ND"
        if flops_col and d_col:
            c6 = 6 * df[n_col].astype(float) * df[d_col].astype(float)
            if not np.allclose(df[flops_col].astype(float), c6, rtol=0.01):
                convention = flops_col
    cols = dict(
        n_col=n_col,
        d_col=d_col,
        loss_col=loss_col,
        c_col=flops_col,
        run_col=run_col,
        by=tuple(by),
        flop_convention=convention,
        all_checkpoints=all_checkpoints,
    )
    return df, cols


def _csv_columns(path: Path) -> list[str]:
    try:
        return [str(c) for c in read_table(path, nrows=0).columns]
    except ScalelabError:
        return []  # read_csv reports the problem with the file's name
