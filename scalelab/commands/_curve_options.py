"""`scalelab fit --curves` options (fit/curves.py, fit/curves_csv.py), declared once like _fit_options.py."""

from __future__ import annotations

import typer

CURVES = typer.Option(
    False,
    "--curves",
    help="Fit a curve law to the whole validation curves of run-store runs, or of CSV curves with --schedule or "
    "--lr-col (schedule-aware: the annealing-area "
    "and multi-power laws compared on held-out cooldown branches, the better one kept) -> fits/NAME.curves.json. "
    "Uses --by, --bootstrap, --seed, --level, --loss, --delta, --out.",
)

HOLDOUT_BRANCHES = typer.Option(
    False,
    "--holdout-branches",
    help="With --curves: fit without every cooldown branch but the shortest per size and print the error "
    "predicting each held-out branch final.",
)

SCHEDULE = typer.Option(
    None,
    "--schedule",
    help="With --curves on CSV: the runs' lr schedule, e.g. 'warmup=0.01,peak_lr=3e-3,decay=wsd,cooldown=0.2,"
    "shape=linear'. Keys: warmup (fraction of the trunk's last step) or warmup_steps, peak_lr, decay "
    "(constant|cosine|wsd), cooldown (fraction of a branch's steps), shape (1-sqrt|linear), min_lr (cosine's end / "
    "peak), tokens_per_step (steps from --d-col when there is no step column).",
)

LR_COL = typer.Option(
    None, "--lr-col", help="With --curves on CSV: column of the lr at each row (linear between rows), for --schedule."
)

BRANCH_COL = typer.Option(
    None,
    "--branch-col",
    help="With --curves on CSV: cooldown branches forked from their run's trunk. COL: each row's branch name "
    "(blank on trunk rows); COL=TRUNK:BRANCH: rows with COL == TRUNK are trunk checkpoints, COL == BRANCH "
    "cooldown ends, one branch each (Gemstones: group=hot:cool_end); other rows are left out.",
)

STEP_COL = typer.Option("step", "--step-col", help="With --curves on CSV: column of optimizer steps (default step).")

DERIVE = typer.Option(
    False,
    "--derive",
    help="With --curves on run files: also fit L(N, D) (approach 3) on points the curve law derives: per size, "
    "--derive-budgets token budgets between its smallest and largest configured budget, each the law's final loss "
    "of the runs' schedule ending there. Intervals: the law refitted on each curve-law resample's points. -> "
    "fits/NAME.derived.json (a fit file `plan` reads; its points are marked derived, its groups record the curve "
    "law for `plan schedule`). With --holdout-branches the curve law sees only trunks and the shortest branch.",
)

DERIVE_BUDGETS = typer.Option(
    4, "--derive-budgets", help="With --derive: log-spaced token budgets per size (default 4: the demo grid's)."
)
