"""Fixtures for the ingest tests, written by the real libraries: TensorBoard events by torch's SummaryWriter,
W&B export folders in the layouts W&B's exporters write (history.csv from `run.history()`, history.jsonl from
`run.scan_history()`, config.yaml with W&B's {desc, value} entries, wandb-summary.json) and dr-wandb's
runs.jsonl + history.jsonl."""

from __future__ import annotations

import json
import os

import pandas as pd
import refusal
import yaml
from typer.testing import CliRunner

from scalelab.cli import app

# a nanoGPT-style model, in nanoGPT's config names
NANO_CONFIG = {"n_embd": 32, "n_layer": 2, "n_head": 2, "block_size": 32, "vocab_size": 256, "batch_size": 4}
NANO_MODEL = "d_model=32,n_layers=2,n_heads=2,seq_len=32,vocab_size=256"
STEPS = (10, 20, 30, 40)
BATCH = 4  # sequences per step


def losses(scale: float = 1.0) -> list[float]:
    """A falling loss curve, one value per step of STEPS."""
    return [scale * (2.5 + 3.0 / (1 + 0.1 * s)) for s in STEPS]


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def write_tb(folder, tags=("val_loss",), tokens: bool = True, scale: float = 1.0) -> str:
    """A run logged by torch.utils.tensorboard.SummaryWriter at STEPS: the loss under each tag, tokens seen."""
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(folder))
    for s, v in zip(STEPS, losses(scale)):
        for t in tags:
            w.add_scalar(t, v, s)
        if tokens:
            w.add_scalar("tokens", s * BATCH * 32, s)
    w.close()
    return str(folder)


def write_wandb_export(folder, config=None, summary=None, history=None, jsonl: bool = False) -> str:
    """A W&B run folder: history (csv as `run.history().to_csv()` writes it, index included; or jsonl rows as
    `scan_history()` yields them), config.yaml in W&B's {desc, value} form, wandb-summary.json."""
    os.makedirs(folder, exist_ok=True)
    if history is None:
        history = pd.DataFrame(
            {"_step": list(STEPS), "val/loss": losses(), "_runtime": [1.0 * s for s in STEPS], "_timestamp": 1.7e9}
        )
    if jsonl:
        with open(os.path.join(folder, "history.jsonl"), "w") as f:
            for r in history.to_dict("records"):
                f.write(json.dumps(r) + "\n")
    else:
        history.to_csv(os.path.join(folder, "history.csv"))
    cfg = {k: {"desc": None, "value": v} for k, v in (config if config is not None else NANO_CONFIG).items()}
    cfg["_wandb"] = {"desc": None, "value": {"cli_version": "0.19.0", "python_version": "3.11"}}
    with open(os.path.join(folder, "config.yaml"), "w") as f:
        yaml.safe_dump(cfg, f)
    with open(os.path.join(folder, "wandb-summary.json"), "w") as f:
        json.dump({"_step": STEPS[-1], **(summary or {})}, f)
    return str(folder)


def write_dr_wandb(folder, runs: dict) -> str:
    """dr-wandb's layout: runs.jsonl (one run a line: run_id, config, summary) and history.jsonl (one history
    row a line, with its run_id). runs: {run_id: (config, loss scale)}."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "runs.jsonl"), "w") as fr, open(os.path.join(folder, "history.jsonl"), "w") as fh:
        for rid, (config, scale) in runs.items():
            fr.write(json.dumps({"run_id": rid, "state": "finished", "config": config, "summary": {}}) + "\n")
            for s, v in zip(STEPS, losses(scale)):
                fh.write(json.dumps({"run_id": rid, "_step": s, "train/tokens": s * BATCH * 32, "loss": v}) + "\n")
    return str(folder)


def refused(r, out, *words) -> str:
    """An ingest refused in one line naming `words`, with nothing written under `out` (refusal.refused)."""
    return refusal.refused(r, *words, out=out)
