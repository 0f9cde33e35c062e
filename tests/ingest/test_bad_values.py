"""Values no run can have, refused by `scalelab ingest` in one line with nothing written: a --model with a zero
FFN width or zero key/value heads, a loss at or below zero; and a run id that cannot be a file name gets the fix
that fits where the id came from."""

from __future__ import annotations

import pandas as pd
import pytest

from ingest import BATCH, NANO_MODEL, STEPS, cli, losses, refused, write_dr_wandb


def _curves(path, loss) -> str:
    pd.DataFrame({"step": list(STEPS), "val_loss": loss}).to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    "extra, needle",
    [(",d_ff=0", "d_ff must be positive"), (",attn=gqa,n_kv_heads=0", "n_kv_heads must be a positive divisor")],
)
def test_a_model_with_a_zero_width_or_zero_kv_heads(tmp_path, extra, needle):
    src, out = _curves(tmp_path / "c.csv", losses()), tmp_path / "runs"
    r = cli("ingest", src, "--model", NANO_MODEL + extra, "--batch-size", BATCH, "--out", out)
    refused(r, out, "--model", "cannot be built", needle)


def test_a_negative_loss_is_refused_naming_its_step(tmp_path):
    loss = losses()
    loss[2] = -3.2  # at STEPS[2]: a sign error or a log-likelihood logged as the loss
    src, out = _curves(tmp_path / "neg.csv", loss), tmp_path / "runs"
    line = refused(cli("ingest", src, "--model", NANO_MODEL, "--batch-size", BATCH, "--out", out), out, "run neg")
    assert f"'val_loss' is -3.2 at step {STEPS[2]}" in line and "positive" in line and "--loss-key" in line


def test_a_zero_loss_after_a_missing_one_is_refused(tmp_path):
    # the sweep's file: a NaN row (not logged: dropped, as W&B histories have them between evals), then a 0
    loss = losses()
    loss[1], loss[3] = float("nan"), 0.0
    src, out = _curves(tmp_path / "z.csv", loss), tmp_path / "runs"
    line = refused(cli("ingest", src, "--model", NANO_MODEL, "--batch-size", BATCH, "--out", out), out)
    assert f"is 0 at step {STEPS[3]}" in line


def test_missing_losses_alone_are_dropped_and_the_run_kept(tmp_path):
    loss = losses()
    loss[1] = float("nan")
    src, out = _curves(tmp_path / "gap.csv", loss), tmp_path / "runs"
    r = cli("ingest", src, "--model", NANO_MODEL, "--batch-size", BATCH, "--out", out)
    assert r.exit_code == 0, r.output
    df = pd.read_parquet(next(out.glob("*.parquet")))
    assert df["step"].tolist() == [s for i, s in enumerate(STEPS) if i != 1] and (df["val_loss"] > 0).all()


def test_a_bad_run_id_gets_the_fix_for_its_source(tmp_path):
    out = tmp_path / "runs"
    src = write_dr_wandb(tmp_path / "dr", {"a/b": ({}, 1.0)})
    line = refused(cli("ingest", src, "--model", NANO_MODEL, "--out", out), out, "run id 'a/b'", "runs.jsonl")
    assert "rename the folder" not in line
    bad_csv = _curves(tmp_path / ".hidden.csv", losses())
    r = cli("ingest", bad_csv, "--model", NANO_MODEL, "--batch-size", BATCH, "--out", out)
    refused(r, out, "run id '.hidden'", "rename the file")
    r = cli("ingest", _curves(tmp_path / "ok.csv", losses()), "--model", NANO_MODEL, "--batch-size", BATCH,
            "--grid", "a/b", "--out", out)  # fmt: skip
    refused(r, out, "grid name 'a/b'", "pass another --grid")
