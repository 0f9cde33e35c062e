"""`scalelab run --grid demo|PATH`: train a grid and record loss vs FLOPs to runs/*.parquet."""

from __future__ import annotations

import json
import math
import os
from typing import Optional

import typer

from scalelab.commands._common import check_out_dir, stdout_console, user_errors

# A rough training efficiency (achieved / peak FLOP/s) for --dry-run's time estimate. CPU: the demo grid
# spent 335 s of CPU time on 7.6e12 FLOPs (23 GFLOP/s) on one thread whose measured fp32 matmul peak is
# about 80-90 GFLOP/s on the 2-core development machine.
CPU_EFFICIENCY = 0.25
# GPU estimates: GPU-hours on a named accelerator (--gpu) at its bf16 dense peak (plan's table) times the MFU
# that `scalelab bench train` measured on that accelerator (bench/train.json, its device naming it), else
# an assumed MFU, said so in the output.
GPUS = ("h100", "h200", "a100")
ASSUMED_MFU = 0.4
BENCH_TRAIN = os.path.join("bench", "train.json")
CPU_GRID_HOURS = 24.0  # a grid that would take longer than this on this CPU is a GPU grid


@user_errors
def run(
    grid: str = typer.Option(
        ..., "--grid", "-g", help="A built-in grid name (demo, seed-paper) or a path to a grid TOML file."
    ),
    out: str = typer.Option(
        "runs",
        "--out",
        "-o",
        help="Folder for the run files (one Parquet per run); checkpoints and locks go to OUT/.ckpt and OUT/.locks.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the runs with params, tokens, FLOPs and an estimated time; train nothing."
    ),
    gpu: Optional[str] = typer.Option(
        None,
        "--gpu",
        help="With --dry-run: estimate GPU-hours on this accelerator, h100, h200 or a100 (bf16 peak x the MFU "
        "measured in bench/train.json on it, else an assumed 40%). Without it: this machine's GPU if any, else "
        "h100 for a GPU grid (seed-size models, bf16 or compile, or over 24 h of this CPU), else CPU time.",
    ),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if available, else CPU), cpu, cuda or cuda:N."),
    threads: Optional[int] = typer.Option(
        None,
        "--threads",
        help="CPU threads per process for torch (default on CPU: 1, since small models gain little from more and "
        "OpenMP threads thrash on a shared CPU; raise it on an idle many-core machine).",
    ),
    checkpoint_every: Optional[int] = typer.Option(
        None, "--checkpoint-every", help="Checkpoint every N optimizer steps (default: every --checkpoint-seconds)."
    ),
    checkpoint_seconds: float = typer.Option(
        60.0,
        "--checkpoint-seconds",
        help="Checkpoint at most this many seconds apart when --checkpoint-every is not given.",
    ),
    tensorboard: Optional[str] = typer.Option(
        None,
        "--tensorboard",
        help="Also log curves to this TensorBoard folder (needs the tensorboard package; skipped if absent).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or notes; only the summary table."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary (or the dry-run plan) as JSON."),
    workers: int = typer.Option(
        1,
        "--workers",
        "-w",
        help="Train this many runs at once in worker processes (CPU: the cores are shared out between them).",
    ),
    devices: Optional[str] = typer.Option(
        None, "--devices", help="GPUs to fan runs out over, e.g. 0,1,2,3 (one worker per GPU)."
    ),
    nproc_per_run: int = typer.Option(
        1, "--nproc-per-run", help="Processes per run (torchrun; DDP, or FSDP2 with --shard)."
    ),
    shard: bool = typer.Option(False, "--shard", help="Shard each run's model over its processes (FSDP2)."),
    executor: str = typer.Option(
        "local", "--executor", help="local (this machine), slurm (a job array via submitit) or submitit-local."
    ),
    wait: bool = typer.Option(False, "--wait", help="With slurm: wait for the jobs and report how they ended."),
    partition: Optional[str] = typer.Option(
        None, "--partition", help="Slurm partition (else [slurm] partition in the grid file)."
    ),
    time_limit: Optional[str] = typer.Option(
        None,
        "--time",
        help="Slurm time limit per run: minutes or [D-]HH:MM:SS (default 24 h); a run reaching it checkpoints and "
        "is requeued.",
    ),
    gpus_per_run: Optional[int] = typer.Option(
        None, "--gpus-per-run", help="Slurm GPUs (= tasks, DDP ranks) per run (default: --nproc-per-run)."
    ),
    cpus_per_task: Optional[int] = typer.Option(None, "--cpus-per-task", help="Slurm CPUs per task (default 8)."),
    mem_gb: Optional[float] = typer.Option(None, "--mem-gb", help="Slurm memory per run in GB."),
    array_parallelism: Optional[int] = typer.Option(
        None, "--array-parallelism", help="Slurm: at most this many runs of the job array at once (default 64)."
    ),
) -> None:
    """Train every run of a grid (skipping finished ones) and write one Parquet file per run.

    Runs are resumable: kill and re-run the same command, and each unfinished run continues from its
    last checkpoint. Two processes on the same grid share the work (a lock per run).
    """
    from rich.console import Console

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
    import torch

    if threads:
        torch.set_num_threads(threads)
    elif device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        torch.set_num_threads(1)
    if dry_run:
        _dry_run(g, device, None if gpu is None else gpu.lower(), as_json, console)
        return

    from scalelab.run import executors
    from scalelab.run.grid import check_memory, run_grid

    check_out_dir(out, "--out")

    ex = executors.from_options(
        g,
        executor=executor,
        workers=workers,
        devices=devices,
        nproc_per_run=nproc_per_run,
        shard=shard,
        device=device,
        wait=wait,
        quiet=quiet,
        tensorboard=tensorboard,
        slurm=dict(
            partition=partition,
            time=time_limit,
            gpus_per_run=gpus_per_run,
            cpus_per_task=cpus_per_task,
            mem_gb=mem_gb,
            array_parallelism=array_parallelism,
        ),
        console=None if quiet else Console(stderr=True),
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
        check_memory(g.runs(), "cuda" if devices else device, shards=nproc_per_run if shard else 1)
    if isinstance(ex, executors.InProcess) and n_train:
        ex.data_note = False  # checked (and warned) at load
    sums = run_grid(g, out, executor=ex, checkpoint_every=checkpoint_every, checkpoint_seconds=checkpoint_seconds)
    try:
        _report(g, out, ex, sums, as_json, console)
    finally:
        _exit_if_failed(sums)


def _exit_if_failed(sums) -> None:
    """Exit 1 after the grid when any run failed, naming each and its log (or error), so that scripts and
    job schedulers can tell a grid with a crashed run from a finished one."""
    failed = [s for s in sums if s.state == "failed"]
    if failed:
        where = "; ".join(f"{s.run.run_id} ({s.run.variant} d{s.run.model.d_model}): {s.detail}" for s in failed)
        typer.echo(f"error: {len(failed)} of {len(sums)} run(s) failed: {where}", err=True)
        raise typer.Exit(1)


def _report(g, out, ex, sums, as_json: bool, console) -> None:
    from rich.table import Table

    from scalelab.run import executors

    if not isinstance(ex, executors.InProcess):  # worker outcomes: state and where to look
        rows = [
            dict(
                run_id=s.run.run_id, variant=s.run.variant, d_model=s.run.model.d_model, state=s.state, detail=s.detail
            )
            for s in sums
        ]
        if as_json:
            typer.echo(json.dumps(rows, indent=1))
            return
        t = Table(title=f"grid {g.name}: {len(rows)} runs -> {out}/")
        for c in ("run", "variant", "d", "state", "detail"):
            t.add_column(c)
        for r in rows:
            t.add_row(r["run_id"], r["variant"], str(r["d_model"]), r["state"], r["detail"])
        console.print(t)
        return
    if as_json:
        typer.echo(
            json.dumps(
                [
                    dict(
                        run_id=s.run.run_id,
                        variant=s.run.variant,
                        d_model=s.run.model.d_model,
                        state=s.state,
                        path=s.path,
                        final_val_loss=s.final_val,
                        wall_s=s.wall_s,
                        tokens=s.tokens,
                    )
                    for s in sums
                ],
                indent=1,
            )
        )
        return
    t = Table(title=f"grid {g.name}: {len(sums)} runs -> {out}/")
    for c in ("run", "variant", "d", "finals", "tokens", "val", "wall s", "state"):
        t.add_column(c, justify="right" if c not in ("run", "variant", "state") else "left", no_wrap=True)
    for s in sums:
        t.add_row(
            s.run.run_id,
            s.run.variant,
            str(s.run.model.d_model),
            str(len(s.run.train.budgets)),
            f"{s.tokens:,}",
            "-" if s.final_val is None else f"{s.final_val:.4f}",
            f"{s.wall_s:.1f}",
            s.state,
        )
    console.print(t)
    n = {
        k: sum(1 for s in sums if s.state == k)
        for k in ("trained", "skipped", "busy", "diverged", "interrupted", "failed")
    }
    console.print(", ".join(f"{v} {k}" for k, v in n.items() if v) + f". Next: scalelab fit {out}/*.parquet")


def gpu_grid_reasons(g, cpu_seconds: Optional[float] = None) -> list[str]:
    """Why a grid is for GPUs (empty: a CPU grid): seed-preset-size models (d_model at least seed-s's), an
    [optimizer] dtype of bfloat16 or compile = true (both CUDA settings), or more than CPU_GRID_HOURS of
    this CPU by the dry run's estimate."""
    from scalelab.presets import PRESETS

    runs = g.runs()
    why = []
    d_seed = PRESETS["seed-s"].d_model
    if max(r.model.d_model for r in runs) >= d_seed:
        why.append(f"seed-size models (d_model {d_seed} and up)")
    if any(r.train.dtype == "bfloat16" for r in runs):
        why.append("[optimizer] dtype = bfloat16")
    if any(r.train.compile for r in runs):
        why.append("[optimizer] compile = true")
    if cpu_seconds is not None and cpu_seconds > CPU_GRID_HOURS * 3600:
        why.append(f"about {cpu_seconds / 3600:,.0f} h of this CPU")
    return why


def bench_mfu(gpu: str, path: str = BENCH_TRAIN) -> Optional[tuple[float, str]]:
    """(MFU, where it comes from) measured by `scalelab bench train` on this accelerator (the file's device
    names it), relative to its bf16 peak; None when there is no such file or it was measured elsewhere."""
    from scalelab.hardware import peak_bf16

    try:
        with open(path) as f:
            b = json.load(f)
        device = str(b.get("device", ""))
        if gpu.upper() not in device.upper():
            return None
        rows = [r for r in b.get("rows", []) if isinstance(r, dict)]
        dense = [r for r in rows if r.get("variant") == "dense"] or rows
        vals = []
        for r in dense:
            if r.get("tokens_per_s") and r.get("flops_per_token"):
                vals.append(float(r["tokens_per_s"]) * float(r["flops_per_token"]) / peak_bf16(gpu))
            elif r.get("mfu") is not None:
                vals.append(float(r["mfu"]))
        vals = sorted(v for v in vals if math.isfinite(v) and 0 < v <= 1)
        if not vals:
            return None
        m = vals[len(vals) // 2]
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    what = f": {b['shape']}" if b.get("shape") else ""
    return m, f"{m:.0%} MFU measured on {device} in {path}{what}"


def _dry_run(g, device: str, gpu: Optional[str], as_json: bool, console) -> None:
    """The runs with params, tokens, FLOPs and an estimated time. A GPU grid (--gpu, a visible GPU, or
    gpu_grid_reasons) gets GPU-hours on one accelerator at its bf16 peak and the measured (else assumed) MFU;
    a CPU grid gets minutes of this CPU at CPU_EFFICIENCY of its measured matmul peak."""
    from rich.table import Table

    from scalelab.hardware import peak_bf16
    from scalelab.run.grid import describe, estimate_seconds

    rows = describe(g)
    total_flops = sum(r["flops"] for r in rows)
    why: list[str] = [f"--gpu {gpu}"] if gpu else []
    if gpu is None and device != "cpu":
        import torch

        if torch.cuda.is_available():
            name = torch.cuda.get_device_name()
            gpu = next((k for k in GPUS if k.upper() in name.upper()), "h100")
            why = [f"this machine's {name}" + ("" if gpu.upper() in name.upper() else ", estimated as an H100")]
    cpu_peak = None
    if gpu is None:
        import torch

        from scalelab.run.device import peak_flops

        cpu_peak = peak_flops(torch.device("cpu"))
        why = gpu_grid_reasons(g, estimate_seconds(total_flops, cpu_peak, CPU_EFFICIENCY))
        if why:
            gpu = "h100"
    if gpu:
        peak = peak_bf16(gpu)
        measured = bench_mfu(gpu)
        mfu, basis = measured or (
            ASSUMED_MFU,
            f"assumed {ASSUMED_MFU:.0%} MFU: no {BENCH_TRAIN} measured on an {gpu.upper()}; "
            "`scalelab bench train --device cuda` measures it",
        )
        for r in rows:
            r["est_s"] = estimate_seconds(r["flops"], peak, mfu)
            r["est_gpu_hours"] = r["est_s"] / 3600
            r.update(accelerator=gpu, mfu=mfu, mfu_basis="measured" if measured else "assumed")
        col = "GPU-h"
    else:
        for r in rows:
            r["est_s"] = estimate_seconds(r["flops"], cpu_peak, CPU_EFFICIENCY)
        col = "est. s"
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    from rich import box

    t = Table(title=f"grid {g.name}: {len(rows)} runs (dry run; nothing trained)", box=box.SIMPLE_HEAD, pad_edge=False)
    for c in ("run_id", "variant", "d x L", "params", "lr", "tokens", "FLOPs", col):
        t.add_column(c, justify="left" if c in ("run_id", "variant") else "right", no_wrap=True)
    for r in rows:
        t.add_row(
            r["run_id"],
            r["variant"],
            f"{r['d_model']}x{r['n_layers']}",
            _si(r["params"]),
            f"{r['lr']:.2g}",
            _si(r["tokens"]),
            f"{r['flops']:.2g}",
            f"{r['est_gpu_hours']:.3g}" if gpu else f"{r['est_s']:.0f}",
        )
    console.print(t)
    tot = sum(r["est_s"] for r in rows)
    finals = sum(len(r["budgets"]) for r in rows)
    head = (
        f"total: {len(rows)} runs, {finals} final points, {sum(r['tokens'] for r in rows):,} tokens, "
        f"{total_flops:.3g} FLOPs; "
    )
    if gpu:
        console.print(
            head + f"about {_hours(tot / 3600)} GPU-hours on one {gpu.upper()} ({peak / 1e12:.0f} TFLOP/s bf16 peak, "
            f"{basis})",
            soft_wrap=True,
            markup=False,
        )
        if not why[0].startswith("--gpu"):
            console.print(
                f"this grid is for GPUs ({'; '.join(why)}); --gpu h100|h200|a100 names the accelerator",
                soft_wrap=True,
                markup=False,
            )
        return
    console.print(
        head + f"about {tot / 60:.1f} min at {CPU_EFFICIENCY:.0%} of {cpu_peak / 1e9:.0f} GFLOP/s (this CPU, "
        "measured now)",
        soft_wrap=True,
    )


def _hours(h: float) -> str:
    """1091.4 -> 1,091; 3.456 -> 3.46 (hours for the dry run's total)."""
    return f"{h:,.0f}" if h >= 100 else f"{h:.3g}"


def _si(x: float) -> str:
    """1234567 -> 1.2M (compact counts for tables)."""
    for unit, v in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= v:
            return f"{x / v:.3g}{unit}"
    return f"{x:.0f}"
