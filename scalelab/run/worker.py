"""Train one run of a grid: the entry of every worker process (local, torchrun, Slurm).

    python -m scalelab.run.worker --grid PATH --run-id ID [--out runs] [--shard] [--device cpu|cuda]
    python -m torch.distributed.run --standalone --nproc-per-node K -m scalelab.run.worker --grid ... (K ranks)

It joins the run's process group when torchrun (or a submitit task) started it and trains through
one.train_one, the entry every executor shares: rank 0 takes the run's lock and decides (finished -> skip,
locked elsewhere -> skip, else train), the trainer resumes from the run's checkpoint and rank 0 writes the
Parquet file and the worker note for `scalelab status` (see run/layout.py for the paths).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from typing import Optional

from scalelab.errors import ScalelabError

def find_run(grid: str, run_id: str):
    from scalelab.config import Grid

    g = Grid.load(grid)
    for r in g.runs():
        if r.run_id == run_id:
            return g, r
    raise ScalelabError(f"grid {g.name} has no run {run_id}: list its runs with `scalelab run --grid {grid} --dry-run`")


def train_by_id(grid: str, run_id: str, out_dir: str = "runs", *, shard: bool = False, device: Optional[str] = None,
                checkpoint_every: Optional[int] = None, checkpoint_seconds: float = 60.0, log=None) -> dict:
    """Train (or skip) one run of a grid named by its id, through one.train_one; returns {"run_id", "state",
    "path", "resumed_from"}; state is trained, diverged, skipped (already finished) or busy (another process
    holds its lock). Collective under torchrun."""
    from scalelab.data import load_corpus
    from scalelab.run import distributed as D
    from scalelab.run.one import train_one

    env = D.init(None if device in (None, "auto") else device)
    try:
        g, run = find_run(grid, run_id)
        corpus = load_corpus(run.data, base_dir=os.path.dirname(g.path) if g.path else None)
        t0 = time.time()
        s = train_one(run, corpus, out_dir, env=env, notes=True, shard=shard, checkpoint_every=checkpoint_every,
                      checkpoint_seconds=checkpoint_seconds,
                      progress=_progress_printer(log, run_id) if env.is_main else None)
        if s.state in ("skipped", "busy"):
            _say(log, env, f"run {run_id}: {s.state}")
            return {"run_id": run_id, "state": s.state, "path": s.path}
        _say(log, env, f"run {run_id}: {s.state} in {time.time() - t0:.1f} s"
             + (f" (resumed from step {s.resumed_from})" if s.resumed_from else ""))
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
        out = train_by_id(a.grid, a.run_id, a.out, shard=a.shard, device=a.device,
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
