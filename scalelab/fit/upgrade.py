"""Fit files of earlier formats, brought to the current one: every guess about an old file lives here.

`load_fit` reads the current format (results.FORMAT) and nothing else: a file of an earlier format goes
through `upgrade` first, which fills in what that format did not record, by the rules that format's
readers used:

- scalelab-fit/1 had no "flop_convention" in files before it was recorded: the FLOPs column in its "columns"
  record ("6ND" when C was computed), else "flops" when its runs carry model configs (run-store input), else
  "6ND" (a table of N, D and loss).
- it had no per-group "n_column" (the run column of N) and no "k_flops" (C = k N D of the group's points).
- it wrote no points file: the points are read again from the fit's recorded inputs when they are still where
  the fit read them and unchanged (same sha256), with the fit's own column choices, --drop-top-loss and sweep
  envelope; else each run's last point from the fit file's runs list stands in.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.fileio import sha256_file
from scalelab.fit import laws
from scalelab.fit.filecheck import edited
from scalelab.fit.records import CONVENTIONS, FORMAT, n_column_of

CURRENT = int(FORMAT.rsplit("/", 1)[1])
POINTS_FROM_INPUTS = "the fit's recorded input files"
POINTS_FROM_RUNS = "the fit file's runs list (one point per run)"


def version_of(d: dict, where) -> int:
    try:
        return int(str(d["format"]).rsplit("/", 1)[1])
    except (KeyError, ValueError, IndexError):
        raise edited(where, f"format {d.get('format')!r} has no version number") from None


def upgrade(d: dict, path: Path | None, base: Path, points: pd.DataFrame | None):
    """(fit dict in the current layout, points frame or None, where the points came from)."""
    where = path or "fit"
    v = version_of(d, where)
    if v > CURRENT:
        raise ScalelabError(
            f"{where}: fit file format {d['format']} is newer than this scalelab reads ({FORMAT}): upgrade scalelab"
        )
    if v == CURRENT:
        return d, points, "" if points is None else "the fit"
    d = copy.deepcopy(d)
    d["flop_convention"] = _convention(d)
    for g in d["groups"].values():
        g["n_column"] = n_column_of(g.get("range") or {}, g.get("runs") or [], (d.get("columns") or {}).get("N"))
    points, source = _v1_points(d, path, base)
    for name, g in d["groups"].items():
        g["k_flops"] = _k_flops(g, name, points)
    d["format"] = FORMAT
    return d, points, source


def _convention(d: dict) -> str:
    c = d.get("flop_convention")
    if c is None:
        c = (d.get("columns") or {}).get("C")
    if c is None:
        from_store = any(r.get("model") for g in d["groups"].values() for r in g.get("runs") or [])
        c = "flops" if from_store else "6ND"
    c = str(c)
    return "6ND" if c.upper() == "6ND" else c if c in CONVENTIONS else "flops"


def _k_flops(g: dict, name: str, points: pd.DataFrame | None) -> float | None:
    """C = k N D over the group's points as the fit computed it; over its runs' last points without them."""
    if points is not None:
        p = points[(points["group"] == name) & points["fitted"]]
        if len(p):
            return laws.flops_per_param_token(p["N"], p["D"], p["C"])
    n_col = g["n_column"]
    rows = [r for r in g.get("runs") or [] if r.get("flops") and r.get(n_col) and r.get("tokens")]
    if not rows:
        return None
    return laws.flops_per_param_token(
        [float(r[n_col]) for r in rows], [float(r["tokens"]) for r in rows], [float(r["flops"]) for r in rows]
    )


def _v1_points(d: dict, path: Path | None, base: Path):
    files = _recorded_inputs(d, path)
    spec = _spec(d)
    if files and spec is not None:
        try:
            return _points_from_inputs(files, spec, d), POINTS_FROM_INPUTS
        except ScalelabError:
            pass  # inputs that no longer read as the fit read them: the runs list stands in
    return _points_from_runs(d), POINTS_FROM_RUNS


def _spec(d: dict):
    from scalelab.fit.spec import FitSpec

    if not isinstance(d.get("spec"), dict):
        return None
    try:
        return FitSpec.from_dict(d["spec"])
    except (TypeError, ValueError, AttributeError):
        return None


def _recorded_inputs(d: dict, path: Path | None) -> list[str]:
    """The fit's input files that are still there unchanged (as recorded, or beside the fit file); all or none."""
    found = []
    for rec in d.get("inputs") or []:
        p, digest = rec.get("path"), rec.get("sha256")
        if not p:
            return []
        cands = [p] + ([os.path.join(os.path.dirname(str(path)), os.path.basename(p))] if path else [])
        hit = next((c for c in cands if os.path.isfile(c) and (not digest or sha256_file(c) == digest)), None)
        if hit is None:
            return []
        found.append(hit)
    return found


def _points_from_inputs(files: list[str], spec, d: dict) -> pd.DataFrame:
    from scalelab.fit import hyper
    from scalelab.fit.groups import drop_top_losses
    from scalelab.fit.io import load_inputs
    from scalelab.fit.points import point_table

    df, _ = load_inputs(
        files,
        n_col=spec.n_col,
        d_col=spec.d_col,
        loss_col=spec.loss_col,
        flops_col=spec.c_col,
        run_col=spec.run_col,
        by=list(spec.by),
        all_checkpoints=spec.all_checkpoints,
    )
    df = drop_top_losses(df, spec.loss_col, spec.drop_top_loss)
    swept = hyper.swept(df, spec)
    kept = df.index
    if swept and spec.envelope:
        kept = hyper.envelope(df, spec, swept)[0].index
    table = point_table(df, spec, kept, swept)
    return table[table["group"].isin(list(d["groups"]))].reset_index(drop=True)


def _points_from_runs(d: dict) -> pd.DataFrame | None:
    frames = []
    for name, g in d["groups"].items():
        r = pd.DataFrame(g.get("runs") or [])
        if r.empty or "loss" not in r.columns:
            continue
        n_col = g["n_column"]
        N, D = r[n_col if n_col in r.columns else "params"].astype(float), r["tokens"].astype(float)
        C = r["flops"].astype(float) if "flops" in r.columns else pd.Series(np.nan, index=r.index)
        frames.append(
            pd.DataFrame(
                {
                    "group": name,
                    "run": r["run_id"].astype(str) if "run_id" in r.columns else "",
                    "N": N,
                    "D": D,
                    "C": C,
                    "loss": r["loss"].astype(float),
                    "fitted": True,
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else None
