"""The verdict in time: the compute multiplier turned into wall-clock terms on one device.

B reaches A's compute-optimal loss at budget C with m x A's compute (fit/multiplier.py). At achieved FLOP
throughputs R_A and R_B (FLOPs per second, in the fit's own FLOP units: C / D per token), A takes C / R_A
seconds and B takes m C / R_B, so B needs

    t = m x R_A / R_B

of A's time. Each group's R is the median over its timed runs of tokens_per_s x FLOPs per token (the run's
flops / tokens, the same FLOPs the law was fitted on), so a structured layer that runs fewer FLOPs per second
than dense pays for it here. The ratio needs both groups timed on one device: runs timed on different
devices, or not at all, give no time verdict and the reason instead.

Intervals: the compute multiplier's bootstrap interval times the point ratio R_A / R_B. The throughputs are
not resampled: they differ across a group's runs mostly by model size (a systematic trend, not noise), so
resampling them as exchangeable would not be an interval of anything; the basis states their range instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Throughput:
    """A group's achieved FLOP/s: the median over its timed runs, their range, how many and where."""

    median: float
    low: float
    high: float
    n_timed: int
    n_runs: int
    device: str


def run_rate(run: dict) -> float | None:
    """One run's achieved FLOP/s (tokens/s x FLOPs per token), or None when it was not timed."""
    tps, flops, tokens = (_pos(run.get(k)) for k in ("tokens_per_s", "flops", "tokens"))
    if tps is None or flops is None or tokens is None:
        return None
    return tps * flops / tokens


def throughput(name: str, runs: list) -> Throughput | str:
    """The group's Throughput, or why it has none (no timed runs, no device recorded, several devices)."""
    timed = [(r, rate) for r in runs if (rate := run_rate(r)) is not None]
    if not timed:
        return f"{name}'s runs were not timed (no tokens_per_s)"
    devices = {r.get("device") for r, _ in timed}
    if None in devices or "" in devices:
        return f"{name}'s runs do not record the device they were timed on (add a `device` column)"
    if len(devices) > 1:
        return f"{name}'s runs were timed on different devices ({', '.join(sorted(devices))})"
    rates = np.array([rate for _, rate in timed])
    return Throughput(
        float(np.median(rates)), float(rates.min()), float(rates.max()), len(timed), len(runs), devices.pop()
    )


def time_ratio(ga, gb) -> tuple[float | None, str]:
    """(R_A / R_B, the basis in words) for GroupFits A and B, or (None, why there is no time verdict)."""
    ta, tb = throughput(ga.name, ga.runs), throughput(gb.name, gb.runs)
    for t in (ta, tb):
        if isinstance(t, str):
            return None, t
    assert isinstance(ta, Throughput) and isinstance(tb, Throughput)  # the strings returned above
    if ta.device != tb.device:
        return None, f"the runs were timed on different devices ({ga.name}: {ta.device}, {gb.name}: {tb.device})"
    ratio = ta.median / tb.median

    def side(name: str, t: Throughput) -> str:
        return f"{name} {t.median:.3g} FLOP/s ({t.n_timed} of {t.n_runs} runs, {t.low:.3g}-{t.high:.3g})"

    basis = (
        f"on {ta.device}: median achieved FLOP/s {side(ga.name, ta)}, {side(gb.name, tb)}; time multiplier = "
        f"compute multiplier x {ratio:.3g} ({ga.name}'s FLOP/s over {gb.name}'s); intervals: the compute "
        "multiplier's scaled by this point ratio (the runs' throughput spread is not in them)"
    )
    return ratio, basis


def add_time_verdict(rec: dict, ga, gb) -> None:
    """Add the time multiplier to each multiplier row of comparison record `rec` (B = gb vs A = ga) and the
    basis, or the reason there is none, to the record; in place (add_compute_verdicts calls this)."""
    ratio, words = time_ratio(ga, gb)
    if ratio is None:
        rec["time_verdict_missing"] = words
        return
    rec["time_basis"] = words
    for row in rec.get("multiplier") or []:
        for src, dst in (("est", "time_est"), ("lo", "time_lo"), ("hi", "time_hi")):
            v = float(row[src])
            row[dst] = v * ratio if not math.isnan(v) else math.nan


def _pos(v) -> float | None:
    """A positive finite number, else None."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None
