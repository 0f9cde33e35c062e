"""FLOPs per token along a variant's family of shapes: the aspect rule of the fit's runs, exact counts
from scalelab/flops.py, and the candidates a plan chooses its concrete model from."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from scalelab import shapes, structures
from scalelab.config import ModelConfig
from scalelab.errors import ScalelabError


class SixND:
    """C = k N D, k = 6: the plain convention of CSV fits (and flops_6nd when N excludes embeddings).

    Other k: fits whose C is some other count but whose runs carry no model configs; k is then the
    runs' median C / (N D), so the closed form still applies.
    """

    log_n_bounds = (math.log(1e2), math.log(1e17))

    def __init__(self, k: float = 6.0):
        self.k = float(k)
        self.name = "6ND" if self.k == 6.0 else f"C = {self.k:.3g} N D"

    def log_flops_per_token(self, logN):
        return math.log(self.k) + logN


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
        return cls(
            template=t,
            layers_coef=math.exp(c),
            layers_exp=k,
            head_dim=t.head_dim,
            ff_ratio=t.ffn_width / t.d_model,
            attn_ratio=(t.attn_width / t.d_model) if t.d_attn is not None else None,
            kv_ratio=max(1, t.n_heads // t.kv_heads),
            attn_rank_ratio=(t.attn_rank / t.d_model) if t.attn == "lpa" and t.attn_rank else None,
            multiple=multiple,
            depth=depth,
        )

    def describe(self) -> str:
        if self.depth is not None:
            depth = f"n_layers = {self.depth} (fixed)"
        elif self.layers_exp == 0:
            depth = f"n_layers = {self.layers_coef:.0f} (constant in the fitted grid)"
        else:
            depth = f"n_layers = {self.layers_coef:.3g} d_model^{self.layers_exp:.2f}"
        return (
            f"{depth}; head_dim {self.head_dim}; d_ff = {self.ff_ratio:.3g} d_model; "
            f"d_model multiple of {self.multiple}"
        )

    def layers_for(self, d: int) -> int:
        return shapes.n_layers(d, fixed=self.depth, coef=self.layers_coef, exp=self.layers_exp)

    def make(self, d_model: int, n_layers: Optional[int] = None) -> ModelConfig:
        """The family's config at width d_model (scalelab.shapes); raises ScalelabError if it cannot be built."""
        t = self.template
        L = self.layers_for(d_model) if n_layers is None else n_layers
        d_attn = None if self.attn_ratio is None else shapes.attn_width(d_model, self.attn_ratio, self.head_dim)
        n_heads = shapes.n_heads(d_attn or d_model, self.head_dim)
        d_ff = shapes.ffn_width(d_model, self.ff_ratio, multiple=32)
        changes: dict[str, Any] = dict(
            d_model=d_model,
            n_layers=L,
            n_heads=n_heads,
            d_ff=d_ff,
            d_attn=d_attn,
            n_kv_heads=shapes.kv_heads(n_heads, self.kv_ratio) if self.kv_ratio > 1 else None,
        )
        if self.attn_rank_ratio is not None:
            changes["attn_rank"] = max(2, int(round(self.attn_rank_ratio * d_model / 8)) * 8)
        if t.ffn.kind != "dense":
            changes["ffn"] = _structure_for(t, d_model, d_ff)
        return t.replace(**changes).validate()


def _structure_for(t: ModelConfig, d_model: int, d_ff: int):
    """The variant's FFN structure at a new width, keeping its parameter fraction."""
    s = t.ffn
    if s.fraction is not None:
        new = structures.for_fraction(s.kind, d_model, d_ff, s.fraction)
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
            raise ScalelabError(
                f"cannot build models of the {rule.template.variant} family at any width: check the fit's run configs"
            )
        cands.sort(key=lambda c: c.N)
        self.candidates = cands
        logN = np.log([c.N for c in cands])
        keep = np.concatenate([[True], np.diff(logN) > 0])
        self._logN = logN[keep]
        self._logF = np.log([c.flops_per_token for c in cands])[keep]
        self._logd = np.log([c.cfg.d_model for c in cands])[keep]
        self.log_n_bounds = (float(self._logN[0]), float(self._logN[-1]))

    def log_flops_per_token(self, logN):
        # piecewise linear in log-log between buildable shapes (the minimiser stays within their range)
        return np.interp(logN, self._logN, self._logF)

    def d_model_for(self, N: float) -> float:
        return float(np.exp(np.interp(math.log(N), self._logN, self._logd)))

    def candidates_near(self, N: float) -> list[Candidate]:
        """Buildable shapes around the ideal N: nearby widths x nearby depths."""

        r = self.rule
        d0 = self.d_model_for(N)
        base = int(round(d0 / r.multiple))
        out: list[Candidate] = []
        seen = set()
        for k in range(max(1, base - 6), base + 7):
            d = k * r.multiple
            L0 = r.layers_for(d)
            # the rule, +-1 to fit the budget; a grid that held depth constant keeps it (a law fitted at one
            # depth says nothing about other depths)
            fixed = r.depth is not None or r.layers_exp == 0
            depths = [L0] if fixed else range(max(1, L0 - 1), L0 + 2)
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


def ffn_fraction(cfg: ModelConfig) -> Optional[float]:
    """Params of one structured FFN (both linears, no bias) over the dense FFN they replace."""
    if cfg.ffn.kind == "dense":
        return None
    return structures.ffn_fraction(cfg.ffn, cfg.d_model, cfg.ffn_width)
