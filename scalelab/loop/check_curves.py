"""Was the curve law right about runs it did not see? Each new run's whole curve predicted from its schedule.

For every run-store run the curve law did not fit (scalelab/fit/curves.py): its lr at every step is rebuilt
from its recorded config, the law of its group predicts every evaluated point, and per run the check reports
the error on its final loss (the end of its longest schedule) with a one-run interval (the law at each
bootstrap resample times exp(the fit's residual noise in log loss), as `check` does for a loss law) and the
mean and max relative error along the curve. Points before the fit's early-transient cut (min_fraction of the
run's last step) are left out of the curve errors, as the fit left them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.fit import curves
from scalelab.fit.bootstrap import bootstrap_interval

DRAWS = 16  # residual-noise draws per resample for the one-run interval (as loop/check.py)


@dataclass
class CurveCheck:
    """`runs`: one row per checked run; `points`: every checked point with its prediction."""

    runs: pd.DataFrame
    points: pd.DataFrame
    level: float
    path: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        def rows(df):
            return [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()}
                    for r in df.to_dict("records")]  # fmt: skip

        return {"curves": self.path, "level": self.level, "runs": rows(self.runs), "notes": self.notes}


def check_curves(cf: curves.CurvesFile, run_paths, *, seed: int = 0) -> CurveCheck:
    """Compare the curve laws of `cf` with the run-store runs among `run_paths` that they did not fit."""
    paths = [str(p) for p in run_paths]
    if any(Path(p).suffix.lower() in (".csv", ".tsv") for p in paths):
        raise ScalelabError(
            "a curve law is checked on run-store runs (runs/*.parquet), whose config holds the schedule: "
            "a CSV has none; fit part of it with --curves --holdout-branches instead"
        )
    level = float(cf.settings.get("level", 0.95))
    by = next((f.by for f in cf.fits.values() if f.by), None)
    if by is None:
        raise ScalelabError(
            f"{cf.path}: a curve law fitted on a CSV (no run-store grouping recorded): check it with "
            "`scalelab fit CSV --curves --holdout-branches`"
        )
    pts, terms = curves.read_curves(paths, by)
    used = {r for f in cf.fits.values() for r in f.runs}
    if not used:
        raise ScalelabError(
            f"{cf.path} records no fitted runs (written by an older scalelab): refit with `scalelab fit --curves`"
        )
    new = ~pts["run"].isin(used).to_numpy()
    if not new.any():
        raise ScalelabError(
            f"every run given ({pts['run'].nunique()}) was fitted by {cf.path}: give runs it did not see"
        )
    unknown = sorted(set(pts["group"][new]) - set(cf.fits))
    if unknown:
        raise ScalelabError(
            f"runs of group(s) {', '.join(unknown)} (column {'/'.join(by)}) are not in {cf.path} (it has "
            f"{', '.join(sorted(cf.fits))}): check runs of the fitted groups"
        )
    cut = float(cf.settings.get("min_fraction", _default_cut()))
    pts = pts[new].reset_index(drop=True)
    terms = [t for t, k in zip(terms, new) if k]
    pts["pred"] = np.nan
    designs = {}
    for name, idx in pts.groupby("group").indices.items():
        f = cf.fits[name]
        g = curves.GroupData(pts.iloc[idx], [terms[i] for i in idx], f.n_ref, f.lr_unit, "A_N" in f.params)
        designs[name] = (g, idx)
        pts.loc[idx, "pred"] = curves.predict(f.form, f.params, g.design())
    pts["rel_error"] = pts["loss"] / pts["pred"] - 1
    pts["in_curve"] = pts["step"] >= cut * pts.groupby("run")["step"].transform("max")
    rows: list[dict] = []
    notes: list[str] = []
    for run, p in pts.groupby("run", sort=True):
        rows.append(_run_row(cf.fits[str(p["group"].iloc[0])], str(run), p, designs, level, seed, notes))
    if not any(f.samples for f in cf.fits.values()):
        notes.append(f"{cf.path} holds no bootstrap resamples (fitted with --bootstrap 0): no intervals")
    return CurveCheck(pd.DataFrame(rows), pts, level, cf.path, list(dict.fromkeys(notes)))


def _default_cut() -> float:
    from scalelab.fit.io import CHECKPOINT_MIN_FRACTION

    return CHECKPOINT_MIN_FRACTION


def _run_row(f: curves.CurveFit, run: str, p: pd.DataFrame, designs: dict, level, seed, notes: list) -> dict:
    """One run: its final (the last point of its longest schedule) with the one-run interval, and the
    relative error along its curve (points past the cut)."""
    i = int(p[p["budget"] == p["budget"].max()].sort_values("step").index[-1])
    last = p.loc[i]
    lo = hi = float("nan")
    if f.samples:
        g, idx = designs[f.name]
        d = g.design(np.asarray(idx) == i)
        lo, hi = _interval(f, f.samples_at(d)[:, 0], float(last["pred"]), level, seed, run, notes)
    curve = p[p["in_curve"]]
    err = np.abs(curve["rel_error"].to_numpy(float))
    return {
        "group": f.name,
        "run_id": run,
        "N": float(last["N"]),
        "step": int(last["step"]),
        "observed": float(last["loss"]),
        "predicted": float(last["pred"]),
        "lo": lo,
        "hi": hi,
        "rel_error": float(last["rel_error"]),
        "covered": bool(lo <= last["loss"] <= hi),
        "curve_points": int(err.size),
        "curve_mean_abs_rel_error": float(err.mean()) if err.size else float("nan"),
        "curve_max_abs_rel_error": float(err.max()) if err.size else float("nan"),
    }


def _interval(f: curves.CurveFit, L: np.ndarray, pred: float, level: float, seed: int, run: str, notes: list):
    """Percentile interval of the law's resamples at the final times exp(residual noise): one new run."""
    sd = f.residual_sd if np.isfinite(f.residual_sd) else 0.0
    eps = np.random.default_rng(seed).normal(0.0, sd, size=(L.size, DRAWS))
    ci, why = bootstrap_interval((L[:, None] * np.exp(eps)).ravel(), pred, level)
    if ci is None:
        notes.append(f"{run}: no one-run interval: {why['why'] if why else 'no resample'}")
        return float("nan"), float("nan")
    return float(ci[0]), float(ci[1])


def summary_lines(res: CurveCheck) -> list[str]:
    """The printed check: per run its final against the prediction and interval, and its curve's error."""
    out = [f"curve law {res.path} vs {len(res.runs)} run(s) it did not fit ({res.level:.0%} one-run intervals)"]
    for r in res.runs.itertuples():
        ci = (
            "no interval"
            if not np.isfinite(r.lo)
            else f"[{r.lo:.4f}, {r.hi:.4f}] {'covered' if r.covered else 'NOT covered'}"
        )
        out.append(
            f"  {r.group} {r.run_id} N={r.N:.3g}: final (step {r.step}) {r.observed:.4f}, predicted {r.predicted:.4f} "
            f"({r.rel_error:+.2%}) {ci}; curve ({r.curve_points} points) mean |rel. error| "
            f"{r.curve_mean_abs_rel_error:.2%}, max {r.curve_max_abs_rel_error:.2%}"
        )
    for g, sub in res.runs.groupby("group"):
        cov = sub["covered"][np.isfinite(sub["lo"])]
        out.append(
            f"{g}: {len(sub)} runs, finals mean |rel. error| {np.abs(sub['rel_error']).mean():.2%}"
            + (f", {cov.mean():.0%} inside their interval" if len(cov) else "")
            + f"; curves mean |rel. error| {sub['curve_mean_abs_rel_error'].mean():.2%}"
        )
    out += [f"note: {n}" for n in res.notes]
    return out
