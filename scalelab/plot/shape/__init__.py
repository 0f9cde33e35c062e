"""What each figure draws, as plain frames and arrays: no matplotlib here (an import-linter contract).

The figure modules (scalelab.plot.fig_*) turn these into axes; tests check the numbers without drawing.
context: the shared Context (inputs, palette, notes) and Skip; fitread: the fit's records read beyond an
attribute; labels: axis labels naming what the fit read; runs: training curves and WSD branches;
frontier: laws, allocations and bands along C or a slice; slices: token-budget and IsoFLOP slices;
points: fitted points and residuals; params: exponents and oriented differences; compute: multiplier
rows; sweep: learning-rate sweeps; bench: throughput tables.
"""
