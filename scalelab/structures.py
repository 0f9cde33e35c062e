"""The table of structure kinds a linear layer can take (REFERENCE.md section 1). Torch-free, a leaf.

One `Kind` per structure says everything the torch-free side needs: the sizes it takes (rank, blocks),
its weight count and forward FLOPs per token, the shapes it refuses, the rule that picks its sizes for a
kept share of the FFN params (the seeds' 63% / 32% table at seed shapes, a general rule elsewhere), and,
from its sizes, its variant name. Grid files, bench, inspect, flops, presets and the planner all read
this table, so a kind registered here is visible to all of them.

Structure names, the FFN part of a variant name (scalelab.variant joins the attention, guide and muP
parts); printed by `variant_name`, read back by `named` / `parse`; parse(name(s)) == s:
    dense
    KIND-63                  kept FFN share in percent (sizes from `for_fraction` at the layer's shape)
    KIND-<tag><int>...       explicit sizes, tags in the kind's field order: lowrank-r64, blockdense-b4r64,
                             blockshuffle-b4 (tags: FIELD_TAGS)

Adding a kind (e.g. Block Tensor-Train, "btt"):
 1. here, at the bottom, beside the others:
        def _btt_params(s, n_in, n_out): ...          # weights of one n_in -> n_out linear, bias excluded
        def _btt_check(s, n_in, n_out, where): ...    # raise ScalelabError(f"{where}: ...: choose ...")
        def _btt_rule(d_model, d_ff, fraction): ...   # -> StructureConfig("btt", rank=..., fraction=fraction)
        def _btt_factors(s, n_in, n_out): ...  # {param name: (fan_in, fan_out, count)}: muP for the kind
        register(Kind("btt", fields=("rank",), params=_btt_params, check=_btt_check, fraction_rule=_btt_rule,
                      factors=_btt_factors))
    `flops=` only if the forward is not 2 x params per token; `seed_table=` only for published settings.
    A size other than rank / blocks also needs a field on StructureConfig and a tag in FIELD_TAGS.
 2. the torch module, in scalelab/model/linear.py: `MODULES["btt"] = lambda s, n_in, n_out, bias, init_std: ...`
    (make_linear dispatches through MODULES; tests check every registered kind has one).
Nothing else: `[[variants]] structure = "btt"`, `scalelab bench train --variants btt-r4`,
`scalelab inspect --ffn btt --rank 4`, param / FLOP counts and the planner's shapes then all work.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Optional, cast

from scalelab.errors import ScalelabError

# size field of StructureConfig -> its tag in a variant name; also the order sizes are validated in
FIELD_TAGS = {"rank": "r", "blocks": "b"}
_FIELD_NEED = {
    "rank": ("a positive rank", "set rank (e.g. --rank 64)"),
    "blocks": ("a positive block count", "set blocks (e.g. --blocks 4)"),
}


@dataclass(frozen=True)
class StructureConfig:
    """A linear layer's structure: dense; lowrank(rank); blockdense(blocks, rank); blockshuffle(blocks); ...

    `fraction` is informational: the nominal share of the replaced FFN params (e.g. 0.63, 0.32); a
    structure that has one is named by it (lowrank-63), else by its sizes (lowrank-r384).
    """

    kind: str = "dense"
    rank: Optional[int] = None
    blocks: Optional[int] = None
    fraction: Optional[float] = None

    def validate(self) -> "StructureConfig":
        k = get(self.kind)
        for f in FIELD_TAGS:
            v = getattr(self, f)
            if f in k.fields and (v is None or v < 1):
                need, fix = _FIELD_NEED[f]
                raise ScalelabError(f"structure {self.kind} needs {need}: {fix}")
        return self

    def check_shape(self, n_in: int, n_out: int, where: str = "layer") -> None:
        """Reject shapes the structure cannot take (N input, M output features)."""
        self.validate()
        k = get(self.kind)
        if k.check is not None:
            k.check(self, n_in, n_out, where)

    @property
    def name(self) -> str:
        return variant_name(self)


@dataclass(frozen=True, eq=False)
class Kind:
    """One structure kind; see the module docstring for how to add one."""

    name: str
    fields: tuple = ()  # sizes it needs, in the order its variant name prints them
    # weights of one n_in -> n_out linear, no bias; required (register() refuses the None default)
    params: Callable[[StructureConfig, int, int], int] = None  # type: ignore[assignment]
    check: Optional[Callable[[StructureConfig, int, int, str], None]] = None  # ScalelabError on bad shapes
    fraction_rule: Optional[Callable[[int, int, float], StructureConfig]] = None  # (d_model, d_ff, f) -> struct
    seed_table: dict = field(default_factory=dict)  # d_model -> {fraction: {size: value}}, at d_ff = 4 d_model
    flops: Optional[Callable[[StructureConfig, int, int], int]] = None  # forward FLOPs/token; None: 2 x params
    # the weight tensors of one n_in -> n_out linear, each a batch of dense maps: {torch parameter name:
    # (fan_in, fan_out, count)} (count = blocks; count x fan_in x fan_out = its weights). muP scales every
    # factor by its own fans (scalelab.mup), so a kind that declares this gets muP.
    factors: Optional[Callable[[StructureConfig, int, int], dict]] = None


_KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    if kind.name in _KINDS:
        raise ValueError(f"structure kind {kind.name!r} is registered twice")
    if not re.fullmatch(r"[a-z][a-z0-9]*", kind.name):
        raise ValueError(f"structure kind name {kind.name!r}: lowercase letters and digits (no '-', '+')")
    unknown = set(kind.fields) - set(FIELD_TAGS)
    if unknown:
        raise ValueError(
            f"structure kind {kind.name!r}: unknown size field(s) {sorted(unknown)}: add them to "
            "StructureConfig and FIELD_TAGS"
        )
    if kind.params is None:
        raise ValueError(f"structure kind {kind.name!r} needs a params function")
    _KINDS[kind.name] = kind
    return kind


def names() -> tuple:
    """Registered kinds, dense first, in registration order."""
    return tuple(_KINDS)


def _or_list(xs) -> str:
    xs = list(xs)
    return xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + " or " + xs[-1]


def get(name: str) -> Kind:
    try:
        return _KINDS[name]
    except KeyError:
        raise ScalelabError(f"unknown structure {name!r}: use one of {', '.join(_KINDS)}") from None


# ---- counts ----------------------------------------------------------------------------------------
def params(s: StructureConfig, n_in: int, n_out: int) -> int:
    """Weight params of one N=n_in -> M=n_out linear of this structure (bias excluded)."""
    return get(s.kind).params(s, n_in, n_out)


def factors(s: StructureConfig, n_in: int, n_out: int) -> dict:
    """{parameter name: (fan_in, fan_out, count)} of one n_in -> n_out linear of this structure."""
    k = get(s.kind)
    if k.factors is None:
        raise ScalelabError(
            f"structure {s.kind} declares no factors, so muP cannot scale it: add factors= to its Kind in "
            'scalelab/structures.py, or use param = "sp"'
        )
    return k.factors(s, n_in, n_out)


def forward_flops(s: StructureConfig, n_in: int, n_out: int) -> int:
    """Forward FLOPs per token of one such linear (2 x params unless the kind says otherwise)."""
    k = get(s.kind)
    return k.flops(s, n_in, n_out) if k.flops is not None else 2 * k.params(s, n_in, n_out)


def ffn_fraction(s: StructureConfig, d_model: int, d_ff: int) -> float:
    """Share of a dense FFN pair's weights (d -> d_ff -> d) that `s` keeps."""
    kept = params(s, d_model, d_ff) + params(s, d_ff, d_model)
    return kept / (2 * d_model * d_ff)


def for_fraction(kind: str, d_model: int, d_ff: int, fraction: float) -> StructureConfig:
    """The structure keeping about `fraction` of the FFN weights (0.63 -> the seeds' 63% setting):
    the kind's seed table at d_ff = 4 d_model, its general rule elsewhere."""
    if kind == "dense":
        return StructureConfig("dense")
    if kind not in _KINDS:
        raise ScalelabError(f"unknown structure {kind!r}: use {_or_list(_KINDS)}")
    if not 0.0 < fraction < 1.0:
        raise ScalelabError(f"FFN fraction {fraction} must be in (0, 1): e.g. 0.63 or 0.32 (or 63 / 32 on the CLI)")
    k = _KINDS[kind]
    fr = round(fraction, 4)
    seed = k.seed_table.get(d_model, {}).get(fr) if d_ff == 4 * d_model else None
    if seed is not None:
        return StructureConfig(kind, fraction=fr, **seed)
    if k.fraction_rule is None:
        raise ScalelabError(
            f"structure {kind} has no rule for a kept fraction: give its sizes ({', '.join(k.fields)}) instead"
        )
    return k.fraction_rule(d_model, d_ff, fraction)


# ---- variant names ---------------------------------------------------------------------------------
def variant_name(s: StructureConfig) -> str:
    """dense | KIND-63 (by its fraction) | KIND-b4r64 (by its sizes, in the kind's field order)."""
    k = get(s.kind)
    if not k.fields:
        return k.name
    if s.fraction is not None:
        return f"{k.name}-{round(s.fraction * 100)}"
    return f"{k.name}-" + "".join(f"{FIELD_TAGS[f]}{getattr(s, f)}" for f in k.fields)


def _read(name: str):
    """A structure name's parts: (kind, kept percent or None, sizes or None); None if it is not one."""
    kind, _, rest = name.strip().partition("-")
    k = _KINDS.get(kind)
    if k is None:
        return None
    if not k.fields:
        return (kind, None, {}) if not rest else None
    if re.fullmatch(r"\d+", rest):
        return kind, int(rest), None
    m = re.fullmatch("".join(rf"{FIELD_TAGS[f]}(\d+)" for f in k.fields), rest)
    return (kind, None, {f: int(v) for f, v in zip(k.fields, m.groups())}) if m else None


def is_name(name: str) -> bool:
    """Whether `name` is a structure name in the grammar above (its sizes are not checked)."""
    return _read(name) is not None


def named(name: str) -> StructureConfig:
    """A structure name -> the StructureConfig it names: its sizes, or (KIND-63) only its kept share."""
    parts = _read(name)
    if parts is None:
        raise ScalelabError(f"structure {name!r} not understood: use {grammar()}")
    kind, percent, sizes = parts
    return StructureConfig(kind, **sizes) if percent is None else StructureConfig(kind, fraction=percent / 100)


def parse(name: str, d_model: Optional[int] = None, d_ff: Optional[int] = None) -> StructureConfig:
    """A variant name's structure part -> StructureConfig; KIND-63 needs the FFN shape (d_model, d_ff)."""
    s = named(name)
    if s.fraction is None:
        return s
    if d_model is None or d_ff is None:
        raise ScalelabError(f"structure {name!r} is a kept share: it needs the FFN shape (d_model, d_ff)")
    return for_fraction(s.kind, d_model, d_ff, s.fraction)


def grammar() -> str:
    """The accepted structure names, for error messages."""
    out = []
    for k in _KINDS.values():
        if not k.fields:
            out.append(k.name)
        else:
            out.append(f"{k.name}-" + "".join(f"{FIELD_TAGS[f]}{f[0].upper()}" for f in k.fields))
    return ", ".join(out) + ", KIND-63 / KIND-32 (kept share)"


# =====================================================================================================
# The kinds. Each: params (bias excluded), shape check, fraction rule, seed table (d_model -> fraction
# -> sizes, the seeds' "63%" / "32%" settings at d_ff = 4 d_model).
# =====================================================================================================
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


def _rank(s: StructureConfig) -> int:
    """s.rank of a kind whose `fields` hold it (validate() refuses it unset)."""
    return cast(int, s.rank)


def _blocks(s: StructureConfig) -> int:
    """s.blocks of a kind whose `fields` hold it (validate() refuses it unset)."""
    return cast(int, s.blocks)


register(Kind("dense", params=lambda s, n, m: n * m, factors=lambda s, n, m: {"weight": (n, m, 1)}))


# LowRank: W = U V, U: M x R, V: R x N.
def _lowrank_check(s: StructureConfig, n: int, m: int, where: str) -> None:
    if _rank(s) > min(n, m):
        raise ScalelabError(f"{where}: lowrank rank {s.rank} exceeds min(in={n}, out={m}): choose rank <= {min(n, m)}")


def _lowrank_rule(d: int, f: int, fraction: float) -> StructureConfig:
    """R = f N M / (N + M), rounded to a multiple of 64 (or 32, 16, 8 for small R)."""
    rank = _round_to_grain(fraction * d * f / (d + f), min(d, f))
    return StructureConfig("lowrank", rank=rank, fraction=round(fraction, 4))


register(
    Kind(
        "lowrank",
        fields=("rank",),
        params=lambda s, n, m: _rank(s) * (n + m),
        factors=lambda s, n, m: {"V": (n, _rank(s), 1), "U": (_rank(s), m, 1)},  # V: N -> R, then U: R -> M
        check=_lowrank_check,
        fraction_rule=_lowrank_rule,
        seed_table={
            768: {0.63: dict(rank=384), 0.32: dict(rank=192)},
            1024: {0.63: dict(rank=512), 0.32: dict(rank=256)},
            1536: {0.63: dict(rank=768), 0.32: dict(rank=384)},
            2048: {0.63: dict(rank=1024), 0.32: dict(rank=512)},
        },
    )
)


# BlockDense: B input blocks, each N/B -> R/B, then a dense R -> M.
def _blockdense_check(s: StructureConfig, n: int, m: int, where: str) -> None:
    r, b = _rank(s), _blocks(s)
    if n % b or r % b:
        raise ScalelabError(
            f"{where}: blockdense needs in={n} and rank={r} divisible by blocks={b}: "
            "choose a block count that divides both"
        )
    if r > m or r // b > n // b:
        raise ScalelabError(f"{where}: blockdense rank {r} too large for in={n}, out={m}: choose rank <= {min(n, m)}")


def _blockdense_rule(d: int, f: int, fraction: float) -> StructureConfig:
    """B = 2 (4 once d_model >= 1024 and a power of two, like the seeds), R = f 2 N M / ((N + M)(1 + 1/B))
    rounded as for lowrank to a multiple of B."""
    b = 4 if (d >= 1024 and d & (d - 1) == 0) else 2
    while b > 1 and (d % b or f % b):
        b //= 2
    rank = _round_to_grain(fraction * 2 * d * f / ((d + f) * (1 + 1 / b)), min(d, f), multiple_of=b)
    return StructureConfig("blockdense", rank=rank, blocks=b, fraction=round(fraction, 4))


register(
    Kind(
        "blockdense",
        fields=("blocks", "rank"),
        params=lambda s, n, m: _rank(s) * n // _blocks(s) + _rank(s) * m,
        # B blocks V_i: N/B -> R/B, then U: R -> M
        factors=lambda s, n, m: {"V": (n // _blocks(s), _rank(s) // _blocks(s), _blocks(s)), "U": (_rank(s), m, 1)},
        check=_blockdense_check,
        fraction_rule=_blockdense_rule,
        # the seeds chose B per size (the general rule reproduces the ranks, not always B)
        seed_table={
            768: {0.63: dict(blocks=2, rank=512), 0.32: dict(blocks=2, rank=256)},
            1024: {0.63: dict(blocks=4, rank=768), 0.32: dict(blocks=4, rank=384)},
            1536: {0.63: dict(blocks=2, rank=1024), 0.32: dict(blocks=2, rank=512)},
            2048: {0.63: dict(blocks=4, rank=1536), 0.32: dict(blocks=4, rank=768)},
        },
    )
)


# BlockShuffle: two block-diagonal factors with B blocks and a shuffle between them.
def _blockshuffle_check(s: StructureConfig, n: int, m: int, where: str) -> None:
    b = _blocks(s)
    if n % b or m % b:
        raise ScalelabError(
            f"{where}: blockshuffle needs in={n} and out={m} divisible by blocks={b}: "
            "choose a block count that divides both"
        )


def _blockshuffle_rule(d: int, f: int, fraction: float) -> StructureConfig:
    """B = the power of two dividing d_model and d_ff whose kept share (d + d_ff) / (B d_ff) is closest
    to f in log terms."""
    best = None
    b = 2
    while d % b == 0 and f % b == 0 and b <= min(d, f):
        err = abs(math.log(((d + f) / (b * f)) / fraction))
        if best is None or err < best[0]:
            best = (err, b)
        b *= 2
    if best is None:
        raise ScalelabError(
            f"blockshuffle needs a block count dividing d_model={d} and d_ff={f}; none >= 2 does: choose an even d_ff"
        )
    return StructureConfig("blockshuffle", blocks=best[1], fraction=round(fraction, 4))


register(
    Kind(
        "blockshuffle",
        fields=("blocks",),
        params=lambda s, n, m: min(n, m) * (n + m) // _blocks(s),
        # K = min(N, M): B blocks W1: N/B -> K/B, then B blocks W2: K/B -> M/B
        factors=lambda s, n, m: {
            "W1": (n // _blocks(s), min(n, m) // _blocks(s), _blocks(s)),
            "W2": (min(n, m) // _blocks(s), m // _blocks(s), _blocks(s)),
        },
        check=_blockshuffle_check,
        fraction_rule=_blockshuffle_rule,
        seed_table={d: {0.63: dict(blocks=2), 0.32: dict(blocks=4)} for d in (768, 1024, 1536, 2048)},
    )
)


# BTT, Block Tensor-Train with two cores of rank R (Qiu et al., arXiv 2406.06248; torch side:
# scalelab.model.linear.BTT): N = a1 a2 and M = b1 b2 split closest to square (a2 <= a1, b1 <= b2, as
# the paper's code orders them), core 1 (a1, b1, R, a2), core 2 (b1, b2, a1, R), params R a1 b1 (a2 + b2).
# Its forward is two batched matmuls, a1 blocks of a2 -> b1 R and b1 blocks of a1 R -> b2: 2 x params
# per token exactly, so no `flops=`. R = 1 is Monarch; at R = min(a2, b2) every N x M matrix is reached.
def btt_factors(n: int) -> tuple[int, int]:
    """n = p q with p <= q and p the largest divisor of n up to sqrt(n): the split closest to square."""
    p = next(d for d in range(math.isqrt(n), 0, -1) if n % d == 0)
    return p, n // p


def _btt_sizes(n: int, m: int) -> tuple[int, int, int, int]:
    """(a1, a2, b1, b2) of an n -> m BTT."""
    (a2, a1), (b1, b2) = btt_factors(n), btt_factors(m)
    return a1, a2, b1, b2


def _btt_params(s: StructureConfig, n: int, m: int) -> int:
    a1, a2, b1, b2 = _btt_sizes(n, m)
    return _rank(s) * a1 * b1 * (a2 + b2)


def _btt_max_rank(n: int, m: int) -> int:
    _, a2, _, b2 = _btt_sizes(n, m)
    return min(a2, b2)


def _btt_check(s: StructureConfig, n: int, m: int, where: str) -> None:
    for side, x in (("in", n), ("out", m)):
        if x < 4 or btt_factors(x)[0] == 1:
            raise ScalelabError(
                f"{where}: btt needs {side}={x} to split as p x q with p, q >= 2 (it is prime or "
                "below 4): choose a composite width"
            )
    a1, a2, b1, b2 = _btt_sizes(n, m)
    if _rank(s) > min(a2, b2):
        raise ScalelabError(
            f"{where}: btt rank {s.rank} exceeds min(a2, b2) = {min(a2, b2)} for in={n}={a1}x{a2}, "
            f"out={m}={b1}x{b2} (a larger rank adds nothing): choose rank <= {min(a2, b2)}"
        )


def _btt_rule(d: int, f: int, fraction: float) -> StructureConfig:
    """R = the integer nearest in log terms to f 2 N M / (params per rank of d -> d_ff and d_ff -> d), in
    [1, min of both layers' max rank]."""
    per_rank = _btt_params(StructureConfig("btt", rank=1), d, f) + _btt_params(StructureConfig("btt", rank=1), f, d)
    x = fraction * 2 * d * f / per_rank
    cap = max(1, min(_btt_max_rank(d, f), _btt_max_rank(f, d)))
    rank = min(sorted({min(cap, max(1, r)) for r in (math.floor(x), math.ceil(x))}), key=lambda r: abs(math.log(r / x)))
    return StructureConfig("btt", rank=rank, fraction=round(fraction, 4))


def _btt_factors(s: StructureConfig, n: int, m: int) -> dict:
    """Core 1: a1 blocks a2 -> b1 R; core 2: b1 blocks a1 R -> b2 (the two batched matmuls of the forward)."""
    a1, a2, b1, b2 = _btt_sizes(n, m)
    return {"W1": (a2, b1 * _rank(s), a1), "W2": (a1 * _rank(s), b2, b1)}


register(
    Kind(
        "btt",
        fields=("rank",),
        params=_btt_params,
        check=_btt_check,
        fraction_rule=_btt_rule,
        factors=_btt_factors,
    )
)
