"""Scaling-law fits (torch-free): Huber-on-log Chinchilla-style laws with run-level bootstrap intervals.

    from scalelab.fit import fit_laws, load_fit
    fit = fit_laws(df, n_col="params", d_col="tokens", loss_col="loss", run_col="run_id", by=["variant"])
    print(fit.summary()); fit.conf_int(0.95); fit.predict(N=1e8, D=2e9, group="dense")
"""
from scalelab.fit.estimate import fit_laws
from scalelab.fit.results import FitResults, GroupFit, load_fit

__all__ = ["fit_laws", "load_fit", "FitResults", "GroupFit"]
