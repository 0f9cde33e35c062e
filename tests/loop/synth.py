"""A run store drawn from a known law, with real configs: runs of a grid file (scalelab.grid) whose params
and FLOPs are the exact counts of scalelab.flops, and whose final losses follow TRUE[variant] with small
log-normal noise. No training: the loop's tests need many runs, and the law they test against is known."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from scalelab import store
from scalelab.flops import param_counts, train_flops
from scalelab.grid import Grid

TRUE = {
    "dense": dict(E=1.0, A=60.0, B=100.0, alpha=0.36, beta=0.30),
    "lowrank-32": dict(E=1.0, A=52.0, B=100.0, alpha=0.35, beta=0.30),
}
NOISE = 0.004  # sd of log loss


def law(p, N, D):
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


GRID = """
name = "{name}"
seeds = [0]
[data]
source = "stdlib"
[model]
widths = {widths}
n_layers = 2
head_dim = 16
seq_len = 128
[[variants]]
structure = "dense"
[[variants]]
structure = "lowrank"
fraction = 0.32
[budgets]
{budgets}
[schedule]
kind = "{schedule}"
[optimizer]
lr = 3e-3
batch_size = 4
"""


def grid_file(folder: Path, name: str, widths, budgets: str, schedule: str = "wsd") -> Path:
    p = Path(folder) / f"{name}.toml"
    p.write_text(GRID.format(name=name, widths=list(widths), budgets=budgets, schedule=schedule))
    return p


def write_store(grid_path: Path, out: Path, laws=TRUE, noise=NOISE, seed=0, variants=None) -> list[str]:
    """One Parquet per run of the grid (of `variants`, default all): a row per budget (final), loss from
    `laws` at (params, tokens)."""
    paths = []
    for run in Grid.load(str(grid_path)).runs():
        if variants is not None and run.model.variant not in variants:
            continue
        cfg, pc = run.model, param_counts(run.model)
        rid = run.run_id
        rng = np.random.default_rng(zlib.crc32(f"{seed}-{rid}".encode()))
        toks = np.array(sorted(run.train.budgets), np.int64)
        loss = law(laws[cfg.variant], float(pc.params), toks.astype(float)) * np.exp(
            noise * rng.standard_normal(len(toks))
        )
        n = len(toks)
        df = pd.DataFrame(
            {
                "run_id": rid,
                "grid": run.grid,
                "variant": cfg.variant,
                "structure": cfg.ffn.kind,
                "d_model": cfg.d_model,
                "n_layers": cfg.n_layers,
                "n_heads": cfg.n_heads,
                "n_kv_heads": cfg.kv_heads,
                "d_ff": cfg.ffn_width,
                "rank": [cfg.ffn.rank] * n,
                "blocks": [None] * n,
                "params": pc.params,
                "params_nonembed": pc.params_nonembed,
                "seq_len": cfg.seq_len,
                "batch_tokens": 512,
                "step": toks // 512,
                "tokens": toks,
                "flops": [train_flops(cfg, t) for t in toks],
                "flops_6nd": 6.0 * pc.params_nonembed * toks,
                "train_loss": loss,
                "val_loss": loss,
                "lr": 3e-3,
                "final": True,
                "wall_s": 1.0,
                "tokens_per_s": 5e4,
                "mfu": 0.1,
                "status": "ok",
                "seed": 0,
                "corpus": "stdlib",
                "corpus_sha": "x",
                "tokenizer": "byte",
                "device": "cpu",
                "torch_version": "t",
                "scalelab_version": "s",
                "git_sha": None,
                "config": json.dumps(run.to_dict()),
                "budget": toks,
                "schedule": run.train.schedule,
                "guide_flops": 0.0,
                "epochs": 0.1,
            }
        )
        paths.append(store.write_run(str(Path(out) / f"{run.grid}__{cfg.variant}__d{cfg.d_model}__{rid}.parquet"), df))
    return paths
