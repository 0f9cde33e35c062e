"""A nanoGPT-style GPT with structured FFNs and structured attention options.

Pre-norm LayerNorm blocks, RoPE (rotate-half, base cfg.rope_base), causal SDPA attention with GQA
(n_kv_heads) and its own width d_attn (n_heads x head_dim), LPA attention (Lv et al. 2411.02063:
each of Q, K, V, O is d -> r -> d with nothing between), an FFN (gelu-tanh / relu / swiglu) whose
linears take any structure of `scalelab.model.linear` (block 0's FFN dense when cfg.dense_first_ffn), tied
input/output embeddings over a vocab padded to cfg.padded_vocab (loss and logits over the real vocab),
optional biases, no dropout. Init N(0, cfg.init_std^2) on dense linears and the embedding; structured
layers use the seeds' inits. Self-guided training (cfg.guide) wraps every structured linear in
`GuidedLinear`. cfg.param = "mup" (scalelab/mup.py): every tensor re-drawn with its muP std, logits x
b / d_model, attention scale 1 / (sqrt(d_head) sqrt(d_model / b)), and AdamW groups with lr multipliers.

Parameter count = scalelab.flops.param_counts(cfg).params (+ guide_params when guided).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from scalelab import mup
from scalelab.config import ModelConfig, StructureConfig
from scalelab.model.guided import GuidedLinear
from scalelab.model.linear import Dense, LowRank, make_linear

_DENSE = StructureConfig("dense")


def _linear(cfg: ModelConfig, struct: StructureConfig, n_in: int, n_out: int, lpa: bool = False) -> nn.Module:
    layer = make_linear(struct, n_in, n_out, bias=cfg.bias, init_std=cfg.init_std)
    if lpa and cfg.lpa_init == "default":
        assert isinstance(layer, LowRank)  # Attention builds LPA's projections low-rank
        _lpa_default_init(layer)
    if cfg.guide is not None and struct.kind != "dense":
        return GuidedLinear(layer, reduce_flop=cfg.guide.reduce_flop)
    return layer


@torch.no_grad()
def _lpa_default_init(layer: LowRank) -> None:
    """LPA's init (its code builds each projection as nn.Linear(d, r) then nn.Linear(r, d)): PyTorch's
    nn.Linear default per factor, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for V (fan_in d) and U (fan_in r).
    scalelab's one bias sits after the second factor (none between the factors); it gets nn.Linear's
    default for that factor, U(-1/sqrt(r), 1/sqrt(r))."""
    for w in (layer.V, layer.U):
        bound = 1.0 / math.sqrt(w.shape[1])
        nn.init.uniform_(w, -bound, bound)  # = kaiming_uniform_(a=sqrt(5)), nn.Linear's default
    if layer.bias is not None:
        bound = 1.0 / math.sqrt(layer.U.shape[1])
        nn.init.uniform_(layer.bias, -bound, bound)


def rope_cache(seq_len: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (seq_len, head_dim) for rotate-half RoPE."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    t = torch.arange(seq_len, dtype=torch.float32)
    freqs = torch.outer(t, inv_freq)  # (T, hd/2)
    emb = torch.cat([freqs, freqs], dim=-1)  # (T, hd)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, T, hd); rotate pairs (i, i + hd/2) by position-dependent angles."""
    x1, x2 = x.chunk(2, dim=-1)
    rot = torch.cat([-x2, x1], dim=-1)
    return (x * cos + rot * sin).to(x.dtype)


def _sdpa_gqa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Causal SDPA with fewer KV heads: enable_gqa where torch has it (>= 2.5), else repeat K and V."""
    try:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True, scale=scale)
    except TypeError:  # pragma: no cover - old torch
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)


class Attention(nn.Module):
    """Causal self-attention: n_heads query heads, n_kv_heads key/value heads, width d_attn."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, a = cfg.d_model, cfg.attn_width
        self.n_heads, self.kv_heads, self.head_dim = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        self.scale = mup.attn_scale(cfg)  # None: SDPA's 1 / sqrt(hd) (SP); muP ~ 1 / hd
        kv = self.kv_heads * self.head_dim
        self.splits = (a, kv, kv)
        if cfg.attn == "lpa":
            s = StructureConfig("lowrank", rank=cfg.attn_rank)
            self.q = _linear(cfg, s, d, a, lpa=True)
            self.k = _linear(cfg, s, d, kv, lpa=True)
            self.v = _linear(cfg, s, d, kv, lpa=True)
            self.qkv = None
        else:
            # one fused dense projection: same params and FLOPs as three, one matmul
            self.qkv = Dense(d, a + 2 * kv, bias=cfg.bias, init_std=cfg.init_std)
        self.o = (
            _linear(cfg, s, a, d, lpa=True) if cfg.attn == "lpa" else Dense(a, d, bias=cfg.bias, init_std=cfg.init_std)
        )

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        if self.qkv is not None:
            q, k, v = self.qkv(x).split(self.splits, dim=-1)
        else:
            q, k, v = self.q(x), self.k(x), self.v(x)
        q = q.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        k = k.view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, T, hd)
        v = v.view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.kv_heads != self.n_heads:  # GQA: each KV head serves n_heads / n_kv_heads query heads
            y = _sdpa_gqa(q, k, v, self.scale)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)  # (B, H, T, hd)
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)
        return self.o(y)


class FFN(nn.Module):
    """up (d -> d_ff), activation, down (d_ff -> d); swiglu adds a gate (d -> d_ff)."""

    def __init__(self, cfg: ModelConfig, struct: StructureConfig):
        super().__init__()
        d, f = cfg.d_model, cfg.ffn_width
        self.activation = cfg.activation
        self.up = _linear(cfg, struct, d, f)
        self.gate = _linear(cfg, struct, d, f) if cfg.activation == "swiglu" else None
        self.down = _linear(cfg, struct, f, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)
        if self.activation == "gelu":
            h = F.gelu(h, approximate="tanh")
        elif self.activation == "relu":
            h = F.relu(h)
        else:
            assert self.gate is not None  # made for swiglu, the only other activation
            h = F.silu(self.gate(x)) * h
        return self.down(h)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        struct = _DENSE if (layer == 0 and cfg.dense_first_ffn) else cfg.ffn
        self.ln_1 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.attn = Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.ffn = FFN(cfg, struct)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.ln_1(x), cos, sin)
        return x + self.ffn(self.ln_2(x))


class GPT(nn.Module):
    rope_cos: torch.Tensor  # buffers (registered in __init__), declared for the type checker
    rope_sin: torch.Tensor

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.padded_vocab, cfg.d_model)
        nn.init.normal_(self.wte.weight, 0.0, cfg.init_std)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        cos, sin = rope_cache(cfg.seq_len, cfg.head_dim, cfg.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.logit_mult = mup.logit_mult(cfg)  # 1 (SP); b / d_model under muP, the tied readout's multiplier
        if cfg.param == "mup":
            from scalelab.model import mup as mup_torch

            mup_torch.init_(self)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """idx (B, T) long -> logits (B, T, vocab_size) over the real vocab, loss (mean CE, nats) or None."""
        B, T = idx.shape
        if T > self.cfg.seq_len:
            raise ValueError(f"sequence length {T} exceeds the model's seq_len {self.cfg.seq_len}")
        cos = self.rope_cos[:T].to(self.wte.weight.dtype)
        sin = self.rope_sin[:T].to(self.wte.weight.dtype)
        x = self.wte(idx)  # (B, T, d)
        for block in self.blocks:
            x = block(x, cos, sin)
        x = self.ln_f(x)
        logits = F.linear(x, self.wte.weight)  # tied head: (B, T, padded_vocab)
        if self.cfg.param == "mup":
            logits = logits * self.logit_mult
        V = self.cfg.vocab_size
        if logits.shape[-1] != V:
            logits = logits[..., :V]  # padded rows never win or take mass
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, V).float(), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def param_groups(self, weight_decay: float, decay_all: bool = False) -> list[dict]:
        """AdamW groups (nanoGPT): decay every >= 2-D tensor (matrices, embedding, stacked blocks);
        biases and norm gains do not decay (decay_all: everything decays, the seeds' setting). Under muP
        each group also has "lr_mult", its multiplier on the schedule's lr (scalelab.model.mup)."""
        if self.cfg.param == "mup":
            from scalelab.model import mup as mup_torch

            return mup_torch.param_groups(self, weight_decay, decay_all)
        if decay_all:
            return [{"params": [p for p in self.parameters() if p.requires_grad], "weight_decay": weight_decay}]
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for p in self.parameters():
            if p.requires_grad:
                (decay if p.dim() >= 2 else no_decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def num_params(self, include_guide: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        if not include_guide:
            n -= sum(m.guide_weight.numel() for m in self.modules() if isinstance(m, GuidedLinear))
        return n
