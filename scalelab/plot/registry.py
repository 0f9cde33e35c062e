"""The figures `scalelab plot` draws, in order: name -> function, what it shows, what inputs it needs.

Each function takes a Context (scalelab.plot.shape.context) and returns a matplotlib Figure, or raises
Skip(reason) when its inputs cannot support it (no fit, one variant, no throughput column): a note, not an
error. Entries unpack as (name, draw, description) for the drivers in index.py.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from scalelab.plot.fig_bench import throughput
from scalelab.plot.fig_compute import compute_optimal
from scalelab.plot.fig_curves import curve_law_figure
from scalelab.plot.fig_fit import diagnostics
from scalelab.plot.fig_loss import loss_vs_flops
from scalelab.plot.fig_params import exponents
from scalelab.plot.fig_repetition import loss_vs_epochs
from scalelab.plot.fig_share import share_law
from scalelab.plot.fig_slices import loss_vs_params
from scalelab.plot.fig_sweep import lr_transfer


class Figure(NamedTuple):
    name: str
    draw: Callable
    description: str
    needs: str  # the inputs it draws from (anything less: skipped with the reason)


FIGURES = [
    Figure(
        "fig1_loss_vs_flops",
        loss_vs_flops,
        "Validation loss against training FLOPs: every run's curve (lighter = smaller model), final points "
        "as markers, each variant's fitted compute frontier L*(C) with its bootstrap band (for L(N, D) fits the "
        "law's compute-optimal loss, dashed where C, N_opt or D_opt leave the fitted runs' range).",
        "run files or a table of points; a fit adds L*(C)",
    ),
    Figure(
        "fig2_loss_vs_params",
        loss_vs_params,
        "Final loss against parameters at fixed tokens-per-parameter budgets (or IsoFLOP slices), one panel "
        "per variant, with the fitted law overlaid along each slice.",
        "fitted points (a fit with its data, a table) or run files' final rows; a fit adds the law",
    ),
    Figure(
        "fig3_compute_optimal",
        compute_optimal,
        "Compute-optimal N_opt(C) and D_opt(C) per variant with bootstrap bands; the fitted runs' FLOPs "
        "range shaded, dashed where C, N_opt or D_opt leave the fitted runs' range (extrapolation).",
        "a fit with an L(N, D) or approach-1/2 allocation group",
    ),
    Figure(
        "fig4_exponents",
        exponents,
        "Forest plot of alpha, beta and a = beta/(alpha+beta) per variant with bootstrap intervals, and the "
        "differences against dense where the fit compared them.",
        "a fit with two or more variants, or compute multipliers in its comparisons",
    ),
    Figure(
        "fig5_fit_diagnostics",
        diagnostics,
        "Fit diagnostics: observed vs predicted loss and relative residual vs size; held-out points (the "
        "fit's `--holdout largest` check) hollow, at the prediction of the refit that did not see them.",
        "a fit with a loss law, and its points",
    ),
    Figure(
        "fig6_throughput",
        throughput,
        "Training throughput (tokens/s, and MFU where recorded) per variant against width.",
        "bench files, or run files recording tokens_per_s and d_model",
    ),
    Figure(
        "fig7_lr_transfer",
        lr_transfer,
        "Loss against peak learning rate, one curve per width, one panel per variant (and per parametrisation, "
        "sp / mup): the muTransfer plot. Stars: each width's optimum; titles: the fitted lr_opt = c N^k exponent.",
        "a learning-rate sweep: run files of a grid's [sweep] lr, or a fit's lr law",
    ),
    Figure(
        "fig8_share_law",
        share_law,
        "The law across FFN shares, per structure kind: compute-optimal loss against kept share at a few budgets "
        "(bands, the best share starred with the interval of the resamples' best, the fitted shares dotted), and "
        "each fitted share's compute multiplier against dense over budgets with bands (time multiplier dotted "
        "where the runs were timed on one device).",
        "a fit with a law across shares (scalelab fit --share-col)",
    ),
    Figure(
        "fig9_curve_law",
        curve_law_figure,
        "The curve law (`fit --curves`) through every run's validation curve: the law along each run's "
        "schedule (trunk and cooldown branches; lighter = smaller), fitted points filled, held-out branches "
        "hollow, runs it did not fit as diamonds; below, the relative residual along the curve.",
        "run files and a curve law (fits/NAME.curves.json, given or beside the fit)",
    ),
    Figure(
        "fig10_loss_vs_epochs",
        loss_vs_epochs,
        "Loss against epochs at fixed unique data, one panel per repetition-law group: the data-constrained law "
        "at a few (unique tokens, params) settings of its runs with its bootstrap band, dotted the same model with "
        "every token new (the base law), and the runs at their epochs.",
        "a fit with a repetition-law group (fit --form repetition, or auto on runs repeating their data)",
    ),
]


def names() -> list[str]:
    return [f.name for f in FIGURES]
