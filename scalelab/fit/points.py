"""The points a fit used, as a table the fit writes beside its samples (NAME.points.parquet).

Figures, `check`, `plan suggest` and `plan emit-grid` read these rather than going back to the raw run files,
so a copy of `fits/` is enough to draw and plan from. One row per input point after --drop-top-loss, in the
law's units: group, run, N, D, C, loss, `fitted` (False: a sweep point the envelope left out), the swept
hyperparameters' values (lr, batch_size, ...) for sweeps, and the run-store `step` where the input had it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalelab.fit import hyper

POINT_COLUMNS = ("group", "run", "N", "D", "C", "loss", "fitted")


def point_table(df: pd.DataFrame, spec, kept=None, swept: dict | None = None) -> pd.DataFrame:
    """The points of `df` (the fit's input after --drop-top-loss) as the fit reads them; `kept` (an index of
    df) marks the rows the fit used when an envelope over a sweep dropped the others. N, D, C as
    fit.groups.split_groups takes them (D = C/(6N) without a tokens column, C = 6ND without a FLOPs one)."""
    num = lambda c: pd.to_numeric(df[c], errors="coerce").astype(float).to_numpy()  # noqa: E731
    N, L = num(spec.n_col), num(spec.loss_col)
    C = num(spec.c_col) if spec.c_col else None
    D = num(spec.d_col) if spec.d_col else C / (6.0 * N)
    C = 6.0 * N * D if C is None else C
    run = df[spec.run_col].astype(str).to_numpy() if spec.run_col else np.array([f"row{i}" for i in range(len(df))])
    out = pd.DataFrame(
        {
            "group": hyper.group_names(df, spec.by).astype(str).to_numpy(),
            "run": run,
            "N": N,
            "D": D,
            "C": C,
            "loss": L,
            "fitted": np.ones(len(df), bool) if kept is None else df.index.isin(kept),
        }
    )
    for name in swept or {}:
        v = hyper.lr_values(df) if name == "lr" else df.get(hyper.HYPER_COLUMNS[name])
        if v is not None:
            out[name] = pd.to_numeric(pd.Series(v), errors="coerce").astype(float).to_numpy()
    if "step" in df.columns:
        out["step"] = pd.to_numeric(df["step"], errors="coerce").to_numpy()
    return out


def attach_points(fits: dict, table: pd.DataFrame) -> None:
    """Give each GroupFit of `fits` ({name: GroupFit}) its rows of `table`, without the group column."""
    for name, g in fits.items():
        sub = table[table["group"] == name]
        g.points = sub.drop(columns="group").reset_index(drop=True)
