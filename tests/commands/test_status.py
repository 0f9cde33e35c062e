"""`scalelab status runs/`: per-grid counts of done / running / interrupted / failed / diverged / pending,
from a run store built by hand (Parquet files through store.write_run, a lock really held by another
process, a checkpoint, worker notes), so every state is known in advance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from typer.testing import CliRunner

from scalelab.cli import app

GRID = """
name = "st"
seeds = [0]
[data]
source = "corpus.txt"
[model]
widths = [16, 24, 32, 40, 48, 56]
n_layers = 1
heads = 2
seq_len = 16
[[variants]]
structure = "dense"
[budgets]
tokens = [4096]
[eval]
points = 2
val_tokens = 256
"""


def _rows(run, status: str) -> list[dict]:
    from scalelab.store import COLUMNS

    rows = []
    for step, final in ((1, False), (2, status == "ok")):
        r = {c: None for c in COLUMNS}
        r.update(
            run_id=run.run_id,
            grid=run.grid,
            variant=run.variant,
            structure="dense",
            d_model=run.model.d_model,
            n_layers=1,
            n_heads=2,
            n_kv_heads=2,
            d_ff=4 * run.model.d_model,
            params=1000,
            params_nonembed=500,
            seq_len=16,
            batch_tokens=128,
            step=step,
            tokens=128 * step,
            flops=1e6 * step,
            flops_6nd=1e6 * step,
            train_loss=3.0,
            val_loss=2.5 - 0.1 * step if status == "ok" else float("nan"),
            lr=1e-3,
            final=final,
            wall_s=1.0,
            tokens_per_s=100.0,
            mfu=0.1,
            status=status,
            seed=0,
            corpus="c",
            corpus_sha="s",
            tokenizer="byte",
            device="cpu",
            torch_version="t",
            scalelab_version="v",
            git_sha=None,
            config="{}",
            budget=4096,
            schedule="cosine",
            guide_flops=0.0,
        )
        rows.append(r)
    return rows


def _note(out, run, state, **kw):
    os.makedirs(os.path.join(out, ".status"), exist_ok=True)
    with open(os.path.join(out, ".status", f"{run.run_id}.json"), "w") as f:
        json.dump(
            dict(
                run_id=run.run_id,
                grid=run.grid,
                variant=run.variant,
                d_model=run.model.d_model,
                state=state,
                host=os.uname().nodename,
                pid=123,
                **kw,
            ),
            f,
        )


def test_status_counts_every_state(tmp_path):
    from scalelab.grid import Grid
    from scalelab.run.layout import ckpt_path, lock_path, run_path
    from scalelab.store import write_run

    (tmp_path / "corpus.txt").write_text("hello world " * 500)
    (tmp_path / "st.toml").write_text(GRID)
    grid = Grid.load(str(tmp_path / "st.toml"))
    done, diverged, running, interrupted, failed, pending = grid.runs()
    out = str(tmp_path / "runs")
    write_run(run_path(out, done), _rows(done, "ok"))
    write_run(run_path(out, diverged), _rows(diverged, "diverged"))
    # interrupted: a checkpoint and an unheld lock file left by a dead process
    os.makedirs(os.path.dirname(ckpt_path(out, interrupted)), exist_ok=True)
    open(ckpt_path(out, interrupted), "wb").write(b"x")
    os.makedirs(os.path.dirname(lock_path(out, interrupted)), exist_ok=True)
    open(lock_path(out, interrupted), "w").close()
    _note(out, interrupted, "running")
    _note(out, failed, "failed", error="RuntimeError: CUDA out of memory")
    _note(out, running, "running")
    # running: another process really holds the run's lock
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from filelock import FileLock; l = FileLock(sys.argv[1]); l.acquire(); "
                "print('held', flush=True); time.sleep(60)"
            ),
            lock_path(out, running),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        res = CliRunner().invoke(app, ["status", out, "--grid", str(tmp_path / "st.toml"), "--json"])
        assert res.exit_code == 0, res.output
        got = json.loads(res.output)
        states = {e["run_id"]: e["state"] for e in got["runs"]}
        assert states == {
            done.run_id: "done",
            diverged.run_id: "diverged",
            running.run_id: "running",
            interrupted.run_id: "interrupted",
            failed.run_id: "failed",
            pending.run_id: "pending",
        }
        assert got["grids"]["st"] == dict(runs=6, done=1, running=1, interrupted=1, failed=1, diverged=1, pending=1)
        fail = next(e for e in got["runs"] if e["state"] == "failed")
        assert "out of memory" in fail["detail"]
        # the readable table, and --runs listing what is not done
        res = CliRunner().invoke(app, ["status", out, "--grid", str(tmp_path / "st.toml"), "--runs"])
        assert res.exit_code == 0 and "st" in res.output and "interrupted" in res.output
    finally:
        holder.kill()
        holder.wait()
    # once the holder is gone, nobody runs it and no checkpoint exists: a dead worker = failed
    time.sleep(0.1)
    res = CliRunner().invoke(app, ["status", out, "--json"])
    states = {e["run_id"]: e["state"] for e in json.loads(res.output)["runs"]}
    assert states[running.run_id] == "failed"
    assert pending.run_id not in states  # without --grid nothing says it exists


def test_status_of_a_missing_folder_is_a_user_error(tmp_path):
    res = CliRunner().invoke(app, ["status", str(tmp_path / "nope")])
    assert res.exit_code == 2
    assert "not a folder" in res.output


def test_a_broken_parquet_file_is_failed_and_the_other_runs_still_count(tmp_path):
    from scalelab.grid import Grid
    from scalelab.run.layout import run_path
    from scalelab.store import write_run

    (tmp_path / "corpus.txt").write_text("hello world " * 500)
    (tmp_path / "st.toml").write_text(GRID)
    done, diverged = Grid.load(str(tmp_path / "st.toml")).runs()[:2]
    out = str(tmp_path / "runs")
    write_run(run_path(out, done), _rows(done, "ok"))
    write_run(run_path(out, diverged), _rows(diverged, "diverged"))
    (tmp_path / "runs" / "zz_broken.parquet").write_text("not a Parquet file")
    res = CliRunner().invoke(app, ["status", out, "--json"])
    assert res.exit_code == 0, res.output
    got = {e["run_id"]: e for e in json.loads(res.output)["runs"]}
    assert (got[done.run_id]["state"], got[done.run_id]["detail"], got[done.run_id]["d_model"]) == (
        "done",
        "final val loss 2.3000",
        16,
    )
    assert (got[diverged.run_id]["state"], got[diverged.run_id]["detail"]) == ("diverged", "stopped at 256 tokens")
    broken = got["zz_broken.parquet"]
    assert broken["state"] == "failed" and "unreadable Parquet" in broken["detail"] and "zz_broken" in broken["detail"]
