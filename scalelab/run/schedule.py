"""A run's step counts and learning-rate schedule: the torch-free arithmetic lives in scalelab/schedule.py
(below fit and run, so a fit can rebuild a run's lr per step); this module keeps run's import path."""

from __future__ import annotations

from scalelab.schedule import StepPlan, branch_starts, estimate_tokens, lr_at, make_plan, wsd_branches

__all__ = ["StepPlan", "branch_starts", "estimate_tokens", "lr_at", "make_plan", "wsd_branches"]
