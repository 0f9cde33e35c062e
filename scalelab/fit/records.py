"""The typed records of a fit: what `FitResults` and `GroupFit` (results.py) carry besides the law itself.

Every record is a dataclass that knows its fit-file form (`to_dict` / `from_dict`, the keys documented in
docs/interfaces.md "Fit file"). Consumers read attributes (`g.compute_optimal.identified`,
`comp.multiplier[0].est`), never the file's keys; the file's keys are known here and in results.py only.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

_NAN = float("nan")
FORMAT = "scalelab-fit/2"  # the fit file's format and version (fit/upgrade.py reads the earlier ones)
CONVENTIONS = ("flops", "flops_6nd", "6ND")  # what C means: measured FLOPs, the run store's 6ND column, or 6ND


def _fnum(v) -> float:
    """A JSON number or null -> float (null: NaN)."""
    return _NAN if v is None else float(v)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval at the fit's level (NaN ends: no interval)."""

    est: float
    lo: float = _NAN
    hi: float = _NAN

    @classmethod
    def from_list(cls, v) -> "Estimate":
        v = list(v) + [None] * (3 - len(v))
        return cls(_fnum(v[0]), _fnum(v[1]), _fnum(v[2]))

    def to_list(self) -> list:
        return [self.est, self.lo, self.hi]

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    def excludes(self, value: float) -> bool:
        """The interval lies wholly on one side of `value` (a detectable difference from it)."""
        return self.has_interval and (self.lo > value or self.hi < value)


# ---- generic dict <-> dataclass for the flat records --------------------------------------------------------
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _load(cls, d: dict):
    """Build record `cls` from its fit-file dict: known keys to fields (nested records by their type), the
    rest ignored; a missing key takes the field's default."""
    if isinstance(d, cls):
        return d
    d = d or {}
    hints = _hints(cls)
    kw = {}
    for f in dataclasses.fields(cls):
        key = f.metadata.get("key", f.name)
        if key not in d:
            continue
        kw[f.name] = _convert(hints[f.name], d[key])
    return cls(**kw)


def _convert(tp, v):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:  # Optional[X]
        if v is None:
            return None
        return _convert(next(a for a in args if a is not type(None)), v)
    if dataclasses.is_dataclass(tp):
        if tp is Estimate:
            return Estimate.from_list(v)
        return tp.from_dict(v) if hasattr(tp, "from_dict") else _load(tp, v)
    if origin is list and args and dataclasses.is_dataclass(args[0]):
        return [_convert(args[0], x) for x in v or []]
    if origin is dict and len(args) == 2 and args[1] is Estimate:
        return {k: Estimate.from_list(x) for k, x in (v or {}).items()}
    if (tp is tuple or origin is tuple) and v is not None:
        return tuple(v)
    if tp is float:
        return _fnum(v)
    return v


def _dump(obj, omit_none: bool = True) -> dict:
    """Record -> its fit-file dict (nested records, Estimates as [est, lo, hi]); None fields left out."""
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if v is None and omit_none and not f.metadata.get("keep_none"):
            continue
        out[f.metadata.get("key", f.name)] = _plain(v)
    return out


def _plain(v):
    if isinstance(v, Estimate):
        return v.to_list()
    if dataclasses.is_dataclass(v):
        return v.to_dict() if hasattr(v, "to_dict") else _dump(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


class _Record:
    @classmethod
    def from_dict(cls, d: dict):
        return _load(cls, d)

    def to_dict(self) -> dict:
        return _dump(self)


def _keep(**kw):
    """A field written even when None (the fit file records null there)."""
    return field(metadata={"keep_none": True}, **kw)


# ---- per group ---------------------------------------------------------------------------------------------
@dataclass
class Identification(_Record):
    """The law form chosen for the group's design and why (fit/identify.py), with the design's summary."""

    form: str
    why: str = ""
    n_points: int = 0
    n_sizes: int = 0
    n_tokens: int = 0
    n_budgets: int = 0
    tpp_min: float = _NAN
    tpp_max: float = _NAN
    separation: float = _NAN


@dataclass
class ComputeOptimal(_Record):
    """Whether the compute-optimal allocation at c_ref is a reading of the data: its tokens per parameter
    inside the plausible range the design can speak for. When not, `why` says so and `tokens_per_param` holds
    the unread number (N_opt and D_opt are then absent from `derived`)."""

    identified: bool
    plausible_tokens_per_param: tuple = ()
    why: Optional[str] = None
    tokens_per_param: Optional[float] = None


@dataclass
class Holdout(_Record):
    """--holdout largest: the law refitted without its largest size and scored on it."""

    rule: str
    value: float = _NAN
    n_points: int = 0
    params: Optional[dict] = None
    mean_rel_error: Optional[float] = _keep(default=None)
    max_rel_error: Optional[float] = _keep(default=None)
    mean_signed_rel_error: Optional[float] = None
    note: Optional[str] = None


@dataclass
class RolloutStep(_Record):
    """Fit on the k smallest levels, predict the next: one row of the rollout table."""

    k: int
    fit_up_to: float
    predict: float
    n_fit: int = 0
    n_predicted: int = 0
    mean_rel_error: Optional[float] = None
    max_rel_error: Optional[float] = None
    mean_signed_rel_error: Optional[float] = None
    note: Optional[str] = None


@dataclass
class Rollout(_Record):
    rule: str
    key: str = "N"
    n_levels: int = 0
    rows: list[RolloutStep] = field(default_factory=list)
    note: Optional[str] = None


@dataclass
class HyperLaw(_Record):
    """A hyperparameter law fitted on a sweep (fit/hyper.py): lr_opt = coef N^exp [D^exp_D], or
    batch_opt = coef D^exp. `optima` are the per-size (lr) or per-cell (batch) optima it was fitted on, as
    recorded: {N, D, lrs|batches, losses, lr_opt|batch_opt, method, at_edge}."""

    coef: float
    exp: float
    formula: str = ""
    exp_D: Optional[float] = _keep(default=None)
    unit: Optional[str] = None
    terms: list = field(default_factory=list)
    conf_int: dict = field(default_factory=dict)
    over: list = field(default_factory=list)
    n_sizes: int = 0
    n_cells: int = 0
    N_range: list = field(default_factory=list)
    D_range: list = field(default_factory=list)
    note: Optional[str] = _keep(default=None)
    n_resamples: Optional[int] = None
    n_resamples_used: Optional[int] = None
    per_size: Optional[list] = None
    per_cell: Optional[list] = None

    @property
    def optima(self) -> list:
        return self.per_size if self.per_size is not None else self.per_cell or []

    @property
    def has_D(self) -> bool:
        return self.exp_D is not None


@dataclass
class SeparateFit(_Record):
    """Under --share-exponents: the group's own fit, kept to say whether one set of exponents fits."""

    params: dict = field(default_factory=dict)
    conf_int: dict = field(default_factory=dict)
    objective: Optional[float] = None
    warnings: list = field(default_factory=list)


@dataclass
class ShareRow(_Record):
    """One kept FFN share level f of a share law (fit/share.py): its runs, the effective-size multipliers
    f^rho_N and f^rho_D with their intervals, the joint law's residuals there, and the exponents of the
    share's own separate fit (None with `note` when its runs cannot carry one)."""

    share: float
    n_runs: int = 0
    n_sizes: int = 0
    m_N: Optional[Estimate] = None
    m_D: Optional[Estimate] = None
    residual_sd: float = _NAN
    mean_residual: float = _NAN  # mean log(L / L_hat) there: a share the form in f misses sits off 0
    alpha: Optional[Estimate] = None
    beta: Optional[Estimate] = None
    note: Optional[str] = None


@dataclass
class ShareLaw(_Record):
    """The law across FFN shares of one structure kind: its shares (dense, f = 1, anchors it), per-share rows
    and whether the separate fits reject the shared exponents (None: not testable), in words."""

    kind: str
    shares: list = field(default_factory=list)
    rows: list[ShareRow] = field(default_factory=list)
    rejects_shared: Optional[bool] = _keep(default=None)
    verdict: str = ""

    @property
    def range(self) -> tuple[float, float]:
        return float(min(self.shares)), float(max(self.shares))

    def lines(self, params: dict, conf_int: dict) -> list[str]:
        """The law in words for the fit's summary: rho with intervals, the multipliers per share, the verdict."""

        def ci(v: float, c) -> str:
            return f"{v:.3g}" + (f" [{c[0]:.3g}, {c[1]:.3g}]" if c and c[0] is not None else "")

        rho = ", ".join(f"{k} = {ci(params[k], conf_int.get(k))}" for k in ("rho_N", "rho_D"))
        per = "; ".join(
            f"f = {r.share:.3g}: N x{ci(r.m_N.est, [r.m_N.lo, r.m_N.hi])}, D x{ci(r.m_D.est, [r.m_D.lo, r.m_D.hi])}"
            for r in self.rows
            if r.m_N is not None and r.m_D is not None and r.share < 1
        )
        fit = ", ".join(f"f = {r.share:.3g}: {100 * r.mean_residual:+.2f}%" for r in self.rows)
        return [
            f"{self.kind}: L = E + A/(N f^rho_N)^alpha + B/(D f^rho_D)^beta, {rho}; effective sizes {per}",
            f"{self.kind}: mean residual log(L / L_hat) per share ({fit}); {self.verdict}",
        ]


@dataclass
class RepetitionLaw(_Record):
    """The data-constrained law's split of the group (form "repetition", fit/repetition.py): the single-epoch
    points its base was fitted on, the repeated ones R_D*, R_N* were, and the mean signed relative error
    L_hat / L - 1 on the repeated points."""

    n_single_epoch: int = 0
    n_repeated: int = 0
    max_epochs: float = _NAN
    mean_rel_error_repeated: float = _NAN

    def lines(self, name: str, params: dict, conf_int: dict) -> list[str]:
        """The decay constants with intervals, for the fit's summary."""

        def ci(k: str) -> str:
            c = conf_int.get(k)
            return f"{params[k]:.3g}" + (f" [{c[0]:.3g}, {c[1]:.3g}]" if c and c[0] is not None else "")

        return [
            f"{name}: repeated data: R_D* = {ci('R_D_star')}, R_N* = {ci('R_N_star')} (base on {self.n_single_epoch} "
            f"single-epoch points, decay on {self.n_repeated} repeated, up to {self.max_epochs:.3g} epochs; mean "
            f"error on them {100 * self.mean_rel_error_repeated:+.2f}%)"
        ]


# ---- comparisons ------------------------------------------------------------------------------------------
@dataclass
class MultiplierRow(_Record):
    """Compute multiplier of B vs A at budget C: B reaches A's loss (at C) with `est` x A's compute."""

    C: float
    loss: float = _NAN
    est: float = _NAN
    lo: float = _NAN
    hi: float = _NAN
    frac_unreachable: float = 0.0
    extrapolated: bool = False
    interval_withheld: Optional[str] = None
    time_est: Optional[float] = None  # B's wall-clock time for A's loss over A's (fit/timing.py); None: no time verdict
    time_lo: Optional[float] = None
    time_hi: Optional[float] = None

    @property
    def estimate(self) -> Estimate:
        return Estimate(self.est, self.lo, self.hi)


@dataclass
class Crossover(_Record):
    """The first budget where B's frontier crosses A's, in the range searched."""

    C: Optional[Estimate] = _keep(default=None)
    range: list = field(default_factory=list)
    frac_samples: float = _NAN
    text: str = ""


@dataclass
class Comparison:
    """B vs A: bootstrap differences of exponents (b - a), coefficient ratios under shared exponents, the
    compute multipliers and crossover, and the verdict in words."""

    a: str
    b: str
    level: float = 0.95
    paired: bool = False
    verdict: str = ""
    differences: dict[str, Estimate] = field(default_factory=dict)  # "alpha", "beta", "a", "gamma"
    ratios: dict[str, Estimate] = field(default_factory=dict)  # coefficient B / A under shared exponents
    shared: Optional[list] = None  # parameters one joint estimate under shared exponents
    separate: Optional[dict[str, Estimate]] = None  # the separate fits' exponent differences
    k: Optional[dict] = None  # FLOPs per param-token of each side: {"a": k or None, "b": ...}
    multiplier: list[MultiplierRow] = field(default_factory=list)
    crossover: Optional[Crossover] = None
    multiplier_text: Optional[str] = None
    time_basis: Optional[str] = None  # what the time multipliers rest on (device, runs, FLOP/s), fit/timing.py
    time_verdict_missing: Optional[str] = None  # why there is no time multiplier

    @classmethod
    def from_dict(cls, d: dict) -> "Comparison":
        c = _load(cls, d)
        c.differences = {k[2:]: Estimate.from_list(v) for k, v in d.items() if k.startswith("d_") and v}
        c.ratios = {k[6:]: Estimate.from_list(v) for k, v in d.items() if k.startswith("ratio_") and v}
        if isinstance(d.get("separate"), dict):
            c.separate = {k[2:] if k.startswith("d_") else k: Estimate.from_list(v) for k, v in d["separate"].items()}
        return c

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"a": self.a, "b": self.b, "level": self.level, "paired": self.paired}
        if self.shared is not None:
            out["shared"] = list(self.shared)
        out.update({f"ratio_{k}": v.to_list() for k, v in self.ratios.items()})
        out.update({f"d_{k}": v.to_list() for k, v in self.differences.items()})
        if self.separate is not None:
            out["separate"] = {f"d_{k}": v.to_list() for k, v in self.separate.items()}
        out["verdict"] = self.verdict
        if self.k is not None:
            out["k"] = dict(self.k)
        if self.multiplier:
            out["multiplier"] = [r.to_dict() for r in self.multiplier]
        if self.crossover is not None:
            out["crossover"] = self.crossover.to_dict()
        if self.multiplier_text is not None:
            out["multiplier_text"] = self.multiplier_text
        for key in ("time_basis", "time_verdict_missing"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def involves(self, group: str) -> bool:
        return group in (self.a, self.b)


# ---- the whole fit ----------------------------------------------------------------------------------------
@dataclass
class Bootstrap(_Record):
    n: int = 0
    seed: Optional[int] = _keep(default=None)
    level: float = 0.95
    unit: Optional[str] = _keep(default=None)  # "run" or "row"
    paired: bool = False


@dataclass
class Columns(_Record):
    """The input columns the fit read: N, D, loss, C (a column, or a formula such as "6ND" / "flops/(6 N)")
    and the run column (None: rows resampled one by one)."""

    N: Optional[str] = _keep(default=None)
    D: Optional[str] = _keep(default=None)
    loss: Optional[str] = _keep(default=None)
    C: Optional[str] = _keep(default=None)
    run: Optional[str] = _keep(default=None)


@dataclass
class Sweep(_Record):
    """A hyperparameter sweep in the input and what the fit did with it (fit/hyper.py)."""

    swept: list = field(default_factory=list)
    values: dict = field(default_factory=dict)
    envelope: bool = True
    n_points: int = 0
    n_kept: int = 0
    text: str = ""


@dataclass
class InputFile(_Record):
    """One input file of the fit, as read (path as given, its sha256 then)."""

    path: str
    sha256: Optional[str] = None
    rows: Optional[int] = None
    kind: Optional[str] = None


@dataclass
class FitInfo(_Record):
    """How the fit was made: the fit file's top-level record (docs/interfaces.md "Fit file")."""

    scalelab_version: Optional[str] = None
    created: Optional[str] = None
    inputs: list[InputFile] = field(default_factory=list)
    flop_convention: str = "flops"  # "flops" (measured), "flops_6nd" (the run store's 6ND column) or "6ND"
    by: list = field(default_factory=list)
    approach: int = 3
    loss: dict = field(default_factory=dict)  # {"kind", "delta", "overestimate_penalty", "weights"} or {"kind": "ols"}
    intervals: Optional[str] = None  # "bootstrap" or "ols" (approaches 1 and 2)
    bootstrap: Bootstrap = field(default_factory=Bootstrap)
    sweep: Optional[Sweep] = None
    share_e: bool = False
    share_exponents: bool = False
    at_flops: Optional[list] = _keep(default=None)
    columns: Columns = field(default_factory=Columns)
    drop_top_loss: int = 0
    all_checkpoints: bool = False
    spec: Optional[dict] = None  # FitSpec.to_dict() (FitResults.spec builds the FitSpec)


def n_column_of(range_: dict, runs: list, n_col: str | None) -> str:
    """The run column of the fit's N: n_col when it is a run-store count, else the count whose span matches
    the group's range["N"] (a CSV fit stores N under "params"), else "params"."""
    if n_col in ("params", "params_nonembed"):
        return n_col
    lo_hi = (range_ or {}).get("N")
    if not lo_hi or not runs:
        return "params"
    best, err = "params", float("inf")
    for key in ("params", "params_nonembed"):
        vals = [float(r[key]) for r in runs if r.get(key) is not None]
        if not vals:
            continue
        e = abs(math.log(min(vals) / lo_hi[0])) + abs(math.log(max(vals) / lo_hi[1]))
        if e < err:
            best, err = key, e
    return best
