"""`scalelab run --grid demo|PATH`: train a grid and record loss vs FLOPs to runs/*.parquet."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Optional

from scalelab.commands import _run_options as O
from scalelab.commands._common import check_out_dir, stdout_console, user_errors


@user_errors
def run(
    grid: str = O.GRID,
    out: str = O.OUT,
    dry_run: bool = O.DRY_RUN,
    gpu: Optional[str] = O.GPU,
    device: str = O.DEVICE,
    threads: Optional[int] = O.THREADS,
    checkpoint_every: Optional[int] = O.CHECKPOINT_EVERY,
    checkpoint_seconds: float = O.CHECKPOINT_SECONDS,
    tensorboard: Optional[str] = O.TENSORBOARD,
    quiet: bool = O.QUIET,
    as_json: bool = O.JSON,
    workers: int = O.WORKERS,
    devices: Optional[str] = O.DEVICES,
    nproc_per_run: int = O.NPROC_PER_RUN,
    shard: bool = O.SHARD,
    executor: str = O.EXECUTOR,
    wait: bool = O.WAIT,
    partition: Optional[str] = O.PARTITION,
    time_limit: Optional[str] = O.TIME,
    gpus_per_run: Optional[int] = O.GPUS_PER_RUN,
    cpus_per_task: Optional[int] = O.CPUS_PER_TASK,
    mem_gb: Optional[float] = O.MEM_GB,
    array_parallelism: Optional[int] = O.ARRAY_PARALLELISM,
) -> None:
    """Train every run of a grid (skipping finished ones) and write one Parquet file per run.

    Runs are resumable: kill and re-run the same command, and each unfinished run continues from its
    last checkpoint. Two processes on the same grid share the work (a lock per run).
    """
    o = SimpleNamespace(**locals())  # the options by name, for the trainer (first: nothing else is local yet)
    from rich.console import Console

    from scalelab.commands._run_estimate import GPUS, estimate
    from scalelab.commands._run_report import print_dry_run
    from scalelab.errors import ScalelabError
    from scalelab.grid import Grid
    from scalelab.run.grid import repeat_warning, unique_train_tokens

    if gpu is not None and gpu.lower() not in GPUS:
        raise ScalelabError(f"--gpu {gpu}: unknown accelerator; use one of {', '.join(GPUS)}")
    g = Grid.load(grid)
    console = stdout_console(markup=False)  # names from files print as given
    n_train = unique_train_tokens(g)  # None: not known without reading the corpus (the trainer then notes it)
    warn = repeat_warning(g, n_train) if n_train else None
    if warn and not quiet:
        Console(stderr=True).print(warn, style="yellow", soft_wrap=True, markup=False)
    _set_threads(threads, device)
    if dry_run:
        print_dry_run(g, estimate(g, device, None if gpu is None else gpu.lower()), as_json, console)
        return
    _train(g, o, n_train, console)


def _set_threads(threads: Optional[int], device: str) -> None:
    """--threads, else one thread on CPU: small models gain little from more, and OpenMP threads thrash."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    elif device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        torch.set_num_threads(1)


def _train(g, o: SimpleNamespace, n_train: Optional[int], console) -> None:
    """Train the grid with the executor the options ask for, print the outcome, exit 1 if a run failed."""
    from scalelab.commands._run_report import exit_if_failed, print_outcome
    from scalelab.run.grid import run_grid

    check_out_dir(o.out, "--out")
    ex = _executor(g, o, n_train)
    sums = run_grid(g, o.out, executor=ex, checkpoint_every=o.checkpoint_every, checkpoint_seconds=o.checkpoint_seconds)
    try:
        print_outcome(g, o.out, ex, sums, o.as_json, console)
    finally:
        exit_if_failed(sums)


def _executor(g, o: SimpleNamespace, n_train: Optional[int]):
    """The executor (this process, workers or a scheduler); refuses runs that cannot fit this machine."""
    from rich.console import Console

    from scalelab.run import executors
    from scalelab.run.grid import check_memory

    slurm = dict(
        partition=o.partition,
        time=o.time_limit,
        gpus_per_run=o.gpus_per_run,
        cpus_per_task=o.cpus_per_task,
        mem_gb=o.mem_gb,
        array_parallelism=o.array_parallelism,
    )
    ex = executors.from_options(
        g,
        executor=o.executor,
        workers=o.workers,
        devices=o.devices,
        nproc_per_run=o.nproc_per_run,
        shard=o.shard,
        device=o.device,
        wait=o.wait,
        quiet=o.quiet,
        tensorboard=o.tensorboard,
        slurm=slurm,
        console=None if o.quiet else Console(stderr=True),
    )
    if isinstance(ex, executors.InProcess) and ex.tensorboard:  # workers write no TensorBoard logs
        try:
            import tensorboard as _tb  # noqa: F401
        except ImportError:
            Console(stderr=True).print(
                "note: tensorboard is not installed; --tensorboard skipped (pip install tensorboard)"
            )
            ex.tensorboard = None
    if isinstance(ex, (executors.InProcess, executors.Workers)):  # this machine trains: refuse what cannot fit
        check_memory(g.runs(), "cuda" if o.devices else o.device, shards=o.nproc_per_run if o.shard else 1)
    if isinstance(ex, executors.InProcess) and n_train:
        ex.data_note = False  # checked (and warned) at load
    return ex
