"""One run of a grid, whoever starts it: the in-process loop, a worker process, torchrun ranks, a Slurm task.

`train_one` takes the run's lock (runs/.locks/RUN_ID.lock), skips a finished run or one another process
holds, resumes from runs/.ckpt/RUN_ID.pt, trains, writes the Parquet file atomically (rank 0) and, for
workers, keeps a note of the run's state in runs/.status/RUN_ID.json for `scalelab status`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

from scalelab.config import RunConfig
from scalelab.run import layout


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

    env: the run's distributed.DistEnv under torchrun/submitit (collective: rank 0 decides and writes), None in
    process. notes: keep runs/.status/RUN_ID.json (workers do; the in-process loop does not).
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
        if decision == "skipped":
            return summary_from_file(run, path) if main else RunSummary(run, "skipped", path)
        if decision == "busy":
            return RunSummary(run, "busy", path)

        def note(state: str, **extra) -> None:
            if notes and main:
                layout.write_status(out_dir, run, state, **extra)

        world = env.world_size if env is not None else 1
        note("running", world_size=world)
        if env is not None:  # dist_env always: the trainer then also honours a stop request (Slurm preemption)
            train_kw.update(dist_env=env, device=env.device)
        t0 = time.perf_counter()
        try:
            res = train_run(run, corpus, out_path=path if main else None, ckpt_path=layout.ckpt_path(out_dir, run),
                            **train_kw)
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
        return RunSummary(run, state, path, min(finals) if finals else None, wall,
                          max((r["tokens"] for r in res.rows), default=0), res.resumed_from)
    finally:
        if lock is not None:
            lock.release()


def summary_from_file(run: RunConfig, path: str, state: str = "skipped") -> RunSummary:
    from scalelab.store import read_runs

    df = read_runs(path, run_id=run.run_id)
    fin = df[df["final"]]
    return RunSummary(run, state, path, float(fin["val_loss"].min()) if len(fin) else None,
                      float(df["wall_s"].max()), int(df["tokens"].max()))
