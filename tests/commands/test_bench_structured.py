"""`scalelab bench ffn` / `bench train`: smoke tests on tiny shapes (files written, numbers sane);
no timing is asserted."""

import json

import pytest
from typer.testing import CliRunner

from scalelab import structures
from scalelab.cli import app
from scalelab.flops import flops_per_token, param_counts
from scalelab.presets import get_preset

runner = CliRunner()


def test_bench_ffn_writes_json_and_markdown(tmp_path):
    res = runner.invoke(
        app,
        [
            "bench",
            "ffn",
            "--widths",
            "32",
            "--tokens",
            "64",
            "--repeats",
            "1",
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
            "--name",
            "f",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "f.json").read_text())
    rows = doc["rows"]
    structured = [k for k in structures.names() if structures.get(k).fields]  # every kind, BTT included
    assert "btt" in structured
    assert [r["variant"] for r in rows] == ["dense"] + [f"{k}-{p}" for k in structured for p in (63, 32)]
    assert rows[0]["fwd_speedup"] == 1.0 and all(r["fwd_ms"] > 0 and r["fwdbwd_ms"] > 0 for r in rows)
    assert rows[0]["params"] == 2 * 32 * 128
    assert "| variant |" in (tmp_path / "f.md").read_text().replace("| width | tokens ", "| ")


def test_bench_train_rows_use_analytic_flops(tmp_path):
    res = runner.invoke(
        app,
        [
            "bench",
            "train",
            "--preset",
            "tiny",
            "--seq-len",
            "16",
            "--batch",
            "2",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--device",
            "cpu",
            "--variants",
            "dense,lowrank-r8+gqa-kv1",
            "--out",
            str(tmp_path),
            "--name",
            "t",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "t.json").read_text())
    base = get_preset("tiny").replace(seq_len=16)
    dense = doc["rows"][0]
    assert dense["params"] == param_counts(base).params
    assert dense["flops_per_token"] == flops_per_token(base)
    assert dense["mfu"] == pytest.approx(dense["flops_per_token"] * dense["tokens_per_s"] / doc["peak_flops"])
    assert doc["rows"][1]["name"] == "lowrank-r8+gqa-kv1" and dense["speedup"] == 1.0


@pytest.mark.parametrize(
    "args",
    [
        ["ffn", "--widths", "abc"],
        ["ffn", "--kinds", "conv"],
        ["ffn", "--fractions", "150"],
        ["ffn", "--device", "tpu"],
        ["train", "--variants", "dense,monarch-3"],
        ["train", "--preset", "nope"],
        ["train", "--name", "../x"],
    ],
)
def test_bench_bad_input_exit_2(args, tmp_path):
    res = runner.invoke(app, ["bench", *args, "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1
