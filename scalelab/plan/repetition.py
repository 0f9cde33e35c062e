"""The data-constrained plan: the compute-optimal (N, D) of a repetition-law fit (fit/repetition.py, Muennighoff
et al. 2023) when the corpus has only U unique tokens.

    minimise  L(N', D')  subject to  C = k N D,   D' = U + U R_D* (1 - exp(-(D/U - 1) / R_D*)), N' likewise

D may exceed U: the plan then repeats the corpus D / U times (its epochs), and the law says what each repeated
token is still worth. k is the fit's own C / (N D) (GroupFit.k_flops; 6 for 6ND fits). Every bootstrap sample is
pushed through its own optimum (repetition.optimum, vectorised), so intervals are percentiles of the optimum.
The unconstrained optimum it is compared with is the base law's (Chinchilla's closed form): the same law with
unlimited unique data.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from scalelab.errors import ScalelabError
from scalelab.fit import laws
from scalelab.fit import repetition as R
from scalelab.fit.bootstrap import percentile_interval
from scalelab.fit.results import GroupFit

_NAN2 = (float("nan"), float("nan"))
_WIDER = 8.0  # decades searched each way when the optimum is at the usual search's edge


def check_unique(U, option: str = "--unique-tokens") -> float:
    """The corpus's unique tokens as a positive finite float, else a one-line ScalelabError. A U larger than the
    plan's D is fine: the plan then sees part of the corpus once (the unconstrained optimum)."""
    try:
        x = float(U)
    except (TypeError, ValueError):
        raise ScalelabError(f"{option} {U!r} is not a number: give the corpus's unique tokens, e.g. 1e10") from None
    if not (x > 0 and math.isfinite(x)):
        raise ScalelabError(f"{option} {U} must be a positive finite number of unique tokens, e.g. 1e10")
    return x


@dataclass
class ConstrainedPlan:
    """The data-constrained optimum at C with U unique tokens, and the unconstrained one beside it (`free_*`):
    estimates with their bootstrap intervals (NaN where the fit has no samples)."""

    group: str
    variant: str
    C: float
    U: float
    k: float
    N_opt: float
    N_int: tuple[float, float]
    D_opt: float
    D_int: tuple[float, float]
    tpp_int: tuple[float, float]  # D_opt / N_opt per draw
    epochs: float  # D_opt / U: how often the plan repeats the corpus (< 1: it sees part of it once)
    epochs_int: tuple[float, float]
    L_opt: float
    L_int: tuple[float, float]
    free_N: float
    free_N_int: tuple[float, float]
    free_D: float
    free_D_int: tuple[float, float]
    free_L: float
    free_L_int: tuple[float, float]
    loss_cost: float  # L_opt - free_L: what the data limit costs at this budget (>= 0)
    loss_cost_int: tuple[float, float]  # per sample, both optima of the same draw
    max_fitted_epochs: float  # the most the fit's runs repeated their data
    level: float = 0.95
    notes: list[str] = field(default_factory=list)
    L_samples: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)  # each draw's optimal loss

    def to_dict(self) -> dict:
        from scalelab.plan.results import _jsonable

        return _jsonable({k: v for k, v in asdict(self).items() if k != "L_samples"})

    def lines(self) -> list[str]:
        """The plan in words: epochs, the loss and what the limit costs against the unconstrained optimum."""

        def iv(x: tuple[float, float], fmt: str = ".3g") -> str:
            return f" [{x[0]:{fmt}}, {x[1]:{fmt}}]" if all(math.isfinite(v) for v in x) else ""

        head = (
            f"data-constrained (U = {self.U:.3g} unique tokens, repetition law): N {self.N_opt:.3g}{iv(self.N_int)}, "
            f"D {self.D_opt:.3g}{iv(self.D_int)} = {self.epochs:.3g}{iv(self.epochs_int)} epochs, loss "
            f"{self.L_opt:.4g}{iv(self.L_int, '.4g')}"
        )
        if self.epochs <= 1:
            return [head + "; the corpus is not exhausted: this is the unconstrained optimum", *self.notes]
        free = (
            f"unconstrained (unlimited unique data): N {self.free_N:.3g}{iv(self.free_N_int)}, D {self.free_D:.3g}"
            f"{iv(self.free_D_int)}, loss {self.free_L:.4g}{iv(self.free_L_int, '.4g')}; the limit costs "
            f"{self.loss_cost:.3g}{iv(self.loss_cost_int)} nats and moves N x{self.N_opt / self.free_N:.3g}, "
            f"D x{self.D_opt / self.free_D:.3g}"
        )
        return [head, free, *self.notes]


def flops_per_param_token(g: GroupFit, convention: str) -> float:
    """k in C = k N D for the law's optimum: the fitted points' own (6 for 6ND fits or when not recorded)."""
    k = g.k_flops
    return 6.0 if convention == "6ND" or k is None or not math.isfinite(k) else float(k)


def constrained(g: GroupFit, C: float, U: float, k: float = 6.0, level: float = 0.95) -> ConstrainedPlan:
    """The data-constrained plan of a repetition-law group at C FLOPs with U unique tokens (module docstring)."""
    if g.form != "repetition":
        raise ScalelabError(
            f"{g.variant}: a data-constrained optimum needs the repetition law, not {g.form}: "
            "fit --form repetition (runs that repeat their data, --unique-col)"
        )
    U = check_unique(U)
    if not (C > 0 and math.isfinite(C)):
        raise ScalelabError(f"--flops {C} must be a positive number of FLOPs, e.g. 1e21")
    point = {key: float(g.params[key]) for key in R.PARAMS}
    draws = g.sample_arrays(R.PARAMS)
    notes: list[str] = []
    o, s, edge = _optima(point, draws, C, U, k)
    free = laws.compute_optimal(point, C, k=k)
    free_s = laws.compute_optimal(draws, C, k=k, outer=False)
    with np.errstate(all="ignore"):
        cost_s = s["L_opt"] - free_s["L_opt"]

    def ci(x) -> tuple[float, float]:
        x = np.asarray(x, float)
        if not np.isfinite(x).any():
            return _NAN2
        lo, hi = percentile_interval(x, level)
        return (float(lo), float(hi))

    if edge:  # refused, not printed: the least loss found is only the search's end
        raise ScalelabError(
            f"{g.variant}: with U = {U:.3g} unique tokens at C = {C:.3g} the repetition law's optimum lies beyond "
            f"{_WIDER:g} decades of N from the unconstrained one: no allocation to plan; raise --unique-tokens or "
            "lower --flops"
        )
    law = g.repetition_law
    top = float(law.max_epochs) if law is not None else float("nan")
    ep = float(o["epochs"][0])
    if math.isfinite(top) and ep > top * 1.05:
        notes.append(
            f"the plan repeats the data {ep:.3g} times, beyond the fitted runs' {top:.3g} epochs: the decay "
            "constants R_D*, R_N* are extrapolated"
        )
    return ConstrainedPlan(
        group=g.name,
        variant=g.variant,
        C=float(C),
        U=U,
        k=float(k),
        N_opt=float(o["N_opt"][0]),
        N_int=ci(s["N_opt"]),
        D_opt=float(o["D_opt"][0]),
        D_int=ci(s["D_opt"]),
        tpp_int=ci(np.asarray(s["D_opt"], float) / np.asarray(s["N_opt"], float)),
        epochs=ep,
        epochs_int=ci(s["epochs"]),
        L_opt=float(o["L_opt"][0]),
        L_int=ci(s["L_opt"]),
        free_N=float(free["N_opt"]),
        free_N_int=ci(free_s["N_opt"]),
        free_D=float(free["D_opt"]),
        free_D_int=ci(free_s["D_opt"]),
        free_L=float(free["L_opt"]),
        free_L_int=ci(free_s["L_opt"]),
        loss_cost=float(o["L_opt"][0] - free["L_opt"]),
        loss_cost_int=ci(cost_s),
        max_fitted_epochs=top,
        level=level,
        notes=notes,
        L_samples=np.asarray(s["L_opt"], float),
    )


def _optima(point: dict, draws: dict, C: float, U: float, k: float):
    """(the point's optimum, the samples' (NaN where a draw's is at the search's edge even when widened), whether
    the point's is)."""
    o = R.optimum(point, C, U, k=k)
    if o["at_edge"][0]:
        o = R.optimum(point, C, U, k=k, decades=_WIDER)
    n = len(next(iter(draws.values()))) if draws else 0
    if n:
        s = R.optimum(draws, C, U, k=k)
        if s["at_edge"].any():  # only those samples again, searched wider
            i = np.flatnonzero(s["at_edge"])
            w = R.optimum({key: v[i] for key, v in draws.items()}, C, U, k=k, decades=_WIDER)
            for key in s:
                s[key] = np.asarray(s[key], float if key != "at_edge" else bool).copy()
                s[key][i] = w[key]
            for key in ("N_opt", "D_opt", "epochs", "L_opt"):  # still at the edge: no optimum found for that draw
                s[key][s["at_edge"]] = np.nan
    else:
        s = {key: np.empty(0) for key in ("N_opt", "D_opt", "epochs", "L_opt")}
    return o, s, bool(o["at_edge"][0])
