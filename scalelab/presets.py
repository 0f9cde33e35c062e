"""Named model shapes and the structure settings that keep a given share of the FFN params. Torch-free.

seed-s/m/l/xl: the shapes of Wei et al. (arXiv 2406.16450): vocab 32000, context 1024, GELU (tanh),
biases on, tied embeddings, d_ff = 4 d_model. tiny / small / medium: CPU-sized shapes on a byte vocab.

`structure_for_fraction(kind, d_model, d_ff, fraction)` returns the seeds' published 63% / 32%
settings at seed shapes, and elsewhere a general rule (below) that reproduces that table too (except
BlockDense's block count, which the seeds chose per size: see SEED_TABLE).
"""
from __future__ import annotations

import math

from scalelab.config import ModelConfig, StructureConfig
from scalelab.errors import ScalelabError

_SEED = dict(vocab_size=32000, seq_len=1024, activation="gelu", bias=True)

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

# The seeds' "63%" / "32%" settings, keyed by d_model (all with d_ff = 4 d_model):
# kind -> {fraction: (blocks, rank)}.
SEED_TABLE: dict[int, dict[str, dict[float, tuple]]] = {
    768: {"lowrank": {0.63: (None, 384), 0.32: (None, 192)},
          "blockdense": {0.63: (2, 512), 0.32: (2, 256)},
          "blockshuffle": {0.63: (2, None), 0.32: (4, None)}},
    1024: {"lowrank": {0.63: (None, 512), 0.32: (None, 256)},
           "blockdense": {0.63: (4, 768), 0.32: (4, 384)},
           "blockshuffle": {0.63: (2, None), 0.32: (4, None)}},
    1536: {"lowrank": {0.63: (None, 768), 0.32: (None, 384)},
           "blockdense": {0.63: (2, 1024), 0.32: (2, 512)},
           "blockshuffle": {0.63: (2, None), 0.32: (4, None)}},
    2048: {"lowrank": {0.63: (None, 1024), 0.32: (None, 512)},
           "blockdense": {0.63: (4, 1536), 0.32: (4, 768)},
           "blockshuffle": {0.63: (2, None), 0.32: (4, None)}},
}


def get_preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ScalelabError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}") from None


def _round_to_grain(x: float, limit: int, multiple_of: int = 1) -> int:
    """Round x to the coarsest grain in (64, 32, 16, 8) that still leaves >= 4 grains (rounding
    error <= 12.5%), else to an integer; the result is a multiple of `multiple_of`, in [1, limit]."""
    for g in (64, 32, 16, 8, 1):
        g = math.lcm(g, multiple_of)
        if x / g >= 4 or g == multiple_of:
            break
    v = max(g, int(round(x / g)) * g)
    while v > limit and v - g >= g:
        v -= g
    return v


def ffn_fraction(struct: StructureConfig, d_model: int, d_ff: int) -> float:
    """Share of a dense FFN pair's weights (d -> d_ff -> d) that `struct` keeps."""
    from scalelab.flops import structured_params

    kept = structured_params(struct, d_model, d_ff) + structured_params(struct, d_ff, d_model)
    return kept / (2 * d_model * d_ff)


def structure_for_fraction(kind: str, d_model: int, d_ff: int, fraction: float) -> StructureConfig:
    """The structure keeping about `fraction` of the FFN weights (0.63 -> the seeds' 63% setting).

    At seed shapes (d_model in 768/1024/1536/2048, d_ff = 4 d_model, fraction 0.63 or 0.32) this is the
    published table. Elsewhere:
    - lowrank: R = f N M / (N + M), rounded to a multiple of 64 (or 32, 16, 8 for small R);
    - blockshuffle: B = the power of two dividing d_model and d_ff whose kept share
      (d + d_ff) / (B d_ff) is closest to f in log terms;
    - blockdense: B = 2 (4 once d_model >= 1024 and a power of two, like the seeds), R =
      f 2 N M / ((N + M)(1 + 1/B)) rounded as for lowrank to a multiple of B.
    """
    if kind == "dense":
        return StructureConfig("dense")
    if kind not in ("lowrank", "blockdense", "blockshuffle"):
        raise ScalelabError(f"unknown structure {kind!r}: use dense, lowrank, blockdense or blockshuffle")
    if not 0.0 < fraction < 1.0:
        raise ScalelabError(f"FFN fraction {fraction} must be in (0, 1): e.g. 0.63 or 0.32 (or 63 / 32 on the CLI)")
    d, f = d_model, d_ff
    fr = round(fraction, 4)
    if f == 4 * d and d in SEED_TABLE and fr in SEED_TABLE[d][kind]:
        blocks, rank = SEED_TABLE[d][kind][fr]
        return StructureConfig(kind, rank=rank, blocks=blocks, fraction=fr)
    lim = min(d, f)
    if kind == "lowrank":
        rank = _round_to_grain(fraction * d * f / (d + f), lim)
        return StructureConfig("lowrank", rank=rank, fraction=fr)
    if kind == "blockshuffle":
        best = None
        b = 2
        while d % b == 0 and f % b == 0 and b <= min(d, f):
            err = abs(math.log(((d + f) / (b * f)) / fraction))
            if best is None or err < best[0]:
                best = (err, b)
            b *= 2
        if best is None:
            raise ScalelabError(f"blockshuffle needs a block count dividing d_model={d} and d_ff={f}; none >= 2 does: choose an even d_ff")
        return StructureConfig("blockshuffle", blocks=best[1], fraction=fr)
    # blockdense
    b = 4 if (d >= 1024 and d & (d - 1) == 0) else 2
    while b > 1 and (d % b or f % b):
        b //= 2
    rank = _round_to_grain(fraction * 2 * d * f / ((d + f) * (1 + 1 / b)), lim, multiple_of=b)
    return StructureConfig("blockdense", rank=rank, blocks=b, fraction=fr)


def with_ffn(cfg: ModelConfig, kind: str, fraction: float | None = None, rank: int | None = None,
             blocks: int | None = None) -> ModelConfig:
    """cfg with FFN structure `kind`, either by fraction (seeds' table / rule) or explicit rank/blocks."""
    if kind == "dense":
        s = StructureConfig("dense")
    elif fraction is not None:
        s = structure_for_fraction(kind, cfg.d_model, cfg.ffn_width, fraction)
    else:
        s = StructureConfig(kind, rank=rank, blocks=blocks)
    return cfg.replace(ffn=s).validate()
