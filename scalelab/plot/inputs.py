"""Read what `scalelab plot` is given: run-store Parquet files, a fit file, bench JSON files.

Run files through scalelab.store, the fit (read once) through scalelab.fit.load_fit, bench JSON here,
against the documented formats (docs/DESIGN.md "Run store", docs/interfaces.md "Fit file"), so that
plotting works on results copied to a laptop. Anything unreadable is a ScalelabError naming the file:
one line, exit 2.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from typing import Optional

from scalelab.errors import ScalelabError
from scalelab.fileio import sha256_file
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

    def variants(self) -> list[str]:
        vs = set()
        if self.runs is not None:
            vs |= set(self.runs["variant"].astype(str))
        if self.fit is not None:
            vs |= {g.variant for g in self.fit}
        if self.bench is not None:
            vs |= set(self.bench["variant"].astype(str))
        return sorted(vs)


def expand_paths(paths: list[str]) -> list[str]:
    """Files as given; a folder means its *.parquet and *.json files; globs are expanded."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(glob.glob(os.path.join(p, "*.parquet")) + glob.glob(os.path.join(p, "*.json")))
            if not found:
                raise ScalelabError(f"{p}: folder holds no .parquet or .json files: give run files (runs/*.parquet)")
            out += found
        elif any(c in p for c in "*?[") and not os.path.exists(p):
            found = sorted(glob.glob(p))
            if not found:
                raise ScalelabError(f"{p}: no file matches: check the path")
            out += found
        else:
            out.append(p)
    return out


def load_inputs(paths: list[str], fit_path: Optional[str] = None) -> Inputs:
    """Sort positional inputs by kind (Parquet runs, fit JSON, bench JSON) and read them all."""
    import pandas as pd

    inputs = Inputs()
    run_files, bench_files, fit_doc = [], [], None
    for p in expand_paths(paths):
        if not os.path.isfile(p):
            raise ScalelabError(f"{p}: no such file: check the path")
        if p.endswith(".samples.parquet"):
            continue  # read through its fit file
        if p.endswith(".parquet"):
            run_files.append(p)
        elif p.endswith(".json"):
            d = _read_json(p)
            if isinstance(d, dict) and str(d.get("format", "")).startswith("scalelab-fit/"):
                if fit_path and os.path.abspath(fit_path) != os.path.abspath(p):
                    raise ScalelabError(f"{p}: a second fit file (--fit {fit_path} was given): plot one fit at a time")
                fit_path, fit_doc = p, dict(d, _path=p)  # parsed already: not read a second time
            else:
                bench_files.append(p)
        else:
            raise ScalelabError(f"{p}: unknown input type: give runs/*.parquet, fits/NAME.json or bench/*.json")
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
    if inputs.runs is None and inputs.fit is None and inputs.bench is None:
        raise ScalelabError("nothing to plot: give run files (runs/*.parquet) and/or --fit fits/NAME.json")
    return inputs


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
