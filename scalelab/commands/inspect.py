"""`scalelab inspect`: params and FLOPs of one model config (no torch, nothing built)."""

from __future__ import annotations

import json
from typing import Optional

import typer

from scalelab.commands import _inspect_options as O
from scalelab.commands._common import user_errors


@user_errors
def inspect(
    preset: str = O.PRESET,
    ffn: Optional[str] = O.FFN,
    rank: Optional[int] = O.RANK,
    blocks: Optional[int] = O.BLOCKS,
    ffn_fraction: Optional[float] = O.FFN_FRACTION,
    attn: Optional[str] = O.ATTN,
    kv_heads: Optional[int] = O.KV_HEADS,
    attn_rank: Optional[int] = O.ATTN_RANK,
    d_attn: Optional[int] = O.D_ATTN,
    d_ff: Optional[int] = O.D_FF,
    guided: bool = O.GUIDED,
    guide_fraction: float = O.GUIDE_FRACTION,
    reduce_flop: bool = O.REDUCE_FLOP,
    seq_len: Optional[int] = O.SEQ_LEN,
    vocab_multiple: Optional[int] = O.VOCAB_MULTIPLE,
    tokens: Optional[str] = O.TOKENS,
    param: str = O.PARAM,
    mup_base_width: Optional[int] = O.MUP_BASE_WIDTH,
    as_json: bool = O.JSON,
) -> None:
    """Params and training FLOPs of one model config (seeds' FLOP convention and 6N)."""
    shape = dict(locals())  # the options by name (first: nothing else is local yet); all but two shape the model
    from scalelab.commands._inspect_config import build_config

    del shape["tokens"], shape["as_json"]
    cfg = build_config(**shape)
    out, token_src = quantities(cfg, preset, tokens)
    if as_json:
        typer.echo(json.dumps(out))
        return
    from scalelab.commands._inspect_render import print_inspect

    print_inspect(out, cfg, token_src)


def quantities(cfg, preset: str, tokens: Optional[str]) -> tuple[dict, str]:
    """Inspect's JSON object (params, FLOPs per token, training FLOPs at the token budget; the guide's and
    muP's numbers when they apply; the model config) and where the token budget comes from."""
    from scalelab import flops as F
    from scalelab.structures import ffn_fraction as kept_share

    pc = F.param_counts(cfg)
    n_tokens, token_src = _token_budget(tokens, preset, pc.params)
    out = {
        "preset": preset,
        "variant": cfg.variant,
        "params": pc.params,
        "params_nonembed": pc.params_nonembed,
        "ffn_params": pc.ffn_params,
        "attn_params": pc.attn_params,
        "embed_params": pc.embed_params,
        "ffn_kept_share": kept_share(cfg.ffn, cfg.d_model, cfg.ffn_width),
        "flops_per_token": F.flops_per_token(cfg),
        "forward_flops_per_token": F.forward_flops_per_token(cfg),
        "flops_6n_per_token": F.flops_6n_per_token(cfg),
        "tokens": n_tokens,
        "train_flops": F.train_flops(cfg, n_tokens),
        "train_flops_6nd": F.flops_6n_per_token(cfg) * n_tokens,
    }
    if cfg.guide is not None:
        out.update(
            guide_params=pc.guide_params,
            guide_flops_per_token=F.guide_flops_per_token(cfg),
            guide_train_flops=F.guide_train_flops(cfg, n_tokens),
            equal_flops_ratio=F.equal_flops_ratio(cfg),
        )
    if cfg.param == "mup":
        from scalelab import mup

        out.update(
            param="mup",
            mup_base_width=cfg.mup_base_width,
            mup_logit_mult=mup.logit_mult(cfg),
            mup_attn_scale=mup.attn_scale(cfg),
            mup_groups=mup.table(cfg),
        )
    out["model"] = cfg.to_dict()
    return out, token_src


def _token_budget(tokens: Optional[str], preset: str, params: int) -> tuple[float, str]:
    """--tokens, else the seeds' published budget of a seed preset, else 20 tokens per parameter."""
    from scalelab.presets import SEED_TOKENS

    if tokens is not None:
        return _parse_tokens(tokens), "--tokens"
    if preset in SEED_TOKENS:
        return SEED_TOKENS[preset], f"{preset} published budget"
    return 20.0 * params, "20 x params"


def _parse_tokens(text: str) -> float:
    from scalelab.errors import ScalelabError

    t = text.strip().replace("_", "")
    mult = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}.get(t[-1:].lower(), None)
    try:
        v = float(t[:-1]) * mult if mult else float(t)
    except ValueError:
        raise ScalelabError(f"--tokens {text!r} is not a number: write e.g. 25.5e9 or 25.5B") from None
    if not v > 0 or v != v or v == float("inf"):
        raise ScalelabError(f"--tokens must be a positive number, got {text!r}")
    return v
