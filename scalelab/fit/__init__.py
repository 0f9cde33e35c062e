"""Scaling-law fits (torch-free): Huber-on-log Chinchilla-style laws with run-level bootstrap intervals.

    from scalelab.fit import FitSpec, fit_laws, load_fit
    fit = fit_laws(df, n_col="params", d_col="tokens", loss_col="loss", run_col="run_id", by=["variant"])
    print(fit.summary()); fit.conf_int(0.95); fit.predict(N=1e8, D=2e9, group="dense")

Modules by concern: laws (the forms, predict, compute-optimal closed forms), spec (FitSpec), io (input
files), groups (points per group), objective (Huber on log loss), solver (grid seeds + Gauss-Newton),
bootstrap (resampling runs, intervals, comparisons), procedure (per group; fit_laws), approaches (1 and 2),
results (FitResults and the fit file).
"""

from scalelab.fit.procedure import fit_laws
from scalelab.fit.results import FitResults, GroupFit, as_fit, load_fit, newest_fit
from scalelab.fit.spec import FitSpec

__all__ = ["fit_laws", "load_fit", "as_fit", "newest_fit", "FitResults", "GroupFit", "FitSpec"]
