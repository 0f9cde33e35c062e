"""FitResults: the statsmodels-style results object of `scalelab.fit.fit_laws`, and the fit file.

    fit = scalelab.fit.fit_laws(df, n_col="params", d_col="tokens", loss_col="loss", by=["variant"])
    fit.params_            # DataFrame, one row per group, natural parameters (E, A, B, alpha, beta, ...)
    fit.conf_int(0.95)     # DataFrame (group, param) -> lower, upper (percentile bootstrap)
    fit.predict(N, D)      # loss predicted by a group's law
    fit.summary()          # readable text
    fit.to_json("fits/NAME.json")   # also writes fits/NAME.samples.parquet beside it
    scalelab.fit.load_fit("fits/NAME.json")

File format: docs/interfaces.md, "Fit file".
"""
from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.fileio import atomic_write, atomic_write_bytes
from scalelab.fit import laws
from scalelab.fit.bootstrap import percentile_interval

FORMAT = "scalelab-fit/1"


@dataclass
class GroupFit:
    """One group's law: point estimates, bootstrap samples and intervals, checks."""

    name: str
    key: dict
    form: str
    params: dict
    conf_int: dict = field(default_factory=dict)
    derived: dict = field(default_factory=dict)
    derived_conf_int: dict = field(default_factory=dict)
    residual_sd: float = float("nan")
    n_points: int = 0
    n_runs: int = 0
    n_sizes: int = 0
    range: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    runs: list = field(default_factory=list)
    samples: pd.DataFrame | None = None      # one row per bootstrap sample, natural parameters
    extra: dict = field(default_factory=dict)  # holdout, shared_e, c_ref, ...

    @property
    def params_(self) -> pd.Series:
        return pd.Series(self.params, name=self.name)

    def predict(self, N=None, D=None, C=None) -> np.ndarray:
        return laws.predict(self.form, self.params, N=N, D=D, C=C)

    def to_dict(self) -> dict:
        d = {"key": self.key, "form": self.form, "params": self.params, "conf_int": self.conf_int,
             "derived": self.derived, "derived_conf_int": self.derived_conf_int,
             "residual_sd": self.residual_sd, "n_points": self.n_points, "n_runs": self.n_runs,
             "n_sizes": self.n_sizes, "range": self.range, "diagnostics": self.diagnostics,
             "warnings": self.warnings, "runs": self.runs}
        d.update(self.extra)
        return d


class FitResults:
    """All groups' fits from one call, plus comparisons and provenance (see module docstring)."""

    def __init__(self, groups: dict[str, GroupFit], comparisons: list | None = None, meta: dict | None = None):
        self.groups = groups
        self.comparisons = comparisons or []
        self.meta = meta or {}

    # ---- statsmodels-style accessors --------------------------------------------------------------
    def __getitem__(self, name: str) -> GroupFit:
        if name not in self.groups:
            raise ScalelabError(f"no group {name!r} in this fit: groups are {', '.join(self.groups)}")
        return self.groups[name]

    def __iter__(self):
        return iter(self.groups.values())

    @property
    def params_(self) -> pd.DataFrame:
        return pd.DataFrame({g.name: g.params for g in self}).T

    @property
    def level(self) -> float:
        return float(self.meta.get("bootstrap", {}).get("level", 0.95))

    def conf_int(self, level: float | None = None) -> pd.DataFrame:
        """Percentile bootstrap intervals, rows (group, param), columns lower, upper."""
        rows = []
        for g in self:
            for p in g.params:
                if level is None or abs(level - self.level) < 1e-12 or g.samples is None:
                    lo, hi = g.conf_int.get(p, [float("nan"), float("nan")])
                else:
                    lo, hi = percentile_interval(g.samples[p].to_numpy(), level)
                rows.append((g.name, p, lo, hi))
        return pd.DataFrame(rows, columns=["group", "param", "lower", "upper"]).set_index(["group", "param"])

    def predict(self, N=None, D=None, C=None, group: str | None = None) -> np.ndarray:
        if group is None:
            if len(self.groups) != 1:
                raise ScalelabError(f"several groups in this fit: pass group= one of {', '.join(self.groups)}")
            group = next(iter(self.groups))
        return self[group].predict(N=N, D=D, C=C)

    def summary(self) -> str:
        lines = []
        lvl = self.level
        for g in self:
            lines.append(f"== {g.name}  [{g.form}: {laws.FORMS[g.form].description if g.form in laws.FORMS else g.form}]")
            lines.append(f"   points {g.n_points}, runs {g.n_runs}, sizes {g.n_sizes}, "
                         f"objective {g.diagnostics.get('objective', float('nan')):.6g}, "
                         f"|grad| {g.diagnostics.get('grad_norm', float('nan')):.2g}, "
                         f"starts at best {g.diagnostics.get('n_starts_at_best', '?')}/{g.diagnostics.get('n_starts', '?')}")
            lines.append(f"   {'param':<18}{'estimate':>12}   {int(round(lvl * 100))}% interval")
            for p, v in list(g.params.items()) + list(g.derived.items()):
                ci = g.conf_int.get(p) or g.derived_conf_int.get(p)
                cis = f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else ""
                lines.append(f"   {p:<18}{_fmt(v):>12}   {cis}")
            if "holdout" in g.extra:
                h = g.extra["holdout"]
                lines.append(f"   holdout {h['rule']}: mean |rel err| {h['mean_rel_error']:.4f} on {h['n_points']} points")
            for w in g.warnings:
                lines.append(f"   warning: {w}")
        for c in self.comparisons:
            lines.append(f"-- {c['b']} vs {c['a']}: {c['verdict']}")
        return "\n".join(lines)

    # ---- files ------------------------------------------------------------------------------------
    def to_dict(self, samples_name: str | None = None) -> dict:
        d = {"format": FORMAT}
        d.update(self.meta)
        if samples_name is not None:
            d["samples"] = samples_name
        d["groups"] = {g.name: g.to_dict() for g in self}
        d["comparisons"] = self.comparisons
        return _jsonable(d)

    def samples_frame(self) -> pd.DataFrame:
        frames = []
        for g in self:
            if g.samples is None or len(g.samples) == 0:
                continue
            s = g.samples.copy()
            for c in laws.SAMPLE_COLUMNS:
                if c not in s:
                    s[c] = np.nan
            s.insert(0, "sample", np.arange(len(s)))
            s.insert(0, "group", g.name)
            frames.append(s[["group", "sample", *laws.SAMPLE_COLUMNS]])
        if not frames:
            return pd.DataFrame({"group": pd.Series(dtype=str), "sample": pd.Series(dtype=int),
                                 **{c: pd.Series(dtype=float) for c in laws.SAMPLE_COLUMNS}})
        return pd.concat(frames, ignore_index=True)

    def to_json(self, path) -> Path:
        """Write NAME.json and NAME.samples.parquet beside it, each atomically (samples first)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        stem = path.name[:-5] if path.name.endswith(".json") else path.name
        samples_name = f"{stem}.samples.parquet"
        atomic_write(path.parent / samples_name, lambda f: self.samples_frame().to_parquet(f, index=False))
        text = json.dumps(self.to_dict(samples_name), indent=2, allow_nan=False)
        atomic_write_bytes(path, text.encode())
        return path


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "nan"
    v = float(v)
    return f"{v:.4g}" if abs(v) >= 1e4 or abs(v) < 1e-3 and v != 0 else f"{v:.4f}"


def _jsonable(o):
    """NaN/inf -> None (JSON has no NaN), numpy scalars -> Python."""
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return [_jsonable(v) for v in o.tolist()]
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        o = float(o)
        return o if math.isfinite(o) else None
    if isinstance(o, np.bool_):
        return bool(o)
    return o


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _nan(v):
    return float("nan") if v is None else v


def load_fit(path) -> FitResults:
    """Read a fit file (and its samples, when present) back into FitResults."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise ScalelabError(f"{path}: no such fit file: run `scalelab fit` first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ScalelabError(f"{path}: not a readable fit file ({type(e).__name__}): re-run `scalelab fit`") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT or not isinstance(d.get("groups"), dict):
        raise ScalelabError(f"{path}: not a {FORMAT} fit file (key 'format'): re-run `scalelab fit`")
    samples = None
    if d.get("samples"):
        sp = path.parent / d["samples"]
        if sp.exists():
            try:
                samples = pd.read_parquet(sp)
            except Exception as e:  # pyarrow raises several types for corrupt files
                raise ScalelabError(f"{sp}: unreadable samples file ({type(e).__name__}): re-run `scalelab fit`") from None
    groups = {}
    std = {"key", "form", "params", "conf_int", "derived", "derived_conf_int", "residual_sd", "n_points",
           "n_runs", "n_sizes", "range", "diagnostics", "warnings", "runs"}
    for name, g in d["groups"].items():
        gs = None
        if samples is not None and "group" in samples:
            sub = samples[samples["group"] == name]
            if len(sub):
                gs = sub.drop(columns=["group", "sample"]).reset_index(drop=True)
                gs = gs[[c for c in gs.columns if gs[c].notna().any()]]
        groups[name] = GroupFit(
            name=name, key=g.get("key", {}), form=g["form"], params={k: _nan(v) for k, v in g["params"].items()},
            conf_int=g.get("conf_int", {}), derived=g.get("derived", {}),
            derived_conf_int=g.get("derived_conf_int", {}), residual_sd=_nan(g.get("residual_sd")),
            n_points=g.get("n_points", 0), n_runs=g.get("n_runs", 0), n_sizes=g.get("n_sizes", 0),
            range=g.get("range", {}), diagnostics=g.get("diagnostics", {}), warnings=g.get("warnings", []),
            runs=g.get("runs", []), samples=gs, extra={k: v for k, v in g.items() if k not in std})
    meta = {k: v for k, v in d.items() if k not in ("format", "groups", "comparisons", "samples")}
    return FitResults(groups, d.get("comparisons", []), meta)
