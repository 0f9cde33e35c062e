"""`scalelab ingest SOURCE... --out runs/`: runs logged by other trainers (TensorBoard, W&B exports and run
folders, MLflow file stores, curve files) into the run store, for `scalelab fit` and the rest."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from scalelab.commands._common import check_out_dir, user_errors


@user_errors
def ingest(
    sources: List[Path] = typer.Argument(
        ...,
        help="TensorBoard event folders (one run per folder of event files), W&B export folders (history.csv or "
        "history.jsonl with config and summary; or dr-wandb's runs.jsonl + history.jsonl), W&B run folders "
        "(wandb/offline-run-*/run-ID.wandb; needs the wandb extra), MLflow file stores (an mlruns/ folder, one of "
        "its experiments or runs; needs the mlflow extra; params are the config), or CSV / JSON lines files of "
        "curves.",
    ),
    out: Path = typer.Option(Path("runs"), "--out", help="Run-store folder to write one Parquet file per run to."),
    model: Optional[str] = typer.Option(
        None,
        "--model",
        help="The model every source trained, as scalelab builds it: d_model=512,n_layers=8,n_heads=8,seq_len=1024,"
        "vocab_size=50257[,structure=lowrank,rank=128]. Default: from each run's logged config.",
    ),
    loss_key: Optional[str] = typer.Option(None, "--loss-key", help="Loss to fit. Default: val_loss, val/loss, ..."),
    step_key: Optional[str] = typer.Option(None, "--step-key", help="Optimizer step. Default: step, _step, ..."),
    tokens_key: Optional[str] = typer.Option(
        None, "--tokens-key", help="Tokens seen (may be the step key, for a step axis in tokens). Default: tokens, ..."
    ),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", min=1, help="Sequences per optimizer step: tokens = step x this x seq_len."
    ),
    flops_key: Optional[str] = typer.Option(
        None, "--flops-key", help="The run's own FLOP count, checked against scalelab's. Default: flops, total_flops"
    ),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Tokenizer name. Default: the logged config's."),
    grid: str = typer.Option("ingest", "--grid", help="Grid name of the ingested runs (their files' first part)."),
) -> None:
    """Read runs logged elsewhere into the run store, offline.

    Params and FLOPs are recomputed exactly under scalelab's convention from the model (--model, or the run's
    logged config); a run whose logged FLOPs differ by more than 5% is named in a warning. Each run keeps its
    source path, sha256 and the mapping used in its `config` column. A bad input writes nothing."""
    from scalelab.ingest import Mapping, plan, write

    check_out_dir(str(out), "--out")
    m = Mapping(loss_key, step_key, tokens_key, flops_key, batch_size, tokenizer)
    p = plan([str(s) for s in sources], str(out), m, model, grid)
    for w in p.warnings:
        typer.echo(f"warning: {w}", err=True)
    paths = write(p)
    for r, path in zip(p.runs, paths):
        final = r.rows[-1]
        typer.echo(
            f"{r.run_id}: {len(r.rows)} points, {final['variant']} d{final['d_model']}, N {final['params']:,}, "
            f"D {final['tokens']:,}, C {final['flops']:.4g}, loss {final['val_loss']:.4f} -> {path}"
        )
    typer.echo(f"ingested {len(paths)} run(s) into {out}/. Next: scalelab fit {out}/*.parquet")
