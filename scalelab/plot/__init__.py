"""Publication figures from run files, a fit file and the planner: `scalelab plot`.

    from scalelab import plot as plots
    inputs = plots.load_inputs(["runs/a.parquet", ...], fit_path="fits/demo.json")
    drawn = plots.make_figures(inputs, out_dir="figures", formats=("pdf", "png"), width="double")

Torch-free; matplotlib with the Agg backend. The pieces live beside this file: style (palette, sizes,
fonts, saving), inputs (reading files; the fit is a scalelab.fit.FitResults), laws (bootstrap bands and
axis conventions), figures (the six figures), index (drawing, saving, figures/index.md). The laws are
scalelab.fit.laws and the compute-optimal allocation is the planner's (scalelab.plan.sweep).
"""

from scalelab.plot.figures import FIGURES, Context, Skip
from scalelab.plot.index import Drawn, build, make_figures
from scalelab.plot.inputs import Inputs, load_inputs
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
