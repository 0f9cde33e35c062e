"""Named model shapes and the structure settings that keep a given share of the FFN params. Torch-free.

seed-s/m/l/xl: the shapes of Wei et al. (arXiv 2406.16450): vocab 32000, context 1024, GELU (tanh),
biases on, tied embeddings, d_ff = 4 d_model. tiny / small / medium: CPU-sized shapes on a byte vocab.

`structure_for_fraction(kind, d_model, d_ff, fraction)` returns the seeds' published 63% / 32%
settings at seed shapes, and elsewhere a general rule that reproduces that table too (except
BlockDense's block count, which the seeds chose per size); both are kept per kind in scalelab.structures.
"""

from __future__ import annotations

from typing import Any

from scalelab import structures
from scalelab.config import ModelConfig, StructureConfig
from scalelab.errors import ScalelabError

_SEED: dict[str, Any] = dict(vocab_size=32000, seq_len=1024, activation="gelu", bias=True)

PRESETS: dict[str, ModelConfig] = {
    "seed-s": ModelConfig(d_model=768, n_layers=12, n_heads=12, d_ff=3072, **_SEED),
    "seed-m": ModelConfig(d_model=1024, n_layers=24, n_heads=16, d_ff=4096, **_SEED),
    "seed-l": ModelConfig(d_model=1536, n_layers=24, n_heads=12, d_ff=6144, **_SEED),
    "seed-xl": ModelConfig(d_model=2048, n_layers=24, n_heads=16, d_ff=8192, **_SEED),
    # CPU presets (byte vocab)
    "tiny": ModelConfig(d_model=64, n_layers=2, n_heads=2, vocab_size=256, seq_len=128),
    "small": ModelConfig(d_model=128, n_layers=4, n_heads=4, vocab_size=256, seq_len=256),
    "medium": ModelConfig(d_model=256, n_layers=4, n_heads=4, vocab_size=256, seq_len=256),
}

# Published token budgets (about 20 tokens per parameter) and peak learning rates of the seed presets.
SEED_TOKENS = {"seed-s": 2.2e9, "seed-m": 6.7e9, "seed-l": 14.58e9, "seed-xl": 25.5e9}
SEED_LR = {"seed-s": 6e-4, "seed-m": 3e-4, "seed-l": 2.5e-4, "seed-xl": 2e-4}


def get_preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ScalelabError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}") from None


# the kept-share rules live with each kind in the structure table (scalelab/structures.py)
ffn_fraction = structures.ffn_fraction
structure_for_fraction = structures.for_fraction


def with_ffn(
    cfg: ModelConfig, kind: str, fraction: float | None = None, rank: int | None = None, blocks: int | None = None
) -> ModelConfig:
    """cfg with FFN structure `kind`, either by fraction (seeds' table / rule) or explicit rank/blocks."""
    if kind == "dense":
        s = StructureConfig("dense")
    elif fraction is not None:
        s = structure_for_fraction(kind, cfg.d_model, cfg.ffn_width, fraction)
    else:
        s = StructureConfig(kind, rank=rank, blocks=blocks)
    return cfg.replace(ffn=s).validate()
