"""TensorBoard event folders, read with tbparse (tensorboard's own event reader underneath): every folder that
holds event files is one run, its scalars pivoted to one row per logged step. Torch-free."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.ingest.raw import RawRun, folder_sha256

TB_PREFIX = "events.out.tfevents."


def read_folder(root: Path) -> list[RawRun]:
    """One RawRun per folder under root (root included) that holds event files; [] when none does."""
    by_dir: dict[Path, list[Path]] = {}
    for f in sorted(root.rglob(f"{TB_PREFIX}*")):
        if f.is_file():
            by_dir.setdefault(f.parent, []).append(f)
    return [read_run(d, files) for d, files in sorted(by_dir.items())]


def read_run(folder: Path, files: list[Path]) -> RawRun:
    """The scalars of one run's event files (a restarted run writes several: the last value of a step wins)."""
    frames = [_scalars(f) for f in files]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["step", "tag", "value"])
    if df.empty:
        raise ScalelabError(
            f"{folder}: its TensorBoard event files hold no scalars: log the loss with add_scalar, or point at "
            "another folder"
        )
    wide = df.pivot_table(index="step", columns="tag", values="value", aggfunc="last").reset_index()
    wide.columns.name = None
    return RawRun(
        name=folder.name,
        kind="tensorboard",
        source=str(folder),
        sha256=folder_sha256(files, folder),
        history=wide,
    )


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
