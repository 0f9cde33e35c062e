"""Read what `scalelab plot` is given: run-store Parquet files, CSV tables, a fit file, bench JSON files.

Run files through scalelab.store, the fit (read once) through scalelab.fit.load_fit, bench JSON here,
against the documented formats (docs/DESIGN.md "Run store", docs/interfaces.md "Fit file"), so that
plotting works on results copied to a laptop. Anything unreadable is a ScalelabError naming the file:
one line, exit 2.

The fitted points are the fit's own (FitResults.points: the points it used, after every filter and the
sweep envelope; for older fit files scalelab.fit.upgrade rebuilds them). A CSV plotted without a fit is
read by the fit's reader (scalelab.fit.io) through the columns given or found by their usual names.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from scalelab.errors import ScalelabError
from scalelab.fileio import sha256_file
from scalelab.fit.results import FitResults, as_fit, load_fit
from scalelab.fit.upgrade import POINTS_FROM_INPUTS, POINTS_FROM_RUNS

if TYPE_CHECKING:
    import pandas as pd

# Run-store columns the figures need (DESIGN.md); other columns are used when present.
RUN_COLUMNS = ("run_id", "variant", "step", "tokens", "flops", "val_loss", "final", "params")


def sha256(path: str) -> str:
    return sha256_file(path)


@dataclass
class Source:
    """One input file and its hash, for figures/index.md."""

    path: str
    sha256: str
    kind: str  # runs | fit | samples | bench


@dataclass
class Inputs:
    runs: Optional[pd.DataFrame] = None  # every row of every run file
    fit: Optional[FitResults] = None
    bench: Optional[pd.DataFrame] = None  # variant, d_model, tokens_per_s, mfu
    sources: list = field(default_factory=list)
    # every fitted point: group, variant, N, D, C, loss, run (+ the input's other columns); None without
    points: Optional[pd.DataFrame] = None
    all_points: Optional[pd.DataFrame] = None  # points plus those a sweep's envelope left out (the curves)
    points_source: str = ""  # where the points came from, for the figures' notes
    points_notes: list = field(default_factory=list)  # mismatches between points read and the fit's counts
    table_columns: Optional["_FitColumns"] = None  # the columns read from CSV tables plotted without a fit
    curves: Optional[Any] = None  # a curve law (fits/NAME.curves.json: scalelab.fit.curves.CurvesFile)

    def variants(self) -> list[str]:
        vs = set()
        if self.runs is not None:
            vs |= set(self.runs["variant"].astype(str))
        if self.fit is not None:
            vs |= {g.variant for g in self.fit}
        if self.bench is not None:
            vs |= set(self.bench["variant"].astype(str))
        if self.points is not None and "variant" in self.points.columns:
            vs |= set(self.points["variant"].astype(str))
        return sorted(vs)


def expand_paths(paths: list[str]) -> list[str]:
    """Files as given; a folder means its *.parquet, *.csv and *.json files; globs are expanded. A folder or glob
    leaves out a fit's side files (store.is_fit_output: the fit JSON reads its own)."""
    from scalelab.store import is_fit_output

    out = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(
                sum((glob.glob(os.path.join(glob.escape(p), f"*.{e}")) for e in ("parquet", "csv", "json")), [])
            )
            if not found:
                raise ScalelabError(
                    f"{p}: folder holds no .parquet, .csv or .json files: give run files (runs/*.parquet) or a CSV"
                )
            out += [f for f in found if not is_fit_output(f)]
        elif any(c in p for c in "*?[") and not os.path.exists(p):
            found = sorted(glob.glob(p))
            if not found:
                raise ScalelabError(f"{p}: no file matches: check the path")
            out += [f for f in found if not is_fit_output(f)]
        else:
            out.append(p)
    return out


TABLE_SUFFIXES = (".csv", ".tsv")


def load_inputs(paths: list[str], fit_path: Optional[str] = None, columns: Optional[dict] = None) -> Inputs:
    """Sort positional inputs by kind (Parquet runs, CSV tables, fit JSON, bench JSON) and read them all.

    columns: for CSV tables without a fit, the columns to read ({n, d, loss, flops, group, run}: a name or
    None); the ones left out are found by their usual names (TABLE_COLUMNS)."""
    import pandas as pd

    inputs = Inputs()
    run_files, table_files, bench_files, fit_doc = [], [], [], None
    from scalelab.fit.curves import is_curves_file

    if fit_path and is_curves_file(fit_path):  # a curve law given as the fit: fig9 draws it
        _read_curves(inputs, fit_path)
        fit_path = None
    for p in expand_paths(paths):
        if not os.path.isfile(p):
            raise ScalelabError(f"{p}: no such file: check the path")
        if p.endswith(".samples.parquet"):
            continue  # read through its fit file
        if p.endswith(".parquet"):
            run_files.append(p)
        elif p.lower().endswith(TABLE_SUFFIXES):
            table_files.append(p)
        elif p.endswith(".json"):
            d = _read_json(p)
            if isinstance(d, dict) and str(d.get("format", "")).startswith("scalelab-curves/"):
                _read_curves(inputs, p)
            elif isinstance(d, dict) and str(d.get("format", "")).startswith("scalelab-fit/"):
                if fit_path and os.path.abspath(fit_path) != os.path.abspath(p):
                    raise ScalelabError(f"{p}: a second fit file (--fit {fit_path} was given): plot one fit at a time")
                fit_path, fit_doc = p, dict(d, _path=p)  # parsed already: not read a second time
            else:
                bench_files.append(p)
        else:
            raise ScalelabError(
                f"{p}: unknown input type: give runs/*.parquet, a CSV table, fits/NAME.json or bench/*.json"
            )
    if run_files:
        frames = [_read_run_file(p) for p in run_files]
        inputs.runs = pd.concat(frames, ignore_index=True)
        inputs.sources += [Source(p, sha256(p), "runs") for p in run_files]
    if fit_path:
        _read_fit(inputs, fit_path, fit_doc)
    if bench_files:
        inputs.bench = pd.concat([read_bench(p) for p in bench_files], ignore_index=True)
        inputs.sources += [Source(p, sha256(p), "bench") for p in bench_files]
    if table_files:
        inputs.sources += [Source(p, sha256(p), "table") for p in table_files]
    columns = {k: v for k, v in (columns or {}).items() if v}
    if columns and (fit_path or not table_files):
        raise ScalelabError(
            f"--{next(iter(columns))}-col applies to CSV tables plotted without a fit (with --fit the fit's own "
            "columns are read): leave it out"
        )
    if inputs.fit is not None or table_files:
        read_points(inputs, run_files, table_files, columns)
    if (
        inputs.runs is None
        and inputs.fit is None
        and inputs.bench is None
        and inputs.points is None
        and not inputs.curves
    ):
        raise ScalelabError("nothing to plot: give run files (runs/*.parquet) and/or --fit fits/NAME.json")
    return inputs


def _read_curves(inputs: Inputs, path: str) -> None:
    from scalelab.fit.curves import load_curves

    if inputs.curves is not None:
        raise ScalelabError(f"{path}: a second curve-law file: plot one curve law at a time")
    inputs.curves = load_curves(path)
    inputs.sources.append(Source(path, sha256(path), "curves"))


def _read_fit(inputs: Inputs, fit_path: str, fit_doc: Optional[dict]) -> None:
    """The fit (parsed already when found among the positional inputs), and its files as sources."""
    inputs.fit = as_fit(fit_doc) if fit_doc else load_fit(fit_path)
    inputs.sources.append(Source(fit_path, sha256(fit_path), "fit"))
    if inputs.fit.samples_path is not None:
        sp = str(inputs.fit.samples_path)
        inputs.sources.append(Source(sp, sha256(sp), "samples"))
    pp = fit_path[: -len(".json")] + ".points.parquet" if fit_path.endswith(".json") else None
    if inputs.fit.points_sha256 and pp and os.path.isfile(pp):
        inputs.sources.append(Source(pp, sha256(pp), "points"))


# ------------------------------------------------------------------------------------ fitted points


def read_points(inputs: Inputs, run_files: list[str], table_files: list[str], columns=None) -> None:
    """Set inputs.points (every fitted point per fit group) and where they came from (module docstring)."""
    fit = inputs.fit
    if fit is None:  # a CSV without a fit: columns as given, else found by their usual names
        cols = _table_columns(table_files, columns or {})
        inputs.points = _points_from_files(table_files, cols)
        used = ", ".join(f"{k}={v!r}" for k, v in zip(("N", "D", "loss", "C", "group", "run"), cols.named()) if v)
        inputs.table_columns = cols
        inputs.points_source = f"{_names(table_files)} (columns {used})"
        return
    if table_files:
        _check_table_columns(table_files, _FitColumns.of(fit), fit)
    inputs.points, inputs.all_points = _fit_points(fit)
    if fit.points_source == POINTS_FROM_INPUTS and not (run_files or table_files):  # read for an older fit file
        found = [rec.path for rec in fit.info.inputs if os.path.isfile(rec.path)]
        inputs.sources += [Source(p, sha256(p), "fit input") for p in found]
    name = os.path.basename(str(fit.path)) if fit.path else "the fit"
    inputs.points_source = name if fit.points_source in ("", "the fit") else f"{name} ({fit.points_source})"
    if inputs.points is None:
        inputs.points_notes.append("the fit file records no points (and its inputs could not be read)")
        return
    n_fit = sum(g.n_points for g in fit)
    if fit.points_source == POINTS_FROM_RUNS and n_fit > len(inputs.points):
        inputs.points_notes.append(
            f"only each run's last point ({len(inputs.points)} of the {n_fit} fitted points): the fit file "
            "lists runs, not points, and its inputs could not be read"
        )


def _fit_points(fit: FitResults):
    """(the points the fit used, every point it read: with the sweep points its envelope left out), each
    with its group's variant; (None, None) when the fit has none."""
    pts = fit.points
    if pts is None:
        return None, None
    pts = pts[pts["group"].isin(list(fit.groups))].reset_index(drop=True)
    variant = {g.name: g.variant for g in fit}
    every = _point_frame([pts.assign(variant=pts["group"].map(variant))])
    used = every[every["fitted"].astype(bool)].reset_index(drop=True) if "fitted" in every.columns else every
    return used, every


@dataclass
class _FitColumns:
    """The columns and input choices a fit was made with (its FitSpec, else its "columns" record)."""

    n: str
    d: Optional[str]
    loss: str
    c: Optional[str]
    run: Optional[str]
    by: list

    @classmethod
    def defaults(cls) -> "_FitColumns":
        return cls("N", "D", "loss", None, None, [])

    @classmethod
    def of(cls, fit: FitResults) -> "_FitColumns":
        spec = fit.spec
        if spec is not None:
            return cls(spec.n_col, spec.d_col, spec.loss_col, spec.c_col, spec.run_col, list(spec.by))
        c = fit.info.columns
        from_store = c.N in (None, "params", "params_nonembed") and any(r.get("model") for g in fit for r in g.runs)
        flops = c.C if c.C and str(c.C).upper() != "6ND" else None
        return cls(
            c.N or ("params" if from_store else "N"),
            c.D or ("tokens" if from_store else "D"),
            c.loss or ("val_loss" if from_store else "loss"),
            flops,
            c.run,
            list(fit.info.by),
        )

    def named(self) -> tuple:
        return self.n, self.d, self.loss, self.c, (self.by[0] if self.by else None), self.run

    def needed(self) -> list[str]:
        return [c for c in (self.n, self.d, self.loss, self.c, self.run, *self.by) if c]


def _names(paths: list[str]) -> str:
    return ", ".join(os.path.basename(p) for p in paths[:3]) + (f" (+{len(paths) - 3} more)" if len(paths) > 3 else "")


# A CSV plotted without a fit: each quantity's column, the first of these names the table has (scalelab
# fit's CSV defaults first, then the run store's names); --n-col etc. override.
TABLE_COLUMNS = {
    "n": ("N", "params", "n_params"),
    "d": ("D", "tokens"),
    "loss": ("loss", "val_loss", "train_loss"),
    "flops": ("C", "flops"),
    "group": ("group", "variant"),
    "run": ("run", "run_id"),
}
COLUMN_OPTIONS = {k: f"--{k}-col" for k in TABLE_COLUMNS}


def _header(path: str) -> list:
    from scalelab.fit.io import read_table

    return [str(c) for c in read_table(path, nrows=0).columns]


def _table_columns(paths: list[str], given: dict) -> _FitColumns:
    """The columns of CSV tables plotted without a fit: those given, else the usual names (TABLE_COLUMNS)
    that every table has. N and loss are needed, and D or C."""
    common = None
    for p in paths:
        h = _header(p)
        common = [c for c in h if common is None or c in common]
    have = set(common or [])
    cols = {}
    for key, names in TABLE_COLUMNS.items():
        if given.get(key):
            if given[key] not in have:
                raise ScalelabError(
                    f"{_names(paths)}: no column {given[key]!r} (given by {COLUMN_OPTIONS[key]}); "
                    f"columns present: {', '.join(sorted(have))}"
                )
            cols[key] = given[key]
        else:
            cols[key] = next((c for c in names if c in have), None)
    missing = [k for k in ("n", "loss") if cols[k] is None] + (["d"] if cols["d"] is None and not cols["flops"] else [])
    if missing:
        what = {"n": "parameters N", "d": "tokens D (or FLOPs C)", "loss": "loss"}
        looked = "; ".join("/".join(TABLE_COLUMNS[k] + (TABLE_COLUMNS["flops"] if k == "d" else ())) for k in missing)
        raise ScalelabError(
            f"{_names(paths)}: no column of {', '.join(what[k] for k in missing)} (looked for {looked}); "
            f"columns present: {', '.join(sorted(have))}: name them with "
            f"{', '.join(COLUMN_OPTIONS[k] for k in missing)}"
        )
    return _FitColumns(
        cols["n"], cols["d"], cols["loss"], cols["flops"], cols["run"], [cols["group"]] if cols["group"] else []
    )


def _check_table_columns(paths: list[str], cols: _FitColumns, fit: FitResults) -> None:
    from scalelab.fit.io import read_table

    for p in paths:
        have = {str(c) for c in read_table(p, nrows=0).columns}
        missing = [c for c in cols.needed() if c not in have]
        if missing:
            fname = os.path.basename(str(fit.path)) if fit.path else "the fit"
            raise ScalelabError(
                f"{p}: lacks column(s) {', '.join(map(repr, missing))} that {fname} was fitted on "
                f"(columns {', '.join(cols.needed())}): give the table the fit was made from"
            )


def _points_from_files(paths: list[str], cols: _FitColumns):
    """Every point of CSV tables plotted without a fit, read as `scalelab fit` would read them."""
    from scalelab.fit.io import load_inputs as read_fit_inputs
    from scalelab.fit.spec import FitSpec

    df, _ = read_fit_inputs(
        paths, n_col=cols.n, d_col=cols.d, loss_col=cols.loss, flops_col=cols.c, run_col=cols.run, by=cols.by
    )
    df = df.reset_index(drop=True)
    spec = FitSpec(n_col=cols.n, d_col=cols.d, loss_col=cols.loss, c_col=cols.c, run_col=cols.run, by=tuple(cols.by))
    by = list(cols.by)
    keys = None
    if by:
        keys = df[by].astype(str).agg("/".join, axis=1) if len(by) > 1 else df[by[0]].astype(str)
    frames = []
    for gd in _plot_groups(df, spec, keys, _names(paths)):
        rows = df[(keys == gd.name).to_numpy()] if keys is not None else df
        if len(rows) != len(gd.L):  # split_groups changed: read its arrays only
            rows = rows.iloc[:0].reindex(range(len(gd.L)))
        out = rows.drop(columns=[c for c in ("_file",) if c in rows.columns]).copy().reset_index(drop=True)
        out["group"] = out["variant"] = gd.name
        out["N"], out["D"], out["C"], out["loss"] = gd.N, gd.D, gd.C, gd.L
        out["run"] = gd.unit if cols.run else ""
        frames.append(out)
    return _point_frame(frames)


def _plot_groups(df, spec, keys, source: str) -> list:
    """Without a fit, every group's points, however few: split_groups' checks of the numbers hold, but
    its minimum of points per group and of distinct sizes is the fit's, not a figure's."""
    import numpy as np
    import pandas as pd

    from scalelab.fit.groups import GroupData, split_groups

    if keys is None:
        keys = pd.Series(["all"] * len(df))
    out = []
    for name in dict.fromkeys(keys):
        sub = df[(keys == name).to_numpy()].reset_index(drop=True)
        try:
            out += split_groups(sub, spec, source)
        except ScalelabError as e:
            if "a fit needs at least" not in str(e) and "nothing to fit" not in str(e):
                raise  # a bad number: the same one-line refusal as `scalelab fit`
            N, L = (sub[c].astype(float).to_numpy() for c in (spec.n_col, spec.loss_col))
            C = sub[spec.c_col].astype(float).to_numpy() if spec.c_col else None
            D = sub[spec.d_col].astype(float).to_numpy() if spec.d_col else C / (6.0 * N)
            C = 6.0 * N * D if C is None else C
            unit = (
                sub[spec.run_col].astype(str).to_numpy()
                if spec.run_col
                else np.array([f"row{i}" for i in range(len(sub))])
            )
            out.append(GroupData(str(name), {}, N, D, C, L, unit))
    return out


def _point_frame(frames):
    import pandas as pd

    if not frames:
        return None
    df = pd.concat(frames, ignore_index=True)
    for col, src in (("params", "N"), ("tokens", "D"), ("flops", "C")):
        if col not in df.columns:
            df[col] = df[src]
    return df


def _read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ScalelabError(f"{path}: cannot read JSON ({type(e).__name__}: {e}): give a fit or bench file")


def _read_run_file(path: str):
    from scalelab import store

    df = store.read_runs(path, columns=RUN_COLUMNS)
    df["variant"] = df["variant"].astype(str)
    df["final"] = df["final"].fillna(False).astype(bool)
    return df


def read_bench(path: str):
    """A bench JSON: rows with variant, d_model (or width), tokens_per_s and optionally mfu.

    Accepted shapes: a list of rows, or a dict holding such a list under 'rows', 'results' or 'train'.
    """
    import pandas as pd

    d = _read_json(path)
    rows = d
    if isinstance(d, dict):
        rows = next((d[k] for k in ("rows", "results", "train") if isinstance(d.get(k), list)), None)
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise ScalelabError(
            f"{path}: no throughput rows (a list of {{variant, d_model, tokens_per_s}}): give a bench file"
        )
    df = pd.DataFrame(rows)
    if "d_model" not in df.columns and "width" in df.columns:
        df["d_model"] = df["width"]
    for col in ("variant", "d_model", "tokens_per_s"):
        if col not in df.columns:
            raise ScalelabError(
                f"{path}: bench rows lack column {col!r}: give a bench file with variant, d_model, tokens_per_s"
            )
    if "mfu" not in df.columns:
        df["mfu"] = float("nan")
    df["variant"] = df["variant"].astype(str)
    df["_file"] = path
    return df[["variant", "d_model", "tokens_per_s", "mfu", "_file"]]
