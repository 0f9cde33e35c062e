"""What the figures add to a fitted law: bootstrap bands, the FLOPs column and convention of the x axis.

The laws themselves are scalelab.fit.laws (predict, compute_optimal); the compute-optimal allocation the
figures draw is the planner's (scalelab.plan.sweep). Nothing here evaluates a law.
"""

from __future__ import annotations

import numpy as np

from scalelab.fit.bootstrap import percentile_interval


def band(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over the bootstrap axis (axis 0): scalelab.fit.bootstrap's one routine."""
    return percentile_interval(draws, level, axis=0)


def flops_column(fit) -> str:
    """Run-store column holding C in the fit's FLOP convention (fit: a FitResults or None)."""
    return "flops" if fit is None else fit.flops_column


def flops_per_param_token(fit, group: str) -> float:
    """k in C = k N D, to place IsoFLOP slices and frontier laws in (N, D): the k of the group's fitted
    points (GroupFit.k_flops); 6 when the fit records none."""
    k = fit.groups[group].k_flops
    return 6.0 if k is None or not np.isfinite(k) else float(k)


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
    from scalelab.plot.palette import literal

    return LOSS_LABELS.get(column, f"loss ({literal(column)})")
