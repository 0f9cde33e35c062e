"""Compute-optimal plans from a fit: `plan_budget`, `sweep` (planner.py); shape families, the numerical
optimum and the result objects live beside it. Never imports torch."""

from scalelab.plan.planner import (  # noqa: F401
    EXTRAPOLATION_FACTOR,
    Candidate,
    Planner,
    PlanResult,
    Shape,
    ShapeFamily,
    ShapeRule,
    VariantPlan,
    _jsonable,
    ffn_fraction,
    newest_fit,
    pairing,
    plan_budget,
    sweep,
)
