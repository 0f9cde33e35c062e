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


def equal_flops_ratio(cfg: ModelConfig) -> float:
    """r of the seeds' equal-FLOPs self-guided mode: C_struct (1 + r) + 0.5 r C_guide = C_dense.

    Guide the first r of the token budget (cosine alpha: the guide path costs 0.5 C_guide on average
    over the window) and replay that data at the end, so the total matches the dense model's FLOPs.
    """
    c_struct = flops_per_token(dataclasses.replace(cfg, guide=None))
    c_dense = flops_per_token(dense_counterpart(cfg))
    g = cfg if cfg.guide is not None else dataclasses.replace(cfg, guide=GuideConfig())
    c_guide = guide_flops_per_token(g)
    return (c_dense - c_struct) / (c_struct + 0.5 * c_guide)


def guide_train_flops(cfg: ModelConfig, tokens: float) -> float:
    """Expected extra FLOPs of the self-guided dense path over a run of `tokens` tokens.

    The dense path runs over the first guide.fraction of the steps; with reduce_flop it runs with
    probability alpha, and the cosine alpha averages 1/2 over that window.
    """
    if cfg.guide is None:
        return 0.0
    share = cfg.guide.fraction * (0.5 if cfg.guide.reduce_flop else 1.0)
    return guide_flops_per_token(cfg) * share * float(tokens)


def train_flops(cfg: ModelConfig, tokens: float) -> float:
    """Training FLOPs of a run of `tokens` tokens: flops_per_token x tokens + the guide overhead."""
    return flops_per_token(cfg) * float(tokens) + guide_train_flops(cfg, tokens)
