"""W&B exports, offline: a run folder as W&B's exporters leave it (history.csv from `run.history()`, or
history.jsonl from `run.scan_history()`, beside config.json / config.yaml and summary.json /
wandb-summary.json), and dr-wandb's project layout (runs.jsonl: one run a line with its id, config and
summary; history.jsonl: one history row a line with its run's id). Torch-free."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.ingest.curves import read_json_rows, read_table
from scalelab.ingest.raw import RawRun, folder_sha256

CONFIG_FILES = ("config.json", "config.yaml", "files/config.yaml")
SUMMARY_FILES = ("summary.json", "wandb-summary.json", "files/wandb-summary.json")
RUN_ID_KEYS = ("run_id", "id")


def read_export(folder: Path) -> RawRun:
    """One W&B run folder: its history, config and summary."""
    history = next(folder / h for h in ("history.csv", "history.jsonl") if (folder / h).is_file())
    files = [history]
    config: dict = {}
    for name in CONFIG_FILES:
        if (folder / name).is_file():
            config = unwrap_config(_read_dict(folder / name))
            files.append(folder / name)
            break
    summary: dict = {}
    for name in SUMMARY_FILES:
        if (folder / name).is_file():
            summary = _read_dict(folder / name)
            files.append(folder / name)
            break
    return RawRun(
        name=folder.name,
        kind="wandb",
        source=str(folder),
        sha256=folder_sha256(files, folder),
        history=read_table(history),
        config=config,
        summary=summary,
    )


def read_dr_wandb(folder: Path) -> list[RawRun]:
    """Every run of runs.jsonl with its rows of history.jsonl (matched by run id)."""
    runs_file, hist_file = folder / "runs.jsonl", folder / "history.jsonl"
    digest = folder_sha256([runs_file, hist_file], folder)
    history = pd.DataFrame(read_json_rows(hist_file))
    hkey = _id_key(history.columns, hist_file)
    out = []
    for i, run in enumerate(read_json_rows(runs_file), 1):
        rkey = _id_key(run.keys(), runs_file, f" (line {i})")
        rid = str(run[rkey])
        rows = history[history[hkey].astype(str) == rid].drop(columns=[hkey]).dropna(axis=1, how="all")
        if rows.empty:
            raise ScalelabError(f"{hist_file}: no history rows for run {rid} of runs.jsonl: export its history too")
        config, summary = (_as_dict(run.get(k)) for k in ("config", "summary"))
        out.append(
            RawRun(
                name=rid,
                kind="dr-wandb",
                source=str(folder),
                sha256=digest,
                history=rows.reset_index(drop=True),
                config=unwrap_config(config),
                summary=summary,
            )
        )
    if not out:
        raise ScalelabError(f"{runs_file}: no runs: export the project again")
    return out


def unwrap_config(config: dict) -> dict:
    """W&B's config files store each key as {"desc": ..., "value": V}: keep V; drop W&B's own `_wandb` entry."""
    out = {}
    for k, v in config.items():
        if str(k).startswith("_wandb"):
            continue
        out[k] = v["value"] if isinstance(v, dict) and "value" in v and set(v) <= {"value", "desc"} else v
    return out


def _read_dict(path: Path) -> dict:
    if path.suffix == ".yaml":
        try:
            import yaml
        except ImportError:
            raise ScalelabError(f"{path}: W&B's config.yaml needs PyYAML: pip install 'scalelab[ingest]'") from None
    try:
        if path.suffix == ".yaml":
            d = yaml.safe_load(path.read_text(encoding="utf-8"))
        else:
            d = json.loads(path.read_text(encoding="utf-8"))
    except Exception as e:  # json and yaml raise their own error types for a damaged file
        raise ScalelabError(f"{path}: not readable ({type(e).__name__}): export it again") from None
    if not isinstance(d, dict):
        raise ScalelabError(f"{path}: expected a mapping of keys to values, got {type(d).__name__}")
    return d


def _as_dict(v) -> dict:
    """A run's config or summary as dr-wandb writes it: an object, or the object as a JSON string."""
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except json.JSONDecodeError:
            return {}
    return v if isinstance(v, dict) else {}


def _id_key(keys, path: Path, where: str = "") -> str:
    for k in RUN_ID_KEYS:
        if k in keys:
            return k
    raise ScalelabError(f"{path}{where}: no run id ({' or '.join(RUN_ID_KEYS)}): each row must name its run")
