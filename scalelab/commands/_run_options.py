"""The options of `scalelab run`, defined once: the grid, the dry run, the local trainer and the Slurm job."""

from __future__ import annotations

import typer

GRID = typer.Option(..., "--grid", "-g", help="A built-in grid name (demo, seed-paper) or a path to a grid TOML file.")
OUT = typer.Option(
    "runs",
    "--out",
    "-o",
    help="Folder for the run files (one Parquet per run); checkpoints and locks go to OUT/.ckpt and OUT/.locks.",
)

# ---- the dry run ------------------------------------------------------------------------------------------
DRY_RUN = typer.Option(
    False, "--dry-run", help="Print the runs with params, tokens, FLOPs and an estimated time; train nothing."
)
GPU = typer.Option(
    None,
    "--gpu",
    help="With --dry-run: estimate GPU-hours on this accelerator, h100, h200 or a100 (bf16 peak x the MFU "
    "measured in bench/train.json on it, else an assumed 40%). Without it: this machine's GPU if any, else "
    "h100 for a GPU grid (seed-size models, bf16 or compile, or over 24 h of this CPU), else CPU time.",
)

# ---- training on this machine -----------------------------------------------------------------------------
DEVICE = typer.Option("auto", "--device", help="auto (CUDA if available, else CPU), cpu, cuda or cuda:N.")
THREADS = typer.Option(
    None,
    "--threads",
    help="CPU threads per process for torch (default on CPU: 1, since small models gain little from more and "
    "OpenMP threads thrash on a shared CPU; raise it on an idle many-core machine).",
)
CHECKPOINT_EVERY = typer.Option(
    None, "--checkpoint-every", help="Checkpoint every N optimizer steps (default: every --checkpoint-seconds)."
)
CHECKPOINT_SECONDS = typer.Option(
    60.0,
    "--checkpoint-seconds",
    help="Checkpoint at most this many seconds apart when --checkpoint-every is not given.",
)
TENSORBOARD = typer.Option(
    None,
    "--tensorboard",
    help="Also log curves to this TensorBoard folder (needs the tensorboard package; skipped if absent).",
)
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars or notes; only the summary table.")
JSON = typer.Option(False, "--json", help="Print the summary (or the dry-run plan) as JSON.")
WORKERS = typer.Option(
    1,
    "--workers",
    "-w",
    help="Train this many runs at once in worker processes (CPU: the cores are shared out between them).",
)
DEVICES = typer.Option(None, "--devices", help="GPUs to fan runs out over, e.g. 0,1,2,3 (one worker per GPU).")
NPROC_PER_RUN = typer.Option(1, "--nproc-per-run", help="Processes per run (torchrun; DDP, or FSDP2 with --shard).")
SHARD = typer.Option(False, "--shard", help="Shard each run's model over its processes (FSDP2).")

# ---- a scheduler ------------------------------------------------------------------------------------------
EXECUTOR = typer.Option(
    "local", "--executor", help="local (this machine), slurm (a job array via submitit) or submitit-local."
)
WAIT = typer.Option(False, "--wait", help="With slurm: wait for the jobs and report how they ended.")
PARTITION = typer.Option(None, "--partition", help="Slurm partition (else \\[slurm] partition in the grid file).")
TIME = typer.Option(
    None,
    "--time",
    help="Slurm time limit per run: minutes or [D-]HH:MM:SS (default 24 h); a run reaching it checkpoints and "
    "is requeued.",
)
GPUS_PER_RUN = typer.Option(
    None, "--gpus-per-run", help="Slurm GPUs (= tasks, DDP ranks) per run (default: --nproc-per-run)."
)
CPUS_PER_TASK = typer.Option(None, "--cpus-per-task", help="Slurm CPUs per task (default 8).")
MEM_GB = typer.Option(None, "--mem-gb", help="Slurm memory per run in GB.")
ARRAY_PARALLELISM = typer.Option(
    None, "--array-parallelism", help="Slurm: at most this many runs of the job array at once (default 64)."
)
