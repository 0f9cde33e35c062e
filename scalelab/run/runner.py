"""Expand a grid into runs, skip the finished ones, and train the rest one after another (local).

Layout under the output folder (default runs/):
    runs/{grid}__{variant}__d{d_model}__{run_id}.parquet   one per finished run (flat: runs/*.parquet)
    runs/.ckpt/{run_id}.pt                                  checkpoint of an unfinished run
    runs/.locks/{run_id}.lock                               held while a process trains the run
A run whose Parquet file exists is finished and skipped; a run whose lock another process holds is
left to that process, so two `scalelab run` processes on one grid train every run once.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Optional

from scalelab.config import Grid, RunConfig
from scalelab.errors import ScalelabError


@dataclass
class RunSummary:
    run: RunConfig
    state: str  # trained | skipped (finished before) | busy (another process) | diverged | interrupted
    path: str
    final_val: Optional[float] = None
    wall_s: float = 0.0
    tokens: int = 0
    resumed_from: int = 0


def run_path(out_dir: str, run: RunConfig) -> str:
    return os.path.join(out_dir, f"{run.file_stem}.parquet")


def ckpt_path(out_dir: str, run: RunConfig) -> str:
    return os.path.join(out_dir, ".ckpt", f"{run.run_id}.pt")


def lock_path(out_dir: str, run: RunConfig) -> str:
    return os.path.join(out_dir, ".locks", f"{run.run_id}.lock")


def is_finished(out_dir: str, run: RunConfig) -> bool:
    return os.path.isfile(run_path(out_dir, run))


def describe(grid: Grid) -> list[dict]:
    """One dict per run for --dry-run: shape, params, tokens, FLOPs and an estimated time."""
    from scalelab import flops as flopslib
    from scalelab.run.train import estimate_tokens

    out = []
    for r in grid.runs():
        pc = flopslib.param_counts(r.model)
        tok = estimate_tokens(r)
        fl = flopslib.flops_per_token(r.model) * tok
        out.append(dict(run_id=r.run_id, variant=r.variant, d_model=r.model.d_model, n_layers=r.model.n_layers,
                        params=pc.params, params_nonembed=pc.params_nonembed,
                        budgets=list(r.train.budgets), schedule=r.train.schedule, seed=r.seed,
                        lr=r.train.lr, tokens=tok, flops=fl))
    return out


def estimate_seconds(flops: float, device_peak: float, efficiency: float) -> float:
    return flops / max(device_peak * efficiency, 1.0)


def run_grid(grid: Grid, out_dir: str = "runs", *, device: str = "auto", quiet: bool = False,
             checkpoint_every: Optional[int] = None, checkpoint_seconds: float = 60.0,
             tensorboard: Optional[str] = None, console=None) -> list[RunSummary]:
    """Train every unfinished run of the grid; returns one summary per run (in grid order)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from scalelab.data import epochs_note, load_corpus
    from scalelab.run.train import estimate_tokens

    console = console or Console(stderr=True)
    runs = grid.runs()
    base_dir = os.path.dirname(grid.path) if grid.path else None
    corpus = load_corpus(runs[0].data, base_dir=base_dir)
    if corpus.vocab_size > runs[0].model.vocab_size:
        raise ScalelabError(f"corpus vocab {corpus.vocab_size} exceeds the model's {runs[0].model.vocab_size}")
    note = epochs_note(max(estimate_tokens(r) for r in runs), corpus)
    if note and not quiet:
        console.print(f"[yellow]{note}[/yellow]")
    os.makedirs(out_dir, exist_ok=True)
    summaries: list[RunSummary] = []
    # the grid bar counts (estimated) tokens, so its ETA weighs big runs properly; one bar per run
    est = [estimate_tokens(r) for r in runs]
    progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=16), TextColumn("{task.percentage:>3.0f}%"),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("ETA"),
                        TimeRemainingColumn(), console=console, disable=quiet, transient=False)
    with progress:
        gtask = progress.add_task(f"grid {grid.name}", total=sum(est), info=f"0/{len(runs)} runs")
        done_tokens = 0
        for k, run in enumerate(runs, 1):
            desc = f"run {k}/{len(runs)} {run.variant} d{run.model.d_model}"
            rtask = progress.add_task(desc, total=None, info="")

            def on_step(p, rtask=rtask, base=done_tokens, cap=est[k - 1]):
                if p["step"] % 10 == 0 or p["step"] == p["total"]:
                    progress.update(rtask, total=p["total"], completed=p["step"],
                                    info=f"{p['tokens']:,} tok  loss {p['loss']:.3f}  {p['tokens_per_s']:,.0f} tok/s")
                    progress.update(gtask, completed=base + min(p["tokens"], cap))

            tb = os.path.join(tensorboard, run.file_stem) if tensorboard else None
            s = train_one(run, corpus, out_dir, device=device, checkpoint_every=checkpoint_every,
                          checkpoint_seconds=checkpoint_seconds, progress=on_step, tb_dir=tb)
            progress.remove_task(rtask)
            if s.resumed_from and not quiet:
                progress.console.print(f"resumed {run.file_stem} from step {s.resumed_from}")
            if s.state == "diverged" and not quiet:
                progress.console.print(f"[red]run {run.file_stem} diverged; the grid goes on[/red]")
            summaries.append(s)
            done_tokens += est[k - 1]
            progress.update(gtask, completed=done_tokens, info=f"{k}/{len(runs)} runs")
    return summaries


def train_one(run: RunConfig, corpus, out_dir: str, **kw) -> RunSummary:
    """Train one run under its lock: skip it if finished, leave it if another process holds the lock,
    resume it from its checkpoint otherwise. kw go to scalelab.run.train.Trainer (device, progress,
    checkpoint_every, checkpoint_seconds, tb_dir, should_stop). The entry every executor shares."""
    from filelock import FileLock, Timeout

    from scalelab.run.train import train_run

    path = run_path(out_dir, run)
    if os.path.isfile(path):
        return _summary_from_file(run, path, "skipped")
    os.makedirs(os.path.dirname(lock_path(out_dir, run)), exist_ok=True)
    lock = FileLock(lock_path(out_dir, run))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return RunSummary(run, "busy", path)
    try:
        if os.path.isfile(path):  # finished by another process in the meantime
            return _summary_from_file(run, path, "skipped")
        t0 = time.perf_counter()
        res = train_run(run, corpus, out_path=path, ckpt_path=ckpt_path(out_dir, run), **kw)
        state = {"ok": "trained", "diverged": "diverged", "interrupted": "interrupted"}[res.status]
        finals = [r["val_loss"] for r in res.rows if r["final"]]
        return RunSummary(run, state, path, min(finals) if finals else None, time.perf_counter() - t0,
                          max((r["tokens"] for r in res.rows), default=0), res.resumed_from)
    finally:
        lock.release()


def _summary_from_file(run: RunConfig, path: str, state: str) -> RunSummary:
    from scalelab.store import read_runs

    df = read_runs([path])
    fin = df[df["final"]]
    return RunSummary(run, state, path, float(fin["val_loss"].min()) if len(fin) else None,
                      float(df["wall_s"].max()), int(df["tokens"].max()))
