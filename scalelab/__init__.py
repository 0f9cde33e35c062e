"""scalelab: train dense and structured GPT grids, fit scaling laws, plan compute."""

__version__ = "0.1.0"
