"""Read what `scalelab plot` is given: run-store Parquet files, CSV tables, a fit file, bench JSON files.

Run files through scalelab.store, the fit (read once) through scalelab.fit.load_fit, bench JSON here,
against the documented formats (docs/DESIGN.md "Run store", docs/interfaces.md "Fit file"), so that
plotting works on results copied to a laptop. Anything unreadable is a ScalelabError naming the file:
one line, exit 2.

The fitted points (every point the fit used, not only each run's last one) are read by the fit's own
reader (scalelab.fit.io) through the columns the fit recorded, from the data files given (run files or
CSV tables), else from the fit's recorded inputs when they are still where the fit read them and unchanged
(same sha256), else the fit file's runs list stands in (one point per run, with a note).
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from typing import Optional

from scalelab.errors import ScalelabError
from scalelab.fileio import sha256_file
from scalelab.fit.groups import drop_top_losses
from scalelab.fit.results import FitResults, as_fit, load_fit

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
    runs: Optional["object"] = None  # pd.DataFrame of every row of every run file
    fit: Optional[FitResults] = None
    bench: Optional["object"] = None  # pd.DataFrame: variant, d_model, tokens_per_s, mfu
    sources: list = field(default_factory=list)
    # every fitted point: group, variant, N, D, C, loss, run (+ the input's other columns); None without
    points: Optional["object"] = None
    points_source: str = ""  # where the points came from, for the figures' notes
    points_notes: list = field(default_factory=list)  # mismatches between points read and the fit's counts
    table_columns: Optional["_FitColumns"] = None  # the columns read from CSV tables plotted without a fit

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
    """Files as given; a folder means its *.parquet, *.csv and *.json files; globs are expanded."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(sum((glob.glob(os.path.join(p, f"*.{e}")) for e in ("parquet", "csv", "json")), []))
            if not found:
                raise ScalelabError(
                    f"{p}: folder holds no .parquet, .csv or .json files: give run files (runs/*.parquet) or a CSV"
                )
            out += found
        elif any(c in p for c in "*?[") and not os.path.exists(p):
            found = sorted(glob.glob(p))
            if not found:
                raise ScalelabError(f"{p}: no file matches: check the path")
            out += found
        else:
            out.append(p)
    return out


TABLE_SUFFIXES = (".csv", ".tsv")
FIT_RUNS_SOURCE = "the fit file's runs list"  # points_source when no data file could be read


def load_inputs(paths: list[str], fit_path: Optional[str] = None, columns: Optional[dict] = None) -> Inputs:
    """Sort positional inputs by kind (Parquet runs, CSV tables, fit JSON, bench JSON) and read them all.

    columns: for CSV tables without a fit, the columns to read ({n, d, loss, flops, group, run}: a name or
    None); the ones left out are found by their usual names (TABLE_COLUMNS)."""
    import pandas as pd

    inputs = Inputs()
    run_files, table_files, bench_files, fit_doc = [], [], [], None
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
            if isinstance(d, dict) and str(d.get("format", "")).startswith("scalelab-fit/"):
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
        inputs.fit = as_fit(fit_doc) if fit_doc else load_fit(fit_path)
        inputs.sources.append(Source(fit_path, sha256(fit_path), "fit"))
        if inputs.fit.samples_path is not None:
            sp = str(inputs.fit.samples_path)
            inputs.sources.append(Source(sp, sha256(sp), "samples"))
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
    if inputs.runs is None and inputs.fit is None and inputs.bench is None and inputs.points is None:
        raise ScalelabError("nothing to plot: give run files (runs/*.parquet) and/or --fit fits/NAME.json")
    return inputs


# ------------------------------------------------------------------------------------ fitted points


def read_points(inputs: Inputs, run_files: list[str], table_files: list[str], columns=None) -> None:
    """Set inputs.points (every fitted point per fit group) and where they came from (module docstring)."""
    fit = inputs.fit
    if fit is None:  # a CSV without a fit: columns as given, else found by their usual names
        cols = _table_columns(table_files, columns or {})
        inputs.points = _points_from_files(table_files, cols, None)
        used = ", ".join(f"{k}={v!r}" for k, v in zip(("N", "D", "loss", "C", "group", "run"), cols.named()) if v)
        inputs.table_columns = cols
        inputs.points_source = f"{_names(table_files)} (columns {used})"
        return
    cols = _FitColumns.of(fit)
    if table_files:
        _check_table_columns(table_files, cols, fit)
        inputs.points = _points_from_files(table_files, cols, fit)
        inputs.points_source = _names(table_files)
    elif run_files:
        try:
            inputs.points = _points_from_files(run_files, cols, fit)
            inputs.points_source = _names(run_files)
        except ScalelabError as e:  # run files that are not what the fit was made from: its runs list stands in
            inputs.points_notes.append(f"fitted points not read from the run files ({e})")
    else:
        found = _recorded_inputs(fit)
        if found:
            try:
                inputs.points = _points_from_files(found, cols, fit)
                inputs.points_source = f"the fit's recorded input {_names(found)}"
                inputs.sources += [Source(p, sha256(p), "fit input") for p in found]
            except ScalelabError as e:
                inputs.points_notes.append(f"the fit's recorded inputs could not be read ({e})")
    if inputs.points is None:
        inputs.points = _points_from_fit_runs(fit)
        inputs.points_source = FIT_RUNS_SOURCE
        n_fit = sum(g.n_points for g in fit)
        if inputs.points is not None and n_fit > len(inputs.points):
            inputs.points_notes.append(
                f"only each run's last point ({len(inputs.points)} of the {n_fit} fitted points): the fit file "
                "lists runs, not points; give the files it was fitted on to draw every point"
            )
        return
    counts = inputs.points.groupby("group").size()
    for g in fit:
        n = int(counts.get(g.name, 0))
        if g.n_points and n != g.n_points:
            inputs.points_notes.append(
                f"group {g.name}: {n} point(s) read from {inputs.points_source}, the fit used {g.n_points}"
            )


@dataclass
class _FitColumns:
    """The columns and input choices a fit was made with (its FitSpec, else its "columns" record)."""

    n: str
    d: Optional[str]
    loss: str
    c: Optional[str]
    run: Optional[str]
    by: list
    all_checkpoints: bool = False
    drop_top_loss: int = 0

    @classmethod
    def defaults(cls) -> "_FitColumns":
        return cls("N", "D", "loss", None, None, [])

    @classmethod
    def of(cls, fit: FitResults) -> "_FitColumns":
        spec = fit.spec
        if spec is not None:
            return cls(
                spec.n_col,
                spec.d_col,
                spec.loss_col,
                spec.c_col,
                spec.run_col,
                list(spec.by),
                spec.all_checkpoints,
                spec.drop_top_loss,
            )
        c = fit.columns
        from_store = c["n"] in (None, "params", "params_nonembed") and any(r.get("model") for g in fit for r in g.runs)
        n = c["n"] or ("params" if from_store else "N")
        d = c["d"] or ("tokens" if from_store else "D")
        loss = c["loss"] or ("val_loss" if from_store else "loss")
        flops = c["flops"] if c["flops"] and str(c["flops"]).upper() != "6ND" else None
        return cls(
            n,
            d,
            loss,
            flops,
            c["run"],
            c["by"],
            bool(fit.meta.get("all_checkpoints")),
            int(fit.meta.get("drop_top_loss") or 0),
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
    import pandas as pd

    try:
        return [str(c) for c in pd.read_csv(path, nrows=0, sep=None if path.lower().endswith(".tsv") else ",").columns]
    except Exception as e:  # noqa: BLE001 - any parser failure is the same user error
        raise ScalelabError(f"{path}: not a readable CSV file ({type(e).__name__}): give a comma-separated table")


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
    import pandas as pd

    for p in paths:
        try:
            have = set(pd.read_csv(p, nrows=0, sep=None if p.lower().endswith(".tsv") else ",").columns)
        except Exception as e:  # the reader below names the problem; here only the columns matter
            raise ScalelabError(
                f"{p}: not a readable CSV file ({type(e).__name__}): give the table the fit was made from"
            )
        missing = [c for c in cols.needed() if c not in have]
        if missing:
            fname = os.path.basename(str(fit.path)) if fit.path else "the fit"
            raise ScalelabError(
                f"{p}: lacks column(s) {', '.join(map(repr, missing))} that {fname} was fitted on "
                f"(columns {', '.join(cols.needed())}): give the table the fit was made from"
            )


def _points_from_files(paths: list[str], cols: _FitColumns, fit: Optional[FitResults]):
    """The fitted points of `paths` read as the fit read them (scalelab.fit.io and fit.groups)."""

    from scalelab.fit.groups import split_groups
    from scalelab.fit.io import load_inputs as read_fit_inputs
    from scalelab.fit.spec import FitSpec

    df, _ = read_fit_inputs(
        paths,
        n_col=cols.n,
        d_col=cols.d,
        loss_col=cols.loss,
        flops_col=cols.c,
        run_col=cols.run,
        by=cols.by,
        all_checkpoints=cols.all_checkpoints,
    )
    if cols.drop_top_loss < len(df):  # the fit's own rule; data that would lose every point are drawn whole
        df = drop_top_losses(df, cols.loss, cols.drop_top_loss)
    df = df.reset_index(drop=True)
    spec = FitSpec(n_col=cols.n, d_col=cols.d, loss_col=cols.loss, c_col=cols.c, run_col=cols.run, by=cols.by)
    by = list(cols.by)
    if by:
        keys = df[by].astype(str).agg("/".join, axis=1) if len(by) > 1 else df[by[0]].astype(str)
    else:
        keys = None
    frames = []
    groups = split_groups(df, spec, _names(paths)) if fit is not None else _plot_groups(df, spec, keys, _names(paths))
    for gd in groups:
        if fit is not None and gd.name not in fit.groups:
            continue
        rows = df[(keys == gd.name).to_numpy()] if keys is not None else df
        if len(rows) != len(gd.L):  # split_groups changed: read its arrays only
            rows = rows.iloc[:0].reindex(range(len(gd.L)))
        out = rows.drop(columns=[c for c in ("_file",) if c in rows.columns]).copy().reset_index(drop=True)
        out["group"] = gd.name
        out["variant"] = fit.groups[gd.name].variant if fit is not None else gd.name
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


def _points_from_fit_runs(fit: FitResults):
    """One point per run (its last): the fit file's runs list, when no data file can be read."""
    import pandas as pd

    frames = []
    for g in fit:
        r = pd.DataFrame(g.runs)
        if r.empty or "loss" not in r.columns:
            continue
        out = pd.DataFrame(
            {
                "group": g.name,
                "variant": g.variant,
                "N": r[g.n_column if g.n_column in r.columns else "params"].astype(float),
                "D": r["tokens"].astype(float),
                "C": r["flops"].astype(float) if "flops" in r.columns else float("nan"),
                "loss": r["loss"].astype(float),
                "run": r["run_id"].astype(str) if "run_id" in r.columns else "",
            }
        )
        for col in ("params", "params_nonembed", "tokens", "flops"):
            if col in r.columns:
                out[col] = r[col].astype(float)
        frames.append(out)
    return _point_frame(frames)


def _recorded_inputs(fit: FitResults) -> list[str]:
    """The fit's input files that are still there unchanged (as recorded, or beside the fit file)."""
    found = []
    for rec in fit.meta.get("inputs") or []:
        path, digest = rec.get("path"), rec.get("sha256")
        if not path:
            return []
        cands = [path] + ([os.path.join(os.path.dirname(str(fit.path)), os.path.basename(path))] if fit.path else [])
        hit = next((c for c in cands if os.path.isfile(c) and (not digest or sha256(c) == digest)), None)
        if hit is None:
            return []  # all or nothing: a partial set would draw a partial fit
        found.append(hit)
    return found


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
