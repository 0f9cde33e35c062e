"""Hyperparameter sweeps in a fit: the envelope over a sweep and the learning-rate law lr_opt(N) = c N^k.

A grid's [sweep] trains every (variant, width) at several values of the learning rate (and optionally batch
size, warmup, weight decay); the run store records the values (`peak_lr`, `batch_tokens`, `warmup`,
`weight_decay`) and what was swept (`sweep`). Two things follow (issue 14; Porian et al. 2024 trace the
Kaplan-Chinchilla disagreement largely to hyperparameters not tuned per size):

- the envelope: per (group, N, D) (and seed) the best-tuned point, the lowest loss over the sweep, so that
  the scaling law compares each size at its own best setting (`envelope`);
- the learning-rate law: per group and size, the optimum learning rate from a parabola in log lr through
  the swept points nearest the lowest loss (the best swept value when the parabola is not convex), at the
  size's largest token budget; then lr_opt = c N^k by least squares in logs, with run-level bootstrap
  intervals (runs resampled within each size, the optimum and the line refitted per resample) (`lr_law`).

Torch-free. This module is the one place the law lives: `predict_lr` evaluates it (planner, figures).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from scalelab.fit.bootstrap import percentile_interval

# swept name -> run-store column holding its value
HYPER_COLUMNS = {"lr": "peak_lr", "batch_size": "batch_tokens", "warmup": "warmup", "weight_decay": "weight_decay"}
HYPER_SAMPLE_COLUMNS = ("lr_coef", "lr_exp")  # the lr law's bootstrap samples, extra columns of NAME.samples.parquet
TOL = 6  # decimals of log values that count as equal (N, D)


def lr_values(df: pd.DataFrame) -> pd.Series | None:
    """The peak learning rate of each row: `peak_lr`, else the run's `config` train.lr (run files written
    before `peak_lr` existed), else a CSV's `lr` column (taken as the run's learning rate); None if none."""
    out = pd.Series(np.nan, index=df.index, dtype=float)
    if "peak_lr" in df.columns:
        out = pd.to_numeric(df["peak_lr"], errors="coerce").astype(float)
    if out.isna().any() and "config" in df.columns:
        out = out.fillna(df["config"].map(_config_lr))
    if out.isna().all() and "lr" in df.columns and "config" not in df.columns:
        out = pd.to_numeric(df["lr"], errors="coerce").astype(float)
    return None if out.isna().all() else out


def _config_lr(cfg) -> float:
    try:
        return float(json.loads(cfg)["train"]["lr"])
    except (TypeError, ValueError, KeyError):
        return float("nan")


def _values(df: pd.DataFrame, name: str) -> pd.Series | None:
    if name == "lr":
        return lr_values(df)
    col = HYPER_COLUMNS[name]
    if col not in df.columns:
        return None
    v = pd.to_numeric(df[col], errors="coerce").astype(float)
    return None if v.isna().all() else v


def _cells(df: pd.DataFrame, spec) -> pd.Series:
    """The (group, N, D, seed) cell of each row: the points a sweep is an envelope over."""
    parts = [df[c].astype(str) for c in spec.by]
    parts.append(pd.Series(np.round(np.log(df[spec.n_col].astype(float)), TOL), index=df.index).astype(str))
    if "budget" in df.columns and df["budget"].notna().all():  # the requested budget (batch sweeps round D)
        parts.append(df["budget"].astype(str))
    else:
        d = df[spec.d_col].astype(float) if spec.d_col else df[spec.c_col].astype(float)
        parts.append(pd.Series(np.round(np.log(d), TOL), index=df.index).astype(str))
    if "seed" in df.columns:
        parts.append(df["seed"].astype(str))
    return pd.concat(parts, axis=1).agg("/".join, axis=1) if len(parts) > 1 else parts[0]


def swept(df: pd.DataFrame, spec) -> dict[str, list[float]]:
    """The swept hyperparameters and their values: those the `sweep` column names (written by a grid's
    [sweep]) or, without it, those taking several values within one (group, N, D, seed) cell."""
    named: list[str] = []
    if "sweep" in df.columns:
        for s in df["sweep"].dropna().astype(str).unique():
            named += [x.strip() for x in s.split(",") if x.strip() in HYPER_COLUMNS]
    named = list(dict.fromkeys(named))
    out = {}
    cells = _cells(df, spec) if not named else None
    for name in HYPER_COLUMNS:
        v = _values(df, name)
        if v is None:
            continue
        if named:
            if name not in named:
                continue
        elif v.groupby(cells).nunique().max() < 2:
            continue
        vals = sorted(float(x) for x in v.dropna().unique())
        if len(vals) > 1:  # one value (a single-lr subset of a sweep's runs): nothing was swept here
            out[name] = vals
    return out


def envelope(df: pd.DataFrame, spec, sweep: dict) -> tuple[pd.DataFrame, dict]:
    """The best-tuned point of each (group, N, D, seed) cell: the row of lowest loss over the sweep.
    Returns (kept rows, record {"swept", "values", "n_points", "n_kept", "text"})."""
    loss = pd.to_numeric(df[spec.loss_col], errors="coerce").astype(float)
    best = loss.groupby(_cells(df, spec)).idxmin()
    kept = df.loc[sorted(best.to_numpy())]
    return kept, describe(sweep, len(df), len(kept), True)


def describe(sweep: dict, n_points: int, n_kept: int, used: bool) -> dict:
    what = " x ".join(f"{len(v)}-value {k}" if len(sweep) == 1 else f"{len(v)} {k}" for k, v in sweep.items())
    text = (
        f"envelope over a {what} sweep: {n_kept} of {n_points} points kept"
        if used
        else f"every point of a {what} sweep fitted ({n_points} points; --no-envelope)"
    )
    return {
        "swept": list(sweep),
        "values": {k: list(v) for k, v in sweep.items()},
        "envelope": used,
        "n_points": int(n_points),
        "n_kept": int(n_kept),
        "text": text,
    }


# ---- the per-size optimum ----------------------------------------------------------------------------------
def lr_optimum(lrs, losses) -> tuple[float, str, bool]:
    """The optimum learning rate of one size from its swept (lr, loss) points (one loss per distinct lr).

    A parabola in log lr through the lowest point and its neighbours (three points; at an end of the sweep
    the three nearest it), its vertex kept inside the swept range; the best swept value when there are fewer
    than three values or the parabola is not convex. Returns (lr_opt, "parabola" | "best", at_edge): at_edge
    when the optimum is the smallest or largest swept value or the vertex lies beyond one (clipped)."""
    x = np.log(np.asarray(lrs, float))
    y = np.asarray(losses, float)
    o = np.argsort(x)
    x, y = x[o], y[o]
    i = int(np.argmin(y))
    edge = i in (0, x.size - 1)
    if x.size < 3:
        return float(np.exp(x[i])), "best", edge
    lo = min(max(i - 1, 0), x.size - 3)
    xs, ys = x[lo : lo + 3], y[lo : lo + 3]
    s01, s12 = (ys[1] - ys[0]) / (xs[1] - xs[0]), (ys[2] - ys[1]) / (xs[2] - xs[1])
    a = (s12 - s01) / (xs[2] - xs[0])  # the parabola through the three points: a x^2 + b x + c
    b = s01 - a * (xs[0] + xs[1])
    if not a > 0:
        return float(np.exp(x[i])), "best", edge
    v = -b / (2 * a)
    if v < x[0] or v > x[-1]:
        return float(np.exp(np.clip(v, x[0], x[-1]))), "parabola", True
    return float(np.exp(v)), "parabola", edge


def sweep_curves(df: pd.DataFrame, spec, loss_col: str | None = None) -> list[dict]:
    """Per group and size: the swept (lr, mean loss) points at the size's largest token budget and their
    optimum. One dict per (group, N): {"group", "N", "D", "lrs", "losses", "lr_opt", "method", "at_edge",
    "units": {lr: [run ids]}}; sizes with fewer than two learning rates are left out."""
    lr = lr_values(df)
    if lr is None:
        return []
    loss_col = loss_col or spec.loss_col
    d = df.assign(
        _lr=lr.to_numpy(),
        _g=_group_names(df, spec.by),
        _n=np.round(np.log(df[spec.n_col].astype(float)), TOL),
        _d=(df[spec.d_col] if spec.d_col else df[spec.c_col]).astype(float),
        _L=pd.to_numeric(df[loss_col], errors="coerce").astype(float),
        _u=df[spec.run_col].astype(str) if spec.run_col else pd.Series(df.index.astype(str), index=df.index),
    )
    d = d[d["_lr"].notna() & d["_L"].notna()]
    out = []
    for (g, _), sub in d.groupby(["_g", "_n"], sort=False):
        top = sub[sub["_d"] >= sub["_d"].max() * (1 - 1e-6)]
        per = top.groupby("_lr")["_L"].mean()
        if per.size < 2:
            continue
        lr_opt, method, edge = lr_optimum(per.index.to_numpy(), per.to_numpy())
        out.append(
            {
                "group": g,
                "N": float(sub[spec.n_col].astype(float).iloc[0]),
                "D": float(top["_d"].iloc[0]),
                "lrs": [float(x) for x in per.index],
                "losses": [float(x) for x in per.to_numpy()],
                "lr_opt": lr_opt,
                "method": method,
                "at_edge": bool(edge),
                "units": {float(k): list(v) for k, v in top.groupby("_lr")["_u"]},
                "_rows": top[["_lr", "_L", "_u"]].to_numpy(),
            }
        )
    return out


def _group_names(df: pd.DataFrame, by) -> pd.Series:
    """Group names as fit.groups.split_groups makes them ("a/b" for several columns, "all" without)."""
    by = list(by)
    if not by:
        return pd.Series(["all"] * len(df), index=df.index)
    return df[by].astype(str).agg("/".join, axis=1) if len(by) > 1 else df[by[0]].astype(str)


# ---- the law ----------------------------------------------------------------------------------------------
def _line(logn: np.ndarray, logy: np.ndarray) -> tuple[float, float]:
    """Least squares log y = log c + k log N -> (c, k)."""
    k, logc = np.polyfit(logn, logy, 1)
    return float(math.exp(logc)), float(k)


def lr_law(curves: list[dict], n_boot: int, seed: int, level: float) -> dict | None:
    """lr_opt = c N^k through one group's per-size optima (sweep_curves), with run-level bootstrap samples:
    each resample draws every size's runs with replacement (stratified by size, so each size keeps its
    sweep), recomputes the size's optimum from the drawn runs' mean losses and refits the line. Returns
    {"coef", "exp", "conf_int", "per_size", "n_sizes", "samples": {"lr_coef", "lr_exp"} or None}, or None
    with fewer than two sizes."""
    if len({c["N"] for c in curves}) < 2:
        return None
    logn = np.log([c["N"] for c in curves])
    coef, exp = _line(logn, np.log([c["lr_opt"] for c in curves]))
    per_size = [{k: c[k] for k in ("N", "D", "lrs", "losses", "lr_opt", "method", "at_edge")} for c in curves]
    out = {"coef": coef, "exp": exp, "conf_int": {}, "per_size": per_size, "n_sizes": len(curves), "samples": None}
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        C, K = np.empty(n_boot), np.empty(n_boot)
        prep = []  # per size: its runs (unit index per row), the rows' lr index and loss
        for c in curves:
            rows = c["_rows"]
            _, unit = np.unique(rows[:, 2].astype(str), return_inverse=True)
            lrs, li = np.unique(rows[:, 0].astype(float), return_inverse=True)
            prep.append((unit, unit.max() + 1, lrs, li, rows[:, 1].astype(float)))
        for b in range(n_boot):
            opt = []
            for unit, n_u, lrs, li, L in prep:
                w = np.bincount(rng.integers(0, n_u, n_u), minlength=n_u)[unit].astype(float)  # draws per row
                tot, cnt = np.bincount(li, w * L, lrs.size), np.bincount(li, w, lrs.size)
                have = cnt > 0
                opt.append(lr_optimum(lrs[have], tot[have] / cnt[have])[0])
            C[b], K[b] = _line(logn, np.log(opt))
        out["conf_int"] = {
            "coef": list(percentile_interval(C, level)),
            "exp": list(percentile_interval(K, level)),
        }
        out["samples"] = {"lr_coef": C, "lr_exp": K}
    return out


def fit_lr_laws(df: pd.DataFrame, spec) -> dict[str, dict]:
    """The lr law of every group of `df` (all sweep points, before any envelope): {group: lr_law(...)}.
    Groups get independent resamples (seed spawned per group, in order of appearance)."""
    curves = sweep_curves(df, spec)
    names = list(dict.fromkeys(c["group"] for c in curves))
    seqs = np.random.SeedSequence([spec.seed, 14]).spawn(max(len(names), 1))
    out = {}
    for name, s in zip(names, seqs):
        law = lr_law([c for c in curves if c["group"] == name], spec.bootstrap, int(s.generate_state(1)[0]), spec.level)
        if law is not None:
            out[name] = law
    return out


def predict_lr(hyper_lr: dict, N, samples: dict | None = None, level: float = 0.95) -> dict:
    """The law at N (the fit's N column): {"lr", "lo", "hi", "extrapolated"}; lo, hi from bootstrap samples
    ({"lr_coef", "lr_exp"} arrays) when given, else NaN. extrapolated: N outside the swept sizes."""
    N = float(N)
    lr = hyper_lr["coef"] * N ** hyper_lr["exp"]
    lo = hi = float("nan")
    if samples is not None and len(samples.get("lr_coef", ())) > 1:
        draws = np.asarray(samples["lr_coef"], float) * N ** np.asarray(samples["lr_exp"], float)
        lo, hi = percentile_interval(draws[np.isfinite(draws)], level)
    sizes = [p["N"] for p in hyper_lr.get("per_size") or []]
    ext = bool(sizes) and not (min(sizes) * (1 - 1e-9) <= N <= max(sizes) * (1 + 1e-9))
    return {"lr": float(lr), "lo": float(lo), "hi": float(hi), "extrapolated": ext}
