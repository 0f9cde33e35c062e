"""Read what `scalelab plot` is given: run-store Parquet files, a fit file, bench JSON files.

Read with pandas/json directly against the documented formats (docs/DESIGN.md "Run store",
docs/interfaces.md "Fit file"), so that plotting works on results copied to a laptop. Anything
unreadable is a ScalelabError naming the file: one line, exit 2.
"""
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from typing import Optional

from scalelab.errors import ScalelabError
from scalelab.fileio import sha256_file

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
class Fit:
    """A fit file as the figures use it: the JSON dict plus its bootstrap samples."""

    path: str
    data: dict
    samples: Optional["object"]  # pd.DataFrame or None
    samples_note: str = ""

    @property
    def groups(self) -> dict:
        return self.data.get("groups", {})

    @property
    def convention(self) -> str:
        return self.data.get("flop_convention", "flops")

    @property
    def level(self) -> float:
        return float(self.data.get("bootstrap", {}).get("level", 0.95))

    def variant_of(self, group: str) -> str:
        key = self.groups[group].get("key") or {}
        return str(key.get("variant", group))

    def group_samples(self, group: str):
        if self.samples is None:
            return None
        s = self.samples[self.samples["group"] == group]
        return s if len(s) else None


@dataclass
class Inputs:
    runs: Optional["object"] = None  # pd.DataFrame of every row of every run file
    fit: Optional[Fit] = None
    bench: Optional["object"] = None  # pd.DataFrame: variant, d_model, tokens_per_s, mfu
    sources: list = field(default_factory=list)

    def variants(self) -> list[str]:
        vs = set()
        if self.runs is not None:
            vs |= set(self.runs["variant"].astype(str))
        if self.fit is not None:
            vs |= {self.fit.variant_of(g) for g in self.fit.groups}
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
    run_files, bench_files = [], []
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
                fit_path = p
            else:
                bench_files.append(p)
        else:
            raise ScalelabError(f"{p}: unknown input type: give runs/*.parquet, fits/NAME.json or bench/*.json")
    if run_files:
        frames = [_read_run_file(p) for p in run_files]
        inputs.runs = pd.concat(frames, ignore_index=True)
        inputs.sources += [Source(p, sha256(p), "runs") for p in run_files]
    if fit_path:
        inputs.fit = read_fit(fit_path)
        inputs.sources.append(Source(fit_path, sha256(fit_path), "fit"))
        sp = _samples_path(fit_path, inputs.fit.data)
        if inputs.fit.samples is not None:
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


def _samples_path(fit_path: str, data: dict) -> str:
    name = data.get("samples")
    if not name:
        stem = fit_path[:-5] if fit_path.endswith(".json") else fit_path
        return stem + ".samples.parquet"
    return name if os.path.isabs(name) else os.path.join(os.path.dirname(fit_path), name)


def read_fit(path: str) -> Fit:
    """Read fits/NAME.json and its NAME.samples.parquet (missing samples: no bands, with a note)."""
    import pandas as pd

    if not os.path.isfile(path):
        raise ScalelabError(f"{path}: no such fit file: run `scalelab fit runs/*.parquet --out {path}` first")
    d = _read_json(path)
    if not isinstance(d, dict) or not str(d.get("format", "")).startswith("scalelab-fit/"):
        raise ScalelabError(f"{path}: not a scalelab fit file (no 'format': 'scalelab-fit/1'): give a file written by `scalelab fit`")
    if not isinstance(d.get("groups"), dict) or not d["groups"]:
        raise ScalelabError(f"{path}: fit file has no groups: refit with `scalelab fit`")
    for name, g in d["groups"].items():
        if not isinstance(g, dict) or "params" not in g or "form" not in g:
            raise ScalelabError(f"{path}: group {name!r} lacks 'form' or 'params': refit with `scalelab fit`")
    sp = _samples_path(path, d)
    samples, note = None, ""
    if os.path.isfile(sp):
        try:
            samples = pd.read_parquet(sp)
        except Exception as e:
            raise ScalelabError(f"{sp}: cannot read bootstrap samples as Parquet ({type(e).__name__}): refit with `scalelab fit`")
        if "group" not in samples.columns:
            raise ScalelabError(f"{sp}: samples file lacks column 'group': refit with `scalelab fit`")
        samples["group"] = samples["group"].astype(str)
    else:
        note = f"no bootstrap samples ({sp} missing): fitted lines drawn without bands"
    return Fit(path=path, data=d, samples=samples, samples_note=note)


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
        raise ScalelabError(f"{path}: no throughput rows (a list of {{variant, d_model, tokens_per_s}}): give a bench file")
    df = pd.DataFrame(rows)
    if "d_model" not in df.columns and "width" in df.columns:
        df["d_model"] = df["width"]
    for col in ("variant", "d_model", "tokens_per_s"):
        if col not in df.columns:
            raise ScalelabError(f"{path}: bench rows lack column {col!r}: give a bench file with variant, d_model, tokens_per_s")
    if "mfu" not in df.columns:
        df["mfu"] = float("nan")
    df["variant"] = df["variant"].astype(str)
    df["_file"] = path
    return df[["variant", "d_model", "tokens_per_s", "mfu", "_file"]]
