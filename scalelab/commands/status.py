"""`scalelab status runs/`: where every run of every grid stands, from the files alone.

A run is
- done / diverged: its Parquet file exists (status column ok / diverged);
- running: a process holds its lock (runs/.locks/RUN_ID.lock; read from /proc/locks on Linux, so looking
  never takes the lock from a worker), or, for a run started on another host, its worker note says so;
- interrupted: a checkpoint (runs/.ckpt/RUN_ID.pt) and nobody running it: `scalelab run` resumes it;
- failed: its worker recorded an error (runs/.status/RUN_ID.json), or it died before its first checkpoint;
- pending: in a grid given with --grid, with no trace yet.
"""
from __future__ import annotations

import glob
import json
import os
import socket
from typing import Optional

import typer

from scalelab.commands._common import stdout_console, user_errors

STATES = ("done", "running", "interrupted", "failed", "diverged", "pending")


def _held_lock_inodes() -> Optional[set]:
    """(dev 'MAJ:MIN' in hex, inode) of every lock held on this machine, or None without /proc/locks."""
    try:
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    held = set()
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4242 08:01:1312 0 EOF"  ("->" marks a waiter: skip it)
        if len(parts) < 6 or parts[1] == "->":
            continue
        try:
            maj, mnr, ino = parts[5].split(":")
            held.add((int(maj, 16), int(mnr, 16), int(ino)))
        except ValueError:
            continue
    return held


def _is_held(path: str, held: Optional[set]) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    if held is not None:
        return (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino) in held
    from filelock import FileLock, Timeout  # no /proc/locks: probe (briefly takes a free lock)

    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def collect(out_dir: str, grids: Optional[list[str]] = None) -> list[dict]:
    """One dict per known run: run_id, grid, variant, d_model, state, detail."""
    from scalelab.errors import ScalelabError

    if not os.path.isdir(out_dir):
        raise ScalelabError(f"{out_dir} is not a folder: give the run store, e.g. `scalelab status runs/`")
    runs: dict[str, dict] = {}

    def entry(rid: str) -> dict:
        return runs.setdefault(rid, dict(run_id=rid, grid="?", variant="?", d_model=None, state=None, detail=""))

    # expected runs of the grids asked for
    for g in grids or []:
        from scalelab.config import Grid

        grid = Grid.load(g)
        for r in grid.runs():
            e = entry(r.run_id)
            e.update(grid=r.grid, variant=r.variant, d_model=r.model.d_model)
    # worker notes
    notes = {}
    for p in glob.glob(os.path.join(out_dir, ".status", "*.json")):
        try:
            with open(p) as f:
                n = json.load(f)
        except (OSError, ValueError):
            continue
        notes[n.get("run_id", os.path.basename(p)[:-5])] = n
        e = entry(n["run_id"])
        for k in ("grid", "variant", "d_model"):
            if n.get(k) is not None:
                e[k] = n[k]
    # finished runs
    import pyarrow.parquet as pq

    for p in sorted(glob.glob(os.path.join(out_dir, "*.parquet"))):
        try:
            t = pq.read_table(p, columns=["run_id", "grid", "variant", "d_model", "status", "final", "val_loss", "tokens"])
        except Exception as ex:  # a foreign or broken file: say so, do not stop
            e = entry(os.path.basename(p))
            e.update(state="failed", detail=f"unreadable Parquet: {str(ex).splitlines()[0][:120]}")
            continue
        d = t.to_pydict()
        if not d["run_id"]:
            continue
        e = entry(d["run_id"][0])
        e.update(grid=d["grid"][0], variant=d["variant"][0], d_model=d["d_model"][0])
        if "diverged" in d["status"]:
            e.update(state="diverged", detail=f"stopped at {max(d['tokens']):,} tokens")
        else:
            finals = [v for v, f in zip(d["val_loss"], d["final"]) if f and v is not None]
            e.update(state="done", detail=f"final val loss {min(finals):.4f}" if finals else "")
    # locks, checkpoints and notes for the rest
    held = _held_lock_inodes()
    here = socket.gethostname()
    ckpts = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(out_dir, ".ckpt", "*.pt"))}
    locks = {os.path.basename(p)[:-5]: p for p in glob.glob(os.path.join(out_dir, ".locks", "*.lock"))}
    for rid in set(locks) | ckpts | set(notes):
        e = entry(rid)
        if e["state"] in ("done", "diverged"):
            continue
        n = notes.get(rid, {})
        remote = n.get("host") not in (None, here)
        if rid in locks and _is_held(locks[rid], held):
            e.update(state="running", detail=f"pid {n['pid']}" if n.get("pid") else "")
        elif remote and n.get("state") == "running":
            e.update(state="running", detail=f"on {n['host']} (by its worker note)")
        elif n.get("state") == "failed":
            e.update(state="failed", detail=n.get("error", ""))
        elif rid in ckpts:
            e.update(state="interrupted", detail="checkpoint on disk: `scalelab run` resumes it")
        elif n.get("state") in ("running", "interrupted"):
            e.update(state="failed", detail="worker died before its first checkpoint")
    for e in runs.values():
        if e["state"] is None:
            e["state"] = "pending"
    return sorted(runs.values(), key=lambda e: (str(e["grid"]), STATES.index(e["state"]), str(e["variant"]),
                                                e["d_model"] or 0, e["run_id"]))


def summarize(entries: list[dict]) -> dict:
    out: dict[str, dict] = {}
    for e in entries:
        g = out.setdefault(str(e["grid"]), {s: 0 for s in STATES} | {"runs": 0})
        g[e["state"]] += 1
        g["runs"] += 1
    return out


@user_errors
def status(
    out: str = typer.Argument("runs", help="The run store folder (what `scalelab run --out` wrote)."),
    grid: Optional[list[str]] = typer.Option(None, "--grid", "-g", help="Also count this grid's runs that have not started (pending); repeatable."),
    runs: bool = typer.Option(False, "--runs", help="List every run that is not done, with its detail (errors of failed runs)."),
    as_json: bool = typer.Option(False, "--json", help="Print {grids: per-grid counts, runs: per-run states} as JSON."),
) -> None:
    """Show done / running / interrupted / failed / diverged / pending runs per grid in a run store.

    Reads only files: the Parquet results, the per-run locks, checkpoints and worker notes, so it works
    while workers (local, torchrun or Slurm) are still writing.
    """
    from rich.table import Table

    entries = collect(out, grid)
    summary = summarize(entries)
    if as_json:
        typer.echo(json.dumps({"grids": summary, "runs": entries}, indent=1, default=str))
        return
    console = stdout_console()
    if not entries:
        console.print(f"no runs in {out}/ yet (give --grid G to list a grid's pending runs)")
        return
    t = Table(title=f"run store {out}/")
    t.add_column("grid")
    for c in ("runs",) + STATES:
        t.add_column(c, justify="right")
    for g, c in summary.items():
        t.add_row(g, str(c["runs"]), *[str(c[s]) if c[s] else "-" for s in STATES])
    console.print(t)
    if runs:
        rt = Table(title="runs not done")
        for c in ("grid", "run_id", "variant", "d", "state", "detail"):
            rt.add_column(c)
        for e in entries:
            if e["state"] != "done":
                rt.add_row(str(e["grid"]), e["run_id"], str(e["variant"]), str(e["d_model"] or "?"), e["state"], e["detail"])
        console.print(rt)
