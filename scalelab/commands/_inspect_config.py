"""The ModelConfig `scalelab inspect`'s options describe: a preset with its widths, parametrisation, FFN
structure, attention and guide changed as asked (ScalelabError, naming the option, for a bad combination)."""

from __future__ import annotations

from typing import Optional

from scalelab.errors import ScalelabError


def build_config(
    preset: str,
    ffn: Optional[str] = None,
    rank: Optional[int] = None,
    blocks: Optional[int] = None,
    ffn_fraction: Optional[float] = None,
    attn: Optional[str] = None,
    kv_heads: Optional[int] = None,
    attn_rank: Optional[int] = None,
    d_attn: Optional[int] = None,
    d_ff: Optional[int] = None,
    guided: bool = False,
    guide_fraction: float = 0.5,
    reduce_flop: bool = True,
    seq_len: Optional[int] = None,
    vocab_multiple: Optional[int] = None,
    param: str = "sp",
    mup_base_width: Optional[int] = None,
):
    """The ModelConfig the inspect options describe (ScalelabError for any bad combination)."""
    from scalelab.config import GuideConfig
    from scalelab.presets import get_preset

    base = get_preset(preset)
    changes = _sizes(d_ff, d_attn, seq_len, param, mup_base_width, vocab_multiple)
    changes["ffn"] = _ffn(base, changes.get("d_ff", base.d_ff), ffn, rank, blocks, ffn_fraction)
    changes.update(_attention(base, attn, kv_heads, attn_rank))
    if guided:
        changes["guide"] = GuideConfig(fraction=guide_fraction, reduce_flop=reduce_flop)
    return base.replace(**changes).validate()


def _sizes(
    d_ff: Optional[int],
    d_attn: Optional[int],
    seq_len: Optional[int],
    param: str,
    mup_base_width: Optional[int],
    vocab_multiple: Optional[int],
) -> dict:
    """The widths, context, parametrisation and vocab padding asked for."""
    from scalelab.config import PARAMS

    changes: dict = {}
    if d_ff is not None:
        changes["d_ff"] = d_ff
    if d_attn is not None:
        changes["d_attn"] = d_attn
    if seq_len is not None:
        changes["seq_len"] = seq_len
    if param not in PARAMS:
        raise ScalelabError(f"--param {param!r} is unknown: use one of {', '.join(PARAMS)}")
    changes["param"] = param
    if mup_base_width is not None:
        if mup_base_width < 1:
            raise ScalelabError(f"--mup-base-width must be >= 1, got {mup_base_width}")
        if param != "mup":
            raise ScalelabError("--mup-base-width is muP's base width: use it with --param mup")
        changes["mup_base_width"] = mup_base_width
    if vocab_multiple is not None:
        if vocab_multiple < 1:
            raise ScalelabError(f"--vocab-multiple must be >= 1, got {vocab_multiple}")
        changes["vocab_multiple"] = vocab_multiple
    return changes


def _ffn(base, d_ff: Optional[int], ffn: Optional[str], rank, blocks, ffn_fraction: Optional[float]):
    """The FFN structure: a kind with its sizes or a kept share (scalelab.variant.from_flags); the fraction
    as a share or a percent."""
    from scalelab import structures, variant

    ffn_width = d_ff or 4 * base.d_model
    kind = ffn if ffn is not None else base.ffn.kind
    if kind not in structures.names():
        raise ScalelabError(f"--ffn {kind!r} is unknown: use one of {', '.join(structures.names())}")
    frac = None if ffn_fraction is None else (ffn_fraction / 100.0 if ffn_fraction > 1 else ffn_fraction)
    return variant.from_flags(kind, rank, blocks, frac).structure(base.d_model, ffn_width)


def _attention(base, attn: Optional[str], kv_heads: Optional[int], attn_rank: Optional[int]) -> dict:
    """The attention kind and its sizes: fewer KV heads than query heads means gqa unless --attn says."""
    from scalelab.config import ATTENTIONS

    a = attn if attn is not None else ("gqa" if kv_heads is not None and kv_heads != base.n_heads else base.attn)
    if a not in ATTENTIONS:
        raise ScalelabError(f"--attn {a!r} is unknown: use one of {', '.join(ATTENTIONS)}")
    if a == "mha" and kv_heads is not None and kv_heads != base.n_heads:
        raise ScalelabError(
            f"--attn mha uses n_kv_heads = n_heads = {base.n_heads}: use --attn gqa for --kv-heads {kv_heads}"
        )
    if a != "lpa" and attn_rank is not None:
        raise ScalelabError("--attn-rank is LPA's rank: use it with --attn lpa")
    return dict(
        attn=a,
        n_kv_heads=kv_heads if kv_heads is not None else base.n_kv_heads,
        attn_rank=attn_rank if a == "lpa" else None,
    )
