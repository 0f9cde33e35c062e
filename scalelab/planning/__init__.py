"""Building blocks of scalelab.plan: fit files, FLOPs families, the optimum, results."""
