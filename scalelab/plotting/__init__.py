"""Publication figures for scalelab (see scalelab/plots.py for the entry points)."""
