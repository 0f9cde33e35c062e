"""A grid's runs, trained: `run_grid` expands the grid and hands the runs to an executor (run/executors.py).

Whichever executor trains them (this process, worker processes, torchrun ranks, a Slurm job array), each run
goes through one.train_one, which takes its lock, skips it when finished and resumes it from its checkpoint;
the runs/ folder's layout is run/layout.py's. `describe` and `estimate_seconds` are the dry run's table;
`repeat_warning` is the grid-load check that a run's largest budget fits in the corpus's unique tokens.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from scalelab.run.one import RunSummary


def describe(grid) -> list[dict]:
    """One dict per run for --dry-run: shape, params, tokens, FLOPs and an estimated time."""
    from scalelab import flops as flopslib
    from scalelab.run.train import estimate_tokens

    out = []
    for r in grid.runs():
        pc = flopslib.param_counts(r.model)
        tok = estimate_tokens(r)
        fl = flopslib.flops_per_token(r.model) * tok
        out.append(
            dict(
                run_id=r.run_id,
                variant=r.variant,
                d_model=r.model.d_model,
                n_layers=r.model.n_layers,
                params=pc.params,
                params_nonembed=pc.params_nonembed,
                budgets=list(r.train.budgets),
                schedule=r.train.schedule,
                seed=r.seed,
                lr=r.train.lr,
                tokens=tok,
                flops=fl,
            )
        )
    return out


def unique_train_tokens(grid) -> Optional[int]:
    """The corpus's unique training tokens, when they can be told without reading (or tokenizing) it: a .bin
    corpus from its size, a byte-tokenized text corpus (the embedded stdlib one included) from its files'
    sizes and the train/validation split rule, anything already tokenized from scalelab's cache; else None."""
    from scalelab import data as D

    cfg = grid.data_config()
    base_dir = os.path.dirname(grid.path) if grid.path else None
    try:
        path = D.resolve_path(cfg.source, base_dir) if cfg.source != "stdlib" else "stdlib"
        fmt = D.detect_format(cfg, path)
        if fmt == "bin":
            return os.path.getsize(D._bin_paths(path)[0]) // 2
        if fmt in ("stdlib", "text") and cfg.tokenizer == "byte":  # one token per byte
            files, single = (D._stdlib_files(), False) if fmt == "stdlib" else D._text_files(path)
            if single:
                return int(round(os.path.getsize(files[0][1]) * (1 - cfg.val_fraction)))
            return sum(os.path.getsize(p) for k, p in files if not D.is_val(k, cfg.val_fraction))
        tok = D.get_tokenizer(cfg.tokenizer, base_dir)  # tokenized before: the cache knows its size
        meta = os.path.join(D.cache_dir(), f"corpus-{D._listing_key(cfg, path, fmt, tok.name)}", "meta.json")
        with open(meta) as f:
            return int(json.load(f)["n_train"])
    except Exception:  # cannot tell cheaply: the trainer records `epochs` and the in-process runner warns
        return None


def repeat_warning(grid, n_train: Optional[int] = None) -> Optional[str]:
    """One line naming the runs whose largest budget exceeds the corpus's unique training tokens (they see
    data again: `epochs` > 1) and how many epochs each trains; None when none does or the size is unknown."""
    n_train = unique_train_tokens(grid) if n_train is None else n_train
    if not n_train:
        return None
    runs = grid.runs()
    over = sorted(
        ((max(r.train.budgets) / n_train, r) for r in runs if max(r.train.budgets) > n_train),
        key=lambda x: (-x[0], x[1].variant, x[1].model.d_model),
    )
    if not over:
        return None
    shown = [f"{r.run_id} ({r.variant} d{r.model.d_model}) {ep:.3g} epochs" for ep, r in over[:6]]
    more = f" and {len(over) - 6} more" if len(over) > 6 else ""
    return (
        f"warning: grid {grid.name}: {len(over)} of {len(runs)} runs repeat training data, up to {over[0][0]:.3g} "
        f"epochs of the corpus's {n_train:,} unique training tokens: {', '.join(shown)}{more} (use a larger "
        "corpus or smaller budgets for unrepeated data)"
    )


# Bytes per parameter a run holds at least: fp32 weights, gradients and AdamW's two moments (activations and the
# data come on top, so a run that passes may still not fit; one that fails never can).
BYTES_PER_PARAM = 16


def device_memory(device: str) -> tuple[int, str]:
    """(bytes, what) of the memory one run of `device` (auto, cpu, cuda, cuda:N) can use at most: the GPU's
    total memory, or this machine's physical memory."""
    import torch

    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        if torch.cuda.is_available():
            i = int(device.split(":")[1]) if ":" in device else 0
            p = torch.cuda.get_device_properties(i)
            return int(p.total_memory), f"the {p.name}'s"
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")), "this machine's"
    except (ValueError, OSError, AttributeError):  # no sysconf: nothing to compare with
        return 0, ""


def check_memory(runs, device: str = "auto", shards: int = 1, memory: Optional[tuple[int, str]] = None) -> None:
    """Refuse, before any model is allocated, a run whose weights, gradients and AdamW moments alone (exact
    parameter count x BYTES_PER_PARAM, divided over `shards` under FSDP) exceed the device's memory."""
    from scalelab import flops as flopslib
    from scalelab.errors import ScalelabError

    total, what = memory or device_memory(device)
    if total <= 0:
        return
    for r in runs:
        pc = flopslib.param_counts(r.model)
        need = (pc.params + pc.guide_params) * BYTES_PER_PARAM / max(1, shards)
        if need > total:
            raise ScalelabError(
                f"run {r.run_id} ({r.variant} d{r.model.d_model} x {r.model.n_layers} layers) has "
                f"{pc.params + pc.guide_params:,} parameters: its weights, gradients and AdamW moments alone need "
                f"{need / 2**30:,.1f} GiB, more than {what} {total / 2**30:,.1f} GiB: use smaller widths or fewer "
                "layers, or a device with more memory (or --shard over several)"
            )


def estimate_seconds(flops: float, device_peak: float, efficiency: float) -> float:
    return flops / max(device_peak * efficiency, 1.0)


def run_grid(
    grid,
    out_dir: str = "runs",
    *,
    executor="local",
    checkpoint_every: Optional[int] = None,
    checkpoint_seconds: float = 60.0,
    **options,
) -> list[RunSummary]:
    """Train every unfinished run of the grid; one summary per run (finished-before runs first for workers).

    executor: an executor from run/executors.py, or its name ("local", "slurm", "submitit-local") with
    `options` for executors.from_options (workers, devices, nproc_per_run, shard, slurm, device, wait, quiet,
    tensorboard, console); plain run_grid(grid) trains in this process.
    """
    from scalelab.run import executors

    if isinstance(executor, str):
        executor = executors.from_options(grid, executor=executor, **options)
    elif options:
        raise TypeError(f"run_grid: give an executor or its options, not both ({', '.join(options)})")
    runs = grid.runs()
    if executor.world > 1:  # fail here, not in every worker: the global batch must split evenly over the ranks
        from scalelab.run.distributed import plan_batch

        for r in runs:
            plan_batch(r.train.batch_size, r.train.micro, executor.world)
    return executor.run(
        grid, runs, out_dir, {"checkpoint_every": checkpoint_every, "checkpoint_seconds": checkpoint_seconds}
    )
