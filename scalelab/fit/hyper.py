"""Hyperparameter sweeps in a fit: the envelope over a sweep, the learning-rate law lr_opt = c N^a (D^b) and
the batch-size law batch_opt = c D^g.

A grid's [sweep] trains every (variant, width) at several values of the learning rate (and optionally batch
size, warmup, weight decay); the run store records the values (`peak_lr`, `batch_tokens`, `warmup`,
`weight_decay`) and what was swept (`sweep`); a CSV gives them as columns `lr` and `batch_tokens` (tokens per
optimizer step). What follows (Porian et al. 2024 trace the Kaplan-Chinchilla disagreement largely to
hyperparameters not tuned per size; Li et al. 2025, "Step Law", fit lr and batch laws in N and D):

- the envelope of the fit's points: per (group, N, D, seed) the best-tuned point, the lowest loss over the
  sweep, so that the scaling law compares each size at its own best setting (`envelope`);
- per (group, N, D) cell, the loss curve of one swept hyperparameter: at each of its values, the loss
  (seeds averaged) at the best setting of the other swept hyperparameters. Averaging over them instead lets
  bad batch sizes pull the lr optimum down (1.4-2.4x on the Step Law sweep). The cell's optimum is the vertex
  of a parabola in log value through the lowest point and its neighbours (`optimum`);
- the lr law, by least squares in logs through the cells' optima: lr_opt = c N^a D^b when the cells separate
  N from D (tokens per parameter spread at least identify.SEPARATION_MIN at a given size, more cells than
  the law's 3 parameters); else lr_opt = c N^k through each size's largest token budget (where D moves with
  N, k is the exponent along the design);
- the batch law, when batch size was swept: batch_opt = c D^g (tokens per step) through the cells' optimum
  batch sizes, when they hold at least 2 token counts (Step Law's form: no N term);
- run-level bootstrap: each resample draws every size's runs with replacement (stratified by size, so each
  size keeps its sweep), recomputes every cell's curves and optima and refits the lines.

Torch-free. This module is the one place the laws live: `predict_lr` and `predict_batch` evaluate them
(planner, figures), `law_lines` words them.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.fit.bootstrap import percentile_interval
from scalelab.fit.records import HyperLaw

# swept name -> run-store column holding its value
HYPER_COLUMNS = {"lr": "peak_lr", "batch_size": "batch_tokens", "warmup": "warmup", "weight_decay": "weight_decay"}
LR_SAMPLE_COLUMNS = ("lr_coef", "lr_exp", "lr_exp_d")  # lr_exp_d only for laws with a D term
BATCH_SAMPLE_COLUMNS = ("bs_coef", "bs_exp")
# the laws' bootstrap samples, extra columns of NAME.samples.parquet
HYPER_SAMPLE_COLUMNS = LR_SAMPLE_COLUMNS + BATCH_SAMPLE_COLUMNS
TOL = 6  # decimals of log values that count as equal (N, D)
MIN_RESAMPLES_SHARE = 0.5  # an interval resting on fewer usable resamples than this share is not given


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


def tokens_of(df: pd.DataFrame, spec) -> pd.Series:
    """D of each row: the tokens column, else C / (6 N) (as fit.groups.split_groups reads it)."""
    if spec.d_col:
        return pd.to_numeric(df[spec.d_col], errors="coerce").astype(float)
    c = pd.to_numeric(df[spec.c_col], errors="coerce").astype(float)
    return c / (6.0 * pd.to_numeric(df[spec.n_col], errors="coerce").astype(float))


def _budget_key(df: pd.DataFrame, spec) -> pd.Series:
    """The token budget a row belongs to: the requested `budget` (batch sweeps round D to whole steps),
    else D itself (to TOL decimals of its log)."""
    if "budget" in df.columns and df["budget"].notna().all():
        return df["budget"].astype(str)
    d = df[spec.d_col].astype(float) if spec.d_col else df[spec.c_col].astype(float)
    return pd.Series(np.round(np.log(d), TOL), index=df.index).astype(str)


def _cells(df: pd.DataFrame, spec) -> pd.Series:
    """The (group, N, D, seed) cell of each row: the points a sweep is an envelope over."""
    parts = [df[c].astype(str) for c in spec.by]
    parts.append(pd.Series(np.round(np.log(df[spec.n_col].astype(float)), TOL), index=df.index).astype(str))
    parts.append(_budget_key(df, spec))
    if "seed" in df.columns:
        parts.append(df["seed"].astype(str))
    return parts[0].str.cat(parts[1:], sep="/") if len(parts) > 1 else parts[0]


def _columns_present(df: pd.DataFrame, spec) -> bool:
    """The columns a sweep is read with are all there (when not, fit.groups.split_groups names the missing)."""
    need = [spec.n_col, spec.loss_col, spec.d_col or spec.c_col, getattr(spec, "run_col", None), *spec.by]
    return all(c in df.columns for c in need if c)


def swept(df: pd.DataFrame, spec) -> dict[str, list[float]]:
    """The swept hyperparameters and their values: those the `sweep` column names (written by a grid's
    [sweep]) or, without it, those taking several values within one (group, N, D, seed) cell."""
    if not _columns_present(df, spec):
        return {}
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


# ---- one cell's optimum ------------------------------------------------------------------------------------
def _optima(x: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised optimum of B curves over sorted log values x (n,); Y (B, n) losses, NaN where a value is
    missing. Returns (log optimum (B,), parabola (B,) bool, at_edge (B,) bool); NaN where no value is left.

    Per curve: a parabola through the lowest point and its neighbours among the values present (three
    points; at an end the three nearest it), its vertex kept inside the range present; the best value when
    fewer than three are present or the parabola is not convex. at_edge: the lowest point is the smallest or
    largest value present, or the vertex lies beyond one (clipped)."""
    B, n = Y.shape
    rows = np.arange(B)
    valid = np.isfinite(Y)
    nv = valid.sum(1)
    i = np.where(valid, Y, np.inf).argmin(1)
    order = np.argsort(~valid, axis=1, kind="stable")  # the present values first, in ascending order
    rank = np.cumsum(valid, 1)[rows, i] - 1
    first, last = order[:, 0], order[rows, np.maximum(nv - 1, 0)]
    edge = (i == first) | (i == last)
    lo = np.clip(rank - 1, 0, np.maximum(nv - 3, 0))
    j0, j1, j2 = (order[rows, np.minimum(lo + k, n - 1)] for k in range(3))
    x0, x1, x2 = x[j0], x[j1], x[j2]
    y0, y1, y2 = Y[rows, j0], Y[rows, j1], Y[rows, j2]
    with np.errstate(all="ignore"):
        s01, s12 = (y1 - y0) / (x1 - x0), (y2 - y1) / (x2 - x1)
        a = (s12 - s01) / (x2 - x0)  # the parabola through the three points: a x^2 + b x + c
        b = s01 - a * (x0 + x1)
        v = -b / (2 * a)
    par = (nv >= 3) & (a > 0)
    xlo, xhi = x[first], x[last]
    out = np.where(par, np.clip(np.where(par, v, 0.0), xlo, xhi), x[i])
    edge = edge | (par & ((v < xlo) | (v > xhi)))
    out = np.where(nv > 0, out, np.nan)
    return out, par, edge


def optimum(values, losses) -> tuple[float, str, bool]:
    """The optimum of one swept hyperparameter from its (value, loss) points (one loss per distinct value).

    A parabola in log value through the lowest point and its neighbours (three points; at an end of the
    sweep the three nearest it), its vertex kept inside the swept range; the best swept value when there are
    fewer than three values or the parabola is not convex. Returns (optimum, "parabola" | "best", at_edge):
    at_edge when the optimum is the smallest or largest swept value or the vertex lies beyond one (clipped)."""
    x = np.log(np.asarray(values, float))
    y = np.asarray(losses, float)
    o = np.argsort(x)
    opt, par, edge = _optima(x[o], y[o][None])
    return float(np.exp(opt[0])), "parabola" if par[0] else "best", bool(edge[0])


lr_optimum = optimum  # the learning rate's optimum (the rule is the same for every swept hyperparameter)


# ---- the cells of a sweep ----------------------------------------------------------------------------------
class _Cell:
    """One (group, N, D) cell: its rows' run index (within the size), combination of swept values, loss."""

    def __init__(self, group, size, N, D, unit, combo, combos, values, L):
        self.group, self.size, self.N, self.D = group, size, N, D
        self.unit, self.combo, self.combos, self.values, self.L = unit, combo, combos, values, L
        self.order = np.argsort(combo, kind="stable")  # rows by combination (every combination has a row)
        self.starts = np.flatnonzero(np.r_[True, np.diff(combo[self.order]) != 0])

    def means(self, W: np.ndarray) -> np.ndarray:
        """(B, combinations) weighted mean loss per combination of swept values; NaN where none is drawn."""
        Wo = W[:, self.order]  # sums by reduceat, not a matmul: no BLAS threads for tiny products
        tot = np.add.reduceat(Wo * self.L[self.order], self.starts, axis=1)
        cnt = np.add.reduceat(Wo, self.starts, axis=1)
        with np.errstate(all="ignore"):
            return np.where(cnt > 0, tot / cnt, np.nan)

    def curve(self, M: np.ndarray, h: int, reduce: str = "envelope") -> np.ndarray:
        """(B, values of swept name h): at each value, the best (envelope) or mean (reduce="mean") loss over
        the other swept names' combinations."""
        out = np.full((M.shape[0], len(self.values[h])), np.nan)
        for v in range(len(self.values[h])):
            cols = M[:, self.combos[:, h] == v]
            if cols.shape[1]:
                if reduce == "mean":
                    n = np.isfinite(cols).sum(1)
                    with np.errstate(all="ignore"):
                        out[:, v] = np.where(n > 0, np.nansum(cols, 1) / n, np.nan)
                else:
                    out[:, v] = np.fmin.reduce(cols, axis=1)
        return out


def _sweep_cells(df: pd.DataFrame, spec, loss_col: str | None = None) -> tuple[list[str], list[_Cell], dict]:
    """(swept names, cells, {size key: number of runs}) of a frame: rows with every swept value and a loss."""
    sw = swept(df, spec)
    names = [n for n in HYPER_COLUMNS if n in sw]
    if not names:
        return names, [], {}
    loss_col = loss_col or spec.loss_col
    df = df.reset_index(drop=True)  # rows are matched by label below: labels must be unique
    vals = pd.DataFrame({n: _values(df, n) for n in names}, index=df.index)
    d = pd.DataFrame(
        {
            "_g": group_names(df, spec.by),
            "_n": np.round(np.log(df[spec.n_col].astype(float)), TOL),
            "_N": df[spec.n_col].astype(float),
            "_D": tokens_of(df, spec),
            "_b": _budget_key(df, spec),
            "_L": pd.to_numeric(df[loss_col], errors="coerce").astype(float),
            "_u": df[spec.run_col].astype(str) if spec.run_col else pd.Series(df.index.astype(str), index=df.index),
        },
        index=df.index,
    )
    ok = vals.notna().all(axis=1) & d["_L"].notna() & np.isfinite(d["_D"])
    d, vals = d[ok], vals[ok]
    cells, n_units = [], {}
    for (g, n), size in d.groupby(["_g", "_n"], sort=False):
        units, uidx = np.unique(size["_u"].to_numpy(), return_inverse=True)
        n_units[(g, n)] = len(units)
        uidx = pd.Series(uidx, index=size.index)
        for _, sub in size.groupby("_b", sort=False):
            v = vals.loc[sub.index]
            uniq, idx = zip(*(np.unique(v[c].to_numpy(), return_inverse=True) for c in names))
            combos, combo = np.unique(np.stack(idx, 1), axis=0, return_inverse=True)
            cells.append(
                _Cell(
                    g,
                    (g, n),
                    float(sub["_N"].iloc[0]),
                    float(sub["_D"].median()),
                    uidx.loc[sub.index].to_numpy(),
                    combo.reshape(-1),
                    combos,
                    list(uniq),
                    sub["_L"].to_numpy(float),
                )
            )
    return names, cells, n_units


def group_names(df: pd.DataFrame, by) -> pd.Series:
    """Group names as fit.groups.split_groups makes them ("a/b" for several columns, "all" without)."""
    by = list(by)
    if not by:
        return pd.Series(["all"] * len(df), index=df.index)
    return df[by].astype(str).agg("/".join, axis=1) if len(by) > 1 else df[by[0]].astype(str)


def _curves(cells: list[_Cell], h: int, W_of, reduce: str = "envelope"):
    """Per cell: (curve (B, values of swept name h), log optimum (B,), parabola (B,), at_edge (B,))."""
    out = []
    for c in cells:
        Y = c.curve(c.means(W_of(c)), h, reduce)
        out.append((Y, *_optima(np.log(c.values[h]), Y)))
    return out


def _ones(c: _Cell) -> np.ndarray:
    return np.ones((1, c.L.size))


def _entry(c: _Cell, name: str, h: int, Y, opt, par, edge) -> dict:
    vals_key, opt_key = _KEYS[name]
    return {
        "N": c.N,
        "D": c.D,
        vals_key: [float(v) for v in c.values[h]],
        "losses": [float(v) for v in Y[0]],
        opt_key: float(np.exp(opt[0])),
        "method": "parabola" if par[0] else "best",
        "at_edge": bool(edge[0]),
    }


_KEYS = {"lr": ("lrs", "lr_opt"), "batch_size": ("batches", "batch_opt")}


def sweep_curves(df: pd.DataFrame, spec, loss_col: str | None = None) -> list[dict]:
    """Per group and size: the learning-rate curve at the size's largest token budget (at each swept lr the
    loss at the best setting of the other swept hyperparameters, seeds averaged) and its optimum. One dict
    per (group, N): {"group", "N", "D", "lrs", "losses", "lr_opt", "method", "at_edge"}, and where lr alone
    was swept over several runs (seeds) at a rate, "lo", "hi" (their lowest and highest loss at each rate) and
    "seeds" (the most runs at one rate); sizes with fewer than two learning rates are left out."""
    names, cells, _ = _sweep_cells(df, spec, loss_col)
    if "lr" not in names:
        return []
    h = names.index("lr")
    top = _top([c for c in cells if len(c.values[h]) >= 2])
    out = [{"group": c.group, **_entry(c, "lr", h, *r)} for c, r in zip(top, _curves(top, h, _ones))]
    if names == ["lr"]:  # one combination per rate: its rows are the runs (seeds) the mean was taken over
        for c, e in zip(top, out):
            runs = np.bincount(c.combo, minlength=len(c.combos))
            if runs.max() >= 2:
                rows = np.split(c.L[c.order], c.starts[1:])
                e.update(lo=[float(r.min()) for r in rows], hi=[float(r.max()) for r in rows], seeds=int(runs.max()))
    return out


def _top(cells) -> list:
    """Each size's cell at its largest token budget (in order of the sizes' appearance)."""
    best: dict = {}
    for c in cells:
        if c.size not in best or c.D > best[c.size].D:
            best[c.size] = c
    return list(best.values())


def _separation(cells) -> float:
    """How far the cells' tokens per parameter spread at a given size (identify.describe's factor)."""
    from scalelab.fit.identify import describe as design

    N = np.array([c.N for c in cells])
    D = np.array([c.D for c in cells])
    return design(N, D, 6 * N * D).separation


# ---- the laws -------------------------------------------------------------------------------------------
def _lines(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Least squares Y[b] = X theta per row of Y (B, cells) -> theta (B, p); cells with a NaN optimum are
    left out of that row's fit, and a row whose remaining design cannot identify theta is NaN."""
    B, p = Y.shape[0], X.shape[1]
    out = np.full((B, p), np.nan)
    good = np.isfinite(Y).all(1)
    if good.any():
        out[good] = np.linalg.lstsq(X, Y[good].T, rcond=None)[0].T
    for b in np.flatnonzero(~good):
        m = np.isfinite(Y[b])
        if m.sum() >= p and np.linalg.matrix_rank(X[m]) == p:
            out[b] = np.linalg.lstsq(X[m], Y[b, m], rcond=None)[0]
    return out


def _intervals(point: dict, draws: dict, level: float) -> tuple[dict, str | None, int]:
    """Percentile intervals of the resampled parameters; none (and a note saying why) when fewer than
    MIN_RESAMPLES_SHARE of the resamples are usable or an interval excludes its own estimate."""
    ok = np.all([np.isfinite(v) for v in draws.values()], axis=0)
    n_ok, B = int(ok.sum()), len(ok)
    if n_ok < MIN_RESAMPLES_SHARE * B:
        return {}, f"no interval: only {n_ok} of {B} resamples gave a law (a size lost its sweep)", n_ok
    ci, out = {}, []
    for k, v in draws.items():
        lo, hi = percentile_interval(v[ok], level)
        if _within(point[k], lo, hi):
            ci[k] = [lo, hi]
        else:
            out.append(f"{k} (estimate {point[k]:.3g}, resamples [{lo:.3g}, {hi:.3g}])")
    note = f"no interval for {', '.join(out)}: it excludes its own estimate ({n_ok} resamples)" if out else None
    return ci, note, n_ok


def fit_lr_laws(df: pd.DataFrame, spec, reduce: str = "envelope") -> dict[str, dict]:
    """The hyperparameter laws of every group of `df` (all sweep points, before any envelope):
    {group: {"lr": law, "batch": law}} (each law present when it can be fitted; each carries its bootstrap
    draws under "samples" for `attach`). Groups get independent resamples (seed spawned per group, in order
    of appearance). reduce="mean" averages the loss over the other swept hyperparameters instead of taking
    their best (for comparison only: it is what biases the lr optimum low)."""
    names, cells, n_units = _sweep_cells(df, spec)
    if "lr" not in names and "batch_size" not in names:
        return {}
    groups = list(dict.fromkeys(c.group for c in cells))
    seqs = np.random.SeedSequence([spec.seed, 14]).spawn(max(len(groups), 1))
    out = {}
    for name, s in zip(groups, seqs):
        gc = [c for c in cells if c.group == name]
        laws = _group_laws(gc, names, n_units, spec.bootstrap, int(s.generate_state(1)[0]), spec.level, reduce)
        if laws:
            out[name] = laws
    return out


def _group_laws(cells, names, n_units, n_boot, seed, level, reduce) -> dict:
    plan: dict = {}  # law name -> (swept index, cells in the law, design columns)
    if "lr" in names:
        h = names.index("lr")
        lc = [c for c in cells if len(c.values[h]) >= 2]
        if len({c.size for c in lc}) >= 2:
            if len(lc) > 3 and _separation(lc) >= _sep_min():
                plan["lr"] = (h, lc, ("N", "D"))
            else:
                plan["lr"] = (h, _top(lc), ("N",))
    if "batch_size" in names:
        h = names.index("batch_size")
        bc = [c for c in cells if len(c.values[h]) >= 2]
        if len(bc) >= 3 and len({round(math.log(c.D), TOL) for c in bc}) >= 2:
            plan["batch"] = (h, bc, ("D",))
    if not plan:
        return {}
    used = {c.size for _, cs, _ in plan.values() for c in cs}
    sizes = [s for s in dict.fromkeys(c.size for c in cells) if s in used]
    W_of = _ones
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        counts = {s: np.empty((n_boot, n_units[s])) for s in sizes}
        for b in range(n_boot):  # every size's runs drawn with replacement, sizes in turn
            for s in sizes:
                counts[s][b] = np.bincount(rng.integers(0, n_units[s], n_units[s]), minlength=n_units[s])

        def W_of(c):  # noqa: F811  (draws per row: its run's count in the resample)
            return counts[c.size][:, c.unit]

    out = {}
    for law, (h, cs, terms) in plan.items():
        cs = sorted(cs, key=lambda c: (c.N, c.D))
        X = np.column_stack([np.ones(len(cs))] + [np.log([getattr(c, t) for c in cs]) for t in terms])
        point = _curves(cs, h, _ones, reduce)
        theta = _lines(X, np.array([[r[1][0] for r in point]]))[0]
        rec = _law_record(law, terms, theta, cs, names, h, point, level)
        rec["samples"] = None
        if n_boot > 0:
            boot = _curves(cs, h, W_of, reduce)
            th = _lines(X, np.stack([r[1] for r in boot], 1))
            keys = _PARAMS[law][: th.shape[1]]
            draws = {k: (np.exp(th[:, 0]) if k == "coef" else th[:, i]) for i, k in enumerate(keys)}
            ci, note, n_ok = _intervals({k: rec[k] for k in keys}, draws, level)
            rec.update(conf_int=ci, n_resamples=n_boot, n_resamples_used=n_ok, note=note)
            if n_ok >= MIN_RESAMPLES_SHARE * n_boot:  # else no interval anywhere, predictions included
                rec["samples"] = {col: draws[k] for k, col in zip(keys, _SAMPLE_COLS[law])}
        out[law] = rec
    return out


_PARAMS = {"lr": ("coef", "exp", "exp_D"), "batch": ("coef", "exp")}
_SAMPLE_COLS = {"lr": LR_SAMPLE_COLUMNS, "batch": BATCH_SAMPLE_COLUMNS}


def _sep_min() -> float:
    from scalelab.fit.identify import SEPARATION_MIN

    return SEPARATION_MIN


def _law_record(law, terms, theta, cs, names, h, point, level) -> dict:
    name = names[h]
    per = [_entry(c, name, h, *r) for c, r in zip(cs, point)]
    rec: dict = {"coef": float(math.exp(theta[0]))}
    if law == "lr":
        rec.update(exp=float(theta[1]), exp_D=float(theta[2]) if len(terms) > 1 else None)
        rec["formula"] = "lr_opt = c N^a D^b" if len(terms) > 1 else "lr_opt = c N^k"
    else:
        rec.update(exp=float(theta[1]), formula="batch_opt = c D^g", unit="tokens per step")
    rec.update(
        terms=list(terms),
        conf_int={},
        over=[n for n in names if n != name],
        n_sizes=len({c.size for c in cs}),
        n_cells=len(cs),
        N_range=[min(c.N for c in cs), max(c.N for c in cs)],
        D_range=[min(c.D for c in cs), max(c.D for c in cs)],
        note=None,
    )
    rec["per_size" if law == "lr" else "per_cell"] = per
    return rec


def attach(f, laws: dict) -> None:
    """Put a group's hyperparameter laws (fit_lr_laws) into its GroupFit, and their draws as
    extra sample columns (beside the loss law's samples when their counts match; alone for a group without
    a loss law); the laws go to f.lr_law and f.batch_law."""
    for key, attr in (("lr", "lr_law"), ("batch", "batch_law")):
        if key in laws:
            setattr(f, attr, HyperLaw.from_dict({k: v for k, v in laws[key].items() if k != "samples"}))
    cols = {c: v for law in laws.values() if law.get("samples") for c, v in law["samples"].items()}
    if not cols:
        return
    n = len(next(iter(cols.values())))
    if f.samples is None:
        f.samples = pd.DataFrame(cols)
    elif len(f.samples) == n:
        for c, v in cols.items():
            f.samples[c] = v


# ---- using the laws ----------------------------------------------------------------------------------------
def law_samples(g, law: str = "lr") -> dict[str, np.ndarray]:
    """A GroupFit's bootstrap draws of its lr (or batch) law: {column: array}, empty arrays when none."""
    if law == "lr":
        cols = LR_SAMPLE_COLUMNS if g.lr_law is not None and g.lr_law.has_D else LR_SAMPLE_COLUMNS[:2]
    else:
        cols = BATCH_SAMPLE_COLUMNS
    return g.sample_arrays(cols)


def _inside(x: float, rng) -> bool:
    return not rng or rng[0] * (1 - 1e-9) <= x <= rng[1] * (1 + 1e-9)


def _own_interval(est: float, draws: np.ndarray, level: float) -> tuple[float, float]:
    """The percentile interval of the finite draws; NaNs when it does not contain its own estimate."""
    lo, hi = percentile_interval(draws[np.isfinite(draws)], level)
    return (lo, hi) if _within(est, lo, hi) else (float("nan"), float("nan"))


def _within(x: float, lo: float, hi: float) -> bool:
    """lo <= x <= hi up to rounding (a draw equal to the estimate may differ from it in the last digits)."""
    tol = 1e-9 * max(abs(lo), abs(hi), 1e-300)
    return lo - tol <= x <= hi + tol


def predict_lr(law: HyperLaw | dict, N, samples: dict | None = None, level: float = 0.95, D=None) -> dict:
    """The lr law at N (the fit's N column) and, for a law with a D term, D tokens: {"lr", "lo", "hi",
    "extrapolated"}; lo, hi from bootstrap draws ({"lr_coef", "lr_exp"[, "lr_exp_d"]} arrays) when given,
    else NaN. extrapolated: N (or D) outside the swept cells'."""
    law = HyperLaw.from_dict(law) if isinstance(law, dict) else law
    N = float(N)
    b = law.exp_D
    if b is not None and D is None:
        raise ScalelabError(
            "this lr law is lr_opt = c N^a D^b (the sweep spanned several token budgets per size): give the "
            "training tokens D to evaluate it"
        )
    D = float(D) if D is not None else float("nan")
    dterm = D**b if b is not None else 1.0
    lr = law.coef * N**law.exp * dterm
    lo = hi = float("nan")
    if samples is not None and len(samples.get("lr_coef", ())) > 1:
        draws = np.asarray(samples["lr_coef"], float) * N ** np.asarray(samples["lr_exp"], float)
        if b is not None:
            draws = draws * D ** np.asarray(samples.get("lr_exp_d", np.full(draws.shape, np.nan)), float)
        lo, hi = _own_interval(lr, draws, level)
    sizes = [p["N"] for p in law.per_size or []]
    ext = bool(sizes) and not _inside(N, (min(sizes), max(sizes)))
    if b is not None:
        ext = ext or not _inside(D, law.D_range)
    return {"lr": float(lr), "lo": float(lo), "hi": float(hi), "extrapolated": ext}


def predict_batch(law: HyperLaw | dict, D, samples: dict | None = None, level: float = 0.95) -> dict:
    """The batch law at D tokens: {"batch", "lo", "hi", "extrapolated"} in tokens per optimizer step; lo, hi
    from bootstrap draws ({"bs_coef", "bs_exp"}) when given, else NaN. extrapolated: D outside the cells'."""
    law = HyperLaw.from_dict(law) if isinstance(law, dict) else law
    D = float(D)
    bs = law.coef * D**law.exp
    lo = hi = float("nan")
    if samples is not None and len(samples.get("bs_coef", ())) > 1:
        draws = np.asarray(samples["bs_coef"], float) * D ** np.asarray(samples["bs_exp"], float)
        lo, hi = _own_interval(bs, draws, level)
    ext = not _inside(D, law.D_range)
    return {"batch": float(bs), "lo": float(lo), "hi": float(hi), "extrapolated": ext}


def law_lines(name: str, lr: HyperLaw | None, bs: HyperLaw | None = None) -> list[str]:
    """The group's hyperparameter laws in words, one line each (fit's table, plan's lr-only section)."""

    def est(law, k, sym):
        ci = law.conf_int.get(k)
        return f"{sym} = {getattr(law, k):.3g}" + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "")

    out = []
    if lr is not None:
        out += _lr_lines(name, lr, est)
    if bs is not None:
        over = f"; at each batch size the best over {', '.join(bs.over)}" if bs.over else ""
        edges = sum(p["at_edge"] for p in bs.optima)
        edge = f"; {edges} optima at an edge of the sweep" if edges else ""
        out.append(
            f"{name}: {bs.formula} (tokens per step), {est(bs, 'coef', 'c')}, {est(bs, 'exp', 'g')} "
            f"({bs.n_cells} (N, D) cells{over}{edge})"
        )
        if bs.note:
            out.append(f"{name}: batch law: {bs.note}")
    return out


def _lr_lines(name: str, lr: HyperLaw, est) -> list[str]:
    syms = [("coef", "c"), ("exp", "a" if lr.has_D else "k")]
    syms += [("exp_D", "b")] if lr.has_D else []
    over = f"; at each lr the best over {', '.join(lr.over)}" if lr.over else ""
    per = lr.optima
    if lr.has_D:
        cells = f"{lr.n_cells} (N, D) cells"
        opt = "; ".join(f"{p['N']:.3g}, {p['D']:.3g}: {p['lr_opt']:.3g}" for p in per)
        opt = f"per cell (N, D: lr_opt) {opt}" if len(per) <= 8 else "per-cell optima in the fit file"
    else:
        cells = f"{lr.n_sizes} sizes at their largest budget"
        opt = "per size (N: lr_opt) " + ", ".join(
            f"{p['N']:.3g}: {p['lr_opt']:.3g}{' (edge)' if p['at_edge'] else ''}" for p in per
        )
    edges = sum(p["at_edge"] for p in per)
    edge = f"; {edges} optima at an edge of the sweep" if edges and lr.has_D else ""
    out = [f"{name}: {lr.formula}, {', '.join(est(lr, k, s) for k, s in syms)} ({cells}{over}{edge}); {opt}"]
    if lr.note:
        out.append(f"{name}: lr law: {lr.note}")
    return out
