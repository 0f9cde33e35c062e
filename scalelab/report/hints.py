"""The `scalelab report` command that `run`, `fit` and `plan` print as their next step."""

from __future__ import annotations

import os
from typing import Optional

from scalelab.report.provenance import flops_text, quote


def after_run(out: str) -> str:
    """After `scalelab run --out OUT`: the fit `scalelab fit OUT/*.parquet` writes is fits/OUT's-name.json."""
    name = os.path.basename(os.path.normpath(out)) or "fit"
    return f"scalelab report {_glob(out)} --fit {quote([f'fits/{name}.json'])} --out report.html"


def after_fit(inputs: list, fit_path) -> str:
    return f"Next: scalelab report {quote([str(p) for p in inputs])} --fit {quote([str(fit_path)])} --out report.html"


def after_plan(fit, fit_path, flops: Optional[float]) -> str:
    """After a plan at a budget: the report with this plan in it (the fit's run files, when it read any)."""
    runs = [i.path for i in fit.info.inputs if str(i.path).endswith(".parquet")]
    budget = f" --flops {flops_text(flops)}" if flops is not None else ""
    head = f"scalelab report {quote(runs)} " if runs else "scalelab report "
    return f"Next: {head}--fit {quote([str(fit_path)])}{budget} --out report.html"


def _glob(folder: str) -> str:
    return quote([os.path.join(folder, "*.parquet")])
