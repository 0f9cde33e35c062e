"""History rows without a loss value (W&B logs other metrics at other steps, with NaN loss there) are left out
of a run's curve, and the user is told once per run how many; a run with no loss value at all is refused."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ingest import STEPS, cli, losses, refused, write_wandb_export


def _history(loss: list) -> pd.DataFrame:
    """W&B's history.csv: a loss row at each of STEPS, with a row of another metric (no loss) between them."""
    rows = []
    for s, v in zip(STEPS, loss):
        rows.append({"_step": s, "train/loss": v, "tokens": s * 128, "grad_norm": np.nan})
        rows.append({"_step": s + 1, "train/loss": np.nan, "tokens": np.nan, "grad_norm": 0.5})
    return pd.DataFrame(rows)


def _warnings(r, run: str) -> list[str]:
    return [x for x in r.stderr.splitlines() if x.startswith("warning: ") and f"run {run} (" in x]


def test_rows_without_a_loss_are_left_out_and_said_once(tmp_path):
    write_wandb_export(tmp_path / "gaps", history=_history(losses()))
    write_wandb_export(tmp_path / "full", history=_history(losses(1.1)).dropna(subset=["train/loss"]))
    out = tmp_path / "runs"
    r = cli("ingest", tmp_path / "gaps", tmp_path / "full", "--loss-key", "train/loss", "--out", out)
    assert r.exit_code == 0, r.output
    (line,) = _warnings(r, "gaps")
    n = len(STEPS)
    assert f"{n} of {2 * n} history rows have no loss value (key 'train/loss'): left out" in line
    assert str(tmp_path / "gaps") in line  # names the source
    assert _warnings(r, "full") == []  # a run with a loss in every row: nothing to say
    from scalelab import store

    df = store.read_runs(str(out))
    gaps = df[df["run_id"] == "gaps"].sort_values("step")
    assert list(gaps["step"]) == list(STEPS)  # the loss rows, none of the others
    assert np.allclose(gaps["val_loss"], losses())


def test_the_library_plan_carries_the_note(tmp_path):
    from scalelab.ingest import Mapping, plan

    write_wandb_export(tmp_path / "gaps", history=_history(losses()))
    p = plan([str(tmp_path / "gaps")], str(tmp_path / "runs"), Mapping(loss_key="train/loss"))
    assert sum("history rows have no loss value" in w for w in p.warnings) == 1
    assert not (tmp_path / "runs").exists()  # planned, nothing written


def test_a_run_with_no_loss_value_at_all_is_refused(tmp_path):
    write_wandb_export(tmp_path / "empty", history=_history([np.nan] * len(STEPS)))
    out = tmp_path / "runs"
    r = cli("ingest", tmp_path / "empty", "--loss-key", "train/loss", "--out", out)
    refused(r, out, "run empty", "none of its 8 history rows", "'train/loss'", "--loss-key")
