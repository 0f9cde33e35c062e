"""Reading a fit file (docs/interfaces.md "Fit file") and its bootstrap samples for planning."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from scalelab.errors import ScalelabError

CHINCHILLA = ("E", "A", "B", "alpha", "beta")
FRONTIER = ("E", "K", "gamma")


@dataclass
class Group:
    """One fitted group (usually one variant): point law, bootstrap samples, provenance."""

    name: str
    variant: str
    form: str
    point: dict[str, float]
    samples: dict[str, np.ndarray]  # name -> (S,), rows aligned by sample index
    sample_ids: np.ndarray  # (S,)
    residual_sd: float
    range: dict[str, list]
    runs: list[dict]
    warnings: list[str]


@dataclass
class Fit:
    path: Optional[str]
    convention: str  # "flops" | "flops_6nd" | "6ND"
    level: float
    joint: bool  # groups share parameters (e.g. E): compare variants paired by sample index
    groups: dict[str, Group]


def _read_samples(meta: dict, base: Optional[Path], samples: Any) -> "Any":
    import pandas as pd

    if samples is not None:
        return samples if isinstance(samples, pd.DataFrame) else pd.read_parquet(samples)
    name = meta.get("samples")
    where = f"fit {meta.get('_path', '')}".strip()
    if not name:
        raise ScalelabError(f"{where} has no bootstrap samples: refit with bootstrap (e.g. `scalelab fit ... --bootstrap 1000`)")
    p = Path(name)
    if not p.is_absolute() and base is not None:
        p = base / p
    if not p.exists():
        raise ScalelabError(f"{where} has no bootstrap samples ({p} is missing): refit with `--bootstrap 1000` or copy the samples file beside the JSON")
    try:
        return pd.read_parquet(p)
    except Exception as e:  # a torn or foreign file
        raise ScalelabError(f"cannot read bootstrap samples {p}: {e}") from None


def load(fit: Any, samples: Any = None) -> Fit:
    """A fit file path, its parsed JSON dict, or a FitResults-like object -> Fit.

    `samples`: a DataFrame or parquet path overriding the file named in the fit.
    """
    base: Optional[Path] = None
    path = None
    if isinstance(fit, Fit):
        return fit
    if isinstance(fit, (str, os.PathLike)):
        path = Path(fit)
        if not path.exists():
            raise ScalelabError(f"fit file {path} not found: run `scalelab fit` first or pass --fit PATH")
        try:
            meta = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ScalelabError(f"fit file {path} is not valid JSON ({e}): refit it") from None
        base = path.parent
    elif isinstance(fit, dict):
        meta = fit
        base = Path(meta["_path"]).parent if meta.get("_path") else Path.cwd()
    elif hasattr(fit, "to_dict"):  # scalelab.fit.FitResults (fit_laws / load_fit)
        meta = fit.to_dict()
        p = getattr(fit, "path", None)
        base = Path(p).parent if p else Path.cwd()
        if samples is None and hasattr(fit, "samples_frame"):
            samples = fit.samples_frame()
            if len(samples) == 0:
                raise ScalelabError("this fit has no bootstrap samples: refit with bootstrap (e.g. `--bootstrap 1000`)")
    else:
        raise ScalelabError(f"cannot plan from a {type(fit).__name__}: pass a fit file path, its JSON dict or FitResults")
    meta = dict(meta)
    meta.setdefault("_path", str(path) if path else "")
    if not isinstance(meta.get("groups"), dict) or not meta["groups"]:
        raise ScalelabError(f"fit {meta['_path']} has no groups: is it a scalelab fit file (format scalelab-fit/1)?")
    df = _read_samples(meta, base, samples)
    if "group" not in df.columns:
        raise ScalelabError(f"bootstrap samples of fit {meta['_path']} lack a 'group' column: refit with this scalelab")
    boot = meta.get("bootstrap") or {}
    groups: dict[str, Group] = {}
    for name, g in meta["groups"].items():
        form = g.get("form", "chinchilla")
        cols = CHINCHILLA if form == "chinchilla" else FRONTIER if form == "frontier" else ()
        sub = df[df["group"] == name]
        if "sample" in sub.columns:
            sub = sub.sort_values("sample")
        if cols:
            missing = [c for c in cols if c not in sub.columns]
            if missing:
                raise ScalelabError(f"bootstrap samples of group {name!r} lack column(s) {', '.join(missing)}: refit")
            sub = sub.dropna(subset=list(cols))
            if len(sub) < 2:
                raise ScalelabError(f"fit {meta['_path']} has no usable bootstrap samples for group {name!r}: refit with `--bootstrap 1000`")
        groups[name] = Group(
            name=name,
            variant=str((g.get("key") or {}).get("variant", name)),
            form=form,
            point={k: float(v) for k, v in (g.get("params") or {}).items() if v is not None},
            samples={c: sub[c].to_numpy(float) for c in cols},
            sample_ids=sub["sample"].to_numpy() if "sample" in sub.columns else np.arange(len(sub)),
            residual_sd=_finite_or_zero(g.get("residual_sd")),
            range=dict(g.get("range") or {}),
            runs=list(g.get("runs") or []),
            warnings=list(g.get("warnings") or []),
        )
    # paired comparisons: a joint fit (shared E), or groups bootstrapped over the same resampled runs
    joint = bool(meta.get("joint") or meta.get("share_e") or boot.get("paired")) or _shares_samples(groups)
    return Fit(path=meta["_path"] or None, convention=str(meta.get("flop_convention", "6ND")),
               level=float(boot.get("level", 0.95)), joint=joint, groups=groups)


def _finite_or_zero(x) -> float:
    """residual_sd may be null or NaN in a fit (e.g. too few points): no noise to add then."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return 0.0
    return x if math.isfinite(x) else 0.0


def _shares_samples(groups: dict[str, Group]) -> bool:
    """A joint fit (e.g. one E for all variants) shows as identical E in every group's sample s."""
    gs = [g for g in groups.values() if "E" in g.samples and len(g.samples["E"])]
    if len(gs) < 2:
        return False
    ref = gs[0]
    for g in gs[1:]:
        if len(g.samples["E"]) != len(ref.samples["E"]) or not np.array_equal(g.sample_ids, ref.sample_ids):
            return False
        if not np.allclose(g.samples["E"], ref.samples["E"], rtol=1e-12, atol=0):
            return False
    return True


def newest_fit(folder: str | Path = "fits") -> Path:
    """The most recently written fits/*.json."""
    files = [p for p in Path(folder).glob("*.json") if p.is_file()]
    if not files:
        raise ScalelabError(f"no fit files in {folder}/: run `scalelab fit runs/*.parquet` first or pass --fit PATH")
    return max(files, key=lambda p: p.stat().st_mtime)

