"""What `scalelab inspect` prints: the params and FLOPs table, and muP's per-group table."""

from __future__ import annotations

from scalelab import numfmt
from scalelab.commands._common import stdout_console


def print_inspect(out: dict, cfg, token_src: str) -> None:
    """The quantities of `out` (inspect's JSON object) with what each counts; muP's table under --param mup."""
    from rich.table import Table

    t = Table(title=f"{out['preset']}: {cfg.variant}", show_header=True)
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_column("note")
    for r in _rows(out, cfg, token_src) + (_guide_rows(out, cfg) if cfg.guide is not None else []):
        t.add_row(*r)
    stdout_console().print(t)
    if cfg.param == "mup":
        _print_mup(out)


def _rows(out: dict, cfg, token_src: str) -> list:
    return [
        ("params", f"{out['params']:,}", f"tied embedding once, padded vocab {cfg.padded_vocab}"),
        ("params_nonembed", f"{out['params_nonembed']:,}", "params minus the token embedding"),
        (
            "ffn_params",
            f"{out['ffn_params']:,}",
            f"FFN weights+biases, all blocks; kept share {out['ffn_kept_share']:.1%} of dense",
        ),
        ("attn_params", f"{out['attn_params']:,}", cfg.attn),
        ("flops_per_token", numfmt.sig(out["flops_per_token"]), "3 x forward (seeds' convention)"),
        ("flops_6n_per_token", numfmt.sig(out["flops_6n_per_token"]), "6 x params_nonembed"),
        ("tokens", numfmt.sig(out["tokens"]), token_src),
        ("train_flops", numfmt.sig(out["train_flops"]), "flops_per_token x tokens" + (" + guide" * bool(cfg.guide))),
        ("train_flops_6nd", numfmt.sig(out["train_flops_6nd"]), "6 N D"),
    ]


def _guide_rows(out: dict, cfg) -> list:
    return [
        ("guide_params", f"{out['guide_params']:,}", "dense guide matrices (training only, not in params)"),
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


def _print_mup(out: dict) -> None:
    """The muP table: one row per parameter group (name pattern over GPT.named_parameters())."""
    from rich.console import JustifyMethod
    from rich.table import Table

    t = Table(
        title=f"muP, base width {out['mup_base_width']}: logits x {out['mup_logit_mult']:.4g}, "
        f"attention scale {out['mup_attn_scale']:.4g}",
        show_header=True,
    )
    cols: tuple[tuple[str, JustifyMethod], ...] = (
        ("group (name pattern)", "left"), ("role", "left"), ("fan_in", "right"), ("fan_out", "right"),
        ("blocks", "right"), ("init std", "right"), ("lr mult", "right"),
    )  # fmt: skip
    for c, j in cols:
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
