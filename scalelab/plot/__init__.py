"""Publication figures from run files, a fit file and the planner: `scalelab plot`.

    from scalelab import plot as plots
    inputs = plots.load_inputs(["runs/a.parquet", ...], fit_path="fits/demo.json")
    drawn = plots.make_figures(inputs, out_dir="figures", formats=("pdf", "png"), width="double")

Torch-free; matplotlib with the Agg backend. The pieces live in scalelab/plotting/:
style (palette, sizes, fonts, saving), inputs (reading files), laws (fitted laws and bands),
figures (the six figures), index (drawing, saving, figures/index.md).
"""
from scalelab.plot.figures import FIGURES, Context, Skip
from scalelab.plot.index import Drawn, build, make_figures
from scalelab.plot.inputs import Inputs, load_inputs, read_fit
from scalelab.plot.style import variant_colors, variant_markers

__all__ = ["FIGURES", "Context", "Skip", "Drawn", "build", "make_figures", "Inputs", "load_inputs",
           "read_fit", "variant_colors", "variant_markers"]
