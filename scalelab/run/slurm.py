"""Slurm through submitit: a grid as one job array, each run a requeueable job.

One array task per run (K tasks per run for K GPUs); each task is a `RunJob` (submitit Checkpointable) that,
on preemption or timeout, checkpoints at the next optimizer step and is requeued, resuming from its run
checkpoint. Every task trains through one.train_by_id -> one.train_one, like the local workers. submitit
is the optional `slurm` extra; nothing else in scalelab needs it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Sequence

from scalelab.errors import ScalelabError
from scalelab.run import layout

try:  # submitit is the optional `slurm` extra; local fan-out and torchrun work without it
    from submitit.helpers import Checkpointable as _Checkpointable
except ModuleNotFoundError:  # pragma: no cover
    _Checkpointable = object  # type: ignore[assignment,misc]


@dataclass(frozen=True)
class SlurmOptions:
    """Resources for each run's array task. From `[slurm]` in the grid file, overridden by CLI options.

    gpus_per_run is also the number of tasks (processes) per run: one process per GPU, DDP/FSDP2 between.
    time is in minutes (the grid file also takes "HH:MM:SS" or "D-HH:MM:SS").
    """

    partition: Optional[str] = None
    time: int = 24 * 60
    gpus_per_run: int = 1
    cpus_per_task: int = 8
    mem_gb: Optional[float] = None
    array_parallelism: int = 64
    account: Optional[str] = None
    qos: Optional[str] = None
    constraint: Optional[str] = None
    signal_delay_s: int = 120  # USR2 this long before the time limit: time to checkpoint
    max_requeues: int = 10  # timeouts/preemptions a run may survive
    setup: tuple = ()  # shell lines run before the task (module load ..., source venv)
    additional: dict = field(default_factory=dict)  # any other sbatch option, e.g. {"gres": "gpu:a100:4"}

    @classmethod
    def from_table(cls, table: Optional[dict], **overrides: Any) -> "SlurmOptions":
        d: dict[str, Any] = {}
        for src, where in ((table or {}), "the grid's [slurm] table"), (overrides, "options"):
            known = {f.name for f in fields(cls)}
            for k, v in src.items():
                if v is None:
                    continue
                key = k.replace("-", "_")
                if key not in known:
                    raise ScalelabError(f"unknown slurm setting {k!r} in {where}: valid are {', '.join(sorted(known))}")
                d[key] = v
        if "time" in d:
            d["time"] = parse_time(d["time"])
        if "setup" in d:
            d["setup"] = tuple(d["setup"]) if not isinstance(d["setup"], str) else (d["setup"],)
        opts = cls(**d)
        for name in ("gpus_per_run", "cpus_per_task", "array_parallelism", "time"):
            if int(getattr(opts, name)) < (0 if name == "gpus_per_run" else 1):
                raise ScalelabError(f"slurm {name} must be positive, got {getattr(opts, name)}")
        return opts

    def executor_parameters(self, name: str) -> dict[str, Any]:
        """submitit AutoExecutor parameters (generic ones, plus slurm_* that other executors ignore)."""
        tasks = max(1, int(self.gpus_per_run))
        p: dict[str, Any] = dict(
            name=name,
            timeout_min=int(self.time),
            tasks_per_node=tasks,
            nodes=1,
            cpus_per_task=int(self.cpus_per_task),
            slurm_array_parallelism=int(self.array_parallelism),
            slurm_signal_delay_s=int(self.signal_delay_s),
        )
        if self.gpus_per_run:
            p["gpus_per_node"] = int(self.gpus_per_run)
        if self.mem_gb:
            p["mem_gb"] = self.mem_gb
        for k in ("partition", "account", "qos", "constraint"):
            if getattr(self, k):
                p[f"slurm_{k}"] = getattr(self, k)
        if self.setup:
            p["slurm_setup"] = list(self.setup)
        if self.additional:
            p["slurm_additional_parameters"] = dict(self.additional)
        return p


def parse_time(value: Any) -> int:
    """Minutes from 90, "90", "01:30:00", "1-00:00:00" (Slurm's formats)."""
    if isinstance(value, (int, float)):
        return int(value)
    s = str(value).strip()
    try:
        days = 0
        if "-" in s:
            d, s = s.split("-", 1)
            days = int(d)
        parts = [int(x) for x in s.split(":")]
        if len(parts) == 1:
            mins = parts[0]
        elif len(parts) == 2:  # MM:SS
            mins = parts[0] + (parts[1] > 0)
        else:
            h, m, sec = parts[-3:]
            mins = h * 60 + m + (sec > 0)
        return days * 24 * 60 + mins
    except ValueError:
        raise ScalelabError(f"slurm time {value!r} is not minutes or [D-]HH:MM:SS") from None


def grid_slurm_table(grid_path: Optional[str]) -> dict:
    """The `[slurm]` table of a grid TOML file ({} if none or not a file)."""
    if not grid_path or not os.path.isfile(grid_path):
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    with open(grid_path, "rb") as f:
        table = tomllib.load(f).get("slurm", {})
    if not isinstance(table, dict):
        raise ScalelabError(f"grid file {grid_path}: [slurm] must be a table")
    return table


class RunJob(_Checkpointable):
    """One run as a submitit job, requeued on preemption/timeout (submitit Checkpointable protocol).

    On SIGUSR2 (Slurm's warning before a time limit or preemption) the trainer is asked to stop at the
    next optimizer step: it saves its run checkpoint and raises distributed.Preempted, and only then does
    submitit's own handler run (checkpoint() -> requeue -> exit). The requeued job calls the same worker
    entry, which resumes from that checkpoint. If the trainer does not stop within `grace_s`, submitit's
    handler runs anyway and the run resumes from its last periodic checkpoint.
    """

    def __init__(
        self,
        grid: str,
        run_id: str,
        out_dir: str,
        shard: bool = False,
        device: Optional[str] = None,
        grace_s: float = 60.0,
        train_kwargs: Optional[dict] = None,
    ):
        self.grid, self.run_id, self.out_dir = grid, run_id, out_dir
        self.shard, self.device, self.grace_s = shard, device, grace_s
        self.train_kwargs = dict(train_kwargs or {})  # checkpoint_every, checkpoint_seconds
        self.attempt = 0

    def __call__(self) -> dict:
        import submitit

        from scalelab.run import distributed
        from scalelab.run.one import train_by_id

        self.attempt += 1
        job_env = submitit.JobEnvironment()
        if job_env.num_tasks > 1:  # K tasks = K GPUs for this run: torch.distributed over them
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        submitit_handler = signal.getsignal(signal.SIGUSR2)
        fired = threading.Event()

        def defer(signum: int, frame: Any) -> None:
            assert callable(submitit_handler)  # defer is installed only when it is (below)
            if fired.is_set():
                return
            fired.set()
            if self.grace_s <= 0:  # no deferral: submitit now; resume from the last periodic checkpoint
                signal.signal(signal.SIGUSR2, submitit_handler)
                submitit_handler(signum, frame)
                return
            distributed.request_stop()
            if callable(submitit_handler) and self.grace_s > 0:
                # Fallback for a trainer that never reaches a step boundary: re-deliver to submitit.
                def late() -> None:
                    signal.signal(signal.SIGUSR2, submitit_handler)
                    os.kill(os.getpid(), signal.SIGUSR2)

                t = threading.Timer(self.grace_s, late)
                t.daemon = True
                t.start()

        if callable(submitit_handler):
            signal.signal(signal.SIGUSR2, defer)
        distributed.clear_stop()
        try:
            return train_by_id(
                self.grid, self.run_id, self.out_dir, shard=self.shard, device=self.device, **self.train_kwargs
            )
        except distributed.Preempted as e:
            print(f"scalelab: run {self.run_id} preempted: {e}", flush=True)
            if callable(submitit_handler):
                signal.signal(signal.SIGUSR2, submitit_handler)
                submitit_handler(signal.SIGUSR2, None)  # checkpoint() + requeue + exit (rank 0)
            return {"run_id": self.run_id, "status": "preempted"}

    def checkpoint(self, *args: Any, **kwargs: Any):
        """Requeue the same job: the worker resumes from the run checkpoint on disk."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def make_executor(out_dir: str, opts: SlurmOptions, cluster: str = "slurm", name: str = "scalelab"):
    """A submitit executor for `cluster` ("slurm", or "local"/"debug" for tests and laptops)."""
    try:
        import submitit
    except ModuleNotFoundError:
        raise ScalelabError("--executor slurm needs submitit: pip install 'scalelab[slurm]'") from None
    folder = layout.submitit_folder(out_dir)
    if cluster == "slurm":
        try:
            ex = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=int(opts.max_requeues))
        except RuntimeError:
            raise ScalelabError(
                "--executor slurm: no Slurm here (srun not found): submit from a login node, "
                "or try the same grid with --executor submitit-local"
            ) from None
    else:
        ex = submitit.AutoExecutor(folder=folder, cluster=cluster)
        if cluster == "local":
            local = ex._executor
            assert isinstance(local, submitit.LocalExecutor)  # what AutoExecutor(cluster="local") makes
            local.max_num_timeout = int(opts.max_requeues)
    params = opts.executor_parameters(name)
    if cluster != "slurm":
        import torch

        if not torch.cuda.is_available():
            params.pop("gpus_per_node", None)  # a CPU machine: the local executor would look for GPUs
    ex.update_parameters(**params)
    return ex


def submit(
    grid: str,
    run_ids: Sequence[str],
    out_dir: str,
    opts: SlurmOptions,
    cluster: str = "slurm",
    shard: bool = False,
    device: Optional[str] = None,
    name: Optional[str] = None,
    train_kwargs: Optional[dict] = None,
    grace_s: float = 60.0,
) -> list:
    """Submit every run as one submitit job array (one array task per run); returns the jobs."""
    if not run_ids:
        return []
    ex = make_executor(out_dir, opts, cluster=cluster, name=name or "scalelab")
    jobs = []
    with ex.batch():
        for rid in run_ids:
            jobs.append(
                ex.submit(
                    RunJob(grid, rid, out_dir, shard=shard, device=device, grace_s=grace_s, train_kwargs=train_kwargs)
                )
            )
    return jobs
