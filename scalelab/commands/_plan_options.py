"""The options of `scalelab plan`, defined once: each mode's subcommand and the one-command form with every
option (`plan classic`, what `scalelab plan --flops ...` runs) share them."""

from __future__ import annotations

import typer

FIT = typer.Option(
    None,
    "--fit",
    help="Fit file (fits/NAME.json with NAME.samples.parquet beside it). Default: the newest fits/*.json.",
)
VARIANT = typer.Option(
    None, "--variant", "-v", help="Plan only these variants (repeat the option). Default: every group in the fit."
)
JSON = typer.Option(False, "--json", help="Print the plan as JSON (for machines) instead of a table.")

# ---- a plan at a budget -----------------------------------------------------------------------------------
FLOPS = typer.Option(
    None, "--flops", "-C", help="Training budget in FLOPs (the fit's convention), e.g. 1e21 or 3.2e20."
)
GPU_HOURS = typer.Option(
    None,
    "--gpu-hours",
    help="Plan for wall clock instead: each variant gets the FLOPs that H GPU-hours buy at its measured throughput.",
)
GPU = typer.Option(
    "h100",
    "--gpu",
    help="Accelerator for the GPU-hours column and --gpu-hours: h100, h200, a100 (peak bf16 FLOP/s) or cpu "
    "(measured rates as they are).",
)
MFU = typer.Option(
    None, "--mfu", help="Assume this model-FLOPs utilisation (0-1) instead of the runs' measured throughput."
)
INFERENCE_TOKENS = typer.Option(
    None,
    "--inference-tokens",
    help="Also serve T generated tokens: minimise training plus inference FLOPs (2 N per token) within the budget.",
)
TARGET_LOSS = typer.Option(
    None,
    "--target-loss",
    help="Inverse: the compute each variant needs for its optimal loss to reach L (nats), with interval.",
)
MULTIPLE = typer.Option(
    None,
    "--multiple",
    help="d_model of the chosen shape is a multiple of this (default 64, or the fitted runs' common width divisor "
    "when smaller).",
)
DEPTH = typer.Option(
    None, "--depth", help="Fix n_layers of the chosen shape (default: the aspect rule of the fit's runs)."
)
UNIQUE_TOKENS = typer.Option(
    None,
    "--unique-tokens",
    help="Unique tokens in the training corpus. On a repetition-law fit (fit --form repetition): the "
    "data-constrained optimum, repeating the corpus where that pays, with its epochs and the unconstrained "
    "optimum beside it. On other fits: a warning when D_opt would repeat data.",
)

# ---- over budgets -----------------------------------------------------------------------------------------
SWEEP = typer.Option(None, "--sweep", help="Table over log-spaced budgets instead, e.g. 1e19:1e23.")
SWEEP_POINTS = typer.Option(9, "--sweep-points", help="Number of budgets in --sweep.")

# ---- the IsoFLOP grid around the plan ---------------------------------------------------------------------
EMIT_GRID = typer.Option(
    None,
    "--emit-grid",
    help="Also write a grid TOML that trains, per variant, the planned shape and sizes around it, all at the "
    "--flops budget (an IsoFLOP set bracketing the optimum), with the fitted runs' data and training settings.",
)
SIZES_HELP = "Sizes per variant in the grid (3 to 7)."
SPREAD_HELP = "Grid sizes span N_opt / SPREAD .. N_opt x SPREAD (log-evenly)."
EMIT_SIZES = typer.Option(5, "--emit-sizes", help=SIZES_HELP)
SIZES = typer.Option(5, "--sizes", help=SIZES_HELP)
EMIT_SPREAD = typer.Option(4.0, "--emit-spread", help=SPREAD_HELP)
SPREAD = typer.Option(4.0, "--spread", help=SPREAD_HELP)

# ---- the next runs ----------------------------------------------------------------------------------------
SUGGEST = typer.Option(
    None,
    "--suggest",
    help="Instead of a plan: the K new runs (shape, tokens) that most narrow the interval of --suggest-for per FLOP, "
    "found by refitting the fit's points (with its bootstrap) with each candidate's predicted loss. Where N_opt is "
    "not identified: the K cheapest runs that make the design identify it.",
)
MAX_FLOPS_HELP = "Most FLOPs one suggested run may cost (default: 4x the largest fitted run)."
SUGGEST_FLOPS = typer.Option(None, "--suggest-flops", help=MAX_FLOPS_HELP)
MAX_FLOPS = typer.Option(None, "--max-flops", help=MAX_FLOPS_HELP)
FOR_HELP = (
    "n_opt (a variant's compute-optimal N at --at), multiplier (its compute multiplier vs --versus) or a parameter "
    "of its law (E, A, B, alpha, beta)."
)
SUGGEST_FOR = typer.Option("n_opt", "--suggest-for", help=FOR_HELP)
FOR = typer.Option("n_opt", "--for", help=FOR_HELP)
SUGGEST_VARIANT = typer.Option(None, "--suggest-variant", help="Variant whose quantity to narrow.")
VERSUS = typer.Option("dense", "--versus", help="Reference variant of --suggest-for multiplier.")
AT = typer.Option(
    None, "--at", help="Budget (FLOPs) of the quantity --suggest narrows (default: 10x the largest fitted run)."
)
SUGGEST_BOOT = typer.Option(200, "--suggest-bootstrap", help="Resamples per refit in --suggest.")
BOOTSTRAP = typer.Option(200, "--bootstrap", help="Resamples per refit.")

# ---- a time budget from measured throughput (plan share; plan/throughput_model.py) -------------------------
SHARE_GPU_HOURS = typer.Option(
    None,
    "--gpu-hours",
    help="Plan for H device-hours instead of --flops: each shape trains on H x 3600 x its tokens/s, interpolated "
    "from --throughput (bench train tables) in log width and share.",
)
THROUGHPUT = typer.Option(
    None,
    "--throughput",
    help="`scalelab bench train` table(s) of one device (repeat the option for several widths). Default: "
    "bench/train.json when it exists.",
)
