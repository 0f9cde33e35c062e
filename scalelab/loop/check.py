"""Was the prediction right? A fit checked against runs it did not see.

For every final point of a run the fit did not use: the law's prediction with its one-run interval (the
bootstrap samples of the mean law times the fit's residual noise in log loss, as the planner's one-run
interval), the relative error, and whether the interval covered the observation. Runs that form an
IsoFLOP set (>= 3 sizes of a variant at one training-FLOPs budget, as `plan --emit-grid` writes) also get
the observed optimum (the minimum of a parabola in log N through the set, or the best run when the
parabola opens downward) against the planner's predicted N_opt at that budget. A set whose loss still falls
toward its smallest or largest size does not bracket its optimum: it gets no observed optimum and no verdict,
only the run one size step beyond that edge that would bracket it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scalelab import store
from scalelab.errors import ScalelabError
from scalelab.fit import laws
from scalelab.fit.bootstrap import bootstrap_interval
from scalelab.fit.results import FitResults

ISO_TOL = 0.05  # an IsoFLOP set ends where the runs' FLOPs jump by more than 5% (approaches.isoflop_slices)


@dataclass
class CheckResult:
    """Per held-out point: predicted vs observed (`points`); per IsoFLOP set: observed vs planned optimum
    (`isoflop`); `summary` per variant (mean |relative error|, coverage)."""

    points: pd.DataFrame
    isoflop: pd.DataFrame
    level: float
    fit_path: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def summary(self) -> pd.DataFrame:
        p = self.points
        return (
            p.groupby("variant")
            .agg(
                points=("observed", "size"),
                mean_abs_rel_error=("rel_error", lambda x: float(np.mean(np.abs(x)))),
                coverage=("covered", "mean"),
            )
            .reset_index()
        )

    def to_dict(self) -> dict:
        def rows(df):
            return [
                {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
                for r in df.to_dict("records")
            ]

        return {
            "fit": self.fit_path,
            "level": self.level,
            "points": rows(self.points),
            "isoflop": rows(self.isoflop),
            "summary": rows(self.summary),
            "notes": self.notes,
        }


def _one_run_interval(g, level: float, pred: np.ndarray, seed: int = 0, draws: int = 16, **at):
    """(lo, hi, notes) for one new run at each point `at` (N=, D= or C=): the percentile interval of the law's
    bootstrap samples times exp(residual noise in log loss), by scalelab.fit.bootstrap's policy (non-finite
    draws left out; no interval, NaN ends, where it withholds one: `notes` then says why)."""
    s = g.sample_arrays()
    lo, hi = np.full(len(pred), np.nan), np.full(len(pred), np.nan)
    if not len(next(iter(s.values()))):
        return lo, hi, []
    flat = g.one_run_draws(laws.predict(g.form, s, **at), draws, seed)  # (S x draws, P)
    notes = []
    for j in range(len(pred)):
        ci, why = bootstrap_interval(flat[:, j], float(pred[j]), level)
        if ci is None:
            assert why is not None  # bootstrap_interval says why whenever it withholds the interval
            notes.append(why["why"])
        else:
            lo[j], hi[j] = ci
    return lo, hi, notes


def _rows(variant: str, sub: pd.DataFrame, g, level: float, seed: int) -> tuple[list[dict], list[str]]:
    """One variant's held-out points: predicted vs observed with the one-run interval."""
    N, D, C = (sub[k].to_numpy(float) for k in ("N", "D", "C"))
    pred = g.predict(N=N, D=D, C=C)
    at = dict(N=N, D=D) if g.form == "chinchilla" else dict(C=C)
    lo, hi, why = _one_run_interval(g, level, pred, seed, **at)
    obs = sub["observed"].to_numpy(float)
    rows = [
        {
            "variant": variant,
            "run_id": r["run_id"],
            "d_model": r["d_model"],
            "N": N[i],
            "D": D[i],
            "C": C[i],
            "observed": obs[i],
            "predicted": float(pred[i]),
            "lo": float(lo[i]),
            "hi": float(hi[i]),
            "rel_error": float(obs[i] / pred[i] - 1),
            "covered": bool(lo[i] <= obs[i] <= hi[i]),
            "extrapolated": bool(C[i] > g.c_range[1] * 1.0001),
        }
        for i, r in enumerate(sub.to_dict("records"))
    ]
    notes = [f"{variant}: no one-run interval for {len(why)} point(s): {w}" for w in dict.fromkeys(why)]
    return rows, notes


def check_fit(fit: FitResults, run_paths, *, seed: int = 0) -> CheckResult:
    """Compare `fit` with the points it did not use: the final points of run-store runs (Parquet), or the
    rows of CSV files with the columns the fit recorded (its N, D or FLOPs, loss, group and run columns)."""
    fit.require_samples()
    paths = [str(p) for p in run_paths]
    csv = {Path(p).suffix.lower() in (".csv", ".tsv") for p in paths}
    if len(csv) > 1:
        raise ScalelabError("mixed CSV and run-store inputs: check them separately")
    new, by_name = _csv_points(fit, paths) if csv == {True} else _store_points(fit, paths)
    rows, notes = [], []
    for v, sub in new.groupby("variant", sort=False):
        r, n = _rows(str(v), sub, by_name[str(v)], fit.level, seed)
        rows += r
        notes += n
    points = pd.DataFrame(rows)
    return CheckResult(
        points=points,
        isoflop=_isoflop(fit, points),
        level=fit.level,
        fit_path=str(fit.path) if fit.path else None,
        notes=notes,
    )


def _used(fit: FitResults) -> pd.DataFrame:
    """The points the fit's laws were fitted on (fit.points, the rows the envelope kept), column `group` first."""
    pts = fit.points
    if pts is None:
        raise ScalelabError(
            f"fit {fit.path} records no points (written by an older scalelab, its input files not here): "
            "refit it with `scalelab fit` to check it"
        )
    return pts[pts["fitted"].astype(bool)]


def _store_points(fit: FitResults, paths) -> tuple[pd.DataFrame, dict]:
    """Final points of the run-store runs the fit did not use, one row each (variant, run_id, d_model, N,
    D, C, observed), and the fit's groups by variant."""
    loss_col = fit.info.columns.loss or "val_loss"
    df = store.read_runs(paths, ok_only=True, final_only=True)
    used = set(_used(fit)["run"].dropna().astype(str))
    new = df[~df["run_id"].isin(used)]
    if new.empty:
        raise ScalelabError(
            f"every run given ({df['run_id'].nunique()}) was used by fit {fit.path}: give runs it did not see "
            "(e.g. the grid `scalelab plan --emit-grid` wrote, once trained)"
        )
    by_variant = {g.variant: g for g in fit if g.form in ("chinchilla", "frontier")}
    unknown = sorted(set(new["variant"].astype(str)) - set(by_variant))
    if unknown:
        raise ScalelabError(
            f"runs of variant(s) {', '.join(unknown)} are not in fit {fit.path} (it has "
            f"{', '.join(sorted(by_variant))}): check runs from the fitted grid's variants"
        )
    _same_data(fit, new)
    out = []
    for v, sub in new.groupby("variant"):
        g = by_variant[str(v)]
        out.append(
            pd.DataFrame(
                {
                    "variant": str(v),
                    "run_id": sub["run_id"].to_numpy(),
                    "d_model": [int(x) for x in sub["d_model"]] if "d_model" in sub else None,
                    "N": sub[g.n_column].to_numpy(float),
                    "D": sub["tokens"].to_numpy(float),
                    "C": sub[fit.flops_column].to_numpy(float),
                    "observed": sub[loss_col].to_numpy(float),
                }
            )
        )
    return pd.concat(out, ignore_index=True), by_variant


def _fit_columns(fit: FitResults) -> dict:
    """The input columns the fit read (FitSpec names: n_col, d_col, c_col, loss_col, run_col, by); None
    for D or C where it computed them (D = C / (6N), C = 6ND)."""
    spec = fit.spec
    if spec is not None:
        return {k: getattr(spec, k) for k in ("n_col", "d_col", "c_col", "loss_col", "run_col")} | {"by": spec.by}
    c = fit.info.columns
    if not c.N or not c.loss:
        raise ScalelabError(f"fit {fit.path} records no input columns: re-run `scalelab fit` to check it on a CSV")
    d = None if c.D is None or "/(6 N)" in str(c.D) else c.D
    f = None if c.C is None or str(c.C).upper() == "6ND" else c.C
    return {"n_col": c.N, "d_col": d, "c_col": f, "loss_col": c.loss, "run_col": c.run, "by": list(fit.info.by)}


def _csv_points(fit: FitResults, paths) -> tuple[pd.DataFrame, dict]:
    """CSV rows the fit did not use (by run id when it had a run column, else rows whose N, D and loss are
    not one of its points), in the fit's own columns and conventions, and the fit's groups by name."""
    from scalelab.fit.io import read_csv

    cols = _fit_columns(fit)
    numeric = [c for c in (cols["n_col"], cols["d_col"], cols["loss_col"], cols["c_col"]) if c]
    other = [c for c in (*cols["by"], cols["run_col"]) if c]
    hint = f"fit {fit.path} was fitted on columns {', '.join(map(repr, numeric + other))}: give a CSV with those"
    df = read_csv(paths, numeric, other, hint=hint).reset_index(drop=True)
    N = df[cols["n_col"]].to_numpy(float)
    D = df[cols["d_col"]].to_numpy(float) if cols["d_col"] else df[cols["c_col"]].to_numpy(float) / (6 * N)
    C = df[cols["c_col"]].to_numpy(float) if cols["c_col"] else 6 * N * D
    L = df[cols["loss_col"]].to_numpy(float)
    by = list(cols["by"])
    if by:
        names = df[by].astype(str).agg("/".join, axis=1) if len(by) > 1 else df[by[0]].astype(str)
    else:
        names = pd.Series(["all"] * len(df))
    run_id, new = _unseen(fit, df, cols["run_col"], np.stack([N, D, L], 1))
    if not new.any():
        raise ScalelabError(
            f"every point given ({len(df)}) was used by fit {fit.path}: give points it did not see "
            "(e.g. fit on part of a table, check the rest)"
        )
    by_name = {g.name: g for g in fit if g.form in ("chinchilla", "frontier")}
    unknown = sorted(set(names[new]) - set(by_name))
    if unknown:
        have = ", ".join(sorted(by_name)) or "no group with a loss law"
        col = f" (column {'/'.join(by)})" if by else ""
        raise ScalelabError(
            f"points of group(s) {', '.join(unknown)}{col} are not in fit {fit.path} (it has {have}): "
            "check points of the fitted groups"
        )
    pts = pd.DataFrame(
        {"variant": names.to_numpy(), "run_id": run_id, "d_model": None, "N": N, "D": D, "C": C, "observed": L}
    )
    return pts[new].reset_index(drop=True), by_name


def _unseen(fit: FitResults, df: pd.DataFrame, run_col: str | None, NDL: np.ndarray) -> tuple[np.ndarray, ...]:
    """(run id, not used by the fit) per CSV row: by run id when the fit had a run column, else by its (N, D,
    loss) being none of the fit's points (a row is then named by its file and line)."""
    used = _used(fit)
    if run_col:
        run_id = df[run_col].astype(str).to_numpy()
        return run_id, ~np.isin(run_id, list(set(used["run"].dropna().astype(str))))
    line = df.groupby("_file").cumcount().to_numpy() + 2  # the header is line 1
    run_id = np.array([f"{Path(f).name}:{n}" for f, n in zip(df["_file"], line)])
    seen = used[["N", "D", "loss"]].to_numpy(float).reshape(-1, 3)
    same = np.isclose(NDL[:, None, :], seen[None, :, :], rtol=1e-9, atol=0).all(-1).any(1)
    return run_id, ~same


def _same_data(fit: FitResults, new: pd.DataFrame) -> None:
    """Runs on another corpus or tokenizer than the fitted ones cannot check the fit: refuse."""
    fitted = {(r.get("corpus"), r.get("tokenizer")) for g in fit for r in g.runs if r.get("corpus")}
    if not fitted or "corpus" not in new.columns:
        return
    other = set(zip(new["corpus"], new["tokenizer"])) - fitted
    if other:
        c, t = sorted(other)[0]
        raise ScalelabError(
            f"runs trained on corpus {c!r} / tokenizer {t!r}, but the fit's runs used "
            f"{', '.join(sorted(f'{a!r}' for a, _ in fitted))}: a law predicts only its own data; "
            "check runs of the same corpus"
        )


def _observed_optimum(s: pd.DataFrame) -> dict:
    """The optimum N an IsoFLOP set observed: the minimum of a parabola in log N through it when that lies within
    the sizes trained, or the best run when the parabola opens downward and that run is not an edge size. Else the
    set does not bracket its optimum (the loss still falls toward its smallest or largest size, `edge_N`): no
    N_obs (NaN), `side` says where the optimum lies, and `next_N` / `next_D` is the run one size step beyond that
    edge at the set's budget (D by the set's own FLOPs convention C = k N D) that would bracket it."""
    N = s["N"].to_numpy(float)
    a, b, _ = np.polyfit(np.log(N), np.log(s["observed"].to_numpy(float)), 2)
    sizes = np.unique(N)
    best_n = float(s.loc[s["observed"].idxmin(), "N"])
    if a > 0:
        n_obs, how = float(np.exp(-b / (2 * a))), "parabola in log N"
        side = "below" if n_obs < sizes[0] else "above" if n_obs > sizes[-1] else ""
    else:
        n_obs, how = best_n, "best run (the parabola opens downward)"
        side = "below" if best_n == sizes[0] else "above" if best_n == sizes[-1] else ""
    row = {"N_obs": n_obs, "how": how, "bracketed": not side, "side": side}
    row |= {"edge_N": math.nan, "next_N": math.nan, "next_D": math.nan}
    if side:
        edge = float(sizes[0] if side == "below" else sizes[-1])
        which = "smallest" if side == "below" else "largest"
        step = float(np.exp(np.mean(np.diff(np.log(sizes)))))  # the set's own spacing in log N
        k = float(np.median(s["C"].to_numpy(float) / (N * s["D"].to_numpy(float))))
        C = float(np.exp(np.mean(np.log(s["C"]))))
        nxt = edge / step if side == "below" else edge * step
        row |= {"N_obs": math.nan, "edge_N": edge, "next_N": nxt, "next_D": C / (k * nxt)}
        row["how"] = (
            f"not bracketed: the {which} size trained (N = {edge:.3g}) is the best"
            if best_n == edge
            else f"not bracketed: the parabola through the set falls toward its {which} size (N = {edge:.3g})"
        )
    return row


def bracket_advice(r) -> str:
    """For an IsoFLOP row that does not bracket its optimum: where the optimum lies and the run that brackets it."""
    return (
        f"observed optimum {r['how']}, so the optimum lies {r['side']} it: not compared with the plan; to bracket "
        f"it, train one size step {r['side']} (N ~ {r['next_N']:.3g}, D ~ {r['next_D']:.3g} tokens at this budget), "
        "and further until the loss turns up"
    )


def _isoflop(fit: FitResults, points: pd.DataFrame) -> pd.DataFrame:
    """Observed vs predicted compute-optimal N for each IsoFLOP set among the checked points."""
    from scalelab.plan import Planner

    out: list[dict] = []
    if points.empty:
        return pd.DataFrame(out)
    planner = None
    from scalelab.fit.approaches import isoflop_slices

    for v, sub in points.groupby("variant"):
        for idx in isoflop_slices(sub["C"].to_numpy(float), tol=ISO_TOL):
            s = sub.iloc[idx]
            if s["N"].nunique() < 3:
                continue
            C = float(np.exp(np.mean(np.log(s["C"]))))
            obs = _observed_optimum(s)
            planner = planner or Planner(fit)
            g = next(g for g in planner.groups if g.variant == v)
            vp = planner.allocate(g, C, 0.0, shape=False, check_low=False)
            n_obs = obs["N_obs"]
            best = s.loc[s["observed"].idxmin()]
            out.append(
                {
                    "variant": v,
                    "C": C,
                    "sizes": int(s["N"].nunique()),
                    **obs,
                    "N_pred": vp.N_opt,
                    "N_pred_lo": vp.N_int[0],
                    "N_pred_hi": vp.N_int[1],
                    # no ratio and no verdict for an unbracketed set: its edge size is a bound, not an optimum
                    "ratio": n_obs / vp.N_opt if obs["bracketed"] else math.nan,
                    "covered": bool(vp.N_int[0] <= n_obs <= vp.N_int[1]) if obs["bracketed"] else None,
                    "best_run": best["run_id"],
                    "best_loss": float(best["observed"]),
                }
            )
    return pd.DataFrame(out)
