"""Width, FFN share and tokens chosen together at a FLOP budget, on a law across shares (fit/share.py).

Every candidate is a buildable shape: the fit's shape rule (families.ShapeRule: depth, heads, d_ff from the
runs) at width d, its FFN the kind's structure keeping about f of the dense FFN (structures.for_fraction),
with exact params and FLOPs per token (flops.py) and the share it really keeps. Loss falls with tokens, so
at budget C a shape trains on D = C / FLOPs-per-token; the plan is the candidate of least predicted loss.
Shares stay within the fitted range [f_min, 1]. Widths: a geometric grid over every buildable width, then
every width multiple between the best grid width's neighbours, per share (the loss is unimodal in width at a
fixed share and budget). Intervals: each bootstrap sample's own optimum over the candidates evaluated, and
the mean law's loss at the chosen shape over the samples.

A time budget (plan_share_time): H hours on one device buy each shape D = H x 3600 x its tokens/s, from a
throughput model of `scalelab bench train` tables (plan/throughput_model.py: interpolated in log width and
share, flagged beyond the measured shapes); the plan is again the shape of least predicted loss, and its
FLOPs follow from D. The throughput is a measured point, not resampled: the intervals are the law's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import numpy as np

from scalelab import flops as F
from scalelab import structures
from scalelab.config import ModelConfig, StructureConfig
from scalelab.errors import ScalelabError
from scalelab.fit import laws
from scalelab.fit.bootstrap import percentile_interval
from scalelab.fit.records import Estimate
from scalelab.fit.results import FitResults, GroupFit
from scalelab.plan.families import ShapeRule, _expected_flops_per_token
from scalelab.plan.throughput_model import ThroughputModel

N_SHARES = 25  # nominal shares between the fitted ends, besides the fitted shares themselves
N_COARSE = 48  # widths of the coarse grid
EDGE = 1.1  # a share within 10% of the lowest fitted one is at the edge (fit/share.py's LEVEL_TOL)


@dataclass(frozen=True, eq=False)
class ShareShape:
    """One buildable candidate: its config, the share it keeps, params as the fit counts them, FLOPs/token."""

    cfg: ModelConfig
    share: float
    N: float
    flops_per_token: float

    @property
    def d_model(self) -> int:
        return int(self.cfg.d_model)


@dataclass
class SharePlan:
    kind: str
    C: float
    shape: ShareShape
    D: float
    loss: Estimate
    share: Estimate
    d_model: Estimate
    tokens: Estimate
    params: Estimate
    fitted_shares: tuple[float, float]
    notes: list[str] = field(default_factory=list)
    n_candidates: int = 0
    flops: Optional[Estimate] = None  # a time budget: the FLOPs the plan implies (D x FLOPs per token)
    hours: Optional[float] = None  # a time budget: device-hours
    tokens_per_s: Optional[float] = None  # a time budget: the chosen shape's predicted throughput
    basis: Optional[str] = None  # a time budget: what the throughput rests on

    @property
    def structure(self) -> StructureConfig:
        return self.shape.cfg.ffn

    def to_dict(self) -> dict:
        c = self.shape.cfg
        out: dict = {"kind": self.kind, "C": self.C, "n_layers": c.n_layers}
        out["ffn"] = {k: getattr(c.ffn, k) for k in ("kind", "rank", "blocks")}
        for k in ("share", "d_model", "tokens", "params", "loss"):
            out[k] = getattr(self, k).to_list()  # [est, lo, hi]
        out.update(fitted_shares=list(self.fitted_shares), notes=self.notes, n_candidates=self.n_candidates)
        if self.hours is not None:
            out.update(hours=self.hours, tokens_per_s=self.tokens_per_s, throughput_basis=self.basis)
            out["flops"] = self.flops.to_list() if self.flops else None
        return out

    def lines(self) -> list[str]:
        """The plan in words: shape, share, params, tokens and loss, each with its interval; the notes."""
        s, c = self.shape, self.shape.cfg

        def iv(e: Estimate, fmt: str) -> str:
            return f" [{e.lo:{fmt}}, {e.hi:{fmt}}]" if e.has_interval else ""

        ffn = "dense FFN" if c.ffn.kind == "dense" else f"FFN {c.ffn.kind} ({_sizes(c.ffn)})"
        at = f"C = {self.C:.3g} FLOPs"
        if self.hours is not None and self.flops is not None:
            at = f"{self.hours:g} device-hours"
        time = []
        if self.hours is not None and self.flops is not None:
            time = [
                f"  {self.tokens_per_s:.4g} tokens/s, {self.flops.est:.3g} FLOPs{iv(self.flops, '.3g')}; "
                f"throughput: {self.basis}"
            ]
        return [
            f"{self.kind} at {at}: d_model {c.d_model}{iv(self.d_model, '.0f')}, "
            f"{c.n_layers} layers, {ffn}, share {s.share:.3g}{iv(self.share, '.3g')}",
            f"  N = {s.N:.4g}{iv(self.params, '.3g')}, D = {self.D:.4g} tokens{iv(self.tokens, '.3g')}, "
            f"predicted loss {self.loss.est:.4f}{iv(self.loss, '.4f')} ({self.n_candidates} shapes searched, "
            f"fitted shares {self.fitted_shares[0]:.3g}..1)",
            *time,
            *[f"  note: {n}" for n in self.notes],
        ]


def _sizes(s: StructureConfig) -> str:
    return ", ".join(f"{k} {getattr(s, k)}" for k in ("rank", "blocks") if getattr(s, k) is not None)


# ---- candidates ------------------------------------------------------------------------------------------
def build(rule: ShapeRule, kind: str, d: int, f: float, n_key: str, convention: str) -> Optional[ShareShape]:
    """The family's shape at width d keeping about share f of the dense FFN (f >= 1: dense); None if unbuildable."""
    try:
        cfg = rule.make(int(d))
        ffn = StructureConfig("dense") if f >= 1 else structures.for_fraction(kind, d, cfg.ffn_width, f)
        cfg = cfg.replace(ffn=ffn).validate()
    except ScalelabError:
        return None
    share = 1.0 if ffn.kind == "dense" else structures.ffn_fraction(ffn, d, cfg.ffn_width)
    counts = F.param_counts(cfg)
    N = float(getattr(counts, n_key))
    fpt = 6.0 * N if convention.lower() == "6nd" else _expected_flops_per_token(cfg, convention)
    return ShareShape(cfg, float(share), N, float(fpt))


class TimeBudget:
    """H hours on the throughput model's device: each shape's tokens are H x 3600 x its tokens/s."""

    def __init__(self, hours: float, model: ThroughputModel):
        self.hours, self.model = hours, model
        self.rates: dict[ShareShape, tuple[float, Optional[str]]] = {}  # by identity (eq=False)

    def rate(self, s: ShareShape) -> tuple[float, Optional[str]]:
        """The shape's tokens/s and why it is beyond the measured shapes (None: inside)."""
        if s not in self.rates:
            r = self.model.rate(s.cfg)
            self.rates[s] = (r.tokens_per_s, r.beyond)
        return self.rates[s]

    def __call__(self, shapes: Sequence[ShareShape]) -> np.ndarray:
        return np.array([self.hours * 3600.0 * self.rate(s)[0] for s in shapes])


Budget = Union[float, Callable[[Sequence[ShareShape]], np.ndarray]]  # FLOPs, or tokens per shape (TimeBudget)


def _tokens(shapes: Sequence[ShareShape], C: Budget) -> np.ndarray:
    """Tokens every shape trains on: C / FLOPs-per-token at a FLOP budget, C(shapes) at a time budget."""
    if callable(C):
        return C(shapes)
    return C / np.array([s.flops_per_token for s in shapes])


def _loss(params: dict, shapes: Sequence[ShareShape], C: Budget) -> np.ndarray:
    """The law's loss of every shape trained on the budget's tokens; (S, M) for sample arrays."""
    N = np.array([s.N for s in shapes])
    D = _tokens(shapes, C)
    f = np.array([s.share for s in shapes])
    return laws.predict("share", params, N=N, D=D, share=f)


class ShareSearch:
    """The candidates of one kind: built once per (width, nominal share), kept for the samples' optima."""

    def __init__(self, rule: ShapeRule, kind: str, f_range: tuple[float, float], n_key: str, convention: str):
        self.rule, self.kind, self.f_range, self.n_key, self.convention = rule, kind, f_range, n_key, convention
        self.cache: dict[tuple[int, float], Optional[ShareShape]] = {}

    def shape(self, d: int, f: float) -> Optional[ShareShape]:
        if (d, f) not in self.cache:
            s = build(self.rule, self.kind, d, f, self.n_key, self.convention)
            lo = self.f_range[0]
            inside = s is not None and lo * (1 - 1e-6) <= s.share <= 1.0  # a rank near d_ff can keep more than 1
            self.cache[(d, f)] = s if inside else None
        return self.cache[(d, f)]

    def shapes(self) -> list[ShareShape]:
        """Every distinct buildable shape built so far (nominal shares that round to one structure: once)."""
        out: dict[tuple, ShareShape] = {}
        for s in self.cache.values():
            if s is not None:
                c = s.cfg
                out.setdefault((c.d_model, c.n_layers, c.ffn.kind, c.ffn.rank, c.ffn.blocks), s)
        return list(out.values())

    def widths(self) -> np.ndarray:
        m = self.rule.multiple
        d_max = max(65536, 8 * self.rule.template.d_model)
        return np.unique(np.round(np.geomspace(m, d_max, N_COARSE) / m).astype(int) * m)

    def best_at(self, params: dict, f: float, C: Budget) -> None:
        """Coarse widths at share f, then every multiple between the best coarse width's neighbours."""
        ws = self.widths()
        coarse = [(d, self.shape(int(d), f)) for d in ws]
        ok = [(d, s) for d, s in coarse if s is not None]
        if not ok:
            return
        i = int(np.argmin(_loss(params, [s for _, s in ok], C)))
        j = int(np.flatnonzero(ws == ok[i][0])[0])
        lo, hi = ws[max(j - 1, 0)], ws[min(j + 1, len(ws) - 1)]
        for d in range(int(lo), int(hi) + 1, self.rule.multiple):
            self.shape(d, f)


def nominal_shares(fitted: Sequence[float]) -> list[float]:
    """The shares a plan tries: the fitted ones and a geometric grid between the fitted ends."""
    lo = min(fitted)
    grid = np.geomspace(lo, 1.0, N_SHARES)
    return sorted({round(float(x), 6) for x in [*fitted, *grid]})


# ---- the plan ------------------------------------------------------------------------------------------------
def plan_share(
    fit: FitResults,
    kind: str,
    C: float,
    rule: Optional[ShapeRule] = None,
    multiple: Optional[int] = None,
    depth: Optional[int] = None,
) -> SharePlan:
    """The shape (width, depth, structure at share f) and tokens of least predicted loss at budget C. rule: the
    shape family (default: the fit's runs' rule, widths a multiple of `multiple`, depth `depth` if given)."""
    g = fit[kind]
    if g.form != "share" or g.share_law is None:
        raise ScalelabError(
            f"group {kind!r} is a {g.form} law: plan over shares needs a law across shares (scalelab fit --share-col)"
        )
    if not (C > 0 and math.isfinite(C)):
        raise ScalelabError(f"--flops {C}: give a positive budget in FLOPs, e.g. 1e18")
    return _plan(fit, g, C, rule, multiple, depth)


def plan_share_time(
    fit: FitResults,
    kind: str,
    hours: float,
    model: ThroughputModel,
    rule: Optional[ShapeRule] = None,
    multiple: Optional[int] = None,
    depth: Optional[int] = None,
) -> SharePlan:
    """plan_share at a time budget: `hours` on the model's device, each shape's tokens from its measured
    throughput (plan/throughput_model.py). Refused when the model has no timed shape of the kind's structure."""
    g = fit[kind]
    if g.form != "share" or g.share_law is None:
        raise ScalelabError(
            f"group {kind!r} is a {g.form} law: plan over shares needs a law across shares (scalelab fit --share-col)"
        )
    if not (hours > 0 and math.isfinite(hours)):
        raise ScalelabError(f"--gpu-hours {hours}: give a positive number of device-hours, e.g. 100")
    rule = rule or _rule_from_runs(g, multiple, depth)
    model.require("dense", f"--gpu-hours for {g.name}")
    model.require(_structure_kind(g, rule), f"--gpu-hours for {g.name}")
    return _plan(fit, g, TimeBudget(hours, model), rule, multiple, depth)


def _plan(fit: FitResults, g: GroupFit, C: Budget, rule, multiple, depth) -> SharePlan:
    """The search and the plan, at a FLOP budget C or a time budget (C a TimeBudget)."""
    assert g.share_law is not None  # the callers refuse other laws
    rule = rule or _rule_from_runs(g, multiple, depth)
    f_range = (float(g.range.get("share", g.share_law.range)[0]), 1.0)  # the runs' own shares, not the levels'
    search = ShareSearch(rule, _structure_kind(g, rule), f_range, g.n_column or "params", fit.convention)
    for f in nominal_shares(g.share_law.shares):
        search.best_at(g.params, f, C)
    shapes = search.shapes()
    if not shapes:
        raise ScalelabError(f"no buildable {g.name} shape at any width and share in [{f_range[0]:.3g}, 1]")
    L = _loss(g.params, shapes, C)
    best = shapes[int(np.argmin(L))]
    return _finish(fit, g, C, best, float(L.min()), shapes, f_range, search)


def _finish(fit, g: GroupFit, C: Budget, best: ShareShape, L0: float, shapes, f_range, search) -> SharePlan:
    D0 = float(_tokens([best], C)[0])
    est = {"share": best.share, "d": best.d_model, "D": D0, "N": best.N, "C": D0 * best.flops_per_token}
    ci = {k: (math.nan, math.nan) for k in est}
    loss_ci = (math.nan, math.nan)
    s = g.sample_arrays()
    if len(s["E"]) >= 2:
        Ls = _loss(s, shapes, C)  # (S, M)
        pick = [shapes[i] for i in np.argmin(Ls, 1)]
        D = _tokens(pick, C)
        draws = {
            "share": [p.share for p in pick],
            "d": [p.d_model for p in pick],
            "D": list(D),
            "N": [p.N for p in pick],
            "C": list(D * np.array([p.flops_per_token for p in pick])),
        }
        ci = {k: percentile_interval(v, fit.level) for k, v in draws.items()}
        loss_ci = percentile_interval(_loss(s, [best], C)[:, 0], fit.level)
    notes = []
    lo = f_range[0]
    if best.share <= lo * EDGE:
        notes.append(
            f"the best share {best.share:.3g} is at the low edge of the fitted shares [{lo:.3g}, 1]: a smaller "
            "share may be better still; train one to know"
        )
    elif best.share >= 1.0:
        notes.append(f"the best share is dense (1), the high edge of the fitted shares [{lo:.3g}, 1]")
    widths = search.widths()
    if best.d_model in (widths[0], widths[-1]):
        notes.append(f"the best width {best.d_model} is at the end of the widths searched")
    n_lo, n_hi = (g.range or {}).get("N") or (math.nan, math.nan)
    if not n_lo <= best.N <= n_hi:  # the law's own ranking of sizes it never saw
        side = "below the smallest" if best.N < n_lo else "above the largest"
        notes.append(
            f"the chosen size N = {best.N:.3g} lies {side} fitted size (N {n_lo:.3g}..{n_hi:.3g}): the law is "
            "extrapolated in N there; train that width to check"
        )
    plan = SharePlan(
        kind=g.name,
        C=float(est["C"]) if callable(C) else float(C),
        shape=best,
        D=est["D"],
        loss=Estimate(L0, *loss_ci),
        share=Estimate(est["share"], *ci["share"]),
        d_model=Estimate(est["d"], *ci["d"]),
        tokens=Estimate(est["D"], *ci["D"]),
        params=Estimate(est["N"], *ci["N"]),
        fitted_shares=(float(lo), 1.0),
        notes=notes,
        n_candidates=len(shapes),
    )
    if isinstance(C, TimeBudget):
        tps, beyond = C.rate(best)
        plan.hours, plan.tokens_per_s, plan.basis = C.hours, tps, C.model.basis
        plan.flops = Estimate(est["C"], *ci["C"])
        if beyond:
            plan.notes.append(f"throughput of the chosen shape extrapolated: {beyond}")
    return plan


def _rule_from_runs(g: GroupFit, multiple: Optional[int], depth: Optional[int]) -> ShapeRule:
    cfgs = []
    for r in g.runs:
        try:
            cfgs.append(ModelConfig.from_dict(r["model"]))
        except (KeyError, TypeError, ScalelabError):
            continue
    if not cfgs:
        raise ScalelabError(
            f"group {g.name!r} records no model configs (a CSV fit): plan over shares needs the shapes of scalelab "
            "runs; fit the run store with --share-col config"
        )
    from scalelab.plan.planner import _auto_multiple

    return ShapeRule.from_runs(cfgs, multiple=multiple or _auto_multiple(cfgs), depth=depth)


def _structure_kind(g: GroupFit, rule: ShapeRule) -> str:
    """The structure the kind's non-dense shapes take: the runs' (or the group's name when it is a kind)."""
    kinds = [str(r["model"]["ffn"]["kind"]) for r in g.runs if isinstance(r.get("model"), dict) and "ffn" in r["model"]]
    kinds = [k for k in kinds if k != "dense"]
    if kinds:
        return kinds[0]
    if rule.template.ffn.kind != "dense":
        return rule.template.ffn.kind
    if g.name in structures.names():
        return g.name
    raise ScalelabError(f"group {g.name!r}: cannot tell its FFN structure kind from its runs")
