"""Where the runs of a grid are trained: the executors `run_grid` hands them to.

- InProcess: one run after another in this process, with progress bars (plain `scalelab run`).
- Workers: one worker process per CPU slot (`--workers N`) or per GPU (`--devices 0,1,2,3`, each worker
  seeing its own GPUs through CUDA_VISIBLE_DEVICES); a thread pool hands runs to free slots. With
  `--nproc-per-run K` each worker is torchrun with K processes
  (`python -m torch.distributed.run --standalone --nproc-per-node K -m scalelab.run.worker ...`): DDP, or
  FSDP2 under --shard.
- Submitit: the grid as one Slurm job array (or submitit's local executor), see run/slurm.py.

Every executor trains through one.train_one (workers through `python -m scalelab.run.worker`), which takes
the run's lock, skips finished runs and resumes from checkpoints: all of them share a run store safely and
any number of them can work on one grid at once. An executor has `world` (processes per run) and
`run(grid, runs, out_dir, train_kw) -> list[RunSummary]`.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from scalelab.errors import ScalelabError
from scalelab.run import layout
from scalelab.run.one import RunSummary

if TYPE_CHECKING:  # annotations only: rich loads lazily, slurm needs submitit
    from rich.console import Console

    from scalelab.run.slurm import SlurmOptions

EXECUTORS = ("local", "slurm", "submitit-local")  # --executor


def grid_progress_bar(console, disable: bool = False):
    """The rich Progress both local executors draw: a grid bar (share of the grid's estimated tokens, runs
    done, ETA) over one bar per run in training."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=16),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
        transient=False,
    )


# ---- in process ---------------------------------------------------------------------------------------
@dataclass
class InProcess:
    """Train the runs one after another here; a grid bar (ETA over estimated tokens) and one bar per run."""

    device: str = "auto"
    quiet: bool = False
    tensorboard: Optional[str] = None  # a folder: one TensorBoard log per run
    console: Optional[Console] = None  # rich Console for the bars and notes (default: stderr)
    world: int = 1
    data_note: bool = True  # note data repeats from the loaded corpus (off when `scalelab run` warned at load)

    def run(self, grid, runs, out_dir: str, train_kw: dict) -> list[RunSummary]:
        from rich.console import Console

        from scalelab.data import epochs_note, load_corpus
        from scalelab.run.one import train_one
        from scalelab.run.train import estimate_tokens

        console = self.console or Console(stderr=True)
        base_dir = os.path.dirname(grid.path) if grid.path else None
        corpus = load_corpus(runs[0].data, base_dir=base_dir)
        if corpus.vocab_size > runs[0].model.vocab_size:
            raise ScalelabError(f"corpus vocab {corpus.vocab_size} exceeds the model's {runs[0].model.vocab_size}")
        est = [estimate_tokens(r) for r in runs]
        note = epochs_note(max(est), corpus)
        if note and self.data_note and not self.quiet:
            console.print(note, style="yellow", markup=False)  # paths print as given
        os.makedirs(out_dir, exist_ok=True)
        summaries: list[RunSummary] = []
        progress = grid_progress_bar(console, disable=self.quiet)
        with progress:
            gtask = progress.add_task(f"grid {grid.name}", total=sum(est), info=f"0/{len(runs)} runs")
            done_tokens = 0
            for k, run in enumerate(runs, 1):
                rtask = progress.add_task(
                    f"run {k}/{len(runs)} {run.variant} d{run.model.d_model}", total=None, info=""
                )

                def on_step(p, rtask=rtask, base=done_tokens, cap=est[k - 1]):
                    if p["step"] % 10 == 0 or p["step"] == p["total"]:
                        progress.update(
                            rtask,
                            total=p["total"],
                            completed=p["step"],
                            info=f"{p['tokens']:,} tok  loss {p['loss']:.3f}  {p['tokens_per_s']:,.0f} tok/s",
                        )
                        progress.update(gtask, completed=base + min(p["tokens"], cap))

                tb = os.path.join(self.tensorboard, run.file_stem) if self.tensorboard else None
                try:
                    s = train_one(run, corpus, out_dir, device=self.device, progress=on_step, tb_dir=tb, **train_kw)
                except ScalelabError:
                    raise  # bad input: one line, exit 2, for every run alike
                except Exception as e:  # a crashed run: report it, finish the others (the grid then exits 1)
                    err = f"{type(e).__name__}: {e}".splitlines()[0][:300]
                    s = RunSummary(run, "failed", layout.run_path(out_dir, run), detail=err)
                    if not self.quiet:
                        progress.console.print(
                            f"run {run.file_stem} failed ({err}); the grid goes on", style="red", markup=False
                        )
                progress.remove_task(rtask)
                if s.resumed_from and not self.quiet:
                    progress.console.print(f"resumed {run.file_stem} from step {s.resumed_from}")
                if s.state == "diverged" and not self.quiet:
                    progress.console.print(f"[red]run {run.file_stem} diverged; the grid goes on[/red]")
                summaries.append(s)
                done_tokens += est[k - 1]
                progress.update(gtask, completed=done_tokens, info=f"{k}/{len(runs)} runs")
        return summaries


# ---- worker processes (and torchrun per run) ---------------------------------------------------------------
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
    return [{"CUDA_VISIBLE_DEVICES": ",".join(devices[i : i + k])} for i in range(0, len(devices), k)]


def cpu_slots(workers: int, nproc_per_run: int = 1) -> list[dict[str, str]]:
    """N CPU slots (GPUs hidden). Each process runs one torch thread, like `scalelab run` on CPU (small
    models gain little from more, and OpenMP threads thrash on a shared CPU), unless OMP_NUM_THREADS is
    set; so a grid's rows are the same whichever way it was run."""
    if workers < 1:
        raise ScalelabError(f"--workers must be at least 1, got {workers}")
    env = {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return [dict(env) for _ in range(workers)]


def worker_argv(
    grid: str,
    run_id: str,
    out_dir: str,
    nproc_per_run: int = 1,
    shard: bool = False,
    device: Optional[str] = None,
    extra: Sequence[str] = (),
) -> list[str]:
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


def run_local(
    grid: str,
    run_ids: Sequence[str],
    out_dir: str,
    slots: Sequence[dict[str, str]],
    nproc_per_run: int = 1,
    shard: bool = False,
    device: Optional[str] = None,
    on_done: Optional[Callable[[Outcome], None]] = None,
    extra_args: Sequence[str] = (),
) -> list[Outcome]:
    """Train run_ids with at most len(slots) workers at a time, each worker a subprocess in its slot's
    environment. A failed run is reported (and its log kept) and the others go on.

    grid: what the worker passes to Grid.load (a built-in name or a path; pass an absolute path).
    """
    if not slots:
        raise ScalelabError("no worker slots: give --workers N or --devices 0,1,...")
    os.makedirs(os.path.join(out_dir, layout.LOG_DIR), exist_ok=True)
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
            log = layout.log_path(out_dir, run_id)
            t0 = time.time()
            with open(log, "ab") as f:
                f.write(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} slot {slot}\n".encode())
                f.flush()
                rc = subprocess.call(
                    worker_argv(grid, run_id, out_dir, nproc_per_run, shard, device, extra_args),
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
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


def _skipped(out_dir: str, runs) -> tuple[list, list[RunSummary]]:
    """(runs still to train, a "skipped" summary per finished run): workers start only for the former."""
    todo = [r for r in runs if not layout.is_finished(out_dir, r)]
    return todo, [
        RunSummary(r, "skipped", layout.run_path(out_dir, r), detail="finished before") for r in runs if r not in todo
    ]


def _after(out_dir: str, run, returncode: int, log: str) -> RunSummary:
    state, detail = layout.outcome(out_dir, run, returncode, log)
    return RunSummary(run, state, layout.run_path(out_dir, run), detail=detail)


def _worker_args(train_kw: dict) -> list[str]:
    extra = ["--checkpoint-seconds", str(train_kw.get("checkpoint_seconds", 60.0))]
    if train_kw.get("checkpoint_every"):
        extra += ["--checkpoint-every", str(train_kw["checkpoint_every"])]
    return extra


POLL_SECONDS = 1.0  # how often the parent re-reads the workers' notes for its grid bar


class WorkerBar:
    """The grid bar of `--workers`/`--devices`, drawn by the parent from the workers' notes
    (runs/.status/RUN_ID.json, rewritten by each worker every few seconds with its tokens so far): the grid's
    share of estimated tokens, runs done, ETA, and one bar per run in training."""

    def __init__(self, progress, grid_name: str, runs, out_dir: str, skipped=(), since: Optional[float] = None):
        from scalelab.run.train import estimate_tokens

        self.progress, self.out_dir = progress, out_dir
        self.since = time.time() if since is None else since
        self.est = {r.run_id: estimate_tokens(r) for r in runs}
        self.names = {r.run_id: f"{r.variant} d{r.model.d_model}" for r in runs}
        self.finished = set(skipped)
        self.lock = threading.Lock()
        self.run_tasks: dict = {}
        self.task = progress.add_task(f"grid {grid_name}", total=sum(self.est.values()), info="")
        self.update()

    def finish(self, run_id: str) -> None:
        with self.lock:
            self.finished.add(run_id)
        self.update()

    def update(self) -> None:
        """Re-read the notes; set the grid bar's completed tokens and the per-run bars."""
        notes = layout.read_notes(self.out_dir)
        with self.lock:
            finished = set(self.finished)
            tokens, n_done = layout.grid_progress(self.est, finished, notes, self.since)
            running = [
                rid
                for rid in self.est
                if rid not in finished
                and (notes.get(rid) or {}).get("state") == "running"
                and float(notes[rid].get("time", 0)) >= self.since
            ]
            self.progress.update(
                self.task, completed=tokens, info=f"{n_done}/{len(self.est)} runs, {len(running)} training"
            )
            for rid in list(self.run_tasks):
                if rid not in running:
                    self.progress.remove_task(self.run_tasks.pop(rid))
            for rid in running:
                n = notes[rid]
                if rid not in self.run_tasks:
                    self.run_tasks[rid] = self.progress.add_task(f"run {rid} {self.names[rid]}", total=None, info="")
                info = f"{int(n.get('tokens') or 0):,} tok"
                if n.get("loss") is not None:
                    info += f"  loss {float(n['loss']):.3f}  {float(n.get('tokens_per_s') or 0):,.0f} tok/s"
                self.progress.update(
                    self.run_tasks[rid], total=n.get("total_steps"), completed=n.get("step") or 0, info=info
                )

    def poll(self, stop: threading.Event) -> None:
        while not stop.wait(POLL_SECONDS):
            try:
                self.update()
            except Exception:  # a bar must never stop the grid
                pass


@dataclass
class Workers:
    """Each run in a worker process (torchrun with `world` processes when world > 1), len(slots) at a time.

    With a console on a terminal the parent draws the grid bar from the workers' notes (WorkerBar);
    otherwise (a log, a pipe) it prints one line per finished worker; with no console (--quiet), nothing."""

    slots: list
    world: int = 1  # --nproc-per-run
    shard: bool = False
    device: Optional[str] = None  # passed to the worker; None: CUDA when the slot sees a GPU
    console: Optional[Console] = None  # prints one line per finished worker when given, and the bar on a terminal

    def run(self, grid, runs, out_dir: str, train_kw: dict) -> list[RunSummary]:
        out_dir = os.path.abspath(out_dir)
        os.makedirs(out_dir, exist_ok=True)
        todo, out = _skipped(out_dir, runs)
        by_id = {r.run_id: r for r in runs}
        live = self.console is not None and bool(getattr(self.console, "is_terminal", False))
        progress = grid_progress_bar(self.console) if live else None
        bar = WorkerBar(progress, grid.name, runs, out_dir, skipped=[s.run.run_id for s in out]) if live else None

        def done(o: Outcome) -> None:
            if bar is not None:
                bar.finish(o.run_id)
            if self.console is not None:
                con = progress.console if progress is not None else self.console
                con.print(f"run {o.run_id}: exit {o.returncode} after {o.seconds:.1f} s (log {o.log})")

        def train() -> list[Outcome]:
            return run_local(
                grid.path or grid.name,
                [r.run_id for r in todo],
                out_dir,
                self.slots,
                self.world,
                self.shard,
                self.device,
                on_done=done,
                extra_args=_worker_args(train_kw),
            )

        if bar is None:
            outcomes = train()
        else:
            stop = threading.Event()
            poller = threading.Thread(target=bar.poll, args=(stop,), daemon=True, name="scalelab-bar")
            assert progress is not None  # made together with bar (both when live)
            with progress:
                poller.start()
                try:
                    outcomes = train()
                finally:
                    stop.set()
                    poller.join()
                    bar.update()
        for o in outcomes:
            out.append(_after(out_dir, by_id[o.run_id], o.returncode, o.log))
        return out


# ---- Slurm (and submitit's local executor) -------------------------------------------------------------
@dataclass
class Submitit:
    """The runs as one submitit job array: Slurm, or submitit's local executor (cluster="local")."""

    opts: SlurmOptions
    cluster: str = "slurm"
    shard: bool = False
    device: Optional[str] = None
    wait: bool = False  # wait for the jobs and report how they ended (else: "submitted")

    @property
    def world(self) -> int:
        return max(1, self.opts.gpus_per_run)

    def run(self, grid, runs, out_dir: str, train_kw: dict) -> list[RunSummary]:
        from scalelab.run import slurm

        out_dir = os.path.abspath(out_dir)
        os.makedirs(out_dir, exist_ok=True)
        todo, out = _skipped(out_dir, runs)
        jobs = slurm.submit(
            grid.path or grid.name,
            [r.run_id for r in todo],
            out_dir,
            self.opts,
            cluster=self.cluster,
            shard=self.shard,
            device=self.device,
            name=f"scalelab-{grid.name}",
            train_kwargs=train_kw,
        )
        for r, job in zip(todo, jobs):
            if not self.wait:
                out.append(RunSummary(r, "submitted", layout.run_path(out_dir, r), detail=f"job {job.job_id}"))
                continue
            try:
                job.results()  # one result per task (several tasks for a multi-GPU run)
                rc, log = 0, str(job.paths.stdout)
            except Exception as e:  # submitit re-raises the job's error
                msg = str(e).strip()
                rc, log = 1, f"{msg.splitlines()[-1][:200] if msg else type(e).__name__}"
            out.append(_after(out_dir, r, rc, log))
        return out


# ---- from `scalelab run` options ---------------------------------------------------------------------
def from_options(
    grid,
    *,
    executor: str = "local",
    workers: int = 1,
    devices: Optional[str] = None,
    nproc_per_run: int = 1,
    shard: bool = False,
    slurm: Optional[dict] = None,
    device: str = "auto",
    wait: bool = False,
    quiet: bool = False,
    tensorboard: Optional[str] = None,
    console=None,
):
    """The executor `scalelab run`'s options ask for: InProcess unless workers, devices, processes per run,
    sharding or a submitit executor are asked for. Bad combinations are ScalelabErrors."""
    if executor not in EXECUTORS:
        raise ScalelabError(f"unknown executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    if executor == "local" and workers == 1 and not devices and nproc_per_run == 1 and not shard:
        return InProcess(device=device, quiet=quiet, tensorboard=tensorboard, console=console)
    if devices and workers > 1:
        raise ScalelabError("give --workers N (CPU processes) or --devices 0,1,... (one run per GPU), not both")
    if executor != "local" and (devices or workers > 1):
        raise ScalelabError(
            f"--executor {executor} schedules runs itself: drop --workers/--devices "
            "(use --array-parallelism and --gpus-per-run)"
        )
    if nproc_per_run < 1:
        raise ScalelabError(f"--nproc-per-run must be at least 1, got {nproc_per_run}")
    if shard and nproc_per_run < 2 and not ((slurm or {}).get("gpus_per_run") or 0) > 1:
        raise ScalelabError("--shard splits one model over several processes: add --nproc-per-run K (K >= 2)")
    worker_device = None if device == "auto" else device
    if executor != "local":
        from scalelab.run.slurm import SlurmOptions, grid_slurm_table

        opts = SlurmOptions.from_table(grid_slurm_table(grid.path), **(slurm or {}))
        if nproc_per_run > 1 and not (slurm or {}).get("gpus_per_run"):
            opts = SlurmOptions.from_table({**asdict(opts), "gpus_per_run": nproc_per_run})
        return Submitit(
            opts, cluster="slurm" if executor == "slurm" else "local", shard=shard, device=worker_device, wait=wait
        )
    if not devices and workers == 1 and worker_device != "cpu":
        import torch

        if torch.cuda.is_available():  # --nproc-per-run K on a GPU machine: all its GPUs, K per run
            devices = ",".join(str(i) for i in range(torch.cuda.device_count()))
    slots = device_slots(parse_devices(devices), nproc_per_run) if devices else cpu_slots(workers, nproc_per_run)
    return Workers(slots, world=nproc_per_run, shard=shard, device=worker_device, console=None if quiet else console)
