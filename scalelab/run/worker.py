"""Train one run of a grid: the command every worker process, torchrun rank and Slurm task runs.

    python -m scalelab.run.worker --grid PATH --run-id ID [--out runs] [--shard] [--device cpu|cuda]
    python -m torch.distributed.run --standalone --nproc-per-node K -m scalelab.run.worker --grid ... (K ranks)

Only the command line: the work is one.train_by_id (join the run's process group, then one.train_one: rank 0
takes the run's lock and decides, finished -> skip, locked elsewhere -> skip, else train; the trainer resumes
from the run's checkpoint and rank 0 writes the Parquet file and the worker note for `scalelab status`).
Exit 0 when the run was trained, diverged or skipped, 2 for a user error, 1 for a crash.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Optional

from scalelab.errors import ScalelabError
from scalelab.run.one import train_by_id


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
        out = train_by_id(
            a.grid,
            a.run_id,
            a.out,
            shard=a.shard,
            device=a.device,
            checkpoint_every=a.checkpoint_every,
            checkpoint_seconds=a.checkpoint_seconds,
        )
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
