"""The options of `scalelab inspect`, defined once: the shape, its FFN and attention structure, self-guided
training, the parametrisation and the token budget."""

from __future__ import annotations

import typer

PRESET = typer.Option(
    "small", "--preset", "-p", help="Model shape: seed-s, seed-m, seed-l, seed-xl, tiny, small, medium."
)

# ---- the FFN structure ------------------------------------------------------------------------------------
FFN = typer.Option(
    None,
    "--ffn",
    help="FFN structure, a kind of scalelab/structures.py: dense, lowrank, blockdense, blockshuffle, ... "
    "(default: the preset's).",
)
RANK = typer.Option(None, "--rank", help="Rank R of lowrank / blockdense FFN linears.")
BLOCKS = typer.Option(None, "--blocks", help="Block count B of blockdense / blockshuffle FFN linears.")
FFN_FRACTION = typer.Option(
    None,
    "--ffn-fraction",
    help="Pick rank/blocks to keep this share of the FFN params: 63 or 32 (the seeds' settings; any percent works).",
)

# ---- attention and widths ---------------------------------------------------------------------------------
ATTN = typer.Option(None, "--attn", help="Attention: mha, gqa (fewer KV heads) or lpa (Q, K, V, O as d -> r -> d).")
KV_HEADS = typer.Option(None, "--kv-heads", help="Key/value heads for gqa (divides the query heads).")
ATTN_RANK = typer.Option(None, "--attn-rank", help="LPA rank r.")
D_ATTN = typer.Option(None, "--d-attn", help="Attention width n_heads x head_dim (default d_model).")
D_FF = typer.Option(None, "--d-ff", help="FFN width (default: the preset's).")

# ---- self-guided training ---------------------------------------------------------------------------------
GUIDED = typer.Option(False, "--guided", help="Self-guided training: count the dense guide path's FLOPs.")
GUIDE_FRACTION = typer.Option(0.5, "--guide-fraction", help="Share of the steps over which the guide fades out.")
REDUCE_FLOP = typer.Option(
    True,
    "--reduce-flop/--no-reduce-flop",
    help="Self-guided reduce_flop: the guide path runs with probability alpha (on: the seeds' pairing, as "
    "`guide = true` in a grid).",
)

# ---- context, vocab, tokens, parametrisation --------------------------------------------------------------
SEQ_LEN = typer.Option(None, "--seq-len", help="Context length (enters the attention FLOPs; default: the preset's).")
VOCAB_MULTIPLE = typer.Option(
    None,
    "--vocab-multiple",
    help="Pad the vocab to a multiple of this (64 on GPU); params and logits FLOPs use the padded vocab.",
)
TOKENS = typer.Option(
    None,
    "--tokens",
    help="Training tokens, e.g. 25.5e9 (default: the seeds' budget for seed presets, else 20 per parameter).",
)
PARAM = typer.Option(
    "sp",
    "--param",
    help="Parametrisation: sp (standard) or mup (per-tensor init and lr multipliers: prints the table).",
)
MUP_BASE_WIDTH = typer.Option(
    None, "--mup-base-width", help="muP's base width b (default 64): a b-wide square layer keeps SP's init and lr."
)
JSON = typer.Option(False, "--json", help="Print one JSON object instead of a table.")
