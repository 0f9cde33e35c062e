"""Throughput as a function of shape from bench train tables (plan/throughput_model.py): exact on a surface
its interpolation can represent, flagged beyond the measured shapes, one device, refusals in one line."""

import json
import math

import pytest

from scalelab import flops as F
from scalelab import structures
from scalelab.config import ModelConfig
from scalelab.errors import ScalelabError
from scalelab.plan import throughput_model as T

WIDTHS = (64, 128, 256)
SHARES = (1.0, 0.63, 0.32)


def log_rate(d: float, f: float) -> float:
    """A FLOP/s surface bilinear in (log width, share): what the interpolation reproduces exactly."""
    return math.log(1e11) + 0.4 * math.log(d / 64) - 1.5 * (1 - f) + 0.3 * (1 - f) * math.log(d / 64)


def shape(d: int, f: float, kind: str = "lowrank", n_layers: int = 4) -> ModelConfig:
    cfg = ModelConfig(d_model=d, n_layers=n_layers, n_heads=d // 32, vocab_size=256, seq_len=128)
    return cfg if f >= 1 else cfg.replace(ffn=structures.for_fraction(kind, d, 4 * d, f))


def bench_doc(
    widths=WIDTHS, shares=SHARES, kind="lowrank", device="cuda:H100", rate=log_rate, legacy=False, commit="abc123"
) -> list[dict]:
    """bench train documents (one per width, as `--preset` gives) timed at FLOP/s exp(rate(d, f))."""
    docs = []
    for d in widths:
        rows = []
        for f in shares:
            cfg = shape(d, f, kind)
            fpt = F.flops_per_token(cfg)
            share = T.shape_share(cfg)
            row = {"variant": "dense" if f >= 1 else f"{kind}-{round(100 * f)}", "flops_per_token": fpt}
            row["tokens_per_s"] = math.exp(rate(d, share)) / fpt
            if not legacy:
                row.update(d_model=d, n_layers=4, ffn_kind=cfg.ffn.kind, share=share)
            rows.append(row)
        doc = {"format": "scalelab-bench-train/1", "device": device, "created": "2026-12-07", "rows": rows}
        doc.update(model=shape(d, 1.0).to_dict(), **({"commit": commit} if commit else {}))
        docs.append(doc)
    return docs


def write(tmp_path, docs, stem="train") -> list:
    paths = []
    for i, doc in enumerate(docs):
        p = tmp_path / f"{stem}-{i}.json"
        p.write_text(json.dumps(doc))
        paths.append(p)
    return paths


def model_of(tmp_path, **kw) -> T.ThroughputModel:
    return T.load(write(tmp_path, bench_doc(**kw)))


def test_interpolation_is_exact_inside_the_measured_shapes(tmp_path):
    m = model_of(tmp_path)
    lowest = max(min(p.share for p in m.points if p.width == w) for w in WIDTHS)
    for d in (64, 96, 128, 192, 256):
        for f in (1.0, 0.9, 0.63, 0.5, 0.35):
            cfg = shape(d, f)
            share = T.shape_share(cfg)
            assert share >= lowest  # inside the measured shares at every width
            r = m.rate(cfg)
            assert r.beyond is None, (d, f)
            assert math.log(r.flop_per_s) == pytest.approx(log_rate(d, share), abs=1e-9)
            assert r.tokens_per_s == pytest.approx(r.flop_per_s / F.flops_per_token(cfg), rel=1e-12)


def test_depth_changes_tokens_per_s_not_flop_per_s(tmp_path):
    m = model_of(tmp_path)
    shallow, deep = m.rate(shape(128, 0.63, n_layers=4)), m.rate(shape(128, 0.63, n_layers=12))
    assert deep.flop_per_s == pytest.approx(shallow.flop_per_s, rel=1e-12)
    assert deep.tokens_per_s < shallow.tokens_per_s / 2


def test_beyond_the_measured_shapes_is_flagged_and_held_at_the_nearest(tmp_path):
    m = model_of(tmp_path)
    wide = m.rate(shape(512, 1.0))
    assert "width 512 outside the measured 64-256" in wide.beyond
    assert math.log(wide.flop_per_s) == pytest.approx(log_rate(256, 1.0), abs=1e-9)
    low = m.rate(shape(128, 0.15))
    assert "share" in low.beyond and "outside the measured" in low.beyond
    lowest = min(p.share for p in m.points if p.width == 128)
    assert math.log(low.flop_per_s) == pytest.approx(log_rate(128, lowest), abs=1e-9)


def test_rows_without_shape_fields_give_the_same_points(tmp_path):
    new = model_of(tmp_path)
    old = T.load(write(tmp_path, bench_doc(legacy=True, commit=None), stem="old"))
    assert [(p.kind, p.width, p.share) for p in old.points] == [(p.kind, p.width, p.share) for p in new.points]
    assert [p.flop_per_s for p in old.points] == pytest.approx([p.flop_per_s for p in new.points], rel=1e-12)
    assert "commit abc123" in new.basis and "cuda:H100" in new.basis
    assert "commit not recorded" in old.basis


def test_attention_variants_left_out_and_repeats_averaged(tmp_path):
    doc = bench_doc(widths=(128,))[0]
    doc["rows"].append({**doc["rows"][0], "variant": "dense+gqa-kv2", "tokens_per_s": 1.0})
    again = bench_doc(widths=(128,), rate=lambda d, f: log_rate(d, f) + math.log(4))[0]
    m = T.load(write(tmp_path, [doc, again]))
    dense = [p for p in m.points if p.kind == "dense"]
    assert len(dense) == 1  # the gqa row is not on the surface; two timings of one shape are one point
    assert math.log(dense[0].flop_per_s) == pytest.approx(log_rate(128, 1.0) + math.log(2), abs=1e-9)


def test_refusals_name_the_problem_and_the_fix(tmp_path):
    cpu = bench_doc(widths=(64,), device="cpu:x86_64x2")
    with pytest.raises(ScalelabError, match="different devices"):
        T.load(write(tmp_path, bench_doc(widths=(128,)) + cpu))
    with pytest.raises(ScalelabError, match="no such file.*scalelab bench train"):
        T.load([tmp_path / "missing.json"])
    (tmp_path / "fit.json").write_text(json.dumps({"format": "scalelab-fit/3"}))
    with pytest.raises(ScalelabError, match="not a `scalelab bench train` table"):
        T.load([tmp_path / "fit.json"])
    m = model_of(tmp_path, shares=(1.0,))
    with pytest.raises(ScalelabError, match=r"time only dense.*bench train --preset P --variants dense,blockdense-63"):
        m.require("blockdense")
    with pytest.raises(ScalelabError, match="time only dense"):
        m.rate(shape(128, 0.63, kind="lowrank"))
