"""Compute-optimal plans from a fit: N, D, shape (width, depth, rank) and predicted loss per variant.

Given a fit file (fits/NAME.json + NAME.samples.parquet, docs/interfaces.md) and a budget C:

    minimise  L(N, D) = E + A / N^alpha + B / D^beta   subject to   C = F(N) * D

where F(N) is the training FLOPs per token of the model family. For plain (N, D) fits (CSV, "6ND")
F(N) = 6 N and the optimum has a closed form (Hoffmann et al. 2022; REFERENCE.md section 3):

    G = (alpha A / (beta B))^(1/(alpha+beta)),  N_opt = G (C/6)^(beta/(alpha+beta)),
    D_opt = (C/6)^(alpha/(alpha+beta)) / G.

For fits of scalelab runs F(N) is the variant's real FLOPs per token (attention, logits, structure,
self-guided overhead, from scalelab/flops.py) along a family of shapes inferred from the runs, and the
optimum is found numerically. Every bootstrap sample is pushed through (vectorised over samples), so
intervals are percentiles of the optimum, never the plug-in point with an error bar.

Never imports torch.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from scalelab.config import ModelConfig
from scalelab.errors import ScalelabError

# Peak dense bf16 FLOP/s per accelerator (REFERENCE.md section 4). "cpu": use measured rates as they are.
PEAK_FLOPS = {"h100": 989e12, "h200": 989e12, "a100": 312e12, "cpu": None}
DEFAULT_MFU = 0.4  # assumed when runs were measured on another device and carry no MFU
EXTRAPOLATION_FACTOR = 10.0
CHINCHILLA = ("E", "A", "B", "alpha", "beta")
FRONTIER = ("E", "K", "gamma")


# ================================================================================================
# Reading a fit
# ================================================================================================

@dataclass
class Group:
    """One fitted group (usually one variant): point law, bootstrap samples, provenance."""

    name: str
    variant: str
    form: str
    point: dict[str, float]
    samples: dict[str, np.ndarray]  # name -> (S,), rows aligned by sample index
    sample_ids: np.ndarray  # (S,)
    residual_sd: float
    range: dict[str, list]
    runs: list[dict]
    warnings: list[str]


@dataclass
class Fit:
    path: Optional[str]
    convention: str  # "flops" | "flops_6nd" | "6ND"
    level: float
    joint: bool  # groups share parameters (e.g. E): compare variants paired by sample index
    groups: dict[str, Group]


def _read_samples(meta: dict, base: Optional[Path], samples: Any) -> "Any":
    import pandas as pd

    if samples is not None:
        return samples if isinstance(samples, pd.DataFrame) else pd.read_parquet(samples)
    name = meta.get("samples")
    where = f"fit {meta.get('_path', '')}".strip()
    if not name:
        raise ScalelabError(f"{where} has no bootstrap samples: refit with bootstrap (e.g. `scalelab fit ... --bootstrap 1000`)")
    p = Path(name)
    if not p.is_absolute() and base is not None:
        p = base / p
    if not p.exists():
        raise ScalelabError(f"{where} has no bootstrap samples ({p} is missing): refit with `--bootstrap 1000` or copy the samples file beside the JSON")
    try:
        return pd.read_parquet(p)
    except Exception as e:  # a torn or foreign file
        raise ScalelabError(f"cannot read bootstrap samples {p}: {e}") from None


def load(fit: Any, samples: Any = None) -> Fit:
    """A fit file path, its parsed JSON dict, or a FitResults-like object -> Fit.

    `samples`: a DataFrame or parquet path overriding the file named in the fit.
    """
    base: Optional[Path] = None
    path = None
    if isinstance(fit, Fit):
        return fit
    if isinstance(fit, (str, os.PathLike)):
        path = Path(fit)
        if not path.exists():
            raise ScalelabError(f"fit file {path} not found: run `scalelab fit` first or pass --fit PATH")
        try:
            meta = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ScalelabError(f"fit file {path} is not valid JSON ({e}): refit it") from None
        base = path.parent
    elif isinstance(fit, dict):
        meta = fit
        base = Path(meta["_path"]).parent if meta.get("_path") else Path.cwd()
    else:  # a FitResults-like object from scalelab.fit
        d = fit.to_dict() if hasattr(fit, "to_dict") else fit.to_json()
        meta = json.loads(d) if isinstance(d, str) else d
        p = getattr(fit, "path", None)
        base = Path(p).parent if p else Path.cwd()
        if samples is None and getattr(fit, "samples", None) is not None and not isinstance(fit.samples, str):
            samples = fit.samples
    meta = dict(meta)
    meta.setdefault("_path", str(path) if path else "")
    if not isinstance(meta.get("groups"), dict) or not meta["groups"]:
        raise ScalelabError(f"fit {meta['_path']} has no groups: is it a scalelab fit file (format scalelab-fit/1)?")
    df = _read_samples(meta, base, samples)
    if "group" not in df.columns:
        raise ScalelabError(f"bootstrap samples of fit {meta['_path']} lack a 'group' column: refit with this scalelab")
    boot = meta.get("bootstrap") or {}
    groups: dict[str, Group] = {}
    for name, g in meta["groups"].items():
        form = g.get("form", "chinchilla")
        cols = CHINCHILLA if form == "chinchilla" else FRONTIER if form == "frontier" else ()
        sub = df[df["group"] == name]
        if "sample" in sub.columns:
            sub = sub.sort_values("sample")
        if cols:
            missing = [c for c in cols if c not in sub.columns]
            if missing:
                raise ScalelabError(f"bootstrap samples of group {name!r} lack column(s) {', '.join(missing)}: refit")
            sub = sub.dropna(subset=list(cols))
            if len(sub) < 2:
                raise ScalelabError(f"fit {meta['_path']} has no usable bootstrap samples for group {name!r}: refit with `--bootstrap 1000`")
        groups[name] = Group(
            name=name,
            variant=str((g.get("key") or {}).get("variant", name)),
            form=form,
            point={k: float(v) for k, v in (g.get("params") or {}).items() if v is not None},
            samples={c: sub[c].to_numpy(float) for c in cols},
            sample_ids=sub["sample"].to_numpy() if "sample" in sub.columns else np.arange(len(sub)),
            residual_sd=float(g.get("residual_sd") or 0.0),
            range=dict(g.get("range") or {}),
            runs=list(g.get("runs") or []),
            warnings=list(g.get("warnings") or []),
        )
    joint = bool(meta.get("joint", False)) or _shares_samples(groups)
    return Fit(path=meta["_path"] or None, convention=str(meta.get("flop_convention", "6ND")),
               level=float(boot.get("level", 0.95)), joint=joint, groups=groups)


def _shares_samples(groups: dict[str, Group]) -> bool:
    """A joint fit (e.g. one E for all variants) shows as identical E in every group's sample s."""
    gs = [g for g in groups.values() if "E" in g.samples and len(g.samples["E"])]
    if len(gs) < 2:
        return False
    ref = gs[0]
    for g in gs[1:]:
        if len(g.samples["E"]) != len(ref.samples["E"]) or not np.array_equal(g.sample_ids, ref.sample_ids):
            return False
        if not np.allclose(g.samples["E"], ref.samples["E"], rtol=1e-12, atol=0):
            return False
    return True


def newest_fit(folder: str | Path = "fits") -> Path:
    """The most recently written fits/*.json."""
    files = [p for p in Path(folder).glob("*.json") if p.is_file()]
    if not files:
        raise ScalelabError(f"no fit files in {folder}/: run `scalelab fit runs/*.parquet` first or pass --fit PATH")
    return max(files, key=lambda p: p.stat().st_mtime)


# ================================================================================================
# Laws, vectorised over bootstrap samples
# ================================================================================================

def chinchilla_loss(p: dict, N, D):
    """L(N, D) = E + A / N^alpha + B / D^beta; p values broadcast against N and D."""
    return p["E"] + p["A"] * np.power(N, -p["alpha"]) + p["B"] * np.power(D, -p["beta"])


def closed_form_6nd(p: dict, C):
    """Hoffmann et al.'s optimum for C = 6 N D (REFERENCE.md section 3) -> N_opt, D_opt, L_opt."""
    a, b = p["alpha"], p["beta"]
    G = np.power(a * p["A"] / (b * p["B"]), 1.0 / (a + b))
    N = G * np.power(C / 6.0, b / (a + b))
    D = np.power(C / 6.0, a / (a + b)) / G
    return N, D, chinchilla_loss(p, N, D)


def _col(p: dict, names: Sequence[str]) -> dict:
    """Parameters as (S, 1) columns so they broadcast against an (S, G) grid."""
    return {k: np.asarray(p[k], float).reshape(-1, 1) for k in names}


# ================================================================================================
# FLOPs per token along a family of shapes
# ================================================================================================

class SixND:
    """C = 6 N D: the plain convention of CSV fits (and flops_6nd when N excludes embeddings)."""

    name = "6ND"
    log_n_bounds = (math.log(1e2), math.log(1e17))

    def log_flops_per_token(self, logN):
        return math.log(6.0) + logN


@dataclass
class Candidate:
    cfg: ModelConfig
    N: float  # params as the fit counts them
    flops_per_token: float  # training FLOPs per token incl. expected self-guided overhead


@dataclass
class ShapeRule:
    """How the fit's grid shapes a model of a given width: depth, heads, d_ff, structure."""

    template: ModelConfig  # the largest fitted run's config: everything not derived from d_model
    layers_coef: float  # n_layers = layers_coef * d_model^layers_exp (fit on the runs' shapes)
    layers_exp: float
    head_dim: int
    ff_ratio: float
    attn_ratio: Optional[float]  # d_attn / d_model when the runs set d_attn
    kv_ratio: int  # n_heads / n_kv_heads
    attn_rank_ratio: Optional[float]  # LPA r / d_model
    multiple: int = 64
    depth: Optional[int] = None  # fixed n_layers (--depth)

    @classmethod
    def from_runs(cls, cfgs: list[ModelConfig], multiple: int = 64, depth: Optional[int] = None) -> "ShapeRule":
        t = max(cfgs, key=lambda c: (c.d_model, c.n_layers))
        ds = np.array([c.d_model for c in cfgs], float)
        ls = np.array([c.n_layers for c in cfgs], float)
        if len(np.unique(ds)) >= 2 and len(np.unique(ls)) >= 2:
            # log n_layers = c + k log d_model, least squares over the grid's shapes
            k, c = np.polyfit(np.log(ds), np.log(ls), 1)
            k = float(np.clip(k, 0.0, 1.5))
            c = float(np.mean(np.log(ls) - k * np.log(ds)))
        else:
            k, c = 0.0, float(np.log(np.median(ls)))
        return cls(template=t, layers_coef=math.exp(c), layers_exp=k, head_dim=t.head_dim,
                   ff_ratio=t.ffn_width / t.d_model,
                   attn_ratio=(t.attn_width / t.d_model) if t.d_attn is not None else None,
                   kv_ratio=max(1, t.n_heads // t.kv_heads),
                   attn_rank_ratio=(t.attn_rank / t.d_model) if t.attn == "lpa" and t.attn_rank else None,
                   multiple=multiple, depth=depth)

    def describe(self) -> str:
        if self.depth is not None:
            depth = f"n_layers = {self.depth} (fixed)"
        elif self.layers_exp == 0:
            depth = f"n_layers = {self.layers_coef:.0f} (constant in the fitted grid)"
        else:
            depth = f"n_layers = {self.layers_coef:.3g} d_model^{self.layers_exp:.2f}"
        return f"{depth}; head_dim {self.head_dim}; d_ff = {self.ff_ratio:.3g} d_model; d_model multiple of {self.multiple}"

    def layers_for(self, d: float) -> int:
        if self.depth is not None:
            return self.depth
        return max(1, int(round(self.layers_coef * d ** self.layers_exp)))

    def make(self, d_model: int, n_layers: Optional[int] = None) -> ModelConfig:
        """The family's config at width d_model; raises ScalelabError if it cannot be built."""
        t = self.template
        L = self.layers_for(d_model) if n_layers is None else n_layers
        d_attn = None
        width = d_model
        if self.attn_ratio is not None:
            width = max(self.head_dim, int(round(self.attn_ratio * d_model / self.head_dim)) * self.head_dim)
            d_attn = width
        n_heads = _heads_for(width, self.head_dim)
        n_kv = n_heads // self.kv_ratio if n_heads % self.kv_ratio == 0 and n_heads >= self.kv_ratio else None
        if self.kv_ratio > 1 and n_kv is None:
            n_kv = max(k for k in range(1, n_heads + 1) if n_heads % k == 0 and k <= max(1, n_heads // self.kv_ratio))
        r = t.ffn_width / t.d_model
        d_ff = int(round(self.ff_ratio * d_model)) if abs(r * d_model - round(r * d_model)) < 1e-9 else \
            max(32, int(round(self.ff_ratio * d_model / 32)) * 32)
        changes: dict[str, Any] = dict(d_model=d_model, n_layers=L, n_heads=n_heads, d_ff=d_ff, d_attn=d_attn,
                                       n_kv_heads=(n_kv if self.kv_ratio > 1 else t.n_kv_heads and None))
        if self.attn_rank_ratio is not None:
            changes["attn_rank"] = max(2, int(round(self.attn_rank_ratio * d_model / 8)) * 8)
        if t.ffn.kind != "dense":
            changes["ffn"] = _structure_for(t, d_model, d_ff)
        return t.replace(**changes).validate()


def _heads_for(width: int, head_dim: int) -> int:
    """Keep the runs' head size where it divides the width, else the nearest even head size that does."""
    if width % head_dim == 0:
        return width // head_dim
    target = width / head_dim
    ok = [h for h in range(1, width + 1) if width % h == 0 and (width // h) % 2 == 0]
    return min(ok, key=lambda h: abs(h - target))


def _structure_for(t: ModelConfig, d_model: int, d_ff: int):
    """The variant's FFN structure at a new width, keeping its parameter fraction."""
    s = t.ffn
    if s.fraction is not None:
        try:
            from scalelab.presets import structure_for_fraction
        except ImportError:
            structure_for_fraction = None
        if structure_for_fraction is not None:
            new = structure_for_fraction(s.kind, d_model, d_ff, s.fraction)
            return new if new.fraction is not None else dataclasses.replace(new, fraction=s.fraction)
    # scale rank with width; keep the block count
    rank = None
    if s.rank is not None:
        step = max(8, s.blocks or 1)
        rank = max(step, int(round(s.rank * d_model / t.d_model / step)) * step)
    return dataclasses.replace(s, rank=rank)


def _expected_flops_per_token(cfg: ModelConfig, convention: str) -> float:
    """Training FLOPs per token of cfg in the fit's convention, self-guided overhead averaged over the run."""
    from scalelab import flops as F

    if convention == "flops_6nd":
        return float(F.flops_6n_per_token(cfg))
    return float(F.train_flops(cfg, 1.0))  # incl. the expected self-guided overhead


def _candidate(cfg: ModelConfig, n_key: str, convention: str) -> Candidate:
    """Exact params and FLOPs per token of cfg, from flops.py at <= 3 layers.

    Every block after the first is identical, so both counts are affine in n_layers from 2 layers on:
    count(L) = count(2) + (L - 2) (count(3) - count(2)). Deep candidates (thousands of layers at the
    widths the family table spans) then cost three small evaluations instead of a loop over layers.
    """
    from scalelab import flops as F

    def counts(c):
        return float(getattr(F.param_counts(c), n_key)), _expected_flops_per_token(c, convention)

    if cfg.n_layers <= 3:
        return Candidate(cfg, *counts(cfg))
    n2, f2 = counts(cfg.replace(n_layers=2))
    n3, f3 = counts(cfg.replace(n_layers=3))
    k = cfg.n_layers - 2
    return Candidate(cfg, n2 + k * (n3 - n2), f2 + k * (f3 - f2))


class ShapeFamily:
    """FLOPs per token as a function of N along the variant's family of shapes (scalelab runs)."""

    def __init__(self, rule: ShapeRule, convention: str, n_key: str):
        from scalelab import flops as F

        self.rule, self.convention, self.n_key = rule, convention, n_key
        self.name = f"{convention} along the family"
        m = rule.multiple
        d_max = max(65536, 8 * rule.template.d_model)
        ds = np.unique(np.round(np.geomspace(m, d_max, 500) / m).astype(int) * m)
        cands: list[Candidate] = []
        for d in ds:
            try:
                cfg = rule.make(int(d))
            except ScalelabError:
                continue
            cands.append(_candidate(cfg, n_key, convention))
        if len(cands) < 2:
            raise ScalelabError(f"cannot build models of the {rule.template.variant} family at any width: check the fit's run configs")
        cands.sort(key=lambda c: c.N)
        self.candidates = cands
        logN = np.log([c.N for c in cands])
        keep = np.concatenate([[True], np.diff(logN) > 0])
        self._logN = logN[keep]
        self._logF = np.log([c.flops_per_token for c in cands])[keep]
        self._logd = np.log([c.cfg.d_model for c in cands])[keep]
        self.log_n_bounds = (float(self._logN[0]), float(self._logN[-1]))

    def log_flops_per_token(self, logN):
        # piecewise linear in log-log between buildable shapes, linear extrapolation beyond
        return np.interp(logN, self._logN, self._logF)

    def d_model_for(self, N: float) -> float:
        return float(np.exp(np.interp(math.log(N), self._logN, self._logd)))

    def candidates_near(self, N: float) -> list[Candidate]:
        """Buildable shapes around the ideal N: nearby widths x nearby depths."""
        from scalelab import flops as F

        r = self.rule
        d0 = self.d_model_for(N)
        base = int(round(d0 / r.multiple))
        out: list[Candidate] = []
        seen = set()
        for k in range(max(1, base - 6), base + 7):
            d = k * r.multiple
            L0 = r.layers_for(d)
            depths = [L0] if r.depth is not None else range(max(1, L0 - 1), L0 + 2)  # the rule, +-1 to fit the budget
            for L in depths:
                if (d, L) in seen:
                    continue
                seen.add((d, L))
                try:
                    cfg = r.make(d, L)
                except ScalelabError:
                    continue
                out.append(_candidate(cfg, self.n_key, self.convention))
        return out


# ================================================================================================
# The optimum, vectorised over samples
# ================================================================================================

def _minimise_logN(f, lo: float, hi: float, S: int, n_grid: int = 400, iters: int = 64):
    """argmin over x in [lo, hi] of f(x) for S independent problems; f maps (S, G) -> (S, G).

    Grid search, then golden section inside the bracket around the best grid point. L(N, D(N)) is
    unimodal in log N for these laws, so the bracket holds the minimum.
    """
    grid = np.linspace(lo, hi, n_grid)
    vals = f(np.broadcast_to(grid, (S, n_grid)).copy())
    vals = np.where(np.isfinite(vals), vals, np.inf)
    i = np.argmin(vals, axis=1)
    at_edge = (i == 0) | (i == n_grid - 1)
    a = grid[np.maximum(i - 1, 0)].reshape(-1, 1)
    b = grid[np.minimum(i + 1, n_grid - 1)].reshape(-1, 1)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        left = fc < fd  # the minimum lies in [a, d]: drop (d, b]; else drop [a, c)
        b = np.where(left, d, b)
        a = np.where(left, a, c)
        c_new = np.where(left, b - g * (b - a), d)
        d_new = np.where(left, c, a + g * (b - a))
        f_new = f(np.where(left, c_new, d_new))  # one new evaluation per iteration
        fc, fd = np.where(left, f_new, fd), np.where(left, fc, f_new)
        c, d = c_new, d_new
    return ((a + b) / 2).ravel(), at_edge


def optimum(p: dict, family, C, inference_tokens: float = 0.0):
    """(N, D, L, at_edge) arrays at budget C (scalar or per sample) for Chinchilla-form params p.

    Training budget C = F(N) D; with T inference tokens the lifetime budget is C = F(N) (D + T/3),
    since a forward pass is a third of training's 3 x forward.
    """
    S = len(np.atleast_1d(p["E"]))
    C = np.broadcast_to(np.asarray(C, float), (S,)).copy()
    if isinstance(family, SixND) and inference_tokens == 0:
        N, D, L = closed_form_6nd({k: np.asarray(v, float) for k, v in p.items()}, C)
        return np.atleast_1d(N), np.atleast_1d(D), np.atleast_1d(L), np.zeros(S, bool)
    q = _col(p, CHINCHILLA)
    logC = np.log(C).reshape(-1, 1)
    T3 = inference_tokens / 3.0

    def loss_of(logN):
        D = np.exp(logC - family.log_flops_per_token(logN)) - T3
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(D > 0, chinchilla_loss(q, np.exp(logN), np.maximum(D, 1e-300)), np.inf)

    lo, hi = family.log_n_bounds
    x, at_edge = _minimise_logN(loss_of, lo, hi, S)
    N = np.exp(x)
    D = np.exp(np.log(C) - family.log_flops_per_token(x)) - T3
    return N, D, chinchilla_loss({k: v.ravel() for k, v in q.items()}, N, D), at_edge


def _n_for_ratio(family, C, ratio: float) -> float:
    """N such that F(N) * ratio * N = C (frontier fits: tokens per param taken from the runs)."""
    lo, hi = family.log_n_bounds
    g = lambda x: float(family.log_flops_per_token(x)) + math.log(ratio) + x - math.log(C)
    if g(lo) > 0:
        return math.exp(lo)
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if g(mid) < 0 else (lo, mid)
    return math.exp((lo + hi) / 2)


# ================================================================================================
# Results
# ================================================================================================

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
    shape: Optional[Shape] = None
    gpu_hours: Optional[float] = None
    throughput: Optional[float] = None  # FLOP/s used for the wall-clock plan
    throughput_source: str = ""
    inference: Optional[dict] = None
    target: Optional[dict] = None
    extrapolated: bool = False
    notes: list[str] = field(default_factory=list)
    L_samples: Optional[np.ndarray] = field(default=None, repr=False)
    sample_ids: Optional[np.ndarray] = field(default=None, repr=False)

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
            rows.append(dict(variant=p.variant, C=p.C, N_opt=p.N_opt, N_lo=p.N_int[0], N_hi=p.N_int[1],
                             D_opt=p.D_opt, D_lo=p.D_int[0], D_hi=p.D_int[1], L_opt=p.L_opt,
                             L_lo=p.L_int[0], L_hi=p.L_int[1], extrapolated=p.extrapolated))
        return pd.DataFrame(rows)

    def summary(self) -> str:
        lines = [f"Compute-optimal plan ({self.convention} FLOPs, {self.level:.0%} intervals)"]
        for p in self.plans:
            lines.append(f"  {p.variant:<20} C={p.C:.3g} N={p.N_opt:.3g} [{p.N_int[0]:.3g}, {p.N_int[1]:.3g}] "
                         f"D={p.D_opt:.3g} [{p.D_int[0]:.3g}, {p.D_int[1]:.3g}] L={p.L_opt:.4f} "
                         f"[{p.L_int[0]:.4f}, {p.L_int[1]:.4f}]")
        if self.p_beats is not None and len(self.plans) > 1:
            lines.append(f"  P({self.plans[0].variant} beats {self.plans[1].variant}) = {self.p_beats:.3f}"
                         f" ({'paired' if self.paired else 'independent'} samples)")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


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


# ================================================================================================
# Planning
# ================================================================================================

def _interval(x: np.ndarray, level: float) -> tuple[float, float]:
    x = np.asarray(x, float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return (float("nan"), float("nan"))
    q = (1 - level) / 2 * 100
    lo, hi = np.percentile(x, [q, 100 - q])
    return (float(lo), float(hi))


def _run_models(g: Group) -> list[ModelConfig]:
    out = []
    for r in g.runs:
        m = r.get("model")
        if m:
            try:
                out.append(ModelConfig.from_dict(m))
            except (ScalelabError, TypeError):
                continue
    return out


def _n_key(g: Group) -> str:
    """Which param count the fit's N is: compare the fitted N range with the runs' counts."""
    lo_hi = g.range.get("N")
    if not lo_hi or not g.runs:
        return "params"
    best, err = "params", float("inf")
    for key in ("params", "params_nonembed"):
        vals = [float(r[key]) for r in g.runs if r.get(key) is not None]
        if not vals:
            continue
        e = abs(math.log(min(vals) / lo_hi[0])) + abs(math.log(max(vals) / lo_hi[1]))
        if e < err:
            best, err = key, e
    return best


class Planner:
    """Holds a fit and the per-variant FLOPs families; plan_budget / sweep / target-loss use it."""

    def __init__(self, fit: Any, variants: Optional[Sequence[str]] = None, multiple: int = 64,
                 depth: Optional[int] = None, samples: Any = None, seed: int = 0, shape_tol: float = 0.05):
        self.fit = load(fit, samples)
        self.shape_tol = shape_tol
        self.level = self.fit.level
        self.seed = seed
        if multiple < 2 or multiple % 2:
            raise ScalelabError(f"--multiple {multiple} must be an even integer >= 2 (e.g. 64)")
        if depth is not None and depth < 1:
            raise ScalelabError(f"--depth {depth} must be a positive number of layers")
        groups = list(self.fit.groups.values())
        if variants:
            known = {g.variant: g for g in groups} | {g.name: g for g in groups}
            unknown = [v for v in variants if v not in known]
            if unknown:
                raise ScalelabError(f"variant {', '.join(unknown)} is not in fit {self.fit.path or ''}: "
                                    f"choose from {', '.join(sorted({g.variant for g in groups}))}")
            groups = list({id(known[v]): known[v] for v in variants}.values())
        self.skipped = [f"{g.variant}: a {g.form!r} law has no compute allocation; skipped"
                        for g in groups if g.form not in ("chinchilla", "frontier")]
        self.groups = [g for g in groups if g.form in ("chinchilla", "frontier")]
        if not self.groups:
            raise ScalelabError(f"fit {self.fit.path or ''} has no chinchilla or frontier groups to plan from: "
                                "fit with the (N, D) law (default form)")
        self.families: dict[str, Any] = {}
        self.rules: dict[str, Optional[ShapeRule]] = {}
        for g in self.groups:
            cfgs = _run_models(g) if self.fit.convention in ("flops", "flops_6nd") else []
            key = _n_key(g)
            if cfgs and not (self.fit.convention == "flops_6nd" and key == "params_nonembed"):
                rule = ShapeRule.from_runs(cfgs, multiple=multiple, depth=depth)
                self.rules[g.name] = rule
                self.families[g.name] = ShapeFamily(rule, self.fit.convention, key)
            elif cfgs:  # C = 6 N_nonembed D exactly: closed form, shapes still from the runs
                rule = ShapeRule.from_runs(cfgs, multiple=multiple, depth=depth)
                self.rules[g.name] = rule
                self.families[g.name] = SixND()
                self._shape_family = ShapeFamily(rule, self.fit.convention, key)
            else:
                self.rules[g.name] = None
                self.families[g.name] = SixND()

    # ---- helpers -------------------------------------------------------------------------------
    def fitted_range(self) -> dict[str, dict]:
        return {g.variant: g.range for g in self.groups}

    def c_range(self, g: Group) -> tuple[float, float]:
        c = g.range.get("C")
        if c:
            return float(c[0]), float(c[1])
        fl = [float(r["flops"]) for r in g.runs if r.get("flops")]
        return (min(fl), max(fl)) if fl else (float("nan"), float("nan"))

    def _samples(self, g: Group) -> dict:
        return g.samples

    # ---- one variant ---------------------------------------------------------------------------
    def allocate(self, g: Group, C: float, inference_tokens: float = 0.0, shape: bool = True,
                 check_low: bool = True) -> VariantPlan:
        fam = self.families[g.name]
        cmin, cmax = self.c_range(g)
        if check_low and math.isfinite(cmin) and C < cmin:
            raise ScalelabError(f"budget {C:.3g} FLOPs is below the smallest fitted run of {g.variant} "
                                f"({cmin:.3g} FLOPs): the fit says nothing there; plan for C >= {cmin:.3g}")
        notes: list[str] = []
        extrapolated = math.isfinite(cmax) and C > EXTRAPOLATION_FACTOR * cmax
        if g.form == "frontier":
            return self._allocate_frontier(g, C, fam, cmax, extrapolated)
        point = {k: g.point[k] for k in CHINCHILLA}
        N0, D0, L0, edge0 = optimum({k: np.array([v]) for k, v in point.items()}, fam, C, inference_tokens)
        N0, D0, L0 = float(N0[0]), float(D0[0]), float(L0[0])
        if edge0[0] and isinstance(fam, ShapeFamily):
            if N0 <= math.exp(fam.log_n_bounds[0]) * 1.0001:
                raise ScalelabError(f"budget {C:.3g} FLOPs is below what the smallest {g.variant} model "
                                    f"(d_model {fam.candidates[0].cfg.d_model}) can use well: raise --flops or lower --multiple")
            notes.append("optimum at the largest width tried; N_opt may be larger")
        if not D0 > 0:
            raise ScalelabError(f"budget {C:.3g} FLOPs cannot cover {inference_tokens:.3g} inference tokens for any "
                                f"{g.variant} model: raise --flops or lower --inference-tokens")
        s = self._samples(g)
        N, D, L, _ = optimum(s, fam, C, inference_tokens)
        plan = VariantPlan(
            variant=g.variant, group=g.name, form=g.form, C=C, N_opt=N0, N_int=_interval(N, self.level),
            D_opt=D0, D_int=_interval(D, self.level), tokens_per_param=D0 / N0,
            tpp_int=_interval(D / N, self.level), L_opt=L0, L_int=_interval(L, self.level),
            L_pred_int=self._prediction_interval(g, L), extrapolated=extrapolated, notes=notes,
            L_samples=L, sample_ids=g.sample_ids)
        if shape and self.rules.get(g.name) is not None:
            plan.shape = self.choose_shape(g, plan, inference_tokens)
        return plan

    def _allocate_frontier(self, g: Group, C: float, fam, cmax: float, extrapolated: bool) -> VariantPlan:
        s = g.samples
        Ls = s["E"] + s["K"] * np.power(C, -s["gamma"])
        L0 = g.point["E"] + g.point["K"] * C ** -g.point["gamma"]
        ratios = [float(r["tokens"]) / float(r["params"]) for r in g.runs if r.get("tokens") and r.get("params")]
        nan2 = (float("nan"), float("nan"))
        notes = ["frontier law L(C) = E + K C^-gamma: N_opt and D_opt are not identified by this fit"]
        N0 = D0 = tpp = float("nan")
        if ratios:
            tpp = float(np.median(ratios))
            N0 = _n_for_ratio(fam, C, tpp)
            D0 = C / math.exp(float(fam.log_flops_per_token(math.log(N0))))
            notes.append(f"N and D shown use the runs' median {tpp:.3g} tokens per param (assumed, not fitted)")
        plan = VariantPlan(variant=g.variant, group=g.name, form=g.form, C=C, N_opt=N0, N_int=nan2, D_opt=D0,
                           D_int=nan2, tokens_per_param=tpp, tpp_int=nan2, L_opt=float(L0),
                           L_int=_interval(Ls, self.level), L_pred_int=self._prediction_interval(g, Ls),
                           identified=False, extrapolated=extrapolated, notes=notes, L_samples=Ls,
                           sample_ids=g.sample_ids)
        return plan

    def _prediction_interval(self, g: Group, L: np.ndarray, draws: int = 16) -> tuple[float, float]:
        """One new run's loss: the mean law's sample times exp(residual noise in log-loss)."""
        if not g.residual_sd:
            return _interval(L, self.level)
        rng = np.random.default_rng(self.seed)
        eps = rng.normal(0.0, g.residual_sd, size=(len(L), draws))
        return _interval((L.reshape(-1, 1) * np.exp(eps)).ravel(), self.level)

    # ---- shape ---------------------------------------------------------------------------------
    def choose_shape(self, g: Group, plan: VariantPlan, inference_tokens: float = 0.0) -> Optional[Shape]:
        fam = self.families[g.name]
        fam = fam if isinstance(fam, ShapeFamily) else getattr(self, "_shape_family", None)
        if fam is None or not math.isfinite(plan.N_opt):
            return None
        point = {k: g.point[k] for k in CHINCHILLA} if g.form == "chinchilla" else None
        scored = []  # (loss at the D that spends C exactly, |FLOPs at D_opt / C - 1|, candidate, D)
        for c in fam.candidates_near(plan.N_opt):
            D = plan.C / c.flops_per_token - inference_tokens / 3.0
            if D <= 0:
                continue
            miss = abs(c.flops_per_token * (plan.D_opt + inference_tokens / 3.0) / plan.C - 1)  # lifetime FLOPs
            loss = float(chinchilla_loss(point, c.N, D)) if point else abs(math.log(c.N / plan.N_opt))
            scored.append((loss, miss, c, D))
        if not scored:
            raise ScalelabError(f"no buildable {g.variant} shape near N = {plan.N_opt:.3g}: try another --multiple or --depth")
        # feasible: trained on the ideal D_opt it would spend C within the tolerance
        feasible = [t for t in scored if t[1] <= self.shape_tol]
        if feasible:
            t = min(feasible, key=lambda t: t[0])
            best = (t[0], t[2], t[3])
        else:
            t = min(scored, key=lambda t: t[1])
            best = (t[0], t[2], t[3])
            plan.notes.append(f"no {g.variant} shape within {self.shape_tol:.0%} of the budget at D_opt; "
                              f"closest is {t[1]:.1%} off (try --multiple 32 or --depth)")
        loss, c, D = best
        from scalelab import flops as F

        counts = F.param_counts(c.cfg)
        if point:
            Ls = chinchilla_loss(g.samples, c.N, D)
            loss_int = _interval(Ls, self.level)
        else:
            loss, loss_int = plan.L_opt, plan.L_int
        return Shape(config=c.cfg, params=c.N, params_total=float(counts.params), flops_per_token=c.flops_per_token,
                     tokens=float(D), flops_at_D_opt=c.flops_per_token * plan.D_opt, n_rel=c.N / plan.N_opt - 1,
                     d_rel=D / plan.D_opt - 1,
                     flops_at_D_opt_rel=c.flops_per_token * (plan.D_opt + inference_tokens / 3.0) / plan.C - 1,
                     loss=float(loss), loss_int=loss_int, ffn_fraction=ffn_fraction(c.cfg))

    # ---- wall clock ----------------------------------------------------------------------------
    def throughput(self, g: Group, gpu: str, mfu: Optional[float] = None) -> tuple[Optional[float], str]:
        """FLOP/s this variant achieves on `gpu`, from its runs' measured tokens/s or MFU."""
        gpu = gpu.lower()
        if gpu not in PEAK_FLOPS:
            raise ScalelabError(f"unknown --gpu {gpu!r}: use one of {', '.join(PEAK_FLOPS)}")
        peak = PEAK_FLOPS[gpu]
        if mfu is not None:
            if peak is None:
                raise ScalelabError("--mfu needs an accelerator with a known peak: use --gpu h100|h200|a100")
            return peak * mfu, f"assumed MFU {mfu:.0%}"
        rate = self._measured_rate(g)
        runs = sorted((r for r in g.runs if r.get("params")), key=lambda r: -float(r["params"]))[:3]
        devices = {str(r.get("device") or "").lower() for r in runs}
        if rate is not None and any(gpu in d for d in devices):
            return rate, f"measured on {gpu}"
        mfus = [float(r["mfu"]) for r in runs if r.get("mfu") is not None and math.isfinite(float(r["mfu"]))
                and float(r["mfu"]) > 0 and not any(x in str(r.get("device") or "").lower() for x in ("cpu",))]
        if peak is None:
            if rate is None:
                return None, "no measured throughput in the fit's runs"
            return rate, "measured (" + ", ".join(sorted(d for d in devices if d)) + ")"
        if mfus:
            return peak * float(np.median(mfus)), f"MFU {np.median(mfus):.0%} measured on {', '.join(sorted(devices))}"
        if rate is None:
            return peak * DEFAULT_MFU, f"assumed MFU {DEFAULT_MFU:.0%} (no measurements in the runs)"
        # measured elsewhere (e.g. CPU): keep each variant's speed relative to the fastest-per-FLOP dense run
        ref = [self._measured_rate(h) for h in self.groups if h.variant.split("+")[0] == "dense"]
        ref = [r for r in ref if r]
        base = ref[0] if ref else rate
        return peak * DEFAULT_MFU * rate / base, (f"MFU {DEFAULT_MFU:.0%} assumed for dense, scaled by this "
                                                   f"variant's measured FLOP/s relative to dense ({rate / base:.2f}x)")

    def _measured_rate(self, g: Group) -> Optional[float]:
        """Achieved training FLOP/s (tokens/s x FLOPs per token) of the largest run that measured it:
        the shape closest to the target, and the longest, steadiest measurement."""
        runs = sorted((r for r in g.runs if r.get("params")), key=lambda r: -float(r["params"]))
        for r in runs:
            tps, fl, tok = r.get("tokens_per_s"), r.get("flops"), r.get("tokens")
            if tps and fl and tok and math.isfinite(float(tps)) and float(tps) > 0:
                return float(tps) * float(fl) / float(tok)
        return None

    # ---- inverse: compute to reach a loss ------------------------------------------------------
    def compute_for_loss(self, g: Group, target: float) -> dict:
        """Smallest C whose optimal loss reaches `target`, point and interval (inf where unreachable)."""
        fam = self.families[g.name]

        def solve(p: dict) -> np.ndarray:
            p = {k: np.atleast_1d(np.asarray(v, float)) for k, v in p.items()}
            if g.form == "frontier":
                with np.errstate(invalid="ignore", divide="ignore"):
                    C = np.power((target - p["E"]) / p["K"], -1.0 / p["gamma"])
                return np.where(target > p["E"], C, np.inf)
            if isinstance(fam, SixND):
                a, b = p["alpha"], p["beta"]
                G = np.power(a * p["A"] / (b * p["B"]), 1 / (a + b))
                k = p["A"] * G ** -a + p["B"] * G ** b
                with np.errstate(invalid="ignore", divide="ignore"):
                    C = 6 * np.power((target - p["E"]) / k, -(a + b) / (a * b))
                return np.where(target > p["E"], C, np.inf)
            # bisection in log C, all samples at once: L_opt(C) decreases in C
            S = len(p["E"])
            lo, hi = np.full(S, math.log(1e6)), np.full(S, math.log(1e40))
            for _ in range(50):
                mid = (lo + hi) / 2
                _, _, L, _ = optimum(p, fam, np.exp(mid))
                above = L > target
                lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
            C = np.exp(hi)
            return np.where(target > p["E"], C, np.inf)

        names = CHINCHILLA if g.form == "chinchilla" else FRONTIER
        C0 = float(solve({k: g.point[k] for k in names})[0])
        Cs = solve(g.samples)
        q = (1 - self.level) / 2 * 100
        # an unreachable tail (inf) makes hi inf; percentile interpolation cannot take inf itself
        lo, hi = np.percentile(np.minimum(Cs, 1e300), [q, 100 - q])
        lo, hi = (math.inf if x >= 1e300 else x for x in (lo, hi))
        return {"target_loss": target, "C": C0, "C_int": (float(lo), float(hi)),
                "p_unreachable": float(np.mean(~np.isfinite(Cs)))}


def ffn_fraction(cfg: ModelConfig) -> Optional[float]:
    """Params of one structured FFN (both linears, no bias) over the dense FFN they replace."""
    s, n, m = cfg.ffn, cfg.d_model, cfg.ffn_width
    if s.kind == "dense":
        return None

    def count(n_in, n_out):
        if s.kind == "lowrank":
            return s.rank * (n_in + n_out)
        if s.kind == "blockdense":
            return s.rank * n_in // s.blocks + s.rank * n_out
        return min(n_in, n_out) * (n_in + n_out) // s.blocks

    return (count(n, m) + count(m, n)) / (2 * n * m)


def _p_beats(a: VariantPlan, b: VariantPlan, paired: bool) -> float:
    """P(L_a < L_b) over bootstrap samples: paired by sample index for joint fits, else all pairs."""
    La, Lb = a.L_samples, b.L_samples
    if paired:
        ia = {int(s): i for i, s in enumerate(a.sample_ids)}
        idx = [(ia[int(s)], j) for j, s in enumerate(b.sample_ids) if int(s) in ia]
        if idx:
            i, j = np.array(idx).T
            return float(np.mean(La[i] < Lb[j]))
    Lb_sorted = np.sort(Lb)
    # for each L_a, the share of L_b strictly above it
    return float(np.mean(1.0 - np.searchsorted(Lb_sorted, La, side="right") / len(Lb_sorted)))


def _finish(planner: Planner, plans: list[VariantPlan], C: Optional[float], warnings: list[str], **kw) -> PlanResult:
    plans.sort(key=lambda p: p.L_opt)
    p = _p_beats(plans[0], plans[1], planner.fit.joint) if len(plans) > 1 else None
    for pl in plans:
        g = planner.fit.groups[pl.group]
        cmin, cmax = planner.c_range(g)
        if pl.extrapolated:
            warnings.append(f"{pl.variant}: C = {pl.C:.3g} is {pl.C / cmax:.0f}x the largest fitted run "
                            f"({cmax:.3g} FLOPs): extrapolation, trust the interval more than the point")
        if pl.shape is not None and abs(pl.shape.n_rel) > 0.1:
            pl.notes.append(f"nearest good shape has {pl.shape.n_rel:+.0%} params vs N_opt")
    warnings += planner.skipped
    return PlanResult(C=C, plans=plans, p_beats=p, paired=planner.fit.joint, level=planner.level,
                      convention=planner.fit.convention, fit_path=planner.fit.path,
                      fitted_range=planner.fitted_range(), warnings=warnings, **kw)


def _unique_tokens(g: Group, given: Optional[float]) -> Optional[float]:
    if given:
        return given
    for r in g.runs:
        for k in ("unique_tokens", "corpus_tokens"):
            if r.get(k):
                return float(r[k])
    return None


def plan_budget(fit: Any, flops: Optional[float] = None, *, variants: Optional[Sequence[str]] = None,
                gpu_hours: Optional[float] = None, gpu: Optional[str] = None, mfu: Optional[float] = None,
                inference_tokens: float = 0.0, target_loss: Optional[float] = None, multiple: int = 64,
                depth: Optional[int] = None, unique_tokens: Optional[float] = None, shape: bool = True,
                samples: Any = None, seed: int = 0) -> PlanResult:
    """Plan every variant of `fit` at `flops` training FLOPs (or `gpu_hours` on `gpu`).

    fit: fits/NAME.json path, its dict, or a FitResults. Returns a PlanResult ranked by predicted loss.
    """
    planner = fit if isinstance(fit, Planner) else Planner(fit, variants, multiple, depth, samples, seed)
    if flops is None and gpu_hours is None and target_loss is None:
        raise ScalelabError("give a budget: --flops C, --gpu-hours H, or --target-loss L")
    if flops is not None and not (flops > 0 and math.isfinite(flops)):
        raise ScalelabError(f"--flops {flops} must be a positive number of FLOPs, e.g. 1e21")
    if gpu_hours is not None and not gpu_hours > 0:
        raise ScalelabError(f"--gpu-hours {gpu_hours} must be positive")
    if inference_tokens < 0:
        raise ScalelabError(f"--inference-tokens {inference_tokens} must be >= 0")
    warnings: list[str] = []
    plans: list[VariantPlan] = []
    for g in planner.groups:
        rate, source = planner.throughput(g, gpu or "h100", mfu) if (gpu_hours is not None or gpu) else (None, "")
        if flops is not None:
            C = flops
        elif gpu_hours is not None:
            if rate is None:
                raise ScalelabError(f"{g.variant}: no throughput to turn GPU-hours into FLOPs: pass --mfu or --flops")
            C = gpu_hours * 3600 * rate
        else:
            C = None
        if C is None:  # target loss only
            info = planner.compute_for_loss(g, target_loss)
            C = info["C"] if math.isfinite(info["C"]) else planner.c_range(g)[1]
            pl = planner.allocate(g, C, inference_tokens, shape=shape, check_low=False)
        else:
            pl = planner.allocate(g, C, inference_tokens, shape=shape)
        if target_loss is not None:
            pl.target = planner.compute_for_loss(g, target_loss)
            if rate:
                pl.target["gpu_hours"] = pl.target["C"] / rate / 3600
        if rate:
            pl.throughput, pl.throughput_source = rate, source
            pl.gpu_hours = pl.C / rate / 3600
        if inference_tokens and g.form == "chinchilla":
            co = planner.allocate(g, C, 0.0, shape=False, check_low=False)
            fam = planner.families[g.name]
            f_co = math.exp(float(fam.log_flops_per_token(math.log(co.N_opt))))
            D_co = C / f_co - inference_tokens / 3.0  # same lifetime budget with the compute-optimal N
            L_co = float(chinchilla_loss(g.point, co.N_opt, D_co)) if D_co > 0 else float("inf")
            f_pl = math.exp(float(fam.log_flops_per_token(math.log(pl.N_opt))))
            pl.inference = {"inference_tokens": inference_tokens, "lifetime_flops": pl.C,
                            "train_flops": f_pl * pl.D_opt, "inference_flops": f_pl / 3.0 * inference_tokens,
                            "compute_optimal_N": co.N_opt, "compute_optimal_tokens_per_param": co.tokens_per_param,
                            "tokens_per_param_over_compute_optimal": pl.tokens_per_param / co.tokens_per_param,
                            "N_over_compute_optimal": pl.N_opt / co.N_opt,
                            "loss_if_compute_optimal_N": L_co}
        ut = _unique_tokens(g, unique_tokens)
        if ut and math.isfinite(pl.D_opt) and pl.D_opt > ut:
            warnings.append(f"{g.variant}: D_opt = {pl.D_opt:.3g} tokens exceeds the corpus's {ut:.3g} unique "
                            f"tokens: data would repeat ({pl.D_opt / ut:.1f} epochs)")
        plans.append(pl)
    return _finish(planner, plans, flops, warnings, gpu=(gpu or "h100") if (gpu_hours or gpu) else None,
                   gpu_hours=gpu_hours, inference_tokens=inference_tokens, target_loss=target_loss)


def sweep(fit: Any, c_min: float, c_max: float, n: int = 9, *, variants: Optional[Sequence[str]] = None,
          samples: Any = None, inference_tokens: float = 0.0):
    """Allocation over log-spaced budgets -> DataFrame (variant, C, N_opt, N_lo, N_hi, D_opt, D_lo, D_hi,
    L_opt, L_lo, L_hi, extrapolated). Shapes are not chosen. Budgets below the fitted range are allowed
    here and flagged as extrapolated, like those more than 10x above it.
    """
    import pandas as pd

    if not (0 < c_min <= c_max) or n < 1:
        raise ScalelabError(f"sweep needs 0 < c_min <= c_max and n >= 1, got {c_min:g}:{c_max:g} with {n} points")
    planner = fit if isinstance(fit, Planner) else Planner(fit, variants, samples=samples)
    rows = []
    for C in np.geomspace(c_min, c_max, n):
        for g in planner.groups:
            p = planner.allocate(g, float(C), inference_tokens, shape=False, check_low=False)
            cmin, _ = planner.c_range(g)
            rows.append(dict(variant=p.variant, C=float(C), N_opt=p.N_opt, N_lo=p.N_int[0], N_hi=p.N_int[1],
                             D_opt=p.D_opt, D_lo=p.D_int[0], D_hi=p.D_int[1], L_opt=p.L_opt, L_lo=p.L_int[0],
                             L_hi=p.L_int[1], extrapolated=bool(p.extrapolated or (math.isfinite(cmin) and C < cmin))))
    return pd.DataFrame(rows, columns=["variant", "C", "N_opt", "N_lo", "N_hi", "D_opt", "D_lo", "D_hi",
                                       "L_opt", "L_lo", "L_hi", "extrapolated"])
