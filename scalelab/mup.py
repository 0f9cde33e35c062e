"""Parametrisations (torch-free): SP, the standard one, and muP, per parameter tensor of the GPT.

muP (Yang et al. 2022, "Tensor Programs V", arXiv 2203.03466) keeps every layer's update to its output
coordinates Theta(1) as width grows, so a learning rate tuned at a small base width transfers. We use
its spectral form (Yang, Simon & Bernstein 2023, "A Spectral Condition for Feature Learning", arXiv
2310.17813): a weight W: fan_in -> fan_out should have spectral norm ||W|| and update norm ||dW|| both
Theta(sqrt(fan_out / fan_in)). For a Gaussian init, ||W|| ~ std (sqrt(fan_in) + sqrt(fan_out)), so

    init std  ~  (1 / sqrt(fan_in)) min(1, sqrt(fan_out / fan_in))

and an Adam update has entries ~ lr and is near rank one, ||dW|| ~ lr sqrt(fan_in fan_out), so

    Adam lr   ~  1 / fan_in.

Structured layers (Qiu et al. 2024, "Compute Better Spent", arXiv 2406.06248, section 3 "structure-aware
learning rate"): a product of factors meets the condition when every factor does, each treated as a
dense layer (a block-diagonal factor as a batch of dense blocks) with its own fan-in and fan-out. The
factors of each kind are declared in scalelab.structures (`Kind.factors`), so a new kind gets muP by
declaring them. So a low-rank U (fan_in R) gets lr ~ 1/R whatever the width, where SP gives every
factor the dense layer's init and learning rate.

The constant: rules are anchored at the base width b = ModelConfig.mup_base_width (64 by default, the
`tiny` preset's width and the smallest width of the built-in CPU grids): a square dense layer of width
b gets exactly SP's init_std and the peak lr (multiplier 1), so lr and init_std tuned on a b-wide model
mean the same under SP and muP there. Every tensor then gets

    std     = init_std sqrt(b / fan_in) min(1, sqrt(fan_out / fan_in))
    lr_mult = b / fan_in

(at width b the FFN down projection, 4b -> b, gets std init_std / 4 and lr_mult 1/4: the spectral
constants, not SP's). The rest is Tensor Programs V, table 3 (Adam), with tied embeddings:
 - the token embedding is an input layer (one-hot fan_in): init_std and lr_mult 1 at every width;
 - its tied use as the readout is multiplied by 1 / width_mult = b / d_model (so the readout's init and
   update both shrink like 1 / d_model, the output-layer rule);
 - attention logits q.k are scaled by 1 / (sqrt(d_head) sqrt(width_mult)), i.e. ~ 1 / d_head when the
   head count is fixed (q and k become correlated during training, so their dot product grows ~ d_head);
   at width b this is SP's 1 / sqrt(d_head);
 - biases and LayerNorm gains (vectors): lr_mult 1, their SP init;
 - a self-guided dense copy W (fan_in N, fan_out M) is a dense layer: lr_mult b / N; its init is the
   product of its (muP-initialised) factors, as under SP.
Weight decay is AdamW's, lr_mult x lr x wd per step (as the `mup` package's MuAdamW by default).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional

from scalelab import structures
from scalelab.errors import ScalelabError

PARAMS = ("sp", "mup")
DEFAULT_BASE_WIDTH = 64


@dataclass(frozen=True)
class Group:
    """One row of the muP table: every GPT parameter whose name matches `pattern` (fnmatch; rows are
    tried in order, the first match wins)."""

    pattern: str
    role: str  # embedding | hidden | guide | vector
    fan_in: Optional[int]
    fan_out: Optional[int]
    count: int  # dense maps (blocks) in one tensor
    init_std: Optional[float]  # None: the layer's own init is kept (biases 0, gains 1, guide = product)
    lr_mult: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_param(param: str) -> None:
    if param not in PARAMS:
        raise ScalelabError(f'unknown param {param!r}: use one of {", ".join(PARAMS)} (e.g. param = "mup")')


def spectral_std(fan_in: int, fan_out: int, init_std: float, base: int) -> float:
    """std = init_std sqrt(b / fan_in) min(1, sqrt(fan_out / fan_in)) (spectral condition, anchored at b)."""
    return init_std * math.sqrt(base / fan_in) * min(1.0, math.sqrt(fan_out / fan_in))


def adam_lr_mult(fan_in: int, base: int) -> float:
    """lr_mult = b / fan_in (Adam: ||dW|| ~ lr sqrt(fan_in fan_out) must be ~ sqrt(fan_out / fan_in))."""
    return base / fan_in


def width_mult(cfg) -> float:
    return cfg.d_model / cfg.mup_base_width


def logit_mult(cfg) -> float:
    """Multiplier on the tied-embedding logits: 1 under SP, 1 / width_mult under muP."""
    return 1.0 if cfg.param == "sp" else 1.0 / width_mult(cfg)


def attn_scale(cfg) -> Optional[float]:
    """Scale of q.k: None (SDPA's 1 / sqrt(d_head)) under SP; 1 / (sqrt(d_head) sqrt(width_mult)) under muP."""
    if cfg.param == "sp":
        return None
    return 1.0 / math.sqrt(cfg.head_dim * width_mult(cfg))


def _linear_rows(cfg, prefix: str, struct, n_in: int, n_out: int) -> list[Group]:
    """Rows of one n_in -> n_out linear named `prefix` (GuidedLinear puts the factors under .inner)."""
    b, rows = cfg.mup_base_width, []
    guided = cfg.guide is not None and struct.kind != "dense"
    inner = f"{prefix}.inner" if guided else prefix
    for name, (fi, fo, count) in structures.factors(struct, n_in, n_out).items():
        rows.append(
            Group(
                f"{inner}.{name}", "hidden", fi, fo, count, spectral_std(fi, fo, cfg.init_std, b), adam_lr_mult(fi, b)
            )
        )
    if guided:
        rows.append(Group(f"{prefix}.guide_weight", "guide", n_in, n_out, 1, None, adam_lr_mult(n_in, b)))
    return rows


def groups(cfg) -> list[Group]:
    """The muP table of a ModelConfig's GPT (scalelab.model.gpt), in matching order; '*' (vectors) last."""
    check_param(cfg.param)
    d, a, f = cfg.d_model, cfg.attn_width, cfg.ffn_width
    kv = cfg.kv_heads * cfg.head_dim
    rows = [Group("wte.weight", "embedding", cfg.padded_vocab, d, 1, cfg.init_std, 1.0)]
    # attention: one fused dense qkv (d -> a + 2 kv) and o (a -> d), or LPA's four low-rank projections
    if cfg.attn == "lpa":
        lr = structures.StructureConfig("lowrank", rank=cfg.attn_rank)
        for proj, n, m in (("q", d, a), ("k", d, kv), ("v", d, kv), ("o", a, d)):
            rows += _linear_rows(cfg, f"blocks.*.attn.{proj}", lr, n, m)
    else:
        dense = structures.StructureConfig("dense")
        rows += _linear_rows(cfg, "blocks.*.attn.qkv", dense, d, a + 2 * kv)
        rows += _linear_rows(cfg, "blocks.*.attn.o", dense, a, d)
    # FFN: block 0 dense when dense_first_ffn (its names, .weight, never match a structured kind's factors)
    ffn_structs = [("blocks.*", cfg.ffn)]
    if cfg.dense_first_ffn and cfg.ffn.kind != "dense":
        ffn_structs.insert(0, ("blocks.0", structures.StructureConfig("dense")))
    for where, s in ffn_structs:
        shapes = [("up", d, f)] + ([("gate", d, f)] if cfg.activation == "swiglu" else []) + [("down", f, d)]
        for name, n, m in shapes:
            rows += _linear_rows(cfg, f"{where}.ffn.{name}", s, n, m)
    rows.append(Group("*", "vector", None, None, 1, None, 1.0))  # biases, LayerNorm gains
    return rows


def table(cfg) -> list[dict[str, Any]]:
    """groups(cfg) as plain dicts (the run store's config and `inspect --json` record this)."""
    return [g.to_dict() for g in groups(cfg)]
