"""The options of `scalelab fit`, defined once. Each spec option is an alias of a FitSpec field (fit/spec.py):
`--spec FILE.toml` gives the fields, the options given override them."""

from __future__ import annotations

import typer

INPUTS = typer.Argument(
    ..., help="Run-store files (runs/*.parquet) or CSV files of (N, D, loss) points.", show_default=False
)

BY = typer.Option(
    None,
    "--by",
    help="Comma-separated columns to group by. Default: variant for the run store, --group-col (or one group) "
    "for CSV. E.g. --by variant,d_model fits L(D) per width.",
)

FORM = typer.Option(
    "auto",
    "--form",
    help="auto | chinchilla (L(N,D)=E+A/N^alpha+B/D^beta) | data (L(D), fixed N) | size (L(N), fixed D) | "
    "frontier (L(C)=E+K/C^gamma) | power (L(C)=K/C^gamma). auto picks chinchilla when N and D both vary, "
    "frontier when they are confounded (one tokens/param ratio); repetition (L at effective N', D' for repeated "
    "data) when runs repeat their data beyond 4 epochs (--unique-col).",
)

APPROACH = typer.Option(
    3,
    "--approach",
    help="3: parametric fit (default). 1: envelope of loss vs FLOPs -> N_opt(C), D_opt(C). 2: IsoFLOP parabolas. "
    "1 and 2 use statsmodels OLS and need curves/IsoFLOP slices.",
)

SLICE_WINDOW = typer.Option(
    "whole",
    "--slice-window",
    help="Approach 2: whole (default) fits each IsoFLOP parabola on the whole slice, as Hoffmann et al., Llama 3 "
    "and the Open-Athena compendium; near-min on a window about the slice's minimum (less bias on noise-free, "
    "asymmetric slices, more error on noisy ones: README 'Approaches 1 and 2').",
)

BOOTSTRAP = typer.Option(
    1000,
    "--bootstrap",
    help="Bootstrap resamples of whole runs (rows when there is no run id). 0: no intervals (the planner will "
    "refuse such a fit).",
)

SEED = typer.Option(0, "--seed", help="Seed of the bootstrap.")

LEVEL = typer.Option(0.95, "--level", help="Level of the percentile intervals.")

LOSS = typer.Option(
    "huber", "--loss", help="huber (Huber on log loss, as Hoffmann et al.) or lsq (least squares on log loss)."
)

DELTA = typer.Option(1e-3, "--delta", help="Huber delta (on log-loss residuals).")

WEIGHTS = typer.Option("none", "--weights", help="none, or compute: weight each point by sqrt(C) (normalised).")

OVERESTIMATE_PENALTY = typer.Option(
    1.0,
    "--overestimate-penalty",
    help="Multiply the loss of points the law over-predicts by this (e.g. 10): fits the lower envelope when "
    "small runs were under-tuned. 1 = symmetric.",
)

SHARE_E = typer.Option(
    False,
    "--share-e",
    help="Joint L(N, D) fit across groups sharing one E (same data, same irreducible loss), per-group A, B, "
    "alpha, beta.",
)

HOLDOUT = typer.Option(
    None,
    "--holdout",
    help="largest: refit without the largest-size runs and report the relative error predicting them.",
)

COMPARE = typer.Option(
    None,
    "--compare",
    help="Two groups 'A,B' to compare (repeatable): bootstrap interval of B - A in alpha, beta, a. Default: "
    "every group against dense when a dense group exists.",
)

AT_FLOPS = typer.Option(
    None,
    "--at-flops",
    help="FLOPs budgets, comma-separated (e.g. 1e21,1e22). The first: where compute-optimal N, D and tokens per "
    "parameter are reported (C = k N D, k the group's median FLOPs per param-token; default the largest C). "
    "All: where each comparison's compute multiplier is reported (default: the largest fitted C and 10x it).",
)

SHARE_EXPONENTS = typer.Option(
    False,
    "--share-exponents",
    help="Joint fit across groups with one E and one set of exponents (alpha, beta; gamma for L(C)) and "
    "per-group coefficients (Volkova et al. 2026): each variant's compute multiplier is then one number.",
)

SHARE_COL = typer.Option(
    None,
    "--share-col",
    help="The law across FFN shares: column of each point's kept FFN share f (structured FFN params / dense "
    "FFN params, in (0, 1]; rows with 1 are the dense runs that anchor every kind), or 'config' to derive it "
    "from run-store configs. One joint law per structure kind (--by: the kind column) with shared exponents and "
    "effective sizes N f^rho_N, D f^rho_D; needs 3+ shares including dense and 2+ sizes at each.",
)

ALL_CHECKPOINTS = typer.Option(
    False,
    "--all-checkpoints",
    help="Run store: also use curve points, dropping checkpoints before 20% of each run's final tokens. Default: "
    "final rows only.",
)

DROP_TOP_LOSS = typer.Option(
    0, "--drop-top-loss", help="Drop the K highest-loss points first (the Chinchilla replication drops 5)."
)

N_COL = typer.Option(None, "--n-col", help="Column of parameters N. Default: params (run store), N (CSV).")

D_COL = typer.Option(
    None,
    "--d-col",
    help="Column of tokens D. Default: tokens (run store), D (CSV; when absent and --flops-col is given, D = C/(6N)).",
)

LOSS_COL = typer.Option(
    None, "--loss-col", help="Column of the loss (nats). Default: val_loss (run store), loss (CSV)."
)

FLOPS_COL = typer.Option(
    None,
    "--flops-col",
    help="Column of training FLOPs C. Default: flops (run store, the seeds' convention); CSV: none (C = 6ND).",
)

GROUP_COL = typer.Option(None, "--group-col", help="CSV: column naming each point's group (same as --by).")

RUN_COL = typer.Option(
    None,
    "--run-col",
    help="CSV: column of run ids (the bootstrap unit). Default: run_id (run store); CSV: a column named run "
    "or run_id when there is one, else rows.",
)

UNIQUE_COL = typer.Option(
    None,
    "--unique-col",
    help="Column of unique tokens per row (repeated data: at most the tokens). Default: tokens / epochs from an "
    "'epochs' column (the run store's) when there is one. Runs beyond 4 epochs make --form auto fit the "
    "data-constrained law (--form repetition, Muennighoff et al. 2023).",
)

STARTS = typer.Option(
    None,
    "--starts",
    help="Polished starts per bootstrap resample, the point fit's optimum among them (each resample finds its "
    "own optimum; the point fit uses 64). Default: 240 // points, clipped to 2..8 (2 from 81 points, 8 up to "
    "30). A resample whose starts disagree (fewer than 2 reach its best value) is polished further, then "
    "refitted from 16 starts; the fraction that agreed is reported; where any disagreed, the resamples in the "
    "tails are polished again from other resamples' optima. Given, each start is polished to convergence (up "
    "to 400 iterations, not 60) and nothing is re-seeded: the interval reference of `scalelab bench fit`.",
)

FIX = typer.Option(
    None,
    "--fix",
    help="Hold a law parameter at a value, e.g. --fix E=1.69 (repeatable, or a comma list: --fix E=1.69,beta=0.3). "
    "Any of E, A, B, alpha, beta, K, gamma; recorded in the fit file.",
)

ROLLOUT = typer.Option(
    False,
    "--rollout",
    help="Rollout check: fit on the k smallest sizes, predict the next, for growing k; prints the error table "
    "and records it per group in the fit file.",
)

OUT = typer.Option(
    None,
    "--out",
    help="Fit file to write. Default: fits/NAME.json, NAME from the input (its stem, or its folder for several files).",
)

NO_ENVELOPE = typer.Option(
    False,
    "--no-envelope",
    help="Inputs with a hyperparameter sweep (a grid's \\[sweep]): fit every point instead of the best-tuned one "
    "per (group, N, D) (the default: the envelope over the sweep). The lr and batch laws are fitted either way.",
)

THROUGHPUT = typer.Option(
    None,
    "--throughput",
    help="A `scalelab bench train` table (bench/NAME.json; repeatable, e.g. one per width, all from one device): "
    "the time multipliers' basis is its FLOP/s at each run's shape (width, FFN kind and share from the run's "
    "config) instead of the runs' own tokens/s. Recorded in the fit file (spec key throughput_tables).",
)

JSON_OUT = typer.Option(False, "--json", help="Print the fit file's JSON on stdout instead of the table.")

SPEC = typer.Option(
    None,
    "--spec",
    help='TOML file of FitSpec fields (scalelab/fit/spec.py), e.g. n_col = "N", by = ["variant"], bootstrap = '
    "1000, fix = {E = 1.69}. The options given on the command line override it.",
)
