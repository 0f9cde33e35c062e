"""Grid fan-out beyond one process, all on CPU: worker processes, submitit's local executor (the same
code path as Slurm, with requeue on preemption), kill-and-resubmit, and two `scalelab run` processes on
one grid. The reference is always the in-process executor (scalelab.run.grid.run_grid on its defaults) on the
same grid; every process runs one torch thread so the float results are comparable bit for bit.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from scalelab.errors import ScalelabError
from scalelab.run import executors, slurm
from scalelab.run.grid import run_grid

GRID = """
name = "{name}"
seeds = [0]
[data]
source = "corpus.txt"
[model]
widths = {widths}
n_layers = 1
heads = 2
seq_len = 16
[[variants]]
structure = "dense"
[budgets]
tokens = [{tokens}]
[schedule]
kind = "cosine"
[optimizer]
lr = 3e-3
batch_size = 8
micro_batch = 4
[eval]
points = 3
val_tokens = 512
"""

# Columns that describe the machine or the clock, not the training: everything else must match.
VOLATILE = {"wall_s", "tokens_per_s", "mfu", "device", "git_sha", "_file"}  # _file: where read_runs found the row


def make_grid(folder, name="tiny", widths=(16, 24), tokens=4096) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    words = "the quick brown fox jumps over a lazy dog while scaling laws count tokens and flops".split()
    lines = (" ".join(rng.choice(words) for _ in range(12)) for _ in range(2000))
    (folder / "corpus.txt").write_text("\n".join(lines))
    path = folder / f"{name}.toml"
    path.write_text(GRID.format(name=name, widths=list(widths), tokens=tokens))
    return str(path)


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """One torch thread everywhere (this process and every child), so sums are ordered identically."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 2-run grid and its results from the in-process runner (the reference)."""
    import torch

    from scalelab.grid import Grid

    root = tmp_path_factory.mktemp("tiny")
    path = make_grid(root)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sums = run_grid(Grid.load(path), str(root / "ref"), device="cpu", quiet=True)
    finally:
        torch.set_num_threads(before)
    assert [s.state for s in sums] == ["trained", "trained"]
    return path, read_sorted(root / "ref")


def read_sorted(folder) -> pd.DataFrame:
    from scalelab.store import read_runs

    df = read_runs(str(folder))
    return df.sort_values(["run_id", "step", "budget", "final"]).reset_index(drop=True)


def assert_same_results(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert len(got) == len(ref) and len(ref) > 0
    assert sorted(set(got["run_id"])) == sorted(set(ref["run_id"]))
    cols = [c for c in ref.columns if c not in VOLATILE]
    pd.testing.assert_frame_equal(got[cols], ref[cols], check_exact=False, rtol=0, atol=1e-6)


# ---- local fan-out ------------------------------------------------------------------------------
def test_two_cpu_workers_match_the_in_process_runner(tiny, tmp_path):
    from scalelab.grid import Grid

    path, ref = tiny
    seen = []
    out = run_grid(Grid.load(path), str(tmp_path / "runs"), workers=2, device="cpu", console=None)
    assert sorted(o.state for o in out) == ["done", "done"]
    assert_same_results(read_sorted(tmp_path / "runs"), ref)
    # a second pass finds both finished and starts no worker
    again = run_grid(Grid.load(path), str(tmp_path / "runs"), workers=2, device="cpu")
    assert [o.state for o in again] == ["skipped", "skipped"]
    del seen


# ---- the parent's grid bar from the workers' notes (issue 12) ------------------------------------------
def test_worker_notes_carry_tokens_and_the_parent_bar_counts_them(tmp_path, monkeypatch):
    """A worker's running note is rewritten with its tokens while it trains; the parent's bar reads the
    notes back: finished runs count in full, a running one its tokens (capped at its estimate), a stale
    note from an earlier invocation nothing."""
    from rich.progress import Progress

    from scalelab.data import load_corpus
    from scalelab.grid import Grid
    from scalelab.run import layout, one
    from scalelab.run.train import estimate_tokens

    g = Grid.load(make_grid(tmp_path / "g", widths=(16, 24, 32)))
    runs = g.runs()
    out = str(tmp_path / "runs")
    # 1. the worker side: train_one(notes=True) writes running notes with tokens as it goes
    written = []
    real = layout.write_status
    monkeypatch.setattr(
        layout, "write_status", lambda d, r, state, **kw: (written.append((state, kw)), real(d, r, state, **kw))
    )
    monkeypatch.setattr(one, "NOTE_SECONDS", 0.0)
    corpus = load_corpus(runs[0].data, base_dir=os.path.dirname(g.path))
    s = one.train_one(runs[0], corpus, out, notes=True, device="cpu")
    assert s.state == "trained"
    toks = [kw["tokens"] for st, kw in written if st == "running"]
    assert toks[0] == 0 and max(toks) == s.tokens and len(set(toks)) > 2 and toks == sorted(toks)
    assert written[-1][0] == "done"
    # 2. the parent side: notes read back into the grid bar's completed tokens and runs done
    est = {r.run_id: estimate_tokens(r) for r in runs}
    since = time.time()
    layout.write_status(out, runs[1], "running", tokens=1000, step=5, total_steps=20)
    layout.write_status(out, runs[2], "running", tokens=10**9)  # beyond its estimate: capped
    notes = layout.read_notes(out)
    assert notes[runs[1].run_id]["tokens"] == 1000
    assert layout.grid_progress(est, {runs[0].run_id}, notes, since) == (
        est[runs[0].run_id] + 1000 + est[runs[2].run_id],
        1,
    )
    assert layout.grid_progress(est, set(), notes, since=time.time() + 60) == (0, 0)  # stale notes count nothing
    progress = Progress(disable=True)
    bar = executors.WorkerBar(progress, g.name, runs, out, skipped=[runs[0].run_id], since=since)
    task = progress.tasks[0]
    assert task.total == sum(est.values())
    assert task.completed == est[runs[0].run_id] + 1000 + est[runs[2].run_id]
    assert task.fields["info"] == "1/3 runs, 2 training"
    assert len(progress.tasks) == 3  # the grid bar and one bar per run in training
    assert progress.tasks[1].completed == 5 and progress.tasks[1].total == 20
    bar.finish(runs[1].run_id)
    assert progress.tasks[0].completed == est[runs[0].run_id] + est[runs[1].run_id] + est[runs[2].run_id]
    assert progress.tasks[0].fields["info"] == "2/3 runs, 1 training" and len(progress.tasks) == 2


def test_slots_and_commands():
    assert executors.parse_devices("0, 1,2,3") == ["0", "1", "2", "3"]
    slots = executors.device_slots(["0", "1", "2", "3"], nproc_per_run=2)
    assert [s["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0,1", "2,3"]
    assert [s["CUDA_VISIBLE_DEVICES"] for s in executors.device_slots(["0", "1"], 1)] == ["0", "1"]
    with pytest.raises(ScalelabError, match="do not split"):
        executors.device_slots(["0", "1", "2"], nproc_per_run=2)
    with pytest.raises(ScalelabError, match="repeats"):
        executors.parse_devices("0,0")
    cpu = executors.cpu_slots(3)
    assert len(cpu) == 3 and all(s["CUDA_VISIBLE_DEVICES"] == "" for s in cpu)
    argv = executors.worker_argv("g.toml", "abc", "runs", nproc_per_run=4, shard=True)
    assert argv[:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4"]
    assert argv[5:] == ["-m", "scalelab.run.worker", "--grid", "g.toml", "--run-id", "abc", "--out", "runs", "--shard"]
    assert "torch.distributed.run" not in executors.worker_argv("g.toml", "abc", "runs", nproc_per_run=1)


# ---- submitit: job array, requeue on preemption, kill and resubmit -------------------------------------
def test_submitit_local_executor_matches_the_in_process_runner(tiny, tmp_path):
    from scalelab.grid import Grid

    path, ref = tiny
    out = run_grid(Grid.load(path), str(tmp_path / "runs"), executor="submitit-local", wait=True, device="cpu")
    assert sorted(o.state for o in out) == ["done", "done"], out
    assert_same_results(read_sorted(tmp_path / "runs"), ref)


def _ckpt_step(path) -> int:
    import torch

    for _ in range(20):  # the writer replaces the file atomically; retry a torn read of a vanished file
        try:
            return int(torch.load(path, map_location="cpu", weights_only=False)["state"]["step"])
        except (FileNotFoundError, EOFError, RuntimeError):
            time.sleep(0.05)
    return -1


def _wait_for(cond, timeout=120.0, what="condition"):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    """A single longer run (96 optimizer steps) and its uninterrupted in-process result."""
    import torch

    from scalelab.grid import Grid

    root = tmp_path_factory.mktemp("long")
    path = make_grid(root, name="long", widths=(16,), tokens=8 * 16 * 96)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_grid(Grid.load(path), str(root / "ref"), device="cpu", quiet=True)
    finally:
        torch.set_num_threads(before)
    (run,) = Grid.load(path).runs()
    return path, run, read_sorted(root / "ref")


def test_preempted_job_is_requeued_and_resumes_from_its_checkpoint(long_run, tmp_path):
    """A 2-task job (what gpus_per_run = 2 gives on Slurm: DDP over 2 gloo ranks here) gets SIGUSR2 on
    rank 0; both ranks agree to stop at the next step, save a checkpoint there, submitit requeues the
    job, and the new job resumes from that step and ends with the uninterrupted rows."""
    from scalelab.run.layout import ckpt_path, status_path

    path, run, ref = long_run
    out = str(tmp_path / "runs")
    opts = slurm.SlurmOptions(time=10, max_requeues=3, gpus_per_run=2)
    (job,) = slurm.submit(
        path, [run.run_id], out, opts, cluster="local", device="cpu", grace_s=60.0, train_kwargs={"checkpoint_every": 8}
    )
    ck = ckpt_path(out, run)
    seen = _wait_for(lambda: os.path.isfile(ck) and _ckpt_step(ck) >= 8 and _ckpt_step(ck), what="a first checkpoint")
    # What Slurm does before a time limit or a preemption: SIGUSR2 to the job's task. (LocalJob._interrupt
    # signals submitit's local controller, which this submitit version does not forward; signal the task.)
    first_pid = json.loads(open(status_path(out, run.run_id)).read())["pid"]
    os.kill(first_pid, signal.SIGUSR2)
    res = job.results()[0]  # rank 0's
    assert res["state"] == "trained"
    assert res["resumed_from"] >= seen, "the requeued job did not resume from the checkpoint it saved"
    assert res["resumed_from"] < 96
    assert json.loads(open(status_path(out, run.run_id)).read())["world_size"] == 2
    log = (job.stdout() or "") + (job.stderr() or "")
    assert "Requeued job" in log, "submitit did not requeue the job"
    import re

    stopped = re.search(r"preempted: checkpointed at step (\d+)", log)
    assert stopped, "the trainer did not stop at a step boundary"
    assert res["resumed_from"] == int(stopped.group(1))  # resumed from the checkpoint taken on the signal
    assert json.loads(open(status_path(out, run.run_id)).read())["pid"] != first_pid  # a new process finished it
    assert not os.path.exists(ck)  # a finished run leaves no checkpoint behind
    assert_same_results(read_sorted(out), ref)


def test_killed_job_resubmitted_resumes_from_its_checkpoint(long_run, tmp_path):
    from scalelab.run.layout import ckpt_path, status_path

    path, run, ref = long_run
    out = str(tmp_path / "runs")
    opts = slurm.SlurmOptions(time=10, max_requeues=0)
    (job,) = slurm.submit(
        path, [run.run_id], out, opts, cluster="local", device="cpu", train_kwargs={"checkpoint_every": 8}
    )
    ck = ckpt_path(out, run)
    _wait_for(lambda: os.path.isfile(ck) and _ckpt_step(ck) >= 8, what="a first checkpoint")
    note = json.loads(open(status_path(out, run.run_id)).read())
    os.kill(note["pid"], signal.SIGKILL)  # the node dies: no signal handler, no last checkpoint
    with pytest.raises(Exception):
        job.result()
    killed_at = _ckpt_step(ck)
    assert 8 <= killed_at < 96
    (job2,) = slurm.submit(
        path, [run.run_id], out, opts, cluster="local", device="cpu", train_kwargs={"checkpoint_every": 8}
    )
    res = job2.result()
    assert res["state"] == "trained" and res["resumed_from"] == killed_at
    assert_same_results(read_sorted(out), ref)


def test_slurm_options_from_grid_table_and_cli(tmp_path, monkeypatch):
    p = tmp_path / "g.toml"
    p.write_text(
        'name = "g"\n[slurm]\npartition = "gpu"\ntime = "02:00:00"\ngpus_per_run = 4\n'
        "cpus_per_task = 12\nmem_gb = 200\narray_parallelism = 8\n"
    )
    table = slurm.grid_slurm_table(str(p))
    opts = slurm.SlurmOptions.from_table(table, partition="big", time=None)
    assert (opts.partition, opts.time, opts.gpus_per_run, opts.cpus_per_task, opts.mem_gb, opts.array_parallelism) == (
        "big",
        120,
        4,
        12,
        200,
        8,
    )
    assert slurm.parse_time("1-00:30:00") == 24 * 60 + 30 and slurm.parse_time(45) == 45
    with pytest.raises(ScalelabError, match="unknown slurm setting"):
        slurm.SlurmOptions.from_table({"partiton": "x"})
    # the sbatch script submitit would submit (without a cluster: pretend srun exists)
    import submitit.slurm.slurm as ss

    monkeypatch.setattr(ss.SlurmExecutor, "affinity", classmethod(lambda cls: 1))
    ex = slurm.make_executor(str(tmp_path / "runs"), opts, cluster="slurm", name="scalelab-g")
    text = ex._executor._make_submission_file_text("python -m x", "uid")
    for line in (
        "#SBATCH --partition=big",
        "#SBATCH --time=120",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --cpus-per-task=12",
        "#SBATCH --mem=200GB",
        "#SBATCH --signal=USR2@120",
        "#SBATCH --job-name=scalelab-g",
    ):
        assert line in text, f"{line} not in the sbatch script:\n{text}"


# ---- two `scalelab run` processes on one grid ---------------------------------------------------------
def test_two_scalelab_run_processes_train_each_run_once(tiny, tmp_path):
    path, ref = tiny
    out = str(tmp_path / "runs")
    cmd = [
        sys.executable,
        "-m",
        "scalelab.cli",
        "run",
        "--grid",
        path,
        "--out",
        out,
        "--device",
        "cpu",
        "--quiet",
        "--json",
    ]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for p in procs:
        so, se = p.communicate(timeout=300)
        assert p.returncode == 0, se
        results.append(json.loads(so))
    trained = [r["run_id"] for res in results for r in res if r["state"] == "trained"]
    assert sorted(trained) == sorted(set(ref["run_id"])), f"each run must be trained exactly once: {results}"
    assert_same_results(read_sorted(out), ref)  # read_runs also rejects duplicated rows


def test_bad_dispatch_options_are_user_errors(tmp_path):
    from scalelab.grid import Grid

    g = Grid.load(make_grid(tmp_path / "g"))  # batch of 8 sequences
    out = str(tmp_path / "runs")
    for kw, msg in [
        (dict(devices="0,1", workers=2), "not both"),
        (dict(executor="slurm", workers=2), "schedules runs itself"),
        (dict(shard=True), "--nproc-per-run K"),
        (dict(executor="pbs"), "unknown executor"),
        (dict(nproc_per_run=3), "does not split evenly over 3"),
        (dict(executor="submitit-local", slurm={"gpus_per_run": 3}), "does not split evenly over 3"),
    ]:
        with pytest.raises(ScalelabError, match=msg):
            run_grid(g, out, **kw)
    assert not os.path.exists(os.path.join(out, ".submitit"))  # nothing submitted


def test_cli_slurm_options_reach_the_dispatcher(tmp_path):
    from typer.testing import CliRunner

    from scalelab.cli import app

    path = make_grid(tmp_path / "g")  # batch of 8 sequences
    out = str(tmp_path / "runs")
    res = CliRunner().invoke(
        app,
        [
            "run",
            "--grid",
            path,
            "--out",
            out,
            "--executor",
            "submitit-local",
            "--gpus-per-run",
            "3",
            "--time",
            "01:00:00",
        ],
    )
    assert res.exit_code == 2 and "does not split evenly over 3" in res.output, res.output
    res = CliRunner().invoke(app, ["run", "--grid", path, "--out", out, "--executor", "slurm", "--partition", "gpu"])
    assert res.exit_code == 2, res.output  # this machine has no srun: one line, no traceback
    assert "Traceback" not in res.output and "srun" in res.output
