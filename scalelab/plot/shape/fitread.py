"""The fit's records the figures read besides its laws, where a reading needs more than an attribute:
the loss column and approach (from the FitSpec, else the fit's info), the FLOPs column for the axis label,
and a group's recorded optima as a frame."""

from __future__ import annotations

from typing import Optional

import numpy as np


def measured_flops_column(fit) -> Optional[str]:
    """The table column of measured FLOPs the fit read C from, when it is not a run-store column (None:
    C is the run store's flops or flops_6nd, or 6 N D)."""
    col = fit.info.columns.C
    if fit.convention != "flops" or not col or str(col) in ("flops", "flops_6nd") or str(col).upper() == "6ND":
        return None
    return str(col)


def loss_column(fit) -> Optional[str]:
    """The loss column the fit read (None when it recorded none)."""
    spec = fit.spec
    return spec.loss_col if spec is not None else fit.info.columns.loss


def approach(fit):
    """Chinchilla's approach number the fit used (1, 2 or 3)."""
    spec = fit.spec
    return spec.approach if spec is not None else fit.info.approach


def optima(grp):
    """The (C, N_opt, D_opt) an approach-1/2 fit recorded for a group (diagnostics.optima) as a frame of
    finite positive rows, else None."""
    import pandas as pd

    o = (grp.diagnostics or {}).get("optima")
    if not isinstance(o, dict):
        return None
    try:
        df = pd.DataFrame({k: np.asarray(o[k], float) for k in ("C", "N_opt", "D_opt")})
    except (KeyError, TypeError, ValueError):
        return None
    df = df[np.isfinite(df).all(axis=1) & (df > 0).all(axis=1)]
    return df if len(df) else None
