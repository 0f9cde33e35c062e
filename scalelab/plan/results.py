"""Results of a plan: Shape, VariantPlan, PlanResult (to_dict / to_frame / summary)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from scalelab.config import ModelConfig


@dataclass
class Shape:
    """A concrete model for the budget: exact params and FLOPs, and how far from the ideal."""

    config: ModelConfig
    params: float  # N as the fit counts it
    params_total: float
    flops_per_token: float
    tokens: float  # D that spends the budget exactly with this shape
    flops_at_D_opt: float  # this shape trained on the ideal D_opt
    n_rel: float  # params / N_opt - 1
    d_rel: float  # tokens / D_opt - 1
    flops_at_D_opt_rel: float  # FLOPs at D_opt (plus inference) / C - 1
    loss: float  # point prediction at (params, tokens)
    loss_int: tuple[float, float]
    ffn_fraction: Optional[float]  # structured / dense params of the replaced FFN layers

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["config"] = self.config.to_dict()
        d["variant"] = self.config.variant
        return d


@dataclass
class VariantPlan:
    variant: str
    group: str
    form: str
    C: float
    N_opt: float
    N_int: tuple[float, float]
    D_opt: float
    D_int: tuple[float, float]
    tokens_per_param: float
    tpp_int: tuple[float, float]
    L_opt: float
    L_int: tuple[float, float]  # interval of the mean law
    L_pred_int: tuple[float, float]  # prediction interval for one new run (adds residual noise)
    identified: bool = True  # False for frontier fits: N, D come from the runs' tokens per param
    # False where the loss at this budget rests on an E the fit does not identify (planner._finish says why)
    loss_identified: bool = True
    shape: Optional[Shape] = None
    gpu_hours: Optional[float] = None
    throughput: Optional[float] = None  # FLOP/s used for the wall-clock plan
    throughput_source: str = ""
    inference: Optional[dict] = None
    target: Optional[dict] = None
    extrapolated: bool = False  # C more than EXTRAPOLATION_FACTOR past the largest fitted run
    # what lies outside the fitted runs: {"C" | "N" | "D": {"value", "fitted": [lo, hi], "factor"}}
    # (planner.extrapolation; its warnings are the plan's)
    extrapolation: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # peak learning rate from the fit's lr law at the planned N (fit/hyper.py): {"lr", "lo", "hi", "N",
    # "extrapolated"}; None when the fit has no lr law (no [sweep] in its runs)
    lr: Optional[dict] = None
    # batch size (tokens per step) from the fit's batch law at the planned D: {"batch", "lo", "hi", "D",
    # "extrapolated"}; None when the fit has none (batch size not swept)
    batch: Optional[dict] = None
    L_samples: Optional[np.ndarray] = field(default=None, repr=False)
    sample_ids: Optional[np.ndarray] = field(default=None, repr=False)

    def row(self) -> dict:
        """One table row (the columns of PlanResult.to_frame and planner.sweep): estimates and intervals."""
        return dict(
            variant=self.variant,
            C=self.C,
            N_opt=self.N_opt,
            N_lo=self.N_int[0],
            N_hi=self.N_int[1],
            D_opt=self.D_opt,
            D_lo=self.D_int[0],
            D_hi=self.D_int[1],
            L_opt=self.L_opt,
            L_lo=self.L_int[0],
            L_hi=self.L_int[1],
            extrapolated=bool(self.extrapolated),
            identified=bool(self.identified),
        )

    def to_dict(self) -> dict:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("L_samples", "sample_ids", "shape")}
        d["shape"] = self.shape.to_dict() if self.shape else None
        return _jsonable(d)


@dataclass
class PlanResult:
    """plan_budget's answer: one VariantPlan per variant, ranked, with the decision's confidence."""

    C: Optional[float]
    plans: list[VariantPlan]  # best predicted loss first
    p_beats: Optional[float]  # P(winner's loss < runner-up's) over bootstrap samples
    paired: bool
    level: float
    convention: str
    fit_path: Optional[str]
    fitted_range: dict[str, dict]
    warnings: list[str]
    gpu: Optional[str] = None
    gpu_hours: Optional[float] = None
    pairing: str = ""  # how p_beats pairs samples, in words (planner.pairing)
    inference_tokens: float = 0.0
    target_loss: Optional[float] = None

    @property
    def winner(self) -> Optional[VariantPlan]:
        return self.plans[0] if self.plans else None

    def __getitem__(self, variant: str) -> VariantPlan:
        for p in self.plans:
            if p.variant == variant or p.group == variant:
                return p
        raise KeyError(variant)

    def to_dict(self) -> dict:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k != "plans"}
        d["plans"] = [p.to_dict() for p in self.plans]
        return _jsonable(d)

    def to_frame(self):
        import pandas as pd

        rows = []
        for p in self.plans:
            lr = p.lr or {}
            rows.append(
                dict(
                    p.row(),
                    lr=lr.get("lr", float("nan")),
                    lr_lo=lr.get("lo", float("nan")),
                    lr_hi=lr.get("hi", float("nan")),
                )
            )
        return pd.DataFrame(rows)

    def summary(self):
        """The plan as a Summary (scalelab/fit/summary): .text(), .markdown(), .html(); what `scalelab plan` prints."""
        from scalelab.plan.summary import plan_summary

        return plan_summary(self)


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_jsonable(v) for v in x.tolist()]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x
