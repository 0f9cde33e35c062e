"""The verdict in time (fit/timing.py): the compute multiplier times the ratio of achieved FLOP/s on one device."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalelab import flops as F
from scalelab import structures
from scalelab.config import ModelConfig
from scalelab.fit import fit_laws, load_fit
from scalelab.fit.timing import Throughput, throughput
from scalelab.plan.throughput_model import BenchPoint, ThroughputModel, shape_share

from .conftest import synthetic

SIZES = (2e7, 6e7, 2e8, 6e8, 2e9)
SPREAD = (0.5, 0.8, 1.0, 1.3, 3.0)  # FLOP/s per size over the group's rate: the median size runs at the rate
RATE = 1e12
V1 = Path(__file__).parent / "data" / "v1"


def timed_pair(rate_b=2 * RATE, device_a="cuda:H100", device_b="cuda:H100", seed=0) -> pd.DataFrame:
    """Two variants (lowrank: larger A and B) timed at known FLOP/s: tokens_per_s = rate / (6 N), C = 6ND."""
    tpp = (5, 15, 40, 100)
    a = synthetic(seed=2 * seed, group="dense", sizes=SIZES, tpp=tpp)
    b = synthetic(seed=2 * seed + 1, group="lowrank", A=520.0, B=3600.0, sizes=SIZES, tpp=tpp)
    for df, rate, device in ((a, RATE, device_a), (b, rate_b, device_b)):
        spread = df["N"].map(dict(zip(SIZES, SPREAD)))
        df["tokens_per_s"] = rate * spread / (6 * df["N"])
        df["device"] = device
    return pd.concat([a, b], ignore_index=True)


def fit(df, **kw):
    opts = dict(n_col="N", d_col="D", loss_col="loss", run_col="run", by=["group"], bootstrap=30, seed=1)
    return fit_laws(df, **{**opts, **kw})


@pytest.fixture(scope="module")
def timed():
    return fit(timed_pair())


def test_twice_the_flop_throughput_halves_the_time_multiplier_exactly(timed):
    comp = timed.comparisons[0]
    assert comp.time_verdict_missing is None and comp.time_basis
    assert "cuda:H100" in comp.time_basis and "20 of 20 runs" in comp.time_basis
    for row in comp.multiplier:
        assert math.isfinite(row.est) and math.isfinite(row.lo) and math.isfinite(row.hi)
        assert row.time_est == pytest.approx(row.est / 2, rel=1e-12)
        assert row.time_lo == pytest.approx(row.lo / 2, rel=1e-12)
        assert row.time_hi == pytest.approx(row.hi / 2, rel=1e-12)


def test_median_throughput_and_its_range():
    runs = [
        {"tokens_per_s": 100.0, "flops": 6e9, "tokens": 1e6, "device": "cpu"},  # 6e5 FLOP/s
        {"tokens_per_s": 100.0, "flops": 6e10, "tokens": 1e6, "device": "cpu"},  # 6e6
        {"tokens_per_s": 100.0, "flops": 6e11, "tokens": 1e6, "device": "cpu"},  # 6e7
        {"tokens_per_s": None, "flops": 6e11, "tokens": 1e6, "device": "cpu"},  # not timed: left out
    ]
    t = throughput("g", runs)
    assert isinstance(t, Throughput)
    assert (t.median, t.low, t.high, t.n_timed, t.n_runs, t.device) == pytest.approx((6e6, 6e5, 6e7, 3, 4, "cpu"))


def test_runs_on_different_devices_give_no_time_verdict_with_the_reason():
    comp = fit(timed_pair(device_b="cpu:x86_64x1"), bootstrap=10).comparisons[0]
    assert comp.time_basis is None
    assert "different devices" in comp.time_verdict_missing
    assert "cuda:H100" in comp.time_verdict_missing and "cpu:x86_64x1" in comp.time_verdict_missing
    assert all(r.time_est is None and r.time_lo is None for r in comp.multiplier)


def test_one_group_on_several_devices_gives_none():
    runs = [
        {"tokens_per_s": 1.0, "flops": 6.0, "tokens": 1.0, "device": "cpu"},
        {"tokens_per_s": 1.0, "flops": 6.0, "tokens": 1.0, "device": "cuda:H100"},
    ]
    assert "different devices (cpu, cuda:H100)" in throughput("g", runs)
    assert "do not record the device" in throughput("g", [{**runs[0], "device": None}])


def test_runs_without_tokens_per_s_give_no_time_verdict():
    df = timed_pair().drop(columns=["tokens_per_s"])
    res = fit(df, bootstrap=10)
    comp = res.comparisons[0]
    assert comp.multiplier and comp.time_basis is None
    assert comp.time_verdict_missing.startswith("dense's runs were not timed (no tokens_per_s); or time every")
    assert "scalelab bench train" in comp.time_verdict_missing
    text = res.summary().text()
    assert "time multiplier" not in text and "no time verdict: dense's runs were not timed" in text


def test_summary_shows_the_time_multiplier_column_and_basis(timed):
    text = timed.summary().markdown()
    row = timed.comparisons[0].multiplier[0]
    assert "time multiplier" in text and f"{row.time_est:.3g}x" in text
    assert "time, lowrank vs dense: on cuda:H100" in text


def test_time_fields_survive_the_fit_file(timed, tmp_path):
    back = load_fit(timed.to_json(tmp_path / "t.json"))
    a, b = timed.comparisons[0], back.comparisons[0]
    assert b.time_basis == a.time_basis and b.time_verdict_missing is None
    for ra, rb in zip(a.multiplier, b.multiplier):
        assert (rb.time_est, rb.time_lo, rb.time_hi) == pytest.approx((ra.time_est, ra.time_lo, ra.time_hi))
    none = fit(timed_pair(device_b="cpu"), bootstrap=10)
    back = load_fit(none.to_json(tmp_path / "n.json"))
    assert back.comparisons[0].time_verdict_missing == none.comparisons[0].time_verdict_missing
    assert back.comparisons[0].multiplier[0].time_est is None


@pytest.mark.parametrize("name", ["tiny.json", "chin.json", "tiny_sweep.json"])
def test_old_fit_files_load_without_time_fields(name):
    res = load_fit(V1 / name)
    for comp in res.comparisons:
        assert comp.time_basis is None and comp.time_verdict_missing is None
        assert all(r.time_est is None for r in comp.multiplier)
    res.summary().text()  # and their summary has no time column to fill


# ---- a bench train table as the basis (plan/throughput_model.py) --------------------------------------------
WIDTH = dict(zip(SIZES, (64, 96, 128, 192, 256)))  # each synthetic size trained at this width


def shape_of(width: int, group: str) -> ModelConfig:
    cfg = ModelConfig(d_model=width, n_layers=4, n_heads=width // 32, vocab_size=256, seq_len=128)
    if group == "dense":
        return cfg
    return cfg.replace(ffn=structures.for_fraction("lowrank", width, 4 * width, 0.32))


def bench_log_rate(d: float, f: float) -> float:
    """Bench FLOP/s bilinear in (log width, share): interpolated exactly between the measured shapes."""
    return math.log(1e12) + 0.5 * math.log(d / 64) - 2.0 * (1 - f)


def bench_model() -> ThroughputModel:
    """A table measured at widths 64..256, dense and lowrank at shares 0.63 and 0.32, on cuda:H100."""
    pts = []
    for d in (64, 128, 256):
        for f in (1.0, 0.63, 0.32):
            cfg = (
                shape_of(d, "dense")
                if f == 1
                else shape_of(d, "dense").replace(ffn=structures.for_fraction("lowrank", d, 4 * d, f))
            )
            share = shape_share(cfg)
            R = math.exp(bench_log_rate(d, share))
            pts.append(BenchPoint(cfg.ffn.kind, d, share, R / F.flops_per_token(cfg), R))
    return ThroughputModel("cuda:H100", pts, ["bench/t.json (2026-12-07, commit abc123)"], ["abc123"])


def with_shapes(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["config"] = [json.dumps({"model": shape_of(WIDTH[n], g).to_dict()}) for n, g in zip(df["N"], df["group"])]
    return df


def expected_rate(df: pd.DataFrame, group: str) -> float:
    """The median over the group's runs (their last point) of bench FLOP/s / bench FLOPs per token x C / D."""
    last = df[df["group"] == group].sort_values("D").groupby("run").tail(1)
    rates = []
    for n, C, D in zip(last["N"], last["C"] if "C" in last else 6 * last["N"] * last["D"], last["D"]):
        cfg = shape_of(WIDTH[n], group)
        R = math.exp(bench_log_rate(cfg.d_model, shape_share(cfg)))
        rates.append(R / F.flops_per_token(cfg) * C / D)
    return float(np.median(rates))


@pytest.mark.parametrize("timing", ["untimed", "different devices"])
def test_a_bench_table_gives_the_time_verdict_at_the_runs_shapes(timing):
    df = with_shapes(timed_pair(device_b="cpu:x86_64x1"))
    if timing == "untimed":
        df = df.drop(columns=["tokens_per_s", "device"])
    comp = fit(df, bootstrap=10, throughput=bench_model()).comparisons[0]
    assert comp.time_verdict_missing is None
    ratio = expected_rate(df, "dense") / expected_rate(df, "lowrank")
    assert ratio > 1.5  # the lowrank shapes run fewer FLOP/s: the time multiplier exceeds the compute one
    for row in comp.multiplier:
        assert row.time_est == pytest.approx(row.est * ratio, rel=1e-9)
        assert (row.time_lo, row.time_hi) == pytest.approx((row.lo * ratio, row.hi * ratio), rel=1e-9)
    assert comp.time_basis.startswith("bench train on cuda:H100, commit abc123")
    assert "20 run shapes" in comp.time_basis and "beyond" not in comp.time_basis


def test_bench_basis_counts_shapes_beyond_the_table_and_refuses_what_it_cannot_time():
    narrow = bench_model()
    narrow.points = [p for p in narrow.points if p.width <= 128]
    df = with_shapes(timed_pair())
    comp = fit(df, bootstrap=10, throughput=narrow).comparisons[0]
    assert "8 beyond the measured shapes" in comp.time_basis  # the runs at widths 192 and 256, 4 each
    dense_only = bench_model()
    dense_only.points = [p for p in dense_only.points if p.kind == "dense"]
    comp = fit(df, bootstrap=10, throughput=dense_only).comparisons[0]
    assert comp.time_basis is None and all(r.time_est is None for r in comp.multiplier)
    assert "lowrank throughput on cuda:H100" in comp.time_verdict_missing
    assert "scalelab bench train" in comp.time_verdict_missing
    comp = fit(timed_pair(), bootstrap=10, throughput=bench_model()).comparisons[0]  # no config column
    assert "record no model shapes" in comp.time_verdict_missing
