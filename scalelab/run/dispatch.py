"""Running a grid beyond one process, on engines users already have.

Three modes, each a thin layer over a standard tool:
- local fan-out: one worker process per CPU slot (`--workers N`) or per GPU (`--devices 0,1,2,3`, each
  worker sees its own GPU through CUDA_VISIBLE_DEVICES); a thread pool hands runs to free slots.
- one run on K processes: the worker is launched with torchrun
  (`python -m torch.distributed.run --standalone --nproc-per-node K -m scalelab.run.worker ...`), which sets
  RANK/WORLD_SIZE for scalelab.run.distributed (DDP, or FSDP2 under --shard).
- Slurm: submitit submits the grid as one job array (one array task per run, K tasks per run for K GPUs);
  each task is a `RunJob` (submitit Checkpointable) that, on preemption or timeout, checkpoints at the
  next optimizer step and is requeued, resuming from its run checkpoint.

Every worker trains through the same entry (`scalelab.run.worker.train_one`), which takes the runner's per-run
lock, skips finished runs and resumes from checkpoints, so all modes share the run store safely and any
number of them can work on one grid at once.
"""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Optional, Sequence

from scalelab.errors import ScalelabError

try:  # submitit is the optional `slurm` extra; local fan-out and torchrun work without it
    from submitit.helpers import Checkpointable as _Checkpointable
except ModuleNotFoundError:  # pragma: no cover
    _Checkpointable = object  # type: ignore[assignment,misc]

LOG_DIR = ".logs"  # per-run worker logs: runs/.logs/RUN_ID.log
SUBMITIT_DIR = ".submitit"  # submitit's pickles and job logs: runs/.submitit/


# ---- slots: where workers run ----------------------------------------------------------------------
def parse_devices(spec: str) -> list[str]:
    """'0,1,2,3' -> ['0', '1', '2', '3'] (CUDA ordinals or UUIDs, as CUDA_VISIBLE_DEVICES takes them)."""
    devs = [d.strip() for d in str(spec).split(",") if d.strip()]
    if not devs:
        raise ScalelabError(f"--devices {spec!r} names no device: give GPU ids like 0,1,2,3")
    if len(set(devs)) != len(devs):
        raise ScalelabError(f"--devices {spec!r} repeats a device: give each GPU once")
    return devs


def device_slots(devices: Sequence[str], nproc_per_run: int = 1) -> list[dict[str, str]]:
    """Group the GPUs K at a time: one slot (one concurrent run) per group of nproc_per_run GPUs."""
    k = int(nproc_per_run)
    if k < 1:
        raise ScalelabError(f"--nproc-per-run must be at least 1, got {k}")
    if len(devices) % k:
        raise ScalelabError(
            f"{len(devices)} device(s) do not split into runs of {k} GPUs: give a multiple of {k} devices"
        )
    return [{"CUDA_VISIBLE_DEVICES": ",".join(devices[i:i + k])} for i in range(0, len(devices), k)]


def cpu_slots(workers: int, nproc_per_run: int = 1) -> list[dict[str, str]]:
    """N CPU slots (GPUs hidden). Each process runs one torch thread, like `scalelab run` on CPU (small
    models gain little from more, and OpenMP threads thrash on a shared CPU), unless OMP_NUM_THREADS is
    set; so a grid's rows are the same whichever way it was run."""
    if workers < 1:
        raise ScalelabError(f"--workers must be at least 1, got {workers}")
    env = {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return [dict(env) for _ in range(workers)]


def worker_argv(grid: str, run_id: str, out_dir: str, nproc_per_run: int = 1, shard: bool = False,
                device: Optional[str] = None, extra: Sequence[str] = ()) -> list[str]:
    """The command that trains one run: the worker module, under torchrun when K > 1."""
    argv = [sys.executable]
    if nproc_per_run > 1:
        argv += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc_per_run}"]
    argv += ["-m", "scalelab.run.worker", "--grid", grid, "--run-id", run_id, "--out", out_dir]
    if shard:
        argv.append("--shard")
    if device:
        argv += ["--device", device]
    return argv + list(extra)


# ---- local fan-out -------------------------------------------------------------------------------
@dataclass
class Outcome:
    """How one worker ended: returncode 0 = trained, skipped (finished or held by another process)."""

    run_id: str
    returncode: int
    seconds: float
    log: str
    slot: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_local(grid: str, run_ids: Sequence[str], out_dir: str, slots: Sequence[dict[str, str]],
              nproc_per_run: int = 1, shard: bool = False, device: Optional[str] = None,
              on_done: Optional[Callable[[Outcome], None]] = None,
              extra_args: Sequence[str] = ()) -> list[Outcome]:
    """Train run_ids with at most len(slots) workers at a time, each worker a subprocess in its slot's
    environment. A failed run is reported (and its log kept) and the others go on.

    grid: what the worker passes to Grid.load (a built-in name or a path; pass an absolute path).
    """
    if not slots:
        raise ScalelabError("no worker slots: give --workers N or --devices 0,1,...")
    log_dir = os.path.join(out_dir, LOG_DIR)
    os.makedirs(log_dir, exist_ok=True)
    free: "queue.Queue[dict[str, str]]" = queue.Queue()
    for s in slots:
        free.put(dict(s))
    lock = threading.Lock()
    results: list[Outcome] = []

    def one(run_id: str) -> Outcome:
        slot = free.get()
        try:
            env = dict(os.environ)
            env.update(slot)
            if nproc_per_run == 1 and slot.get("CUDA_VISIBLE_DEVICES") == "" and device is None:
                env.setdefault("SCALELAB_DEVICE", "cpu")
            log = os.path.join(log_dir, f"{run_id}.log")
            t0 = time.time()
            with open(log, "ab") as f:
                f.write(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} slot {slot}\n".encode())
                f.flush()
                rc = subprocess.call(worker_argv(grid, run_id, out_dir, nproc_per_run, shard, device, extra_args),
                                     stdout=f, stderr=subprocess.STDOUT, env=env)
            out = Outcome(run_id, rc, time.time() - t0, log, slot)
        finally:
            free.put(slot)
        with lock:
            results.append(out)
            if on_done is not None:
                on_done(out)
        return out

    with ThreadPoolExecutor(max_workers=len(slots), thread_name_prefix="scalelab-slot") as pool:
        list(pool.map(one, run_ids))
    order = {r: i for i, r in enumerate(run_ids)}
    return sorted(results, key=lambda o: order[o.run_id])


# ---- Slurm (and submitit's local executor) -------------------------------------------------------------
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
        p: dict[str, Any] = dict(name=name, timeout_min=int(self.time), tasks_per_node=tasks, nodes=1,
                                 cpus_per_task=int(self.cpus_per_task),
                                 slurm_array_parallelism=int(self.array_parallelism),
                                 slurm_signal_delay_s=int(self.signal_delay_s))
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
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore

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

    def __init__(self, grid: str, run_id: str, out_dir: str, shard: bool = False,
                 device: Optional[str] = None, grace_s: float = 60.0, train_kwargs: Optional[dict] = None):
        self.grid, self.run_id, self.out_dir = grid, run_id, out_dir
        self.shard, self.device, self.grace_s = shard, device, grace_s
        self.train_kwargs = dict(train_kwargs or {})  # checkpoint_every, checkpoint_seconds
        self.attempt = 0

    def __call__(self) -> dict:
        import submitit

        from scalelab.run import distributed
        from scalelab.run.worker import train_one

        self.attempt += 1
        job_env = submitit.JobEnvironment()
        if job_env.num_tasks > 1:  # K tasks = K GPUs for this run: torch.distributed over them
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        submitit_handler = signal.getsignal(signal.SIGUSR2)
        fired = threading.Event()

        def defer(signum: int, frame: Any) -> None:
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
            return train_one(self.grid, self.run_id, self.out_dir, shard=self.shard, device=self.device,
                             **self.train_kwargs)
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
    folder = os.path.join(out_dir, SUBMITIT_DIR, "%j")
    if cluster == "slurm":
        try:
            ex = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=int(opts.max_requeues))
        except RuntimeError:
            raise ScalelabError("--executor slurm: no Slurm here (srun not found): submit from a login node, "
                                "or try the same grid with --executor submitit-local") from None
    else:
        ex = submitit.AutoExecutor(folder=folder, cluster=cluster)
        if cluster == "local":
            ex._executor.max_num_timeout = int(opts.max_requeues)
    params = opts.executor_parameters(name)
    if cluster != "slurm" and not _has_gpu():
        params.pop("gpus_per_node", None)  # a CPU machine: the local executor would look for GPUs
    ex.update_parameters(**params)
    return ex


def _has_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # pragma: no cover
        return False


def submit(grid: str, run_ids: Sequence[str], out_dir: str, opts: SlurmOptions, cluster: str = "slurm",
           shard: bool = False, device: Optional[str] = None, name: Optional[str] = None,
           train_kwargs: Optional[dict] = None, grace_s: float = 60.0) -> list:
    """Submit every run as one submitit job array (one array task per run); returns the jobs."""
    if not run_ids:
        return []
    ex = make_executor(out_dir, opts, cluster=cluster, name=name or "scalelab")
    jobs = []
    with ex.batch():
        for rid in run_ids:
            jobs.append(ex.submit(RunJob(grid, rid, out_dir, shard=shard, device=device, grace_s=grace_s,
                                         train_kwargs=train_kwargs)))
    return jobs


# ---- the `scalelab run` entry for every mode but the plain in-process one --------------------------------
EXECUTORS = ("local", "slurm", "submitit-local")


def wants_dispatch(workers: int = 1, devices: Optional[str] = None, nproc_per_run: int = 1, shard: bool = False,
                   executor: str = "local") -> bool:
    """Whether `scalelab run` should leave the in-process runner for worker processes or submitit."""
    return workers > 1 or bool(devices) or nproc_per_run > 1 or shard or executor != "local"


def run_grid(grid, out_dir: str = "runs", *, workers: int = 1, devices: Optional[str] = None,
             nproc_per_run: int = 1, shard: bool = False, executor: str = "local",
             slurm: Optional[dict] = None, device: Optional[str] = None, wait: bool = False,
             checkpoint_every: Optional[int] = None, checkpoint_seconds: float = 60.0,
             console=None) -> list[dict]:
    """Train a grid (a config.Grid) with worker processes, torchrun, or submitit; skip finished runs.

    Returns one dict per run: run_id, variant, d_model, state (done, diverged, failed, skipped,
    submitted), detail. Slurm submissions return at once unless `wait`.
    """
    from scalelab.run.runner import run_path

    if executor not in EXECUTORS:
        raise ScalelabError(f"unknown executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    if devices and workers > 1:
        raise ScalelabError("give --workers N (CPU processes) or --devices 0,1,... (one run per GPU), not both")
    if executor != "local" and (devices or workers > 1):
        raise ScalelabError(f"--executor {executor} schedules runs itself: drop --workers/--devices "
                            "(use --array-parallelism and --gpus-per-run)")
    if nproc_per_run < 1:
        raise ScalelabError(f"--nproc-per-run must be at least 1, got {nproc_per_run}")
    if shard and nproc_per_run < 2 and not ((slurm or {}).get("gpus_per_run") or 0) > 1:
        raise ScalelabError("--shard splits one model over several processes: add --nproc-per-run K (K >= 2)")
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    runs = grid.runs()
    opts = None
    if executor != "local":
        opts = SlurmOptions.from_table(grid_slurm_table(grid.path), **(slurm or {}))
        if nproc_per_run > 1 and not (slurm or {}).get("gpus_per_run"):
            opts = SlurmOptions.from_table({**asdict(opts), "gpus_per_run": nproc_per_run})
    world = max(1, opts.gpus_per_run) if opts is not None else nproc_per_run
    if world > 1:  # fail here, not in every worker: the global batch must split evenly over the ranks
        from scalelab.run.distributed import plan_batch

        for r in runs:
            plan_batch(r.train.batch_size, r.train.micro, world)
    todo = [r for r in runs if not os.path.isfile(run_path(out_dir, r))]
    grid_arg = grid.path or grid.name
    train_kw = {"checkpoint_every": checkpoint_every, "checkpoint_seconds": checkpoint_seconds}
    extra: list[str] = ["--checkpoint-seconds", str(checkpoint_seconds)]
    if checkpoint_every:
        extra += ["--checkpoint-every", str(checkpoint_every)]
    by_id = {r.run_id: r for r in runs}

    def row(rid: str, state: str, detail: str = "") -> dict:
        r = by_id[rid]
        return dict(run_id=rid, variant=r.variant, d_model=r.model.d_model, state=state, detail=detail)

    out = [row(r.run_id, "skipped", "finished before") for r in runs if r not in todo]
    if executor == "local":
        if not devices and workers == 1 and device != "cpu" and _has_gpu():
            import torch  # --nproc-per-run K on a GPU machine: all its GPUs, K per run

            devices = ",".join(str(i) for i in range(torch.cuda.device_count()))
        if devices:
            slots = device_slots(parse_devices(devices), nproc_per_run)
        else:
            slots = cpu_slots(workers, nproc_per_run)

        def done(o: Outcome) -> None:
            if console is not None:
                console.print(f"run {o.run_id}: exit {o.returncode} after {o.seconds:.1f} s (log {o.log})")

        for o in run_local(grid_arg, [r.run_id for r in todo], out_dir, slots, nproc_per_run, shard, device,
                           on_done=done, extra_args=extra):
            out.append(row(o.run_id, *_state_after(out_dir, by_id[o.run_id], o.returncode, o.log)))
        return out
    cluster = "slurm" if executor == "slurm" else "local"
    jobs = submit(grid_arg, [r.run_id for r in todo], out_dir, opts, cluster=cluster, shard=shard, device=device,
                  name=f"scalelab-{grid.name}", train_kwargs=train_kw)
    for r, job in zip(todo, jobs):
        if not wait:
            out.append(row(r.run_id, "submitted", f"job {job.job_id}"))
            continue
        try:
            job.results()  # one result per task (several tasks for a multi-GPU run)
            rc, log = 0, str(job.paths.stdout)
        except Exception as e:  # submitit re-raises the job's error
            rc, log = 1, f"{str(e).strip().splitlines()[-1][:200] if str(e).strip() else type(e).__name__}"
        out.append(row(r.run_id, *_state_after(out_dir, r, rc, log)))
    return out


def _state_after(out_dir: str, run, returncode: int, log: str) -> tuple[str, str]:
    from scalelab.run.runner import run_path

    path = run_path(out_dir, run)
    if os.path.isfile(path):
        import pyarrow.parquet as pq

        st = pq.read_table(path, columns=["status"]).column("status").to_pylist()
        return ("diverged" if "diverged" in st else "done"), os.path.basename(path)
    if returncode == 0:
        return "busy", "another process holds its lock"
    return "failed", log


def print_summary(rows: list[dict], grid_name: str, out_dir: str, as_json: bool = False, console=None) -> None:
    """The end-of-grid table of `scalelab run` for dispatched grids (or JSON)."""
    import json

    if as_json:
        print(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    t = Table(title=f"grid {grid_name}: {len(rows)} runs -> {out_dir}/")
    for c in ("run", "variant", "d", "state", "detail"):
        t.add_column(c, justify="right" if c == "d" else "left")
    for r in rows:
        t.add_row(r["run_id"], r["variant"], str(r["d_model"]), r["state"], r["detail"])
    console.print(t)
    if any(r["state"] == "submitted" for r in rows):
        console.print(f"follow with: scalelab status {out_dir} --grid {grid_name}")
