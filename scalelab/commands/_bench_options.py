"""The options of `scalelab bench ffn | train | coord-check | fit`, defined once."""

from __future__ import annotations

import typer

OUT = typer.Option("bench", "--out", help="Output folder.")
JSON = typer.Option(False, "--json", help="Print the rows as JSON instead of a table.")
NAME_HELP = "Results go to OUT/NAME.json and OUT/NAME.md."

# ---- bench ffn --------------------------------------------------------------------------------------------
FFN_WIDTHS = typer.Option(
    None,
    "--widths",
    help="Comma-separated d_model values (FFN d -> 4d -> d). Default: 256,512,1024 on CPU; 1024,2048,4096,5120 "
    "on CUDA.",
)
FFN_TOKENS = typer.Option(
    None, "--tokens", help="Tokens per call (rows of x). Default 2048 on CPU, 30720 on CUDA (the seeds' ~30K)."
)
FFN_FRACTIONS = typer.Option(
    "63,32", "--fractions", help="Kept shares of the FFN params in percent (the seeds' 63% and 32% settings)."
)
FFN_KINDS = typer.Option(
    None, "--kinds", help="Structures to time against dense, comma-separated (default: every registered kind)."
)
FFN_DEVICE = typer.Option("auto", "--device", help="auto, cpu or cuda (CUDA uses bf16 autocast; CPU float32).")
FFN_REPEATS = typer.Option(5, "--repeats", help="Timed calls per measurement (the best is kept).")
FFN_COMPILE = typer.Option(False, "--compile", help="torch.compile each FFN first.")
FFN_NAME = typer.Option("ffn", "--name", help=NAME_HELP)

# ---- bench train ------------------------------------------------------------------------------------------
TRAIN_PRESET = typer.Option("small", "--preset", "-p", help="Model shape (scalelab inspect lists the numbers).")
TRAIN_VARIANTS = typer.Option(
    "dense,lowrank-63,lowrank-32,blockdense-63,blockshuffle-63",
    "--variants",
    help="Comma-separated variants: dense, KIND-63, KIND-32, KIND with its sizes (lowrank-rR, blockdense-bBrR, "
    "blockshuffle-bB, ...: scalelab/structures.py), lpa-rR, gqa-kvK, sg, mup, joined with + (e.g. "
    "lowrank-32+gqa-kv2; scalelab/variant.py).",
)
TRAIN_BATCH = typer.Option(16, "--batch", help="Sequences per step.")
TRAIN_SEQ_LEN = typer.Option(None, "--seq-len", help="Sequence length (default: the preset's).")
TRAIN_STEPS = typer.Option(5, "--steps", help="Timed optimizer steps (the best is kept).")
TRAIN_WARMUP = typer.Option(2, "--warmup", help="Untimed steps first.")
TRAIN_DEVICE = typer.Option("auto", "--device", help="auto, cpu or cuda (CUDA: bf16 autocast and fused AdamW).")
TRAIN_COMPILE = typer.Option(False, "--compile", help="torch.compile the model.")
TRAIN_NAME = typer.Option("train", "--name", help=NAME_HELP)

# ---- bench coord-check ------------------------------------------------------------------------------------
COORD_WIDTHS = typer.Option("32,64,128,256,512", "--widths", help="Comma-separated d_model values.")
COORD_KINDS = typer.Option(
    None, "--kinds", help="Structures (FFN kept share 32%), comma-separated (default: dense and every kind)."
)
COORD_STEPS = typer.Option(4, "--steps", help="Adam steps on the fixed batch.")
COORD_LR = typer.Option(1e-2, "--lr", help="Peak lr (muP: of a square layer of the base width 64).")
COORD_SEED = typer.Option(0, "--seed", help="Init and batch seed.")
COORD_NAME = typer.Option("coord_check", "--name", help="Results go to OUT/NAME.json, .md and .png.")
COORD_JSON = typer.Option(False, "--json", help="Print the slopes as JSON instead of a table.")

# ---- bench fit --------------------------------------------------------------------------------------------
FIT_DATA = typer.Option(
    None, "--data", help="Epoch's chinchilla_epoch.csv (default: ../shared/data/chinchilla_epoch.csv)."
)
FIT_BOOTSTRAP = typer.Option(1000, "--bootstrap", help="Resamples in our timed fit.")
FIT_REPEATS = typer.Option(3, "--repeats", help="Timed repeats of our fit (median reported).")
FIT_REF_STARTS = typer.Option(
    None, "--ref-starts", help="Use about this many of the reference grid's 4,500 starts (default: all)."
)
FIT_MULTI = typer.Option(
    True, "--multi/--no-multi", help="Also time the multi-group case (Porian et al.'s 10 configurations)."
)
FIT_MULTI_DATA = typer.Option(
    None,
    "--multi-data",
    help="CSV of the multi-group case, columns N, D, C, loss, group, run (default: "
    "../shared/data/external/porian.csv).",
)
FIT_COVERAGE = typer.Option(
    0,
    "--coverage",
    help="Also check interval coverage on this many synthetic data sets from a known law (e.g. 50).",
)
FIT_NAME = typer.Option("fit", "--name", help=NAME_HELP)
