"""One group's fit points: the data frame checked and split by the grouping columns, in the law's units."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.fit import laws


def drop_top_losses(df: pd.DataFrame, loss_col: str, k: int) -> pd.DataFrame:
    """The rows below the k-th largest loss (--drop-top-loss k; Epoch's replication drops the 5 highest, and ties
    with the k-th go too). k = 0 keeps every row; k that would drop every row is refused."""
    if k <= 0:
        return df
    if k >= len(df):
        raise ScalelabError(f"--drop-top-loss {k} would drop every point")
    loss = df[loss_col].astype(float)
    return df[loss < np.sort(loss.to_numpy())[-k]]


def distinct(x: np.ndarray, rtol: float = 1e-6) -> int:
    """Number of distinct values up to a relative tolerance."""
    s = np.sort(np.asarray(x, float))
    if s.size == 0:
        return 0
    return int(1 + np.sum(np.diff(s) > rtol * np.abs(s[1:])))


@dataclass
class GroupData:
    """One group's points, in the units of the law (N params, D tokens, C FLOPs, L loss)."""

    name: str
    key: dict
    N: np.ndarray
    D: np.ndarray
    C: np.ndarray
    L: np.ndarray
    unit: np.ndarray  # resampling unit per point (run id, or row number)
    runs: list = field(default_factory=list)
    U: np.ndarray | None = None  # unique tokens per point (fit/repetition.py); None: not known

    def cols(self) -> dict:
        return {"N": np.log(self.N), "D": np.log(self.D), "C": np.log(self.C)}

    def described(self, **more: np.ndarray) -> dict:
        """The GroupFit fields that describe these points, the same for every form: name, key, counts, the
        ranges of N, D, C (and of each array in `more`), the runs, and k in C = k N D."""
        arrays = {"N": self.N, "D": self.D, "C": self.C, **more}
        return dict(
            name=self.name,
            key=self.key,
            n_points=int(self.L.size),
            n_runs=int(np.unique(self.unit).size),
            n_sizes=distinct(self.N),
            range={k: [float(v.min()), float(v.max())] for k, v in arrays.items()},
            runs=self.runs,
            k_flops=laws.flops_per_param_token(self.N, self.D, self.C),
        )

    def subset(self, mask) -> "GroupData":
        U = None if self.U is None else self.U[mask]
        return GroupData(
            self.name, self.key, self.N[mask], self.D[mask], self.C[mask], self.L[mask], self.unit[mask], self.runs, U
        )


def point_weights(g: GroupData, weights: str | None) -> np.ndarray:
    """Per-point weights: none (1) or `compute` (sqrt(C), normalised to mean 1)."""
    if weights in (None, "none"):
        return np.ones(g.L.size)
    if weights == "compute":
        w = np.sqrt(g.C)
        return w / w.mean()
    raise ValueError(f"unknown weights {weights!r}")


def split_groups(df: pd.DataFrame, spec, source: str = "data frame") -> list[GroupData]:
    """The frame's points per group of `spec.by` (one group "all" without), checked: columns present,
    every N, D, C and loss a positive number, at least 3 points and something varying per group.
    D = C/(6N) without a tokens column, C = 6ND without a FLOPs column."""
    by = list(spec.by)
    need = [spec.n_col, spec.loss_col] + [c for c in (spec.d_col, spec.c_col, spec.run_col) if c] + by
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ScalelabError(
            f"{source}: missing column(s) {', '.join(map(repr, missing))}; "
            f"columns present: {', '.join(map(str, df.columns))}"
        )
    df = df.reset_index(drop=True)
    arr = {}
    for name, col in (("N", spec.n_col), ("L", spec.loss_col), ("D", spec.d_col), ("C", spec.c_col)):
        if col is None:
            continue
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(v) | (v <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ScalelabError(
                f"{source}: column {col!r} has {int(bad.sum())} missing, non-numeric or "
                f"non-positive value(s) (first at row {i}: {_py(df[col].iloc[i])!r}); "
                "every N, D, FLOPs and loss must be a positive number"
            )
        arr[name] = v
    if "D" not in arr:
        arr["D"] = arr["C"] / (6.0 * arr["N"])
    if "C" not in arr:
        arr["C"] = 6.0 * arr["N"] * arr["D"]
    from scalelab.fit.io import unique_tokens

    uniq = unique_tokens(df, spec, arr["D"], source)  # repeated data (fit/repetition.py); None: not known
    run_col = spec.run_col
    units = df[run_col].astype(str).to_numpy() if run_col else np.array([f"row{i}" for i in range(len(df))])
    if by:
        keys = df[by].astype(str).agg("/".join, axis=1) if len(by) > 1 else df[by[0]].astype(str)
    else:
        keys = pd.Series(["all"] * len(df))
    groups: list[GroupData] = []
    for name in dict.fromkeys(keys):
        m = (keys == name).to_numpy()
        sub = df[m]
        key = {c: _py(sub[c].iloc[0]) for c in by}
        g = GroupData(name, key, arr["N"][m], arr["D"][m], arr["C"][m], arr["L"][m], units[m])
        g.U = None if uniq is None else uniq[m]
        if g.L.size < 3:
            where = f"group {name!r} (column(s) {', '.join(map(repr, by))})" if by else "the data"
            raise ScalelabError(
                f"{source}: {where} has {g.L.size} point(s); a fit needs at least 3: add runs"
                + (" to the group or leave it out" if by else "")
            )
        if distinct(g.N) == 1 and distinct(g.D) == 1:
            raise ScalelabError(
                f"{source}: group {name!r}: every point has the same N (column {spec.n_col!r}) and D; nothing to fit"
            )
        g.runs = group_runs(sub, g, run_col)
        groups.append(g)
    return groups


def _py(v):
    return v.item() if hasattr(v, "item") else v


def group_runs(sub: pd.DataFrame, g: GroupData, run_col) -> list:
    """The group's runs for the fit file (one entry per run: its last point), for the planner."""
    order = np.argsort(g.D)
    last = {}
    for i in order:  # later (more tokens) rows overwrite earlier ones
        last[g.unit[i]] = i
    idx = list(last.values())

    def col(name: str) -> list:  # the column at the runs' rows, read once (row by row costs more than the fit)
        return sub[name].to_numpy()[idx].tolist() if name in sub.columns else [None] * len(idx)

    extra = zip(col("params_nonembed"), col("tokens_per_s"), col("mfu"), col("device"), col("config"))
    rows = []
    for u, i, (pne, tps, mfu, device, cfg) in zip(last, idx, extra):
        rec = {
            "run_id": str(u) if run_col else None,
            "params": float(g.N[i]),
            "params_nonembed": _num(pne),
            "tokens": float(g.D[i]),
            "flops": float(g.C[i]),
            "loss": float(g.L[i]),
            "tokens_per_s": _num(tps),
            "mfu": _num(mfu),
            "device": device if isinstance(device, str) else None,
            "model": None,
        }
        if isinstance(cfg, str) and cfg:
            try:
                m = json.loads(cfg).get("model")
                rec["model"] = m if isinstance(m, dict) else None
            except (ValueError, AttributeError):
                rec["model"] = None
        rows.append(rec)
    return rows


def _num(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None
