"""FitResults: the statsmodels-style results object of `scalelab.fit.fit_laws`, and the fit file.

    fit = scalelab.fit.fit_laws(df, n_col="params", d_col="tokens", loss_col="loss", by=["variant"])
    fit.params_            # DataFrame, one row per group, natural parameters (E, A, B, alpha, beta, ...)
    fit.conf_int(0.95)     # DataFrame (group, param) -> lower, upper (percentile bootstrap)
    fit.predict(N, D)      # loss predicted by a group's law
    fit.summary()          # readable text
    fit.to_json("fits/NAME.json")   # also writes fits/NAME.samples.parquet beside it
    fit = scalelab.fit.load_fit("fits/NAME.json")
    fit.convention, fit.paired, fit["dense"].sample_arrays(("E", "alpha")), fit.require_samples()

This module is the only reader and writer of fits/NAME.json and NAME.samples.parquet: the planner and the
figures take the FitResults that `load_fit` / `as_fit` return. File format: docs/interfaces.md, "Fit file".
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.fileio import atomic_write_bytes, remove_stale_temps, sha256_file
from scalelab.fit import laws
from scalelab.fit.bootstrap import percentile_interval
from scalelab.fit.hyper import HYPER_SAMPLE_COLUMNS

FORMAT = "scalelab-fit/1"
CONVENTIONS = ("flops", "flops_6nd", "6ND")
_STD = (
    "key",
    "form",
    "params",
    "conf_int",
    "derived",
    "derived_conf_int",
    "residual_sd",
    "n_points",
    "n_runs",
    "n_sizes",
    "range",
    "diagnostics",
    "warnings",
    "runs",
)


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
    samples: pd.DataFrame | None = None  # one row per bootstrap sample, natural parameters
    extra: dict = field(default_factory=dict)  # holdout, shared_e, c_ref, ...
    sample_index: np.ndarray | None = None  # the `sample` id of each row of `samples` (None: 0..S-1)
    n_column: str = ""  # run column the fit's N is; set by FitResults from its columns

    @property
    def params_(self) -> pd.Series:
        return pd.Series(self.params, name=self.name)

    @property
    def variant(self) -> str:
        return str(self.key.get("variant", self.name)) if self.key else self.name

    @property
    def form_params(self) -> tuple[str, ...]:
        return laws.FORMS[self.form].params if self.form in laws.FORMS else tuple(self.params)

    def _usable(self, names) -> np.ndarray | None:
        """Row order (by sample id) of the samples whose `names` are all non-NaN; None: none usable."""
        s = self.samples
        if s is None or len(s) == 0 or any(k not in s.columns for k in names):
            return None
        ids = self.sample_index if self.sample_index is not None else np.arange(len(s))
        order = np.argsort(ids, kind="stable")
        ok = s[list(names)].notna().all(axis=1).to_numpy()[order]
        return order[ok]

    def sample_arrays(self, names=None) -> dict[str, np.ndarray]:
        """Bootstrap samples {name: array (S,)} of `names` (default: the form's parameters), sorted by
        sample id, rows where any of them is NaN dropped; arrays of length 0 when there are none."""
        names = tuple(names or self.form_params)
        rows = self._usable(names)
        if rows is None:
            return {k: np.empty(0) for k in names}
        return {k: self.samples[k].to_numpy(float)[rows] for k in names}

    @property
    def sample_ids(self) -> np.ndarray:
        """The sample ids of `sample_arrays()` rows (the form's parameters): pairs groups sample by sample."""
        rows = self._usable(self.form_params)
        if rows is None:
            return np.empty(0, int)
        ids = self.sample_index if self.sample_index is not None else np.arange(len(self.samples))
        return np.asarray(ids)[rows]

    @property
    def c_range(self) -> tuple[float, float]:
        """The fitted FLOPs range (range["C"], else the runs' FLOPs); NaNs when unknown."""
        c = (self.range or {}).get("C")
        if c:
            return float(c[0]), float(c[1])
        fl = [float(r["flops"]) for r in self.runs if r.get("flops")]
        return (min(fl), max(fl)) if fl else (float("nan"), float("nan"))

    def _resolve_n_column(self, n_col: str | None) -> str:
        """The run column of N: the fit's N column when it is a run-store count, else the count whose span
        matches the group's range["N"] (CSV fits store N under "params"), else "params"."""
        if n_col in ("params", "params_nonembed"):
            return n_col
        lo_hi = (self.range or {}).get("N")
        if not lo_hi or not self.runs:
            return "params"
        best, err = "params", float("inf")
        for key in ("params", "params_nonembed"):
            vals = [float(r[key]) for r in self.runs if r.get(key) is not None]
            if not vals:
                continue
            e = abs(math.log(min(vals) / lo_hi[0])) + abs(math.log(max(vals) / lo_hi[1]))
            if e < err:
                best, err = key, e
        return best

    def predict(self, N=None, D=None, C=None) -> np.ndarray:
        return laws.predict(self.form, self.params, N=N, D=D, C=C)

    def one_run_draws(self, L: np.ndarray, draws: int = 16, seed: int = 0) -> np.ndarray:
        """Draws of one new run's loss from the mean law's bootstrap samples L (S,) or (S, P): each sample
        times exp(residual noise in log loss), `draws` per sample -> (S x draws,) or (S x draws, P). L as
        it is when the fit records no residual sd (null or NaN, e.g. too few points)."""
        L = np.asarray(L, float)
        sd = self.residual_sd if self.residual_sd is not None and math.isfinite(self.residual_sd) else 0.0
        if not sd:
            return L
        eps = np.random.default_rng(seed).normal(0.0, sd, size=(L.shape[0], draws) + L.shape[1:])
        return (L[:, None] * np.exp(eps)).reshape((-1,) + L.shape[1:])

    def to_dict(self) -> dict:
        d = {
            "key": self.key,
            "form": self.form,
            "params": self.params,
            "conf_int": self.conf_int,
            "derived": self.derived,
            "derived_conf_int": self.derived_conf_int,
            "residual_sd": self.residual_sd,
            "n_points": self.n_points,
            "n_runs": self.n_runs,
            "n_sizes": self.n_sizes,
            "range": self.range,
            "diagnostics": self.diagnostics,
            "warnings": self.warnings,
            "runs": self.runs,
        }
        d.update(self.extra)
        return d


class FitResults:
    """All groups' fits from one call, plus comparisons and provenance (see module docstring).

    `meta` holds the fit file's top-level keys; the properties below read them with one set of defaults.
    `path` is the file it was read from or last written to (None for a fit still in memory)."""

    def __init__(
        self,
        groups: dict[str, GroupFit],
        comparisons: list | None = None,
        meta: dict | None = None,
        path=None,
        samples_note: str = "",
        samples_path=None,
    ):
        self.groups = groups
        self.samples_path = Path(samples_path) if samples_path is not None else None  # file the samples came from
        self.samples_sha256 = None  # of the samples file, once written (to_json) or read (load_fit)
        self.comparisons = comparisons or []
        self.meta = meta or {}
        self.path = Path(path) if path is not None else None
        has = any(g.samples is not None and len(g.samples) for g in self)
        self.samples_note = samples_note or ("" if has else _no_samples(self.meta))
        n_col = (self.meta.get("columns") or {}).get("N")
        for g in self:
            g.n_column = g.n_column or g._resolve_n_column(n_col)

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
        return float(self.bootstrap["level"])

    @property
    def bootstrap(self) -> dict:
        """{n, seed, level, unit, paired} as the fit recorded them (defaults for keys it lacks)."""
        b = self.meta.get("bootstrap") or {}
        return {
            "n": int(b.get("n") or 0),
            "seed": b.get("seed"),
            "level": float(b.get("level") or 0.95),
            "unit": b.get("unit"),
            "paired": bool(b.get("paired", False)),
        }

    @property
    def convention(self) -> str:
        """What C means: "flops" (measured, 3 x forward; also any other FLOPs column), "flops_6nd" (the
        run store's 6 N D column) or "6ND" (C = 6 N D computed from N and D).

        A file without "flop_convention" gets what `scalelab fit` would have recorded for its input: the
        FLOPs column in its "columns" record when there is one ("6ND" when C was computed), else "flops"
        when its runs carry model configs (run-store input, whose default --flops-col is flops), else
        "6ND" (a table of N, D and loss)."""
        c = self.meta.get("flop_convention")
        if c is None:
            c = (self.meta.get("columns") or {}).get("C")
        if c is None:
            from_store = any(r.get("model") for g in self for r in g.runs)
            c = "flops" if from_store else "6ND"
        c = str(c)
        return "6ND" if c.upper() == "6ND" else c if c in CONVENTIONS else "flops"

    @property
    def flops_column(self) -> str:
        """The run-store column holding C in this fit's FLOP convention: flops or flops_6nd."""
        col = self.columns.get("flops")
        if col in ("flops", "flops_6nd"):
            return col
        return "flops_6nd" if self.convention.lower() in ("flops_6nd", "6nd") else "flops"

    @property
    def columns(self) -> dict:
        """The input columns the fit used: n, d, loss, flops, run (None where absent), by (list)."""
        c = self.meta.get("columns") or {}
        return {
            "n": c.get("N"),
            "d": c.get("D"),
            "loss": c.get("loss"),
            "flops": c.get("C"),
            "run": c.get("run"),
            "by": list(self.meta.get("by") or []),
        }

    @property
    def spec(self):
        """The FitSpec the fit was made with (None for files written before the spec was recorded)."""
        from scalelab.fit.spec import FitSpec

        d = self.meta.get("spec")
        if not isinstance(d, dict):
            return None
        try:
            return FitSpec.from_dict(d)
        except (TypeError, ValueError, AttributeError) as e:
            raise _edited(self.path or "fit", f"its 'spec' record does not build a FitSpec ({e})") from None

    @property
    def paired(self) -> bool:
        """Groups compare sample by sample: a joint fit (shared E), a paired bootstrap over shared runs,
        or groups whose E samples are identical sample for sample (a joint fit written by other tools)."""
        if self.meta.get("joint") or self.meta.get("share_e") or self.bootstrap["paired"]:
            return True
        gs = [g for g in self if g.form in ("chinchilla", "frontier")]
        es = [(g.sample_arrays()["E"], g.sample_ids) for g in gs]
        es = [(e, i) for e, i in es if len(e)]
        if len(es) < 2:
            return False
        (e0, i0), rest = es[0], es[1:]
        return all(
            len(e) == len(e0) and np.array_equal(i, i0) and np.allclose(e, e0, rtol=1e-12, atol=0) for e, i in rest
        )

    def require_samples(self, groups=None) -> None:
        """ScalelabError unless every group (default: the chinchilla and frontier groups, those a plan
        needs) has at least two usable bootstrap samples of its form's parameters."""
        where = f"fit {self.path}" if self.path else "this fit"
        if self.samples_note:
            copy = " or copy the samples file beside the JSON" if "missing" in self.samples_note else ""
            raise ScalelabError(
                f"{where} has {self.samples_note}: refit with `scalelab fit ... --bootstrap 1000`{copy}"
            )
        names = groups if groups is not None else [g.name for g in self if g.form in ("chinchilla", "frontier")]
        for name in names:
            if len(self[name].sample_ids) < 2:
                raise ScalelabError(
                    f"{where} has no usable bootstrap samples for group {name!r}: "
                    "refit with `scalelab fit ... --bootstrap 1000`"
                )

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
            d = g.diagnostics
            desc = laws.FORMS[g.form].description if g.form in laws.FORMS else g.form
            lines.append(f"== {g.name}  [{g.form}: {desc}]")
            joint = f" (joint fit of {', '.join(d['joint']['groups'])})" if d.get("joint") else ""
            lines.append(
                f"   points {g.n_points}, runs {g.n_runs}, sizes {g.n_sizes}, "
                f"objective {d.get('objective', float('nan')):.6g}{joint}, "
                f"|grad| {d.get('grad_norm', float('nan')):.2g}, "
                f"starts at best {d.get('n_starts_at_best', '?')}/{d.get('n_starts', '?')}"
            )
            lines.append(f"   {'param':<18}{'estimate':>12}   {int(round(lvl * 100))}% interval")
            for p, v in list(g.params.items()) + list(g.derived.items()):
                ci = g.conf_int.get(p) or g.derived_conf_int.get(p)
                cis = f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else ""
                lines.append(f"   {p:<18}{_fmt(v):>12}   {cis}")
            if "holdout" in g.extra:
                h = g.extra["holdout"]
                lines.append(
                    f"   holdout {h['rule']}: mean |rel err| {h['mean_rel_error']:.4f} on {h['n_points']} points"
                )
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
            if self.samples_sha256:
                d["samples_sha256"] = self.samples_sha256
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
            s.insert(0, "sample", g.sample_index if g.sample_index is not None else np.arange(len(s)))
            s.insert(0, "group", g.name)
            extra = [c for c in HYPER_SAMPLE_COLUMNS if c in s]  # the lr law's samples (fit/hyper.py)
            frames.append(s[["group", "sample", *laws.SAMPLE_COLUMNS, *extra]])
        if not frames:
            return pd.DataFrame(
                {
                    "group": pd.Series(dtype=str),
                    "sample": pd.Series(dtype=int),
                    **{c: pd.Series(dtype=float) for c in laws.SAMPLE_COLUMNS},
                }
            )
        return pd.concat(frames, ignore_index=True)

    def to_json(self, path) -> Path:
        """Write NAME.json and NAME.samples.parquet beside it, each atomically (samples first).

        The JSON records the samples file's sha256, so a write killed between the two files (new samples
        beside the old JSON) is refused by `load_fit` rather than read as the old fit's samples. Temp files
        left by earlier killed writes of either file are removed first."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        stem = path.name[:-5] if path.name.endswith(".json") else path.name
        samples_name = f"{stem}.samples.parquet"
        for target in (path, path.parent / samples_name):
            remove_stale_temps(target)
        buf = io.BytesIO()
        self.samples_frame().to_parquet(buf, index=False)
        data = buf.getvalue()
        self.samples_sha256 = hashlib.sha256(data).hexdigest()
        text = json.dumps(self.to_dict(samples_name), indent=2, allow_nan=False)
        atomic_write_bytes(path.parent / samples_name, data)
        atomic_write_bytes(path, text.encode())
        self.path, self.samples_path = path, path.parent / samples_name
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
    """Read a fit file and its samples (docs/interfaces.md "Fit file") into FitResults.

    Samples: the file named by "samples" beside the JSON (NAME.samples.parquet when the key is absent).
    A missing samples file is not an error here: `samples_note` says why there are none, and consumers
    that need them call `require_samples()`. An unreadable one is an error."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise ScalelabError(
            f"{path}: no such fit file (not found): run `scalelab fit` first or pass --fit PATH"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ScalelabError(
            f"{path}: cannot read JSON ({type(e).__name__}), not a readable fit file: re-run `scalelab fit`"
        ) from None
    return _from_dict(d, path, path.parent)


def as_fit(fit) -> FitResults:
    """A FitResults, a fit file path, or a fit file's parsed JSON dict (samples found beside its "_path",
    else in the working directory) -> FitResults."""
    if isinstance(fit, FitResults):
        return fit
    if isinstance(fit, (str, os.PathLike)):
        return load_fit(fit)
    if isinstance(fit, dict):
        where = Path(fit["_path"]) if fit.get("_path") else None
        return _from_dict(fit, where, where.parent if where else Path.cwd())
    raise ScalelabError(
        f"cannot use a {type(fit).__name__} as a fit: pass a fit file path, its JSON dict or FitResults"
    )


def newest_fit(folder: str | Path = "fits") -> Path:
    """The most recently written fits/*.json."""
    files = [p for p in Path(folder).glob("*.json") if p.is_file()]
    if not files:
        raise ScalelabError(f"no fit files in {folder}/: run `scalelab fit runs/*.parquet` first or pass --fit PATH")
    return max(files, key=lambda p: p.stat().st_mtime)


def _from_dict(d, path: Path | None, base: Path) -> FitResults:
    where = path or "fit"
    if not isinstance(d, dict) or not str(d.get("format", "")).startswith("scalelab-fit/"):
        raise ScalelabError(f"{where}: not a {FORMAT} fit file (key 'format'): give a file written by `scalelab fit`")
    if not isinstance(d.get("groups"), dict) or not d["groups"]:
        raise ScalelabError(f"{where}: fit file has no groups: refit with `scalelab fit`")
    _check_meta(d, where)
    for name, g in d["groups"].items():
        if not isinstance(g, dict) or "params" not in g or "form" not in g:
            raise ScalelabError(f"{where}: group {name!r} lacks 'form' or 'params': refit with `scalelab fit`")
        _check_group(g, name, where)
    samples, note, sp = _read_samples(d, path, base)
    groups = {}
    for name, g in d["groups"].items():
        gs = ids = None
        if samples is not None:
            sub = samples[samples["group"] == name]
            if len(sub):
                ids = sub["sample"].to_numpy() if "sample" in sub.columns else np.arange(len(sub))
                gs = sub.drop(columns=[c for c in ("group", "sample") if c in sub.columns]).reset_index(drop=True)
                gs = gs[[c for c in gs.columns if gs[c].notna().any()]]
        groups[name] = GroupFit(
            name=name,
            key=g.get("key") or {},
            form=g["form"],
            params={k: _nan(v) for k, v in g["params"].items()},
            conf_int=g.get("conf_int") or {},
            derived=g.get("derived") or {},
            derived_conf_int=g.get("derived_conf_int") or {},
            residual_sd=_nan(g.get("residual_sd")),
            n_points=g.get("n_points", 0),
            n_runs=g.get("n_runs", 0),
            n_sizes=g.get("n_sizes", 0),
            range=g.get("range") or {},
            diagnostics=g.get("diagnostics") or {},
            warnings=list(g.get("warnings") or []),
            runs=list(g.get("runs") or []),
            samples=gs,
            extra={k: v for k, v in g.items() if k not in _STD},
            sample_index=ids,
        )
    meta = {
        k: v for k, v in d.items() if k not in ("format", "groups", "comparisons", "samples", "samples_sha256", "_path")
    }
    res = FitResults(groups, d.get("comparisons") or [], meta, path=path, samples_note=note, samples_path=sp)
    res.samples_sha256 = d.get("samples_sha256") if sp is not None else None
    return res


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _edited(where, what: str) -> ScalelabError:
    return ScalelabError(f"{where}: {what}: the fit file was edited or torn; re-run `scalelab fit` to write it again")


def _check_group(g: dict, name: str, where) -> None:
    """A group record as `scalelab fit` writes it: every parameter of its law a finite number, numbers (or
    null: NaN) where numbers go. A hand-edited value is refused here, in one line, not deep in a reader."""
    form, params = g["form"], g["params"]
    if not isinstance(form, str):
        raise _edited(where, f"group {name!r} has form {form!r}, not a name")
    if not isinstance(params, dict):
        raise _edited(where, f"group {name!r}: 'params' is not an object")
    need = laws.FORMS[form].params if form in laws.FORMS else laws.ALLOCATION if form == "allocation" else ()
    missing = [k for k in need if k not in params]
    if missing:
        raise _edited(where, f"group {name!r} lacks parameter(s) {', '.join(missing)} of its {form} law")
    for k, v in params.items():
        if not (_is_num(v) and math.isfinite(v)) and not (v is None and k not in need):
            raise _edited(where, f"group {name!r}: parameter {k} is {v!r}, not a finite number")
    if not (g.get("residual_sd") is None or _is_num(g["residual_sd"])):
        raise _edited(where, f"group {name!r}: residual_sd is {g['residual_sd']!r}, not a number")
    der = g.get("derived") or {}
    if not isinstance(der, dict):
        raise _edited(where, f"group {name!r}: 'derived' is not an object")
    for k, v in der.items():
        if not (v is None or _is_num(v)):
            raise _edited(where, f"group {name!r}: derived {k} is {v!r}, not a number")
    for key in ("conf_int", "derived_conf_int", "range"):
        val = g.get(key) or {}
        if not isinstance(val, dict):
            raise _edited(where, f"group {name!r}: {key!r} is not an object")
        for k, v in val.items():
            if not (isinstance(v, list) and len(v) == 2 and all(x is None or _is_num(x) for x in v)):
                raise _edited(where, f"group {name!r}: {key} {k} is {v!r}, not [lower, upper]")
    for key in ("n_points", "n_runs", "n_sizes"):
        if not (g.get(key) is None or _is_num(g[key])):
            raise _edited(where, f"group {name!r}: {key} is {g[key]!r}, not a number")
    for key, typ in (("key", dict), ("diagnostics", dict), ("warnings", list), ("runs", list)):
        if g.get(key) is not None and not isinstance(g[key], typ):
            raise _edited(where, f"group {name!r}: {key!r} is not a{'n object' if typ is dict else ' list'}")
    if any(not isinstance(r, dict) for r in g.get("runs") or []):
        raise _edited(where, f"group {name!r}: an entry of 'runs' is not an object")


def _check_meta(d: dict, where) -> None:
    """The top-level records readers take numbers from."""
    b = d.get("bootstrap")
    if b is not None and not isinstance(b, dict):
        raise _edited(where, "'bootstrap' is not an object")
    b = b or {}
    if not (b.get("level") is None or (_is_num(b["level"]) and 0 < b["level"] < 1)):
        raise _edited(where, f"bootstrap level is {b['level']!r}, not a number between 0 and 1")
    if not (b.get("n") is None or _is_num(b["n"])):
        raise _edited(where, f"bootstrap n is {b['n']!r}, not a number")
    for key, typ in (("columns", dict), ("comparisons", list), ("by", list), ("spec", dict)):
        if d.get(key) is not None and not isinstance(d[key], typ):
            raise _edited(where, f"{key!r} is not a{'n object' if typ is dict else ' list'}")
    if any(not isinstance(c, dict) for c in d.get("comparisons") or []):
        raise _edited(where, "an entry of 'comparisons' is not an object")
    if d.get("samples") is not None and not isinstance(d["samples"], str):
        raise _edited(where, f"'samples' is {d['samples']!r}, not a file name")
    if d.get("samples_sha256") is not None and not isinstance(d["samples_sha256"], str):
        raise _edited(where, f"'samples_sha256' is {d['samples_sha256']!r}, not a hex digest")


def _no_samples(meta: dict, why: str = "") -> str:
    """Why a fit has no bootstrap samples, in words for `samples_note`."""
    if meta.get("approach") in (1, 2):
        why = f"approach {meta['approach']} fits have none"
    elif (meta.get("bootstrap") or {}).get("n") == 0:
        why = "fitted with --bootstrap 0"
    return f"no bootstrap samples ({why or 'the samples file holds none of its groups'})"


def _read_samples(d: dict, path: Path | None, base: Path):
    """(samples DataFrame or None, note, its path or None): the samples file beside the fit, read and checked."""
    name = d.get("samples")
    if not name:
        if path is None:
            return None, "no bootstrap samples (the fit names no samples file)", None
        stem = path.name[:-5] if path.name.endswith(".json") else path.name
        name = f"{stem}.samples.parquet"
    sp = Path(name) if Path(name).is_absolute() else base / name
    if not sp.is_file():
        return None, _no_samples(d, f"{sp} is missing"), None
    want = d.get("samples_sha256")  # files written before the hash was recorded load unchecked
    if want is not None and sha256_file(sp) != want:
        raise ScalelabError(
            f"{sp}: bootstrap samples do not belong to fit {path or 'given'} (sha256 differs from the one it "
            "records: another fit's samples, or a write that was killed): re-run `scalelab fit` to write both again"
        )
    try:
        samples = pd.read_parquet(sp)
    except Exception as e:  # pyarrow raises several types for torn or foreign files
        raise ScalelabError(
            f"{sp}: cannot read bootstrap samples as Parquet ({type(e).__name__}): refit with `scalelab fit`"
        ) from None
    if "group" not in samples.columns:
        raise ScalelabError(f"{sp}: bootstrap samples file lacks column 'group': refit with `scalelab fit`")
    samples["group"] = samples["group"].astype(str)
    return samples, "", sp
