"""What a SOURCE holds: one RawRun per logged run (its history rows, config and summary, where it came from).

A source is a TensorBoard event folder (or one event file), a W&B export (a run folder with history.csv or
history.jsonl beside config and summary files; or dr-wandb's runs.jsonl + history.jsonl, one run a line), a W&B
run folder with its run-ID.wandb log (wandb_offline.py), an MLflow file store (mlflow_store.py), or a plain CSV /
JSON lines file of curves. Nothing here maps metric names: see mapping.py. Torch-free.
"""

from __future__ import annotations

from pathlib import Path

from scalelab.errors import ScalelabError
from scalelab.ingest import curves, mlflow_store, tb_events, wandb_export, wandb_offline
from scalelab.ingest.raw import RawRun

HISTORY_FILES = ("history.csv", "history.jsonl")
CURVE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")


def read_source(path: str) -> list[RawRun]:
    """Every run a SOURCE path holds; a ScalelabError naming the path when it holds none."""
    p = Path(path)
    if not p.exists():
        raise ScalelabError(f"{path}: no such file or folder (check the path)")
    if p.is_file() and p.name.startswith(tb_events.TB_PREFIX):
        return [tb_events.read_run(p.parent, [p])]
    if p.is_file() and p.suffix.lower() in CURVE_SUFFIXES:
        return [curves.read_curves(p)]
    if p.is_file() and p.suffix == ".wandb":
        return [wandb_offline.read_log(p)]
    if p.is_file():
        raise ScalelabError(
            f"{path}: not a file ingest reads: give a TensorBoard event folder, a W&B export or run folder, an "
            f"MLflow mlruns folder, or a curves file ({', '.join(CURVE_SUFFIXES)})"
        )
    if (p / "runs.jsonl").is_file() and (p / "history.jsonl").is_file():
        return wandb_export.read_dr_wandb(p)
    if any((p / h).is_file() for h in HISTORY_FILES):
        return [wandb_export.read_export(p)]
    # before TensorBoard: an MLflow run's artifacts or a W&B run's files may hold copies of event files
    if mlflow_store.is_store(p):
        return mlflow_store.read_store(p)
    within = mlflow_store.store_of(p)
    if within:
        return mlflow_store.read_store(*within)
    logs = wandb_offline.find_logs(p)
    if logs:
        return [wandb_offline.read_log(f) for f in logs]
    runs = tb_events.read_folder(p)
    if runs:
        return runs
    raise ScalelabError(
        f"{path}: no runs found (no TensorBoard event files {tb_events.TB_PREFIX}*, no W&B history.csv or "
        "history.jsonl, no dr-wandb runs.jsonl + history.jsonl, no W&B run-*.wandb log, no MLflow mlruns store): "
        "point at the folder the logger wrote"
    )
