"""One run of a grid, whoever starts it: the in-process loop, a worker process, torchrun ranks, a Slurm task.

`train_one` takes the run's lock (runs/.locks/RUN_ID.lock), skips a finished run or one another process
holds, resumes from runs/.ckpt/RUN_ID.pt, trains, writes the Parquet file atomically (rank 0) and, for
workers, keeps a note of the run's state in runs/.status/RUN_ID.json for `scalelab status`.
`train_by_id` is the same for a process handed only a grid and a run id (`python -m scalelab.run.worker`,
torchrun's ranks, a Slurm task): it joins the run's process group, finds the run and prints how it ended.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Optional

from scalelab.config import RunConfig
from scalelab.errors import ScalelabError
from scalelab.run import layout

NOTE_SECONDS = 3.0  # a worker rewrites its running note (tokens so far) at most this often


@dataclass
class RunSummary:
    """How one run of a grid ended.

    state, in process: trained | skipped (finished before) | busy (another process) | diverged | interrupted;
    after a worker: done | diverged | skipped | busy | failed | submitted (Slurm, not waited for).
    """

    run: RunConfig
    state: str
    path: str
    final_val: Optional[float] = None
    wall_s: float = 0.0
    tokens: int = 0
    resumed_from: int = 0
    detail: str = ""  # for worker outcomes: the file, the log, the job


def train_one(run: RunConfig, corpus, out_dir: str, *, env=None, notes: bool = False, **train_kw) -> RunSummary:
    """Train one run under its lock, or skip it (finished) or leave it (busy).

    corpus: a data.Corpus, or a function returning one (a worker loads it only once it knows it trains).
    env: the run's distributed.DistEnv under a worker (collective: rank 0 decides and writes), None in
    process. notes: keep runs/.status/RUN_ID.json (workers do; the in-process loop does not); while training,
    the running note is rewritten every NOTE_SECONDS with the step and tokens so far (the parent's grid bar).
    train_kw go to train.Trainer: device, progress, checkpoint_every, checkpoint_seconds, tb_dir, should_stop, shard.
    """
    from scalelab.run.train import train_run

    main = env is None or env.is_main
    path = layout.run_path(out_dir, run)
    lock, decision = layout.claim(out_dir, run) if main else (None, "train")
    try:
        if env is not None:
            from scalelab.run import distributed as D

            decision = D.broadcast(decision, env)
        if decision == "skipped":  # in process, the grid's table shows the finished run's numbers
            return summary_from_file(run, path) if env is None else RunSummary(run, "skipped", path)
        if decision == "busy":
            return RunSummary(run, "busy", path)

        def note(state: str, **extra) -> None:
            if notes and main:
                layout.write_status(out_dir, run, state, **extra)

        world = env.world_size if env is not None else 1
        note("running", world_size=world, tokens=0)
        if notes and main:
            train_kw["progress"] = _noting(train_kw.get("progress"), lambda **p: note("running", world_size=world, **p))
        if callable(corpus):
            corpus = corpus()
        if env is not None:  # dist_env always: the trainer then also honours a stop request (Slurm preemption)
            train_kw.update(dist_env=env, device=env.device)
        t0 = time.perf_counter()
        try:
            res = train_run(
                run, corpus, out_path=path if main else None, ckpt_path=layout.ckpt_path(out_dir, run), **train_kw
            )
        except BaseException as e:
            from scalelab.run.distributed import Preempted

            if isinstance(e, (Preempted, SystemExit, KeyboardInterrupt)):  # SystemExit: submitit requeues
                note("interrupted", reason="preempted/timeout: checkpointed, will resume")
            else:
                note("failed", error=f"{type(e).__name__}: {e}".splitlines()[0][:500])
            raise
        wall = time.perf_counter() - t0
        state = {"ok": "trained", "diverged": "diverged", "interrupted": "interrupted"}[res.status]
        note({"trained": "done"}.get(state, state), world_size=world, seconds=wall, resumed_from=res.resumed_from)
        finals = [r["val_loss"] for r in res.rows if r["final"]]
        return RunSummary(
            run,
            state,
            path,
            min(finals) if finals else None,
            wall,
            max((r["tokens"] for r in res.rows), default=0),
            res.resumed_from,
        )
    finally:
        if lock is not None:
            lock.release()


def _noting(progress, note, every: Optional[float] = None):
    """A trainer progress callback that also writes the run's running note (step, tokens, loss, tokens/s) at
    most every `every` seconds (NOTE_SECONDS), and at the last step; then calls `progress` if given."""
    last = [time.monotonic()]

    def on_step(p: dict) -> None:
        now = time.monotonic()
        if now - last[0] >= (NOTE_SECONDS if every is None else every) or p["step"] == p["total"]:
            last[0] = now
            try:
                note(
                    step=int(p["step"]),
                    total_steps=int(p["total"]),
                    tokens=int(p["tokens"]),
                    loss=float(p["loss"]),
                    tokens_per_s=float(p["tokens_per_s"]),
                )
            except OSError:  # a full or flaky disk must not stop the run for a progress note
                pass
        if progress is not None:
            progress(p)

    return on_step


def summary_from_file(run: RunConfig, path: str, state: str = "skipped") -> RunSummary:
    """A finished run's summary from its file: best final val loss, wall time and tokens."""
    from scalelab.store import read_runs

    df = read_runs([path])
    fin = df[df["final"]]
    return RunSummary(
        run,
        state,
        path,
        float(fin["val_loss"].min()) if len(fin) else None,
        float(df["wall_s"].max()),
        int(df["tokens"].max()),
    )


# ---- a run named by its grid and id: worker processes, torchrun ranks, Slurm tasks ------------------------
def find_run(grid: str, run_id: str):
    """(the grid, its run run_id); grid is a built-in name or a path."""
    from scalelab.grid import Grid

    g = Grid.load(grid)
    for r in g.runs():
        if r.run_id == run_id:
            return g, r
    raise ScalelabError(f"grid {g.name} has no run {run_id}: list its runs with `scalelab run --grid {grid} --dry-run`")


def train_by_id(
    grid: str,
    run_id: str,
    out_dir: str = "runs",
    *,
    shard: bool = False,
    device: Optional[str] = None,
    checkpoint_every: Optional[int] = None,
    checkpoint_seconds: float = 60.0,
    log=None,
) -> dict:
    """Train (or skip) one run of a grid through train_one, with worker notes; returns {"run_id", "state",
    "path", "resumed_from"}; state is trained, diverged, skipped (already finished) or busy (another process
    holds its lock). Collective under torchrun: every rank calls it."""
    from scalelab.data import load_corpus
    from scalelab.run import distributed as D

    env = D.init(None if device in (None, "auto") else device)
    try:
        g, run = find_run(grid, run_id)
        corpus = lambda: load_corpus(run.data, base_dir=os.path.dirname(g.path) if g.path else None)
        s = train_one(
            run,
            corpus,
            out_dir,
            env=env,
            notes=True,
            shard=shard,
            checkpoint_every=checkpoint_every,
            checkpoint_seconds=checkpoint_seconds,
            progress=_progress_printer(log, run_id) if env.is_main else None,
        )
        if s.state in ("skipped", "busy"):
            _say(log, env, f"run {run_id}: {s.state}")
            return {"run_id": run_id, "state": s.state, "path": s.path}
        _say(
            log,
            env,
            f"run {run_id}: {s.state} in {s.wall_s:.1f} s"
            + (f" (resumed from step {s.resumed_from})" if s.resumed_from else ""),
        )
        # leave together: a rank tearing gloo down while rank 0 still writes can abort ("terminate called
        # without an active exception")
        D.barrier(env)
        return {"run_id": run_id, "state": s.state, "path": s.path, "resumed_from": s.resumed_from}
    finally:
        D.shutdown()


def _say(log, env, msg: str) -> None:
    if env.is_main:
        print(msg, file=log or sys.stdout, flush=True)


def _progress_printer(log, run_id: str):
    last = [0.0]

    def on_step(p: dict) -> None:
        now = time.time()
        if now - last[0] > 10 or p["step"] == p["total"]:
            last[0] = now
            print(
                f"run {run_id}: step {p['step']}/{p['total']} tokens {p['tokens']:,} loss {p['loss']:.4f} "
                f"{p['tokens_per_s']:,.0f} tok/s",
                file=log or sys.stdout,
                flush=True,
            )

    return on_step
