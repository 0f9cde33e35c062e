"""A variant: what a run's variant name says about its model. Torch-free, beside the structure table.

One grammar, written by `name` and read by `parse` (parse(name(v)) == v), parts joined with '+':
    STRUCTURE     the FFN structure (scalelab.structures: dense, lowrank-63, lowrank-r64, blockdense-b4r64,
                  blockshuffle-b4, btt-r4, ...); left out when dense and an attention part is given
    lpa-rR        low-rank (LPA) attention of rank R
    gqa-kvK       grouped-query attention with K key/value heads
    sg            self-guided training
    mup           muP parametrisation (scalelab.mup)
e.g. lowrank-32+gqa-kv2+sg. A variant comes from a name (bench), from a [[variants]] table at one width
(grid) or from inspect's flags; `of_model` is the variant a ModelConfig is grouped by in fits and the
run store. A kept share (KIND-63) names sizes that depend on the layer's shape: `structure(d_model, d_ff)`
picks them.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from scalelab import structures
from scalelab.errors import ScalelabError
from scalelab.structures import FIELD_TAGS, StructureConfig

_ATTN_PARTS = "lpa-rR, gqa-kvK, sg, mup"


@dataclass(frozen=True)
class Variant:
    """ffn: a structure with its sizes, or with only `fraction` (a kept share whose sizes the layer's shape
    picks); attn_rank: LPA's rank; kv_heads: GQA's key/value heads; guide: self-guided; mup: muP."""

    ffn: StructureConfig = StructureConfig()
    attn_rank: Optional[int] = None
    kv_heads: Optional[int] = None
    guide: bool = False
    mup: bool = False

    def __post_init__(self) -> None:
        k = structures.get(self.ffn.kind)
        s = self.ffn
        if s.fraction is not None and not 0.0 <= s.fraction < math.inf:
            raise ScalelabError(f"structure {s.kind}: kept share {s.fraction} must be a share >= 0: e.g. 0.63 or 0.32")
        if not k.fields and s.fraction is not None:
            raise ScalelabError(f"structure {s.kind} has no kept share: a share needs a structured kind")
        if s.fraction is None or any(getattr(s, f) is not None for f in k.fields):
            s.validate()  # sizes as the kind needs (a share alone leaves them to the layer's shape)
        for what, v in (("lpa-r (LPA rank)", self.attn_rank), ("gqa-kv (key/value heads)", self.kv_heads)):
            if v is not None and v < 1:
                raise ScalelabError(f"variant {what} must be positive, got {v}")

    @property
    def name(self) -> str:
        return name(self)

    def structure(self, d_model: int, d_ff: int) -> StructureConfig:
        """The FFN structure at this shape: a kept share's sizes picked (structures.for_fraction)."""
        s = self.ffn
        if s.fraction is not None and all(getattr(s, f) is None for f in structures.get(s.kind).fields):
            return structures.for_fraction(s.kind, d_model, d_ff, s.fraction)
        return s

    def replace(self, **changes) -> "Variant":
        return dataclasses.replace(self, **changes)


def name(v: Variant) -> str:
    """The variant's name in the grammar of the module docstring."""
    parts = []
    if v.attn_rank is not None:
        parts.append(f"lpa-r{v.attn_rank}")
    if v.kv_heads is not None:
        parts.append(f"gqa-kv{v.kv_heads}")
    if v.ffn.kind != "dense" or not parts:
        parts.insert(0, structures.variant_name(v.ffn))
    return "+".join(parts + ["sg"] * v.guide + ["mup"] * v.mup)


def grammar() -> str:
    """The accepted variant names, for error messages."""
    return f"{structures.grammar()}, {_ATTN_PARTS}, joined with +"


def parse(text: str) -> Variant:
    """A variant name -> Variant; its parts may come in any order, each at most once."""
    kw: dict = {}
    value: Any  # the part's field value: a StructureConfig, int or bool
    for part in text.split("+"):
        p = part.strip()
        if structures.is_name(p):
            key, value = "ffn", structures.named(p)
        elif m := re.fullmatch(r"lpa-r(\d+)", p):
            key, value = "attn_rank", int(m[1])
        elif m := re.fullmatch(r"gqa-kv(\d+)", p):
            key, value = "kv_heads", int(m[1])
        elif p in ("sg", "mup"):
            key, value = {"sg": "guide", "mup": "mup"}[p], True
        else:
            raise ScalelabError(f"variant {text!r}: part {p!r} not understood: use {grammar()}")
        if key in kw:
            raise ScalelabError(f"variant {text!r} names its {key.replace('_', ' ')} twice: give each part once")
        kw[key] = value
    return Variant(**kw)


def is_dense(text: str) -> bool:
    """Whether `text` names the dense baseline (dense FFN and attention; muP or not)."""
    try:
        return parse(text).replace(mup=False) == Variant()
    except ScalelabError:
        return False


def of_model(cfg: Any) -> Variant:
    """The variant a ModelConfig is named and grouped by. Only the sizes its kind takes are named; a
    structure with a kept share is named by the share; under LPA the key/value heads are not named."""
    s = cfg.ffn
    k = structures.get(s.kind)
    if s.fraction is not None and k.fields:
        ffn = StructureConfig(s.kind, fraction=s.fraction)
    else:
        ffn = StructureConfig(s.kind, **{f: getattr(s, f) for f in k.fields})
    lpa = cfg.attn == "lpa"
    return Variant(
        ffn=ffn,
        attn_rank=cfg.attn_rank if lpa else None,
        kv_heads=cfg.kv_heads if not lpa and cfg.kv_heads != cfg.n_heads else None,
        guide=cfg.guide is not None,
        mup=cfg.param == "mup",
    )


def from_table(t: Mapping, d_model: int, d_ff: int, where: str = "variants") -> Variant:
    """The FFN structure and LPA rank a [[variants]] table gives at one width (keys of scalelab.grid.spec):
    `fraction` a kept share; `rank_ratio` a rank of ratio x d_model, named by the kept share it gives (so
    the name is the same at every width); else its sizes, stored as given. kv_heads and guide as given."""
    kind = t.get("structure", "dense")
    sizes = {f: t.get(f) for f in FIELD_TAGS}
    if kind == "dense":
        ffn = StructureConfig()
    elif t.get("fraction") is not None:
        ffn = structures.for_fraction(kind, d_model, d_ff, t["fraction"])
    elif sizes["rank"] is None and t.get("rank_ratio") is not None:
        s = StructureConfig(kind, **{**sizes, "rank": max(1, round(d_model * t["rank_ratio"]))})
        s.check_shape(d_model, d_ff, where)
        ffn = dataclasses.replace(s, fraction=round(structures.ffn_fraction(s, d_model, d_ff), 2))
    else:
        ffn = StructureConfig(kind, **sizes)
    attn_rank = t.get("attn_rank")
    if attn_rank is None and t.get("attn_rank_ratio") is not None:
        attn_rank = max(1, round(d_model * t["attn_rank_ratio"]))
    return Variant(ffn=ffn, attn_rank=attn_rank, kv_heads=t.get("kv_heads"), guide=bool(t.get("guide")))


def from_flags(
    ffn: str,
    rank: Optional[int] = None,
    blocks: Optional[int] = None,
    fraction: Optional[float] = None,
    attn_rank: Optional[int] = None,
    kv_heads: Optional[int] = None,
    guided: bool = False,
) -> Variant:
    """inspect's --ffn KIND with its sizes (--rank, --blocks) or a kept --ffn-fraction (a share in (0, 1)),
    LPA's --attn-rank, GQA's --kv-heads, --guided. Sizes the kind does not take are refused."""
    k = structures.get(ffn)
    given = {f: v for f, v in (("rank", rank), ("blocks", blocks)) if v is not None}
    flags = "/".join(f"--{f}" for f in FIELD_TAGS)
    structured = _or_list([n for n in structures.names() if structures.get(n).fields])
    if fraction is not None:
        if given:
            raise ScalelabError(f"give either --ffn-fraction or {flags}, not both")
        if not k.fields:
            raise ScalelabError(f"--ffn-fraction needs a structured --ffn ({structured})")
        if not 0.0 < fraction < 1.0:
            raise ScalelabError(f"FFN fraction {fraction} must be in (0, 1): e.g. 0.63 or 0.32 (or 63 / 32 on the CLI)")
        s = StructureConfig(ffn, fraction=fraction)
    else:
        if not k.fields and given:
            raise ScalelabError(f"{flags} need a structured --ffn ({structured})")
        extra = [f for f in given if f not in k.fields]
        if extra:
            takes = ", ".join(f"--{f}" for f in k.fields)
            raise ScalelabError(f"{ffn} takes {takes}, not {', '.join('--' + f for f in extra)}")
        if k.fields and not given:
            raise ScalelabError(f"--ffn {ffn} needs its size: {flags}, or --ffn-fraction 63|32")
        s = StructureConfig(ffn, **given)
    return Variant(ffn=s, attn_rank=attn_rank, kv_heads=kv_heads, guide=guided)


def _or_list(xs: list) -> str:
    return xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + " or " + xs[-1]
