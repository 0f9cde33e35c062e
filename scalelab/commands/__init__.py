"""One module per CLI command. Each imports only typer/rich at module level and the heavy
implementation (torch, scipy, pandas) inside the command function, so `scalelab fit --help` starts fast
and `fit`/`plan`/`plot` never import torch."""
