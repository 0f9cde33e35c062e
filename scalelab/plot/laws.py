"""What the figures add to a fitted law: bootstrap bands, the FLOPs column and convention of the x axis.

The laws themselves are scalelab.fit.laws (predict, compute_optimal); the compute-optimal allocation the
figures draw is the planner's (scalelab.plan.sweep). Nothing here evaluates a law.
"""

from __future__ import annotations

import numpy as np


def band(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over the bootstrap axis (axis 0)."""
    q = (1 - level) / 2
    return np.nanquantile(draws, q, axis=0), np.nanquantile(draws, 1 - q, axis=0)


def flops_column(fit) -> str:
    """Run-store column holding C in the fit's FLOP convention (fit: a FitResults or None)."""
    return "flops" if fit is None else fit.flops_column


def flops_per_param_token(fit, group: str) -> float:
    """k in C = k N D, to place IsoFLOP slices and frontier laws in (N, D): 6 where C is 6 N D of the
    fit's N; else the median over the fitted runs (6 when they record no FLOPs)."""
    g = fit.groups[group]
    if fit.convention == "6ND" or (fit.convention == "flops_6nd" and g.n_column != "params"):
        return 6.0
    k = [
        float(r["flops"]) / (float(r[g.n_column]) * float(r["tokens"]))
        for r in g.runs
        if r.get("flops") and r.get(g.n_column) and r.get("tokens")
    ]
    k = [x for x in k if np.isfinite(x)]
    return float(np.median(k)) if k else 6.0


def convention_label(convention: str) -> str:
    c = convention.lower()
    if c in ("flops_6nd", "6nd"):
        return "training compute C = 6ND (FLOPs)"
    return "training compute C (FLOPs, 3 x forward)"


LOSS_LABELS = {
    "val_loss": "validation loss (nats/token)",
    "train_loss": "training loss (nats/token)",
    "loss": "loss",
}


def loss_label(column: str) -> str:
    """The loss axis label for the loss column a fit read: the run store's val_loss and train_loss by name,
    any other column as itself (its unit is whatever the table holds), printed as written."""
    from scalelab.plot.style import literal

    return LOSS_LABELS.get(column, f"loss ({literal(column)})")
