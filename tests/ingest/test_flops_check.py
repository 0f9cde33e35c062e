"""A run whose logged FLOPs disagree with scalelab's count by more than 5% is named in a warning with both
numbers; the run store keeps scalelab's count. Within 5%: no warning."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from ingest import BATCH, NANO_CONFIG, STEPS, cli, losses, write_wandb_export
from scalelab import flops, store
from scalelab.config import ModelConfig

NANO = ModelConfig(d_model=32, n_layers=2, n_heads=2, seq_len=32, vocab_size=256)
FINAL_FLOPS = flops.train_flops(NANO, STEPS[-1] * BATCH * 32)


@pytest.mark.parametrize("key", ["total_flops", "flops"])
def test_logged_flops_six_percent_off_are_flagged_with_both_numbers(tmp_path, key):
    logged = 1.06 * FINAL_FLOPS
    write_wandb_export(tmp_path / "off6", summary={key: logged})
    r = cli("ingest", tmp_path / "off6", "--batch-size", BATCH, "--out", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    (line,) = [x for x in r.stderr.splitlines() if x.startswith("warning:")]
    assert "run off6" in line and "+6.0%" in line
    shown = [float(x) for x in re.findall(r"\d+\.\d+e\+\d+|\d{6,}", line)]
    assert any(abs(v / logged - 1) < 1e-5 for v in shown) and any(abs(v / FINAL_FLOPS - 1) < 1e-5 for v in shown)
    df = store.read_runs(str(tmp_path / "runs"))
    assert df.loc[df["final"], "flops"].item() == FINAL_FLOPS  # scalelab's count is what is stored


def test_logged_flops_in_the_history_within_five_percent_pass_quietly(tmp_path):
    hist = pd.DataFrame({"_step": list(STEPS), "val/loss": losses()})
    hist["flops"] = [1.04 * flops.train_flops(NANO, s * BATCH * 32) for s in STEPS]
    write_wandb_export(tmp_path / "off4", history=hist, config=NANO_CONFIG)
    r = cli("ingest", tmp_path / "off4", "--batch-size", BATCH, "--out", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    assert "warning" not in r.stderr
