"""`scalelab inspect`: params and FLOPs of one model config (no torch, nothing built)."""

from __future__ import annotations

import json
from typing import Optional

import typer

from scalelab import numfmt
from scalelab.commands._common import stdout_console, user_errors


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
    from scalelab import structures, variant
    from scalelab.config import ATTENTIONS, PARAMS, GuideConfig
    from scalelab.errors import ScalelabError
    from scalelab.presets import get_preset

    preset_cfg = get_preset(preset)
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
    d_model = preset_cfg.d_model
    ffn_width = changes.get("d_ff", preset_cfg.d_ff) or 4 * d_model

    # FFN structure: a kind with its sizes or a kept share (scalelab.variant.from_flags)
    kind = ffn if ffn is not None else preset_cfg.ffn.kind
    if kind not in structures.names():
        raise ScalelabError(f"--ffn {kind!r} is unknown: use one of {', '.join(structures.names())}")
    frac = None if ffn_fraction is None else (ffn_fraction / 100.0 if ffn_fraction > 1 else ffn_fraction)
    changes["ffn"] = variant.from_flags(kind, rank, blocks, frac).structure(d_model, ffn_width)

    # attention
    a = (
        attn
        if attn is not None
        else ("gqa" if kv_heads is not None and kv_heads != preset_cfg.n_heads else preset_cfg.attn)
    )
    if a not in ATTENTIONS:
        raise ScalelabError(f"--attn {a!r} is unknown: use one of {', '.join(ATTENTIONS)}")
    if a == "mha" and kv_heads is not None and kv_heads != preset_cfg.n_heads:
        raise ScalelabError(
            f"--attn mha uses n_kv_heads = n_heads = {preset_cfg.n_heads}: use --attn gqa for --kv-heads {kv_heads}"
        )
    if a != "lpa" and attn_rank is not None:
        raise ScalelabError("--attn-rank is LPA's rank: use it with --attn lpa")
    changes.update(
        attn=a,
        n_kv_heads=kv_heads if kv_heads is not None else preset_cfg.n_kv_heads,
        attn_rank=attn_rank if a == "lpa" else None,
    )
    if guided:
        changes["guide"] = GuideConfig(fraction=guide_fraction, reduce_flop=reduce_flop)
    return preset_cfg.replace(**changes).validate()


@user_errors
def inspect(
    preset: str = typer.Option(
        "small", "--preset", "-p", help="Model shape: seed-s, seed-m, seed-l, seed-xl, tiny, small, medium."
    ),
    ffn: Optional[str] = typer.Option(
        None,
        "--ffn",
        help="FFN structure, a kind of scalelab/structures.py: dense, lowrank, blockdense, blockshuffle, ... "
        "(default: the preset's).",
    ),
    rank: Optional[int] = typer.Option(None, "--rank", help="Rank R of lowrank / blockdense FFN linears."),
    blocks: Optional[int] = typer.Option(
        None, "--blocks", help="Block count B of blockdense / blockshuffle FFN linears."
    ),
    ffn_fraction: Optional[float] = typer.Option(
        None,
        "--ffn-fraction",
        help="Pick rank/blocks to keep this share of the FFN params: 63 or 32 (the seeds' settings; any percent "
        "works).",
    ),
    attn: Optional[str] = typer.Option(
        None, "--attn", help="Attention: mha, gqa (fewer KV heads) or lpa (Q, K, V, O as d -> r -> d)."
    ),
    kv_heads: Optional[int] = typer.Option(
        None, "--kv-heads", help="Key/value heads for gqa (divides the query heads)."
    ),
    attn_rank: Optional[int] = typer.Option(None, "--attn-rank", help="LPA rank r."),
    d_attn: Optional[int] = typer.Option(
        None, "--d-attn", help="Attention width n_heads x head_dim (default d_model)."
    ),
    d_ff: Optional[int] = typer.Option(None, "--d-ff", help="FFN width (default: the preset's)."),
    guided: bool = typer.Option(False, "--guided", help="Self-guided training: count the dense guide path's FLOPs."),
    guide_fraction: float = typer.Option(
        0.5, "--guide-fraction", help="Share of the steps over which the guide fades out."
    ),
    reduce_flop: bool = typer.Option(
        True,
        "--reduce-flop/--no-reduce-flop",
        help="Self-guided reduce_flop: the guide path runs with probability alpha (on: the seeds' pairing, as "
        "`guide = true` in a grid).",
    ),
    seq_len: Optional[int] = typer.Option(
        None, "--seq-len", help="Context length (enters the attention FLOPs; default: the preset's)."
    ),
    vocab_multiple: Optional[int] = typer.Option(
        None,
        "--vocab-multiple",
        help="Pad the vocab to a multiple of this (64 on GPU); params and logits FLOPs use the padded vocab.",
    ),
    tokens: Optional[str] = typer.Option(
        None,
        "--tokens",
        help="Training tokens, e.g. 25.5e9 (default: the seeds' budget for seed presets, else 20 per parameter).",
    ),
    param: str = typer.Option(
        "sp",
        "--param",
        help="Parametrisation: sp (standard) or mup (per-tensor init and lr multipliers: prints the table).",
    ),
    mup_base_width: Optional[int] = typer.Option(
        None, "--mup-base-width", help="muP's base width b (default 64): a b-wide square layer keeps SP's init and lr."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Params and training FLOPs of one model config (seeds' FLOP convention and 6N)."""
    from scalelab import flops as F
    from scalelab.presets import SEED_TOKENS
    from scalelab.structures import ffn_fraction as kept_share

    cfg = build_config(
        preset,
        ffn,
        rank,
        blocks,
        ffn_fraction,
        attn,
        kv_heads,
        attn_rank,
        d_attn,
        d_ff,
        guided,
        guide_fraction,
        reduce_flop,
        seq_len,
        vocab_multiple,
        param,
        mup_base_width,
    )
    pc = F.param_counts(cfg)
    if tokens is not None:
        n_tokens, token_src = _parse_tokens(tokens), "--tokens"
    elif preset in SEED_TOKENS:
        n_tokens, token_src = SEED_TOKENS[preset], f"{preset} published budget"
    else:
        n_tokens, token_src = 20.0 * pc.params, "20 x params"
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
    if as_json:
        typer.echo(json.dumps(out))
        return

    from rich.table import Table

    t = Table(title=f"{preset}: {cfg.variant}", show_header=True)
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_column("note")
    rows = [
        ("params", f"{pc.params:,}", f"tied embedding once, padded vocab {cfg.padded_vocab}"),
        ("params_nonembed", f"{pc.params_nonembed:,}", "params minus the token embedding"),
        (
            "ffn_params",
            f"{pc.ffn_params:,}",
            f"FFN weights+biases, all blocks; kept share {out['ffn_kept_share']:.1%} of dense",
        ),
        ("attn_params", f"{pc.attn_params:,}", cfg.attn),
        ("flops_per_token", numfmt.sig(out["flops_per_token"]), "3 x forward (seeds' convention)"),
        ("flops_6n_per_token", numfmt.sig(out["flops_6n_per_token"]), "6 x params_nonembed"),
        ("tokens", numfmt.sig(n_tokens), token_src),
        ("train_flops", numfmt.sig(out["train_flops"]), "flops_per_token x tokens" + (" + guide" * bool(cfg.guide))),
        ("train_flops_6nd", numfmt.sig(out["train_flops_6nd"]), "6 N D"),
    ]
    if cfg.guide is not None:
        rows += [
            ("guide_params", f"{pc.guide_params:,}", "dense guide matrices (training only, not in params)"),
            (
                "guide_flops_per_token",
                numfmt.sig(out["guide_flops_per_token"]),
                "while the guide path runs (x alpha under reduce_flop)",
            ),
            (
                "guide_train_flops",
                numfmt.sig(out["guide_train_flops"]),
                f"over the first {cfg.guide.fraction:.0%} of steps",
            ),
            (
                "equal_flops_ratio",
                f"{out['equal_flops_ratio']:.3f}",
                "r: the guided run's FLOPs equal the dense model's (flops.equal_flops_ratio)",
            ),
        ]
    for r in rows:
        t.add_row(*r)
    stdout_console().print(t)
    if cfg.param == "mup":
        _print_mup(out)


def _print_mup(out: dict) -> None:
    """The muP table: one row per parameter group (name pattern over GPT.named_parameters())."""
    from rich.table import Table

    t = Table(
        title=f"muP, base width {out['mup_base_width']}: logits x {out['mup_logit_mult']:.4g}, "
        f"attention scale {out['mup_attn_scale']:.4g}",
        show_header=True,
    )
    for c, j in (("group (name pattern)", "left"), ("role", "left"), ("fan_in", "right"), ("fan_out", "right"),
                 ("blocks", "right"), ("init std", "right"), ("lr mult", "right")):  # fmt: skip
        t.add_column(c, justify=j)
    dash = lambda v, f: "-" if v is None else format(v, f)
    for g in out["mup_groups"]:
        init = dash(g["init_std"], ".4g") if g["role"] != "guide" else "product"
        if g["role"] == "vector":
            init = "SP init"
        t.add_row(
            g["pattern"], g["role"], dash(g["fan_in"], "d"), dash(g["fan_out"], "d"), str(g["count"]), init,
            numfmt.sig(g["lr_mult"]),
        )  # fmt: skip
    stdout_console().print(t)
