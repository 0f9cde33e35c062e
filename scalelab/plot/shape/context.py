"""The context every figure reads (inputs, the palette of its variants, notes) and Skip."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from scalelab.fit import laws as fit_laws
from scalelab.fit.results import FitResults
from scalelab.plot.inputs import Inputs
from scalelab.plot.palette import sort_variants


class Skip(Exception):
    """The inputs cannot support this figure; the message says why (goes to index.md and stdout)."""


@dataclass
class Context:
    inputs: Inputs
    width: str = "double"
    style: str = "paper"
    colors: dict = field(default_factory=dict)
    markers: dict = field(default_factory=dict)
    linestyles: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)  # per-figure remarks, reset by the driver
    _alloc_cache: dict = field(default_factory=dict)  # (c_min, c_max, n) -> planner sweep or its refusal
    _planner: object = None  # scalelab.plan.Planner on the fit, built by the first allocation
    allocation_source: str = ""

    @property
    def fit(self) -> Optional[FitResults]:
        return self.inputs.fit

    @property
    def known_fit(self) -> FitResults:
        """The fit, where the code is reached only with one (a Skip or a check of ctx.fit came first)."""
        assert self.inputs.fit is not None, "a figure read the fit without checking that there is one"
        return self.inputs.fit

    def variant_of(self, group: str) -> str:
        return self.known_fit.groups[group].variant

    @property
    def runs(self):
        return self.inputs.runs

    def note(self, msg: str) -> None:
        if msg not in self.notes:
            self.notes.append(msg)

    def single(self) -> bool:
        return self.width == "single"

    def ok_runs(self):
        """Rows of runs that did not diverge."""
        r = self.runs
        if r is None:
            return None
        if "status" in r.columns:
            bad = r.loc[r["status"].astype(str) != "ok", "run_id"].unique()
            if len(bad):
                self.note(f"{len(bad)} diverged/failed run(s) left out")
            r = r[~r["run_id"].isin(bad)]
        return r

    def groups(self, forms=None, fitted: bool = True) -> list[str]:
        """Fit groups (optionally of the given forms), in legend order. With `fitted`, only groups whose law
        has its parameters: each group left out for the lack of them gets a note saying why."""
        if self.fit is None:
            return []
        gs = []
        for g in self.fit:
            why = law_missing(g)
            if fitted and why:
                self.note(f"group {g.name} left out: {why}")
            elif forms is None or g.form in forms:
                gs.append(g.name)
        order = {v: i for i, v in enumerate(sort_variants(self.variant_of(g) for g in gs))}
        return sorted(gs, key=lambda g: (order[self.variant_of(g)], g))

    def band_label(self) -> str:
        return f"{self.fit.level:.0%} bootstrap band" if self.fit else "band"


NOT_FITTED = "loss law not fitted"  # the fit's warning on a group whose loss law was refused


def law_missing(grp) -> Optional[str]:
    """Why a fit group has no law to draw (None: it has one): its parameters missing, empty or not finite,
    as in a group whose loss law was refused (the fit's warning "loss law not fitted: REASON" says why)."""
    if grp.form in fit_laws.FORMS:
        need = fit_laws.FORMS[grp.form].params
    elif grp.form == "allocation":
        need = fit_laws.ALLOCATION
    else:
        need = None
    p = grp.params if isinstance(grp.params, dict) else {}
    if need is not None and all(finite(p.get(k)) for k in need):
        return None
    said = next((str(w) for w in grp.warnings or [] if NOT_FITTED in str(w)), None)
    if said:
        return said[said.index(NOT_FITTED) :]
    why = grp.loss_law_refused
    if why:
        return f"{NOT_FITTED}: {why}"
    return f"no fitted parameters of its {grp.form} law"


def finite(v) -> bool:
    try:
        return bool(np.isfinite(float(v)))
    except (TypeError, ValueError):
        return False
