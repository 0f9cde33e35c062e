"""Grid files: TOML -> typed spec (spec.py, parsed once) -> RunConfigs (expand.py, pure); `Grid` (load.py)
ties them to a file. Torch-free."""

from scalelab.grid.load import Grid, builtin_grids

__all__ = ["Grid", "builtin_grids"]
