"""Tables of history rows: a plain CSV / TSV / JSON lines file of curves, and the table readers the W&B
exports share. Torch-free."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.fileio import sha256_file
from scalelab.ingest.raw import RawRun


def read_table(path: Path) -> pd.DataFrame:
    """A CSV/TSV (header row) or JSON lines / JSON list of row objects, as a frame of its rows."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", encoding="utf-8-sig")
        else:
            df = pd.DataFrame(read_json_rows(path))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise ScalelabError(f"{path}: not a readable {suffix[1:].upper()} file ({type(e).__name__})") from None
    # pandas' to_csv writes the index as a first unnamed column: not a logged key
    df = df.drop(columns=[c for c in df.columns if str(c).startswith("Unnamed: ")])
    if df.empty:
        raise ScalelabError(f"{path}: no rows: export the run's history again")
    return df


def read_json_rows(path: Path) -> list[dict]:
    """JSON lines (one object a line, blank lines skipped) or one JSON list of objects."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        rows = json.loads(text)
    else:
        rows = []
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise ScalelabError(f"{path}: line {i} is not JSON: fix or remove it") from None
    bad = [i for i, r in enumerate(rows, 1) if not isinstance(r, dict)]
    if bad:
        raise ScalelabError(f"{path}: row {bad[0]} is not a JSON object: write one {{key: value}} object per row")
    return rows


def read_curves(path: Path) -> RawRun:
    """A plain curves file: one run, its rows the logged points."""
    return RawRun(name=path.stem, kind="curves", source=str(path), sha256=sha256_file(path), history=read_table(path))
