"""The run store's folder (default runs/): every path in it, the worker notes, and what state a run is in.

    runs/{grid}__{variant}__d{d_model}__{run_id}.parquet   a finished run (flat, so runs/*.parquet globs all)
    runs/.ckpt/{run_id}.pt                                  checkpoint of an unfinished run
    runs/.locks/{run_id}.lock                               held while a process trains the run
    runs/.status/{run_id}.json                              a worker's note: running (with tokens so far,
                                                            rewritten every few seconds), done, failed, ...
    runs/.logs/{run_id}.log                                 a worker process's output (--workers, --devices)
    runs/.submitit/                                         submitit's pickles and job logs (Slurm)

A run whose Parquet file exists is finished (it is written once, at the end); a run whose lock another
process holds is that process's. `collect` infers every run's state from these files alone, so it works
while workers (local, torchrun or Slurm) are still writing. Torch-free.
"""

from __future__ import annotations

import glob
import json
import os
import socket
import time
from typing import Optional

from scalelab.errors import ScalelabError
from scalelab.fileio import atomic_write_text, remove_stale_temps

CKPT_DIR, LOCK_DIR, STATUS_DIR, LOG_DIR, SUBMITIT_DIR = ".ckpt", ".locks", ".status", ".logs", ".submitit"
STATES = ("done", "running", "interrupted", "failed", "diverged", "pending")


# ---- paths ------------------------------------------------------------------------------------------
def run_path(out_dir: str, run) -> str:
    return os.path.join(out_dir, f"{run.file_stem}.parquet")


def ckpt_path(out_dir: str, run) -> str:
    return os.path.join(out_dir, CKPT_DIR, f"{run.run_id}.pt")


def lock_path(out_dir: str, run) -> str:
    return os.path.join(out_dir, LOCK_DIR, f"{run.run_id}.lock")


def status_path(out_dir: str, run_id: str) -> str:
    return os.path.join(out_dir, STATUS_DIR, f"{run_id}.json")


def log_path(out_dir: str, run_id: str) -> str:
    return os.path.join(out_dir, LOG_DIR, f"{run_id}.log")


def submitit_folder(out_dir: str) -> str:
    return os.path.join(out_dir, SUBMITIT_DIR, "%j")  # %j: submitit's job id


def is_finished(out_dir: str, run) -> bool:
    return os.path.isfile(run_path(out_dir, run))


# ---- claiming a run ---------------------------------------------------------------------------------
def claim(out_dir: str, run):
    """Take the run's lock without waiting: (lock, "train"), or (None, "skipped") when the run is finished,
    or (None, "busy") when another process holds it. The caller releases the lock."""
    from filelock import FileLock, Timeout

    if is_finished(out_dir, run):
        return None, "skipped"
    os.makedirs(os.path.dirname(lock_path(out_dir, run)), exist_ok=True)
    lock = FileLock(lock_path(out_dir, run))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None, "busy"
    if is_finished(out_dir, run):  # finished by another process in the meantime
        lock.release()
        return None, "skipped"
    # temp files that killed writes of this run left (its Parquet file, checkpoint, note): under the lock no
    # other process writes them, so every one of them is stale
    for p in (run_path(out_dir, run), ckpt_path(out_dir, run), status_path(out_dir, run.run_id)):
        remove_stale_temps(p, older_than_s=-1.0)
    return lock, "train"


# ---- worker notes: runs/.status/RUN_ID.json ---------------------------------------------------------
def write_status(out_dir: str, run, state: str, **extra) -> None:
    """Atomically record a run's state (running, done, diverged, failed, interrupted) for `scalelab status`."""
    path = status_path(out_dir, run.run_id)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    note = dict(
        run_id=run.run_id,
        grid=run.grid,
        variant=run.variant,
        d_model=run.model.d_model,
        state=state,
        host=socket.gethostname(),
        pid=os.getpid(),
        time=time.time(),
        **extra,
    )
    atomic_write_text(path, json.dumps(note))


NOTE_FIELDS = {"run_id": str, "grid": str, "variant": str, "state": str, "host": str, "error": str, "pid": int}


def read_notes(out_dir: str) -> dict[str, dict]:
    """Every readable worker note, by run_id (its file's name). A note that is not a JSON object is skipped, and
    a field of the wrong type (a hand-edited or foreign note) is dropped, so `status` never trips on one."""
    notes = {}
    for p in glob.glob(os.path.join(glob.escape(out_dir), STATUS_DIR, "*.json")):
        try:
            with open(p) as f:
                n = json.load(f)
        except (OSError, ValueError):
            continue
        if not isinstance(n, dict):
            continue
        n = {k: v for k, v in n.items() if k not in NOTE_FIELDS or isinstance(v, NOTE_FIELDS[k])}
        if not isinstance(n.get("d_model"), int) or isinstance(n.get("d_model"), bool):
            n.pop("d_model", None)
        for k in ("time", "tokens"):
            if not isinstance(n.get(k), (int, float)) or isinstance(n.get(k), bool):
                n.pop(k, None)
        rid = os.path.basename(p)[:-5]
        n["run_id"] = rid
        notes[rid] = n
    return notes


def is_run_store(out_dir: str) -> bool:
    """Whether a folder looks like a run store: empty (nothing run yet), or holding run files (*.parquet) or
    scalelab's hidden folders (checkpoints, locks, worker notes, logs)."""
    try:
        names = os.listdir(out_dir)
    except OSError:
        return False
    marks = {CKPT_DIR, LOCK_DIR, STATUS_DIR, LOG_DIR, SUBMITIT_DIR}
    return not names or any(n in marks or n.endswith(".parquet") for n in names)


def grid_progress(est: dict[str, int], finished: set, notes: dict[str, dict], since: float = 0.0) -> tuple[int, int]:
    """(tokens done, runs done) of a grid trained by workers, for the parent's grid bar.

    est: each run's estimated tokens (its bar share); finished: run ids whose worker has exited (they count
    in full); notes: read_notes(); a running note written at or after `since` (this grid's start: older
    notes are another invocation's) counts its `tokens`, capped at the run's estimate."""
    done = 0
    for rid, total in est.items():
        if rid in finished:
            done += total
            continue
        n = notes.get(rid) or {}
        if n.get("state") == "running" and float(n.get("time", 0)) >= since:
            try:
                done += max(0, min(int(n.get("tokens") or 0), total))
            except (TypeError, ValueError):
                pass
    return done, sum(1 for rid in est if rid in finished)


# ---- run states -------------------------------------------------------------------------------------
def finished_state(path: str, columns: tuple = ("status",)) -> tuple[str, dict]:
    """("done" | "diverged", the file's `columns` as lists) for a finished run's file."""
    from scalelab.store import read_runs

    cols = list(dict.fromkeys(["status", *columns]))
    d = read_runs(path, columns=cols)[cols].to_dict("list")
    return ("diverged" if "diverged" in d["status"] else "done"), d


def outcome(out_dir: str, run, returncode: int, log: str) -> tuple[str, str]:
    """(state, detail) of a run after its worker exited: done / diverged (its file), busy, or failed."""
    path = run_path(out_dir, run)
    if os.path.isfile(path):
        return finished_state(path)[0], os.path.basename(path)
    if returncode == 0:
        return "busy", "another process holds its lock"
    return "failed", log


def _held_lock_inodes() -> Optional[set]:
    """(dev major, dev minor, inode) of every lock held on this machine, or None without /proc/locks."""
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


def is_held(path: str, held: Optional[set]) -> bool:
    """Whether a process holds the lock file at path; read from /proc/locks (`held`) where there is one, so
    looking never takes the lock from a worker."""
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
    """One dict per known run: run_id, grid, variant, d_model, state, detail. A run is
    - done / diverged: its Parquet file exists (status column ok / diverged);
    - running: a process holds its lock, or, for a run started on another host, its worker note says so;
    - interrupted: a checkpoint and nobody running it: `scalelab run` resumes it;
    - failed: its worker recorded an error, or it died before its first checkpoint;
    - pending: in one of `grids` (names or paths), with no trace yet.
    """
    if not os.path.isdir(out_dir):
        raise ScalelabError(f"{out_dir} is not a folder: give the run store, e.g. `scalelab status runs/`")
    if not is_run_store(out_dir):
        raise ScalelabError(
            f"{out_dir} is not a run store (no *.parquet run files, .ckpt, .locks or .status in it): give the folder "
            "`scalelab run --out` wrote, e.g. `scalelab status runs/`"
        )
    runs: dict[str, dict] = {}

    def entry(rid: str) -> dict:
        return runs.setdefault(rid, dict(run_id=rid, grid="?", variant="?", d_model=None, state=None, detail=""))

    for g in grids or []:  # the runs the grids expect
        from scalelab.grid import Grid

        for r in Grid.load(g).runs():
            entry(r.run_id).update(grid=r.grid, variant=r.variant, d_model=r.model.d_model)
    notes = read_notes(out_dir)
    for rid, n in notes.items():
        e = entry(rid)
        for k in ("grid", "variant", "d_model"):
            if n.get(k) is not None:
                e[k] = n[k]
    cols = ("run_id", "grid", "variant", "d_model", "final", "val_loss", "tokens")
    for p in sorted(glob.glob(os.path.join(glob.escape(out_dir), "*.parquet"))):  # finished runs
        try:
            state, d = finished_state(p, cols)
        except Exception as ex:  # a foreign or broken file: say so, do not stop
            entry(os.path.basename(p)).update(
                state="failed", detail=f"unreadable Parquet: {str(ex).splitlines()[0][:200]}"
            )
            continue
        if not d["run_id"]:
            continue
        e = entry(d["run_id"][0])
        e.update(grid=d["grid"][0], variant=d["variant"][0], d_model=d["d_model"][0], state=state)
        if state == "diverged":
            e.update(detail=f"stopped at {max(d['tokens']):,} tokens")
        else:
            finals = [v for v, f in zip(d["val_loss"], d["final"]) if f and v is not None and v == v]
            e.update(detail=f"final val loss {min(finals):.4f}" if finals else "")
    # locks, checkpoints and notes for the rest
    held = _held_lock_inodes()
    here = socket.gethostname()
    ckpts = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(glob.escape(out_dir), CKPT_DIR, "*.pt"))}
    locks = {os.path.basename(p)[:-5]: p for p in glob.glob(os.path.join(glob.escape(out_dir), LOCK_DIR, "*.lock"))}
    for rid in set(locks) | ckpts | set(notes):
        e = entry(rid)
        if e["state"] in ("done", "diverged"):
            continue
        n = notes.get(rid, {})
        remote = n.get("host") not in (None, here)
        if rid in locks and is_held(locks[rid], held):
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
    return sorted(
        runs.values(),
        key=lambda e: (
            str(e["grid"]),
            STATES.index(e["state"]),
            str(e["variant"]),
            _int(e["d_model"]),
            str(e["run_id"]),
        ),
    )


def _int(x) -> int:
    try:
        return int(x)
    except (TypeError, ValueError, OverflowError):
        return 0


def summarize(entries: list[dict]) -> dict:
    """Per grid: the number of runs in each state, and in all."""
    out: dict[str, dict] = {}
    for e in entries:
        g = out.setdefault(str(e["grid"]), {s: 0 for s in STATES} | {"runs": 0})
        g[e["state"]] += 1
        g["runs"] += 1
    return out
