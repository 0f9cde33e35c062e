"""Analytic parameter counts and training FLOPs of a ModelConfig. Torch-free.

Params: exactly `sum(p.numel())` of `scalelab.model.gpt.GPT(cfg)` (tests hold this), with
- the tied token embedding counted once, at the *padded* vocab (`cfg.padded_vocab`), since that is the
  tensor the model allocates; `params_nonembed` = params minus that embedding;
- the self-guided dense matrices (training-time auxiliaries that vanish once alpha = 0) NOT counted in
  `params`; they are reported apart as `guide_params`;
- `ffn_params`: every FFN weight and bias in every block (block 0 included).

FLOPs, the seeds' convention (Wei et al. 2406.16450):
    forward per token  = 2 x (every matmul weight: attention projections, FFN factors, the logits'
                         d_model x padded_vocab) + 2 x 2 x seq_len x d_attn per layer (QK^T and AV,
                         no causal halving)
    training per token = 3 x forward
Norms, activations, softmax, RoPE and the embedding lookup are not counted. Self-guided training adds
`guide_flops_per_token(cfg)` (3 x 2 x the dense guide matrices) while the guide path runs; under
`reduce_flop` the expected extra is alpha x that. `flops_per_token` excludes it: the runner adds it per
step because it depends on alpha.
`flops_6n_per_token` = 6 x params_nonembed (Kaplan / Chinchilla), for comparison.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from scalelab import structures
from scalelab.config import GuideConfig, ModelConfig, StructureConfig


@dataclass(frozen=True)
class ParamCounts:
    params: int  # everything the model trains and keeps (tied embedding once, padded vocab)
    params_nonembed: int  # params minus the token embedding
    ffn_params: int  # all FFN weights and biases, every block
    guide_params: int = 0  # self-guided dense matrices (not in params)
    attn_params: int = 0  # attention projections, weights and biases
    embed_params: int = 0  # padded_vocab x d_model

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


structured_params = structures.params  # weight params of one n_in -> n_out linear (bias excluded)


_DENSE = StructureConfig("dense")


def _ffn_linears(cfg: ModelConfig, layer: int) -> list[tuple[StructureConfig, int, int]]:
    """(structure, n_in, n_out) of the FFN linears of one block."""
    d, f = cfg.d_model, cfg.ffn_width
    s = _DENSE if (layer == 0 and cfg.dense_first_ffn) else cfg.ffn
    ups = 2 if cfg.activation == "swiglu" else 1  # swiglu: gate and up
    return [(s, d, f)] * ups + [(s, f, d)]


def _attn_linears(cfg: ModelConfig) -> list[tuple[StructureConfig, int, int]]:
    """(structure, n_in, n_out) of Q, K, V, O."""
    d, a, kv = cfg.d_model, cfg.attn_width, cfg.kv_heads * cfg.head_dim
    s = StructureConfig("lowrank", rank=cfg.attn_rank) if cfg.attn == "lpa" else _DENSE
    return [(s, d, a), (s, d, kv), (s, d, kv), (s, a, d)]


def _guided(cfg: ModelConfig, layer: int) -> list[tuple[int, int]]:
    """(n_in, n_out) of the layers that carry a dense guide matrix under self-guided training."""
    if cfg.guide is None:
        return []
    out = [(n, m) for s, n, m in _ffn_linears(cfg, layer) if s.kind != "dense"]
    if cfg.attn == "lpa":
        out += [(n, m) for _, n, m in _attn_linears(cfg)]
    return out


def param_counts(cfg: ModelConfig) -> ParamCounts:
    d, L = cfg.d_model, cfg.n_layers
    ln = (2 if cfg.bias else 1) * d  # LayerNorm weight (+ bias)
    bias = 1 if cfg.bias else 0
    attn = ffn = guide = 0
    for layer in range(L):
        attn += sum(structured_params(s, n, m) + bias * m for s, n, m in _attn_linears(cfg))
        ffn += sum(structured_params(s, n, m) + bias * m for s, n, m in _ffn_linears(cfg, layer))
        guide += sum(n * m for n, m in _guided(cfg, layer))
    embed = cfg.padded_vocab * d
    norms = (2 * L + 1) * ln
    total = embed + attn + ffn + norms
    return ParamCounts(
        params=total,
        params_nonembed=total - embed,
        ffn_params=ffn,
        guide_params=guide,
        attn_params=attn,
        embed_params=embed,
    )


def forward_flops_per_token(cfg: ModelConfig) -> float:
    """Forward FLOPs per token (seeds' convention, see module doc)."""
    linears = 0  # every linear's forward FLOPs (2 x its weights for every kind so far)
    for layer in range(cfg.n_layers):
        linears += sum(structures.forward_flops(s, n, m) for s, n, m in _attn_linears(cfg))
        linears += sum(structures.forward_flops(s, n, m) for s, n, m in _ffn_linears(cfg, layer))
    logits = 2 * cfg.d_model * cfg.padded_vocab
    attn_scores = cfg.n_layers * 4 * cfg.seq_len * cfg.attn_width  # QK^T and AV, full T x T
    return float(linears + logits + attn_scores)


def flops_per_token(cfg: ModelConfig) -> float:
    """Training FLOPs per token, seeds' convention: 3 x forward (guide path excluded)."""
    return 3.0 * forward_flops_per_token(cfg)


def flops_6n_per_token(cfg: ModelConfig) -> float:
    """6 x non-embedding params (Kaplan / Chinchilla convention)."""
    return 6.0 * param_counts(cfg).params_nonembed


def guide_flops_per_token(cfg: ModelConfig) -> float:
    """Extra training FLOPs per token while every guide path runs (3 x 2 x dense guide weights).

    Zero without self-guidance. Under reduce_flop the expected extra at a given alpha is alpha x this.
    """
    return 6.0 * float(sum(n * m for layer in range(cfg.n_layers) for n, m in _guided(cfg, layer)))


def dense_counterpart(cfg: ModelConfig) -> ModelConfig:
    """The same shape with dense FFNs and dense (non-LPA) attention, no guide."""
    attn = "mha" if cfg.attn == "lpa" else cfg.attn
    if attn == "mha" and cfg.kv_heads != cfg.n_heads:
        attn = "gqa"
    return dataclasses.replace(cfg, ffn=_DENSE, attn=attn, attn_rank=None, guide=None)


def _guide_duty(cfg: ModelConfig) -> float:
    """Mean share of the guide window in which the dense path runs: the cosine alpha averages 1/2, and
    under reduce_flop the path runs with probability alpha; without it, on every step of the window."""
    g = cfg.guide if cfg.guide is not None else GuideConfig()
    return 0.5 if g.reduce_flop else 1.0


def equal_flops_ratio(cfg: ModelConfig) -> float:
    """r of the seeds' equal-FLOPs self-guided mode: C_struct (1 + r) + duty r C_guide = C_dense.

    Guide the first r of the token budget and replay that data at the end, so the total matches the
    dense model's FLOPs. duty = 1/2 under reduce_flop (the dense path runs with probability alpha,
    cosine alpha averages 1/2), 1 without it (the dense path runs on every step of the window): the
    seeds' formula assumes reduce_flop; using it without would spend 7-12% more than dense.
    """
    c_struct = flops_per_token(dataclasses.replace(cfg, guide=None))
    c_dense = flops_per_token(dense_counterpart(cfg))
    g = cfg if cfg.guide is not None else dataclasses.replace(cfg, guide=GuideConfig())
    c_guide = guide_flops_per_token(g)
    return (c_dense - c_struct) / (c_struct + _guide_duty(g) * c_guide)


def equal_flops_replay(cfg: ModelConfig, steps: int) -> int:
    """Replay (= guide window) steps n of an equal-FLOPs run of `steps` budget steps: the integer n whose
    expected cost C_struct (S + n) + C_guide G(n) is closest to C_dense S, with the discrete sums of the
    cosine alpha over n steps, G(n) = (n + 1) / 2 under reduce_flop (sum of alpha) and n without."""
    c_struct = flops_per_token(dataclasses.replace(cfg, guide=None))
    c_dense = flops_per_token(dense_counterpart(cfg))
    c_guide = guide_flops_per_token(cfg)
    rf = cfg.guide is not None and cfg.guide.reduce_flop

    def gap(n: int) -> float:
        return abs(c_struct * (steps + n) + c_guide * ((n + 1) / 2 if rf else n) - c_dense * steps)

    n0 = equal_flops_ratio(cfg) * steps
    return min((max(1, int(math.floor(n0)) + k) for k in (-1, 0, 1, 2)), key=gap)


def guide_share(cfg: ModelConfig) -> float:
    """Share of a run's trained tokens (replay included) during which the guide path is active."""
    if cfg.guide is None:
        return 0.0
    if cfg.guide.equal_flops:
        r = equal_flops_ratio(cfg)
        return r / (1 + r)  # the window is r S of the (1 + r) S steps
    return cfg.guide.fraction


def guide_train_flops(cfg: ModelConfig, tokens: float) -> float:
    """Expected extra FLOPs of the self-guided dense path over a run that trains `tokens` tokens (as the
    run store counts them: replayed tokens included)."""
    if cfg.guide is None:
        return 0.0
    return guide_flops_per_token(cfg) * guide_share(cfg) * _guide_duty(cfg) * float(tokens)


def train_flops(cfg: ModelConfig, tokens: float) -> float:
    """THE training-FLOP count of a run that trains `tokens` tokens (the run store's `tokens`, replay
    included), for runs, plans and bench alike: flops_per_token x tokens + the expected guide overhead.
    In equal-FLOPs mode this equals the dense counterpart's cost of tokens / (1 + r) budget tokens."""
    return flops_per_token(cfg) * float(tokens) + guide_train_flops(cfg, tokens)


def trained_tokens(cfg: ModelConfig, budget_tokens: float) -> float:
    """Tokens a run of `budget_tokens` budget trains (equal-FLOPs mode replays r of them at the end)."""
    if cfg.guide is not None and cfg.guide.equal_flops:
        return (1 + equal_flops_ratio(cfg)) * float(budget_tokens)
    return float(budget_tokens)


def budget_flops(cfg: ModelConfig, budget_tokens: float) -> float:
    """Training FLOPs of a run whose token budget is `budget_tokens` (what a grid's budgets name)."""
    return train_flops(cfg, trained_tokens(cfg, budget_tokens))
