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
from scalelab.fit.filecheck import check_group, check_top
from scalelab.fit.filecheck import edited as _edited
from scalelab.fit.hyper import HYPER_SAMPLE_COLUMNS
from scalelab.fit.records import (
    FORMAT,
    Bootstrap,
    Comparison,
    ComputeOptimal,
    FitInfo,
    Holdout,
    HyperLaw,
    Identification,
    RepetitionLaw,
    Rollout,
    SeparateFit,
    ShareLaw,
    n_column_of,
)


@dataclass
class GroupFit:
    """One group's law: point estimates, bootstrap samples and intervals, checks, and the typed records of
    what else the fit found for the group (records.py)."""

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
    sample_index: np.ndarray | None = None  # the `sample` id of each row of `samples` (None: 0..S-1)
    n_column: str = ""  # run column the fit's N is (params or params_nonembed)
    identification: Identification | None = None
    fixed: dict = field(default_factory=dict)
    c_ref: float | None = None  # the budget of the derived N_opt, D_opt
    k_flops: float | None = None  # FLOPs per parameter per token of the group's points: C = k N D
    compute_optimal: ComputeOptimal | None = None
    holdout: Holdout | None = None
    rollout: Rollout | None = None
    lr_law: HyperLaw | None = None
    batch_law: HyperLaw | None = None
    loss_law_refused: str | None = None  # why no loss law was fitted (a sweep's group with too few points)
    separate_fit: SeparateFit | None = None
    shared_e: bool = False
    shared_exponents: bool = False
    points: pd.DataFrame | None = None  # the points the fit used (run, N, D, C, loss, fitted, swept columns)
    share_law: ShareLaw | None = None  # the law across FFN shares (form "share", fit/share.py)
    repetition_law: RepetitionLaw | None = None  # repeated data (form "repetition", fit/repetition.py)

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

    @property
    def n_resamples(self) -> int:
        """Bootstrap resamples drawn, those the fit could not use (NaN rows) included; 0 without samples."""
        return 0 if self.samples is None else len(self.samples)

    def sample_arrays(self, names=None) -> dict[str, np.ndarray]:
        """Bootstrap samples {name: array (S,)} of `names` (default: the form's parameters), sorted by
        sample id, rows where any of them is NaN dropped; arrays of length 0 when there are none."""
        names = tuple(names or self.form_params)
        rows = self._usable(names)
        if rows is None or self.samples is None:  # no rows without samples
            return {k: np.empty(0) for k in names}
        return {k: self.samples[k].to_numpy(float)[rows] for k in names}

    @property
    def sample_ids(self) -> np.ndarray:
        """The sample ids of `sample_arrays()` rows (the form's parameters): pairs groups sample by sample."""
        rows = self._usable(self.form_params)
        if rows is None or self.samples is None:  # no rows without samples
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

    def predict(self, N=None, D=None, C=None, share=None) -> np.ndarray:
        if share is not None and self.form != "share":
            raise ScalelabError(f"group {self.name!r} is a {self.form} law, not a law across shares: drop share=")
        return laws.predict(self.form, self.params, N=N, D=D, C=C, share=share)

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
        """The group's fit-file record (docs/interfaces.md "Fit file")."""
        return group_record(self)


class FitResults:
    """All groups' fits from one call, plus comparisons and provenance (see module docstring).

    `info` is how the fit was made (records.FitInfo); `comparisons` are records.Comparison; `path` is the
    file it was read from or last written to (None for a fit still in memory)."""

    def __init__(
        self,
        groups: dict[str, GroupFit],
        comparisons: list | None = None,
        info: FitInfo | None = None,
        path=None,
        samples_note: str = "",
        samples_path=None,
    ):
        self.groups = groups
        self.samples_path = Path(samples_path) if samples_path is not None else None  # file the samples came from
        self.samples_sha256: str | None = None  # of the samples file, once written (to_json) or read (load_fit)
        self.points_sha256: str | None = None  # of the points file, likewise
        self.points_source = "the fit"  # where `points` came from (fit/upgrade.py: rebuilt for older files)
        self.comparisons: list[Comparison] = [
            c if isinstance(c, Comparison) else Comparison.from_dict(c) for c in comparisons or []
        ]
        self.info = info if info is not None else FitInfo()
        self.path = Path(path) if path is not None else None
        has = any(g.samples is not None and len(g.samples) for g in self)
        self.samples_note = samples_note or ("" if has else _no_samples(self.info))
        for g in self:
            g.n_column = g.n_column or n_column_of(g.range, g.runs, self.info.columns.N)

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
        return float(self.info.bootstrap.level)

    @property
    def bootstrap(self) -> Bootstrap:
        return self.info.bootstrap

    @property
    def convention(self) -> str:
        """What C means: "flops" (measured, 3 x forward; also any other FLOPs column), "flops_6nd" (the
        run store's 6 N D column) or "6ND" (C = 6 N D computed from N and D)."""
        return self.info.flop_convention

    @property
    def flops_column(self) -> str:
        """The run-store column holding C in this fit's FLOP convention: flops or flops_6nd."""
        col = self.info.columns.C
        if col in ("flops", "flops_6nd"):
            return col
        return "flops_6nd" if self.convention.lower() in ("flops_6nd", "6nd") else "flops"

    @property
    def spec(self):
        """The FitSpec the fit was made with (None for files written before the spec was recorded)."""
        from scalelab.fit.spec import FitSpec

        d = self.info.spec
        if not isinstance(d, dict):
            return None
        try:
            return FitSpec.from_dict(d)
        except (TypeError, ValueError, AttributeError) as e:
            raise _edited(self.path or "fit", f"its 'spec' record does not build a FitSpec ({e})") from None

    @property
    def points(self) -> pd.DataFrame | None:
        """Every group's fitted points (column `group` first); None when the fit has none."""
        frames = [g.points.assign(group=g.name) for g in self if g.points is not None]
        if not frames:
            return None
        df = pd.concat(frames, ignore_index=True)
        return df[["group"] + [c for c in df.columns if c != "group"]]

    def comparison(self, a: str, b: str) -> Comparison | None:
        """The comparison of b vs a, if the fit made one."""
        return next((c for c in self.comparisons if c.a == a and c.b == b), None)

    @property
    def paired(self) -> bool:
        """Groups compare sample by sample: a joint fit (shared E), a paired bootstrap over shared runs,
        or groups whose E samples are identical sample for sample (a joint fit written by other tools)."""
        if self.info.share_e or self.bootstrap.paired:
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

    def predict(self, N=None, D=None, C=None, group: str | None = None, share=None) -> np.ndarray:
        if group is None:
            if len(self.groups) != 1:
                raise ScalelabError(f"several groups in this fit: pass group= one of {', '.join(self.groups)}")
            group = next(iter(self.groups))
        return self[group].predict(N=N, D=D, C=C, share=share)

    def summary(self):
        """What `scalelab fit` prints, as a Summary: .text(), .markdown(), .html() (fit/summary)."""
        from scalelab.fit.summary import fit_summary

        return fit_summary(self)

    # ---- files ------------------------------------------------------------------------------------
    def to_dict(self, samples_name: str | None = None, points_name: str | None = None) -> dict:
        d = {"format": FORMAT, **self.info.to_dict()}
        for key, name, digest in (
            ("samples", samples_name, self.samples_sha256),
            ("points", points_name, self.points_sha256),
        ):
            if name is not None:
                d[key] = name
                if digest:
                    d[f"{key}_sha256"] = digest
        d["groups"] = {g.name: g.to_dict() for g in self}
        d["comparisons"] = [c.to_dict() for c in self.comparisons]
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
            own = laws.FORMS[g.form].params if g.form in laws.FORMS else ()  # a form's own (share: rho_N, rho_D)
            extra += [c for c in own if c in s and c not in laws.SAMPLE_COLUMNS]
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
        """Write NAME.json with NAME.samples.parquet and NAME.points.parquet beside it, each atomically (the
        Parquet files first).

        The JSON records both Parquet files' sha256, so a write killed between files (new samples beside the
        old JSON) is refused by `load_fit` rather than read as the old fit's. Temp files left by earlier killed
        writes are removed first."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        stem = path.name[:-5] if path.name.endswith(".json") else path.name
        names = {"samples": f"{stem}.samples.parquet", "points": f"{stem}.points.parquet"}
        for target in (path, *(path.parent / n for n in names.values())):
            remove_stale_temps(target)
        blobs = {"samples": _parquet_bytes(self.samples_frame())}
        points = self.points
        if points is not None:
            blobs["points"] = _parquet_bytes(points)
        self.samples_sha256 = hashlib.sha256(blobs["samples"]).hexdigest()
        self.points_sha256 = hashlib.sha256(blobs["points"]).hexdigest() if "points" in blobs else None
        d = self.to_dict(names["samples"], names["points"] if "points" in blobs else None)
        text = json.dumps(d, indent=2, allow_nan=False)
        for key, data in blobs.items():
            atomic_write_bytes(path.parent / names[key], data)
        atomic_write_bytes(path, text.encode())
        self.path, self.samples_path = path, path.parent / names["samples"]
        return path


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


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


# ---- a group's fit-file record ---------------------------------------------------------------------------
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


def group_record(g: GroupFit) -> dict:
    """GroupFit -> its fit-file record: the law's fields, then each typed record under its key."""
    d = {k: getattr(g, k) for k in _STD}
    d["n_column"] = g.n_column
    if g.identification is not None:
        d["identification"] = g.identification.to_dict()
    if g.fixed:
        d["fixed"] = dict(g.fixed)
    if g.c_ref is not None:
        d["c_ref"] = g.c_ref
    if g.k_flops is not None:
        d["k_flops"] = g.k_flops
    for key in ("compute_optimal", "holdout", "rollout", "separate_fit", "share_law", "repetition_law"):
        if getattr(g, key) is not None:
            d[key] = getattr(g, key).to_dict()
    hyper = {k: law.to_dict() for k, law in (("lr", g.lr_law), ("batch", g.batch_law)) if law is not None}
    if hyper:
        d["hyper"] = hyper
    if g.loss_law_refused is not None:
        d["loss_law"] = {"fitted": False, "why": g.loss_law_refused}
    for key in ("shared_e", "shared_exponents"):
        if getattr(g, key):
            d[key] = True
    return d


def _group_from_record(name: str, g: dict, samples, ids, points) -> GroupFit:
    hyper = g.get("hyper") or {}
    rec = lambda cls, key: cls.from_dict(g[key]) if isinstance(g.get(key), dict) else None  # noqa: E731
    return GroupFit(
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
        samples=samples,
        sample_index=ids,
        n_column=g.get("n_column") or "",
        identification=rec(Identification, "identification"),
        fixed=dict(g.get("fixed") or {}),
        c_ref=g.get("c_ref"),
        k_flops=g.get("k_flops"),
        compute_optimal=rec(ComputeOptimal, "compute_optimal"),
        holdout=rec(Holdout, "holdout"),
        rollout=rec(Rollout, "rollout"),
        lr_law=HyperLaw.from_dict(hyper["lr"]) if isinstance(hyper.get("lr"), dict) else None,
        batch_law=HyperLaw.from_dict(hyper["batch"]) if isinstance(hyper.get("batch"), dict) else None,
        loss_law_refused=(g.get("loss_law") or {}).get("why") if g.get("loss_law") else None,
        separate_fit=rec(SeparateFit, "separate_fit"),
        share_law=rec(ShareLaw, "share_law"),
        repetition_law=rec(RepetitionLaw, "repetition_law"),
        shared_e=bool(g.get("shared_e")),
        shared_exponents=bool(g.get("shared_exponents")),
        points=points,
    )


# ---- reading ------------------------------------------------------------------------------------------
def load_fit(path) -> FitResults:
    """Read a fit file, its samples and its points (docs/interfaces.md "Fit file") into FitResults; a file of
    an earlier format is brought to the current one by scalelab.fit.upgrade first.

    Samples and points: the files named by "samples" / "points" beside the JSON. A missing samples file is
    not an error here: `samples_note` says why there are none, and consumers that need them call
    `require_samples()`. An unreadable or foreign one is an error."""
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
    """A FitResults, a fit file path, or a fit file's parsed JSON dict (its files found beside its "_path",
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
    from scalelab.fit.upgrade import upgrade

    where = path or "fit"
    if isinstance(d, dict) and str(d.get("format", "")).startswith("scalelab-curves/"):
        raise ScalelabError(
            f"{where}: a curve law (`fit --curves`), not a law of final losses: `plot` and `check` read it; for "
            "`plan` fit L(N, D) from it with `scalelab fit RUNS --curves --derive`"
        )
    if not isinstance(d, dict) or not str(d.get("format", "")).startswith("scalelab-fit/"):
        raise ScalelabError(f"{where}: not a {FORMAT} fit file (key 'format'): give a file written by `scalelab fit`")
    if not isinstance(d.get("groups"), dict) or not d["groups"]:
        raise ScalelabError(f"{where}: fit file has no groups: refit with `scalelab fit`")
    check_top(d, where)
    for name, g in d["groups"].items():
        if not isinstance(g, dict) or "params" not in g or "form" not in g:
            raise ScalelabError(f"{where}: group {name!r} lacks 'form' or 'params': refit with `scalelab fit`")
        check_group(g, name, where)
    samples, note, sp = _read_parquet(d, "samples", path, base)
    d, points, points_source = upgrade(d, path, base, _read_parquet(d, "points", path, base)[0])
    groups = {}
    for name, g in d["groups"].items():
        gs = ids = None
        if samples is not None:
            sub = samples[samples["group"] == name]
            if len(sub):
                ids = sub["sample"].to_numpy() if "sample" in sub.columns else np.arange(len(sub))
                gs = sub.drop(columns=[c for c in ("group", "sample") if c in sub.columns]).reset_index(drop=True)
                gs = gs[[c for c in gs.columns if gs[c].notna().any()]]
        pts = None
        if points is not None:
            pts = points[points["group"] == name].drop(columns="group").reset_index(drop=True)
        groups[name] = _group_from_record(name, g, gs, ids, pts)
    info = FitInfo.from_dict({k: v for k, v in d.items() if k not in _NOT_INFO})
    res = FitResults(groups, d.get("comparisons") or [], info, path=path, samples_note=note, samples_path=sp)
    res.samples_sha256 = d.get("samples_sha256") if sp is not None else None
    res.points_sha256 = d.get("points_sha256") if points is not None else None
    res.points_source = points_source
    return res


_NOT_INFO = ("format", "groups", "comparisons", "samples", "samples_sha256", "points", "points_sha256", "_path")


def _no_samples(info: FitInfo, why: str = "") -> str:
    """Why a fit has no bootstrap samples, in words for `samples_note`."""
    if info.approach in (1, 2):
        why = f"approach {info.approach} fits have none"
    elif info.bootstrap.n == 0:
        why = "fitted with --bootstrap 0"
    return f"no bootstrap samples ({why or 'the samples file holds none of its groups'})"


_WHAT = {"samples": "bootstrap samples", "points": "fitted points"}


def _read_parquet(d: dict, key: str, path: Path | None, base: Path):
    """(frame or None, note, its path or None): the samples or points file beside the fit, read and checked
    against the sha256 the fit records."""
    name = d.get(key)
    what = _WHAT[key]
    if not name:
        if key == "points" or path is None:
            return None, f"no {what} (the fit names no {key} file)", None
        stem = path.name[:-5] if path.name.endswith(".json") else path.name
        name = f"{stem}.samples.parquet"
    if Path(name).name != name:
        raise _edited(path or "fit", f"{key!r} is {name!r}, not a file name beside the fit")
    sp = base / name
    if not sp.is_file():
        if key == "samples":
            return None, _no_samples(FitInfo.from_dict(_info_part(d)), f"{sp} is missing"), None
        return None, f"no {what} ({sp} is missing)", None
    want = d.get(f"{key}_sha256")  # files written before the hash was recorded load unchecked
    if want is not None and sha256_file(sp) != want:
        raise ScalelabError(
            f"{sp}: {what} do not belong to fit {path or 'given'} (sha256 differs from the one it "
            "records: another fit's file, or a write that was killed): re-run `scalelab fit` to write them again"
        )
    try:
        frame = pd.read_parquet(sp)
    except Exception as e:  # pyarrow raises several types for torn or foreign files
        raise ScalelabError(
            f"{sp}: cannot read {what} as Parquet ({type(e).__name__}): refit with `scalelab fit`"
        ) from None
    if "group" not in frame.columns:
        raise ScalelabError(f"{sp}: {what} file lacks column 'group': refit with `scalelab fit`")
    frame["group"] = frame["group"].astype(str)
    return frame, "", sp


def _info_part(d: dict) -> dict:
    return {k: v for k, v in d.items() if k in ("approach", "bootstrap")}
