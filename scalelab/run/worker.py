"""Train one run of a grid: the entry every dispatch mode uses.

    python -m scalelab.run.worker --grid PATH --run-id ID [--out runs] [--shard] [--device cpu|cuda]
    python -m torch.distributed.run --standalone --nproc-per-node K -m scalelab.run.worker --grid ... (K ranks)

It joins the run's process group when torchrun (or a submitit task) started it, lets rank 0 take the
runner's per-run lock (runs/.locks/RUN_ID.lock) and decide (finished -> skip, locked elsewhere -> skip,
else train), and trains through the runner's train_run, which resumes from runs/.ckpt/RUN_ID.pt and writes
the Parquet file (rank 0 only). A small JSON note runs/.status/RUN_ID.json records the state for
`scalelab status` (running, failed with the error, interrupted, done).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import traceback
from typing import Optional

from scalelab.errors import ScalelabError

STATUS_DIR = ".status"


def status_path(out_dir: str, run_id: str) -> str:
    return os.path.join(out_dir, STATUS_DIR, f"{run_id}.json")


def write_status(out_dir: str, run, state: str, **extra) -> None:
    """Atomically record a run's state for `scalelab status` (rank 0 only)."""
    path = status_path(out_dir, run.run_id)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    note = dict(run_id=run.run_id, grid=run.grid, variant=run.variant, d_model=run.model.d_model,
                state=state, host=socket.gethostname(), pid=os.getpid(), time=time.time(), **extra)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(note, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def find_run(grid: str, run_id: str):
    from scalelab.config import Grid

    g = Grid.load(grid)
    for r in g.runs():
        if r.run_id == run_id:
            return g, r
    raise ScalelabError(f"grid {g.name} has no run {run_id}: list its runs with `scalelab run --grid {grid} --dry-run`")


def train_one(grid: str, run_id: str, out_dir: str = "runs", *, shard: bool = False, device: Optional[str] = None,
              checkpoint_every: Optional[int] = None, checkpoint_seconds: float = 60.0,
              log=None) -> dict:
    """Train (or skip) one run; returns {"run_id", "state", "path"}; state is trained, diverged, skipped
    (already finished) or busy (another process holds its lock). Collective under torchrun."""
    from filelock import FileLock, Timeout

    from scalelab.run import distributed as D
    from scalelab.run.runner import ckpt_path, lock_path, run_path

    env = D.init(None if device in (None, "auto") else device)
    lock = None
    try:
        g, run = find_run(grid, run_id)
        path = run_path(out_dir, run)
        decision = "train"
        if env.is_main:
            if os.path.isfile(path):
                decision = "skipped"
            else:
                os.makedirs(os.path.dirname(lock_path(out_dir, run)), exist_ok=True)
                lock = FileLock(lock_path(out_dir, run))
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    lock, decision = None, "busy"
                else:
                    if os.path.isfile(path):  # finished by another process meanwhile
                        decision = "skipped"
        decision = D.broadcast(decision, env)
        if decision != "train":
            _say(log, env, f"run {run_id}: {decision}")
            return {"run_id": run_id, "state": decision, "path": path}
        if env.is_main:
            write_status(out_dir, run, "running", world_size=env.world_size)
        from scalelab.data import load_corpus
        from scalelab.run.train import train_run

        corpus = load_corpus(run.data, base_dir=os.path.dirname(g.path) if g.path else None)
        # dist_env always: the trainer then also honours a stop request (Slurm preemption, via dispatch.RunJob)
        kw = dict(dist_env=env, shard=shard)
        t0 = time.time()
        progress = _progress_printer(log, run_id) if env.is_main else None
        try:
            res = train_run(run, corpus, out_path=path if env.is_main else None,
                            device=env.device,
                            ckpt_path=ckpt_path(out_dir, run), checkpoint_every=checkpoint_every,
                            checkpoint_seconds=checkpoint_seconds, progress=progress, **kw)
        except (D.Preempted, SystemExit, KeyboardInterrupt):  # SystemExit: submitit requeues
            if env.is_main:
                write_status(out_dir, run, "interrupted", reason="preempted/timeout: checkpointed, will resume")
            raise
        except BaseException as e:
            if env.is_main:
                write_status(out_dir, run, "failed", error=f"{type(e).__name__}: {e}".splitlines()[0][:500])
            raise
        state = "trained" if res.status == "ok" else "diverged"
        if env.is_main:
            write_status(out_dir, run, "done" if state == "trained" else "diverged", world_size=env.world_size,
                         seconds=time.time() - t0, resumed_from=res.resumed_from)
        _say(log, env, f"run {run_id}: {state} in {time.time() - t0:.1f} s"
             + (f" (resumed from step {res.resumed_from})" if res.resumed_from else ""))
        # leave together: a rank tearing gloo down while rank 0 still writes can abort ("terminate called
        # without an active exception")
        D.barrier(env)
        return {"run_id": run_id, "state": state, "path": path, "resumed_from": res.resumed_from}
    finally:
        if lock is not None:
            lock.release()
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
            print(f"run {run_id}: step {p['step']}/{p['total']} tokens {p['tokens']:,} loss {p['loss']:.4f} "
                  f"{p['tokens_per_s']:,.0f} tok/s", file=log or sys.stdout, flush=True)

    return on_step


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scalelab.run.worker", description="Train one run of a grid.")
    ap.add_argument("--grid", required=True, help="built-in grid name or path to a grid TOML")
    ap.add_argument("--run-id", required=True, help="the run's id (scalelab run --grid G --dry-run lists them)")
    ap.add_argument("--out", default="runs", help="run store folder (default runs)")
    ap.add_argument("--shard", action="store_true", help="FSDP2 fully_shard the model over the ranks")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--checkpoint-every", type=int, default=None, help="checkpoint every N optimizer steps")
    ap.add_argument("--checkpoint-seconds", type=float, default=60.0, help="else at most this many seconds apart")
    a = ap.parse_args(argv)
    if "OMP_NUM_THREADS" not in os.environ and (a.device == "cpu" or not _cuda()):
        import torch

        torch.set_num_threads(1)  # as `scalelab run` on CPU
    try:
        out = train_one(a.grid, a.run_id, a.out, shard=a.shard, device=a.device,
                        checkpoint_every=a.checkpoint_every, checkpoint_seconds=a.checkpoint_seconds)
    except ScalelabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        return 1
    return 0 if out["state"] in ("trained", "diverged", "skipped", "busy") else 1


if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Under torchrun, once the run is written and the group left: skip interpreter teardown, where
        # gloo's threads can abort the process ("terminate called without an active exception") and turn
        # a finished run into a failed launch.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
