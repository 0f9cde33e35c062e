"""TensorBoard event folders, read with tbparse (tensorboard's own event reader underneath): every folder that
holds event files is one run, its scalars pivoted to one row per logged step. Torch-free.

A run's subfolder named cooldown-BUDGET (`scalelab run --tensorboard` writes one per WSD cooldown branch, BUDGET
in tokens) is no run of its own: it is that run's branch, read as a curve of its own (TbRun.branches) whose
points are the run's rows at that budget."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.ingest.raw import RawRun, folder_sha256

TB_PREFIX = "events.out.tfevents."
BRANCH = re.compile(r"^cooldown-(?P<budget>\d+)$")  # scalelab.run.train.TB_BRANCH


@dataclass
class Branch:
    """A WSD cooldown branch of a run: its budget in tokens and its own logged scalars."""

    budget: int
    run: RawRun


@dataclass
class TbRun(RawRun):
    """A run's event folder, with the cooldown branches logged under it (budget order)."""

    branches: list[Branch] = field(default_factory=list)


def read_folder(root: Path) -> list[RawRun]:
    """One RawRun per folder under root (root included) that holds event files; [] when none does. A folder
    cooldown-BUDGET directly under a run's folder is that run's branch, not a run."""
    by_dir: dict[Path, list[Path]] = {}
    for f in sorted(root.rglob(f"{TB_PREFIX}*")):
        if f.is_file():
            by_dir.setdefault(f.parent, []).append(f)
    branches: dict[Path, dict[int, list[Path]]] = {}
    for d in list(by_dir):
        m = BRANCH.match(d.name)
        if m and d != root and d.parent in by_dir:
            branches.setdefault(d.parent, {})[int(m["budget"])] = by_dir.pop(d)
    return [read_run(d, files, branches.get(d, {})) for d, files in sorted(by_dir.items())]


def read_run(folder: Path, files: list[Path], branches: dict[int, list[Path]] | None = None) -> TbRun:
    """The scalars of one run's event files (a restarted run writes several: the last value of a step wins),
    and of each of its cooldown branches' (budget: files); the digest covers every file read."""
    if BRANCH.match(folder.name) and any(folder.parent.glob(f"{TB_PREFIX}*")):
        raise ScalelabError(
            f"{folder}: the log of a WSD cooldown branch of run {folder.parent.name}, not a run: ingest the run's "
            f"folder {folder.parent} (its branches come with it)"
        )
    branches = branches or {}
    every = files + [f for b in sorted(branches) for f in branches[b]]
    run = TbRun(
        name=folder.name,
        kind="tensorboard",
        source=str(folder),
        sha256=folder_sha256(every, folder),
        history=_history(folder, files),
    )
    for b in sorted(branches):
        d = branches[b][0].parent
        raw = RawRun(
            name=f"{folder.name}/{d.name}",
            kind="tensorboard",
            source=str(d),
            sha256=folder_sha256(branches[b], d),
            history=_history(d, branches[b]),
        )
        run.branches.append(Branch(b, raw))
    return run


def _history(folder: Path, files: list[Path]) -> pd.DataFrame:
    """Event files' scalars, one row per step (the last value of a step wins), one column per tag."""
    frames = [_scalars(f) for f in files]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["step", "tag", "value"])
    if df.empty:
        raise ScalelabError(
            f"{folder}: its TensorBoard event files hold no scalars: log the loss with add_scalar, or point at "
            "another folder"
        )
    wide = df.pivot_table(index="step", columns="tag", values="value", aggfunc="last").reset_index()
    wide.columns.name = None
    return wide


def _scalars(path: Path) -> pd.DataFrame:
    try:
        from tbparse import SummaryReader
    except ImportError:
        raise ScalelabError(
            "reading TensorBoard events needs tbparse and tensorboard: pip install 'scalelab[ingest]'"
        ) from None
    with warnings.catch_warnings():  # tbparse's own pandas deprecations are not the user's to act on
        warnings.simplefilter("ignore")
        df = SummaryReader(str(path), pivot=False).scalars
    return df[["step", "tag", "value"]] if not df.empty else pd.DataFrame(columns=["step", "tag", "value"])
