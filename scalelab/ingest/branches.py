"""A run's WSD cooldown branches (tb_events.TbRun.branches) as rows of that run, as `scalelab run` stores them:
each branch's points at its budget, the branch's last point final; a run with any diverged curve diverged in
every row. Torch-free."""

from __future__ import annotations

from typing import Callable

from scalelab.ingest.mapping import LOSS_KEYS, Curve, Mapping, curve
from scalelab.ingest.raw import RawRun


def with_branches(raw: RawRun, rows: list[dict], m: Mapping, seq_len: int, make: Callable) -> list[dict]:
    """The trunk's `rows` and its branches' (make(branch_raw, branch_curve) -> rows), in the run store's order
    (step, then the final point after the trunk's, then budget)."""
    branches = getattr(raw, "branches", [])
    if not branches:
        return rows
    out = list(rows)
    for b in branches:
        if not _has_loss(b.run, m):
            continue  # a branch stopped before its end (the run's rerun trains it again): no point, as in the store
        c: Curve = curve(b.run, m, seq_len)
        for r in make(b.run, c):
            r["budget"] = b.budget  # the budget the run was given (the folder's name), as the run store has it
            out.append(r)
    if any(r["status"] == "diverged" for r in out):  # the run store's rule: every row says so, none is final
        for r in out:
            r["status"], r["final"] = "diverged", False
    return sorted(out, key=lambda r: (r["step"], r["final"], r["budget"]))


def _has_loss(run: RawRun, m: Mapping) -> bool:
    keys = (m.loss_key,) if m.loss_key else LOSS_KEYS
    h = run.history
    return any(k in h.columns and h[k].notna().any() for k in keys)
