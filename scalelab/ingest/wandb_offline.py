"""W&B run folders as wandb itself leaves them (`wandb/offline-run-*/run-ID.wandb`, or an online run's
`wandb/run-*/`): the run's .wandb transaction log, read by the installed wandb's own reader, `wandb leet inspect
FILE --json` (one JSON record a line; wandb >= 0.31, run offline: nothing is sent). Its history records give the
rows, its run and config records the config, its summary records the summary.

wandb is the optional extra `scalelab[wandb]`; without it, or with a wandb that cannot read the log, the error
says what to do instead (`wandb sync` the run and ingest an export). Torch-free.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.fileio import sha256_file
from scalelab.ingest.raw import RawRun
from scalelab.ingest.wandb_export import unwrap_config

LOG_GLOB = "run-*.wandb"
INSTALL = "pip install 'scalelab[wandb]'"
INSTEAD = "`wandb sync` the run and ingest its export (history.csv, or dr-wandb's runs.jsonl + history.jsonl)"
TIMEOUT_S = 600
MIN_WANDB = (0, 31)  # the first wandb whose `wandb leet inspect --json` was checked here
SCALARS = (int, float, str, bool)


def find_logs(p: Path) -> list[Path]:
    """The .wandb logs folder p holds: a run folder's, or those of the run folders in p (a wandb/ folder);
    symlinked folders (wandb's latest-run) left out so that no run comes twice."""
    for pattern in (LOG_GLOB, f"*/{LOG_GLOB}"):
        logs = sorted(f for f in p.glob(pattern) if f.is_file() and not f.parent.is_symlink())
        if logs:
            return logs
    return []


def read_log(path: Path) -> RawRun:
    """One run's .wandb log: its history rows, config and summary."""
    config: dict = {}
    summary: dict = {}
    rows: list[dict] = []
    run_id = path.stem.removeprefix("run-")
    for rec in _records(path):
        kind = rec.get("type")
        body = rec.get(kind) if isinstance(kind, str) else None
        if not isinstance(body, dict):
            continue
        if kind == "run":
            run_id = str(body.get("run_id") or run_id)
            _update(config, body.get("config"))
        elif kind == "config":
            _update(config, body)
        elif kind == "summary":
            _update(summary, body)
        elif kind == "history" and isinstance(body.get("item"), dict):
            row = _flat(body["item"])
            step = body.get("step")
            if "_step" not in row and isinstance(step, dict) and "num" in step:
                row["_step"] = step["num"]
            rows.append(row)
    if not rows:
        raise ScalelabError(
            f"{path}: the run logged no history (wandb.log): point at a run that logged its loss, or ingest an export"
        )
    return RawRun(
        name=run_id,
        kind="wandb-offline",
        source=str(path.parent),
        sha256=sha256_file(path),
        history=pd.DataFrame(rows),
        config=unwrap_config(config),
        summary={k: v for k, v in summary.items() if not str(k).startswith("_wandb")},
    )


def _flat(item: dict, prefix: str = "") -> dict:
    """A history row's scalars; a nested dict's under "outer.inner" (as W&B's UI names them); W&B's media
    objects (dicts with a "_type") left out."""
    out: dict = {}
    for k, v in item.items():
        if isinstance(v, dict) and "_type" not in v:
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, SCALARS):
            out[f"{prefix}{k}"] = v
    return out


def _update(d: dict, record) -> None:
    """Apply a config or summary record: {"update": {key: value}, "remove": [key, ...]}."""
    if not isinstance(record, dict):
        return
    if isinstance(record.get("update"), dict):
        d.update(record["update"])
    for k in record.get("remove") or []:
        if isinstance(k, str):
            d.pop(k, None)


def _records(path: Path) -> list[dict]:
    """The log's records, as the installed wandb prints them."""
    if importlib.util.find_spec("wandb") is None:
        raise ScalelabError(f"{path}: reading a W&B run's .wandb log needs wandb: {INSTALL}; or {INSTEAD}")
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", WANDB_ERROR_REPORTING="false")
    cmd = [sys.executable, "-m", "wandb", "leet", "inspect", str(path), "--json"]
    try:
        done = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL, check=False
        )
    except subprocess.TimeoutExpired:
        raise ScalelabError(f"{path}: wandb did not read it within {TIMEOUT_S} s: {INSTEAD}") from None
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1].strip()
        version = _version()
        if version < MIN_WANDB:
            raise ScalelabError(
                f"{path}: the installed wandb {'.'.join(map(str, version))} has no .wandb reader (`wandb leet "
                f"inspect --json`, from 0.31): {INSTALL} (wandb>=0.31); or {INSTEAD}"
            )
        raise ScalelabError(
            f"{path}: not a readable .wandb log (wandb says: {why}): point at a run's run-ID.wandb, or {INSTEAD}"
        )
    out = []
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                raise ScalelabError(f"{path}: wandb printed a record that is not JSON: {INSTEAD}") from None
            if isinstance(rec, dict):
                out.append(rec)
    return out


def _version() -> tuple[int, ...]:
    """The installed wandb's (major, minor); (0,) when unknown."""
    try:
        parts = metadata.version("wandb").split(".")[:2]
        return tuple(int(x) for x in parts)
    except (metadata.PackageNotFoundError, ValueError):
        return (0,)
