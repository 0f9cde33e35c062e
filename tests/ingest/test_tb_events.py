"""A run's WSD cooldown branches in TensorBoard (cooldown-BUDGET folders under its log, as `scalelab run
--tensorboard` writes them) come back as rows of that run at their budgets; tests/ingest/test_roundtrip.py runs
the real grid."""

from __future__ import annotations

import math
import re

import pytest

from ingest import BATCH, NANO_MODEL, STEPS, cli, losses, write_tb
from scalelab import store
from scalelab.ingest import tb_events

pytest.importorskip("tbparse")

BRANCH_STEP = 25  # the branch forks from the trunk and ends at 25 steps: its budget in tokens
BRANCH_BUDGET = BRANCH_STEP * BATCH * 32


def _branch(run_folder, loss: float) -> str:
    """A cooldown branch's log, as train.py writes it: train loss along the branch, its val loss at the end."""
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(run_folder / f"cooldown-{BRANCH_BUDGET}"))
    for s in (21, 23, BRANCH_STEP):
        w.add_scalar("train_loss", loss + 0.1, s)
        w.add_scalar("tokens", s * BATCH * 32, s)
    w.add_scalar("val_loss", loss, BRANCH_STEP)
    w.close()
    return str(run_folder)


def test_train_names_branch_folders_as_ingest_reads_them():
    from scalelab.run.train import TB_BRANCH

    m = tb_events.BRANCH.match(TB_BRANCH.format(budget=6400))
    assert m and int(m["budget"]) == 6400


def test_a_cooldown_branch_is_rows_of_its_run_at_its_budget(tmp_path):
    run = tmp_path / "tb" / "r1"
    write_tb(run)
    _branch(run, 2.7)
    r = cli("ingest", tmp_path / "tb", "--model", NANO_MODEL, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    df = store.read_runs(str(tmp_path / "out")).sort_values(["step", "final", "budget"])
    assert df["run_id"].unique().tolist() == ["r1"]  # the branch is no run of its own
    assert df["step"].tolist() == sorted([*STEPS, BRANCH_STEP])
    b = df[df["budget"] == BRANCH_BUDGET]
    assert len(b) == 1 and bool(b["final"].iloc[0]) and math.isclose(b["val_loss"].iloc[0], 2.7, rel_tol=1e-6)
    assert b["tokens"].iloc[0] == BRANCH_BUDGET
    trunk = df[df["budget"] != BRANCH_BUDGET]
    assert trunk["final"].tolist() == [False] * (len(STEPS) - 1) + [True]
    assert set(trunk["budget"]) == {STEPS[-1] * BATCH * 32}
    assert list(trunk["val_loss"]) == pytest.approx(losses(), rel=1e-6)


def test_the_digest_covers_the_branch_files(tmp_path):
    run = tmp_path / "r1"
    write_tb(run)
    alone = tb_events.read_folder(run)[0].sha256
    _branch(run, 2.7)
    (got,) = tb_events.read_folder(run)
    assert got.sha256 != alone and re.fullmatch(r"[0-9a-f]{64}", got.sha256)
    assert [b.budget for b in got.branches] == [BRANCH_BUDGET]


def test_a_diverged_branch_makes_the_run_diverged(tmp_path):
    run = tmp_path / "r1"
    write_tb(run)
    _branch(run, math.inf)  # train.py logs a diverged branch's loss as inf (TensorBoard's readers drop a NaN)
    r = cli("ingest", run, "--model", NANO_MODEL, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    df = store.read_runs(str(tmp_path / "out"))
    assert set(df["status"]) == {"diverged"} and not df["final"].any()


def test_a_branch_stopped_before_its_end_adds_no_point(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "r1"
    write_tb(run)
    w = SummaryWriter(str(run / f"cooldown-{BRANCH_BUDGET}"))
    w.add_scalar("train_loss", 3.0, 21)  # killed before its evaluation
    w.close()
    r = cli("ingest", run, "--model", NANO_MODEL, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    df = store.read_runs(str(tmp_path / "out"))
    assert df["step"].tolist() == list(STEPS) and set(df["status"]) == {"ok"}


def test_a_branch_folder_alone_is_refused_naming_its_run(tmp_path):
    run = tmp_path / "r1"
    write_tb(run)
    _branch(run, 2.7)
    r = cli("ingest", run / f"cooldown-{BRANCH_BUDGET}", "--model", NANO_MODEL, "--out", tmp_path / "out")
    assert r.exit_code == 2, r.output
    assert "cooldown branch of run r1" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "out").exists()
