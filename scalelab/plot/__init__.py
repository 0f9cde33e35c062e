"""Publication figures from run files, a fit file and the planner: `scalelab plot`.

    from scalelab import plot as plots
    inputs = plots.load_inputs(["runs/a.parquet", ...], fit_path="fits/demo.json")
    drawn = plots.make_figures(inputs, out_dir="figures", formats=("pdf", "png"), width="double")

Torch-free; matplotlib with the Agg backend. The pieces live beside this file: inputs (reading files; the
fit is a scalelab.fit.FitResults), shape/ (what each figure draws, as frames and arrays: no matplotlib),
palette and style (colours per variant; drawing primitives, sizes, fonts, saving), laws (bootstrap bands
and axis conventions), fig_* (one module per family of figures: single panels take `ax=None`), registry
(the list of figures), index (drawing, saving, figures/index.md). The laws are scalelab.fit.laws and the
compute-optimal allocation is the planner's (scalelab.plan.sweep).
"""

from scalelab.plot.index import Drawn, build, make_figures
from scalelab.plot.inputs import Inputs, load_inputs
from scalelab.plot.registry import FIGURES
from scalelab.plot.shape.context import Context, Skip
from scalelab.plot.style import variant_colors, variant_markers

__all__ = [
    "FIGURES",
    "Context",
    "Skip",
    "Drawn",
    "build",
    "make_figures",
    "Inputs",
    "load_inputs",
    "variant_colors",
    "variant_markers",
]
