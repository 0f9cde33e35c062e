"""A run as its logger wrote it (RawRun), before any metric is mapped. Torch-free."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from scalelab.fileio import sha256_file


@dataclass
class RawRun:
    """One run as logged: `history` one row per logged step (columns = the logged keys), `config` and
    `summary` the run's logged dictionaries (empty when the format has none)."""

    name: str  # the run's name in its source (folder, W&B id): the default run id
    kind: str  # tensorboard | wandb | dr-wandb | curves
    source: str  # the path it was read from
    sha256: str  # of that file, or of the folder's files (folder_sha256)
    history: pd.DataFrame
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


def folder_sha256(files: list[Path], root: Path) -> str:
    """One digest of several files: sha256 over each file's path relative to root and its own sha256, sorted,
    so the same files give the same digest wherever the folder lies."""
    if len(files) == 1:
        return sha256_file(files[0])
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f"{os.path.relpath(f, root)}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()
