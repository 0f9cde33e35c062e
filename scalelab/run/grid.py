"""A grid's runs, trained: `run_grid` expands the grid and hands the runs to an executor (run/executors.py).

Whichever executor trains them (this process, worker processes, torchrun ranks, a Slurm job array), each run
goes through one.train_one, which takes its lock, skips it when finished and resumes it from its checkpoint;
the runs/ folder's layout is run/layout.py's. `describe` and `estimate_seconds` are the dry run's table.
"""

from __future__ import annotations

from typing import Optional

from scalelab.run.one import RunSummary


def describe(grid) -> list[dict]:
    """One dict per run for --dry-run: shape, params, tokens, FLOPs and an estimated time."""
    from scalelab import flops as flopslib
    from scalelab.run.train import estimate_tokens

    out = []
    for r in grid.runs():
        pc = flopslib.param_counts(r.model)
        tok = estimate_tokens(r)
        fl = flopslib.flops_per_token(r.model) * tok
        out.append(
            dict(
                run_id=r.run_id,
                variant=r.variant,
                d_model=r.model.d_model,
                n_layers=r.model.n_layers,
                params=pc.params,
                params_nonembed=pc.params_nonembed,
                budgets=list(r.train.budgets),
                schedule=r.train.schedule,
                seed=r.seed,
                lr=r.train.lr,
                tokens=tok,
                flops=fl,
            )
        )
    return out


def estimate_seconds(flops: float, device_peak: float, efficiency: float) -> float:
    return flops / max(device_peak * efficiency, 1.0)


def run_grid(
    grid,
    out_dir: str = "runs",
    *,
    executor="local",
    checkpoint_every: Optional[int] = None,
    checkpoint_seconds: float = 60.0,
    **options,
) -> list[RunSummary]:
    """Train every unfinished run of the grid; one summary per run (finished-before runs first for workers).

    executor: an executor from run/executors.py, or its name ("local", "slurm", "submitit-local") with
    `options` for executors.from_options (workers, devices, nproc_per_run, shard, slurm, device, wait, quiet,
    tensorboard, console); plain run_grid(grid) trains in this process.
    """
    from scalelab.run import executors

    if isinstance(executor, str):
        executor = executors.from_options(grid, executor=executor, **options)
    elif options:
        raise TypeError(f"run_grid: give an executor or its options, not both ({', '.join(options)})")
    runs = grid.runs()
    if executor.world > 1:  # fail here, not in every worker: the global batch must split evenly over the ranks
        from scalelab.run.distributed import plan_batch

        for r in runs:
            plan_batch(r.train.batch_size, r.train.micro, executor.world)
    return executor.run(
        grid, runs, out_dir, {"checkpoint_every": checkpoint_every, "checkpoint_seconds": checkpoint_seconds}
    )
