"""The verdict in time: the compute multiplier turned into wall-clock terms on one device.

B reaches A's compute-optimal loss at budget C with m x A's compute (fit/multiplier.py). At achieved FLOP
throughputs R_A and R_B (FLOPs per second, in the fit's own FLOP units: C / D per token), A takes C / R_A
seconds and B takes m C / R_B, so B needs

    t = m x R_A / R_B

of A's time. Each group's R is the median over its timed runs of tokens_per_s x FLOPs per token (the run's
flops / tokens, the same FLOPs the law was fitted on), so a structured layer that runs fewer FLOPs per second
than dense pays for it here. The ratio needs both groups timed on one device: runs timed on different
devices, or not at all, give no time verdict and the reason instead.

A second basis, a `scalelab bench train` table (plan/throughput_model.py, passed in as `model`: anything with
.device, .basis and .rate(ModelConfig) -> tokens/s): each run's R is the table's tokens/s at the run's own
shape (width, FFN kind and share; interpolated, counted when beyond the measured shapes) times the run's FLOPs
per token; R is again the median over the group's runs. It serves runs that were not timed, or were timed on
different devices, and replaces their own timing when given: every shape is then timed on one device.

Intervals: the compute multiplier's bootstrap interval times the point ratio R_A / R_B. The throughputs are
not resampled: they differ across a group's runs mostly by model size (a systematic trend, not noise), so
resampling them as exchangeable would not be an interval of anything; the basis states their range instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Protocol

import numpy as np

from scalelab.config import ModelConfig
from scalelab.errors import ScalelabError


class ShapeThroughput(Protocol):
    """A bench train table's throughput by shape (plan/throughput_model.ThroughputModel)."""

    device: str

    @property
    def basis(self) -> str: ...

    def rate(self, cfg: ModelConfig): ...  # -> an object with .tokens_per_s and .beyond (None: measured)


@dataclass
class Throughput:
    """A group's achieved FLOP/s: the median over its timed runs, their range, how many and where."""

    median: float
    low: float
    high: float
    n_timed: int
    n_runs: int
    device: str
    n_beyond: int = 0  # a bench table basis: runs whose shape lies beyond the measured ones


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


def table_throughput(name: str, runs: list, model: ShapeThroughput) -> Throughput | str:
    """The group's Throughput from a bench table at its runs' shapes, or why it has none."""
    rates, beyond = [], 0
    for r in runs:
        fpt = None if _pos(r.get("tokens")) is None else _pos(r.get("flops"))
        if fpt is None or not isinstance(r.get("model"), dict):
            continue
        try:
            rate = model.rate(ModelConfig.from_dict(r["model"]))
        except ScalelabError as e:
            return f"{name}: {e}"
        rates.append(rate.tokens_per_s * fpt / float(r["tokens"]))
        beyond += rate.beyond is not None
    if not rates:
        return f"{name}'s runs record no model shapes with flops and tokens: the bench table times shapes"
    a = np.array(rates)
    return Throughput(float(np.median(a)), float(a.min()), float(a.max()), len(a), len(runs), model.device, beyond)


def time_ratio(ga, gb, model: Optional[ShapeThroughput] = None) -> tuple[float | None, str]:
    """(R_A / R_B, the basis in words) for GroupFits A and B, or (None, why there is no time verdict).
    model: a bench table's throughput by shape, the basis instead of the runs' own timing."""
    if model is not None:
        return _table_ratio(ga, gb, model)
    ta, tb = throughput(ga.name, ga.runs), throughput(gb.name, gb.runs)
    for t in (ta, tb):
        if isinstance(t, str):
            return None, f"{t}; or time every shape on one device with `scalelab bench train`"
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


def _table_ratio(ga, gb, model: ShapeThroughput) -> tuple[float | None, str]:
    ta, tb = table_throughput(ga.name, ga.runs, model), table_throughput(gb.name, gb.runs, model)
    for t in (ta, tb):
        if isinstance(t, str):
            return None, t
    assert isinstance(ta, Throughput) and isinstance(tb, Throughput)  # the strings returned above
    ratio = ta.median / tb.median

    def side(name: str, t: Throughput) -> str:
        out = f"{name} {t.median:.3g} FLOP/s ({t.n_timed} run shapes, {t.low:.3g}-{t.high:.3g}"
        return out + (f", {t.n_beyond} beyond the measured shapes)" if t.n_beyond else ")")

    basis = (
        f"{model.basis}: median FLOP/s at the runs' shapes {side(ga.name, ta)}, {side(gb.name, tb)}; time "
        f"multiplier = compute multiplier x {ratio:.3g} ({ga.name}'s FLOP/s over {gb.name}'s); intervals: the "
        "compute multiplier's scaled by this point ratio"
    )
    return ratio, basis


def add_time_verdicts(comparisons: list, fits: dict, model: ShapeThroughput) -> None:
    """Redo the time verdict of every comparison record with a compute multiplier on a bench table's basis;
    fits: {name: GroupFit}. In place (fit_laws calls this when given `throughput`)."""
    for rec in comparisons:
        if rec.get("multiplier"):
            add_time_verdict(rec, fits[rec["a"]], fits[rec["b"]], model)


def add_time_verdict(rec: dict, ga, gb, model: Optional[ShapeThroughput] = None) -> None:
    """Add the time multiplier to each multiplier row of comparison record `rec` (B = gb vs A = ga) and the
    basis, or the reason there is none, to the record; in place (add_compute_verdicts calls this). model: a
    bench table's throughput by shape as the basis instead of the runs' own timing."""
    ratio, words = time_ratio(ga, gb, model)
    rec.pop("time_verdict_missing", None)
    rec.pop("time_basis", None)
    for row in rec.get("multiplier") or []:
        for k in ("time_est", "time_lo", "time_hi"):
            row.pop(k, None)
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
