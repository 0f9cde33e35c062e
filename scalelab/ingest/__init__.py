"""`scalelab ingest`: runs logged elsewhere (TensorBoard, W&B exports and run folders, MLflow file stores, plain
curves) into the run store.

Every run is read and mapped before anything is written, so a bad input writes nothing; each run's file is
then written atomically (store.write_run). Params and FLOPs are scalelab's own (scalelab.flops) for the
model the run names, checked against the FLOPs the run logged. Torch-free.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional, Sequence

from scalelab import store
from scalelab.config import ModelConfig
from scalelab.errors import ScalelabError
from scalelab.fileio import unsafe_name
from scalelab.ingest import model as modellib
from scalelab.ingest.branches import with_branches
from scalelab.ingest.mapping import Mapping, curve
from scalelab.ingest.raw import RawRun
from scalelab.ingest.rows import Ingested, flops_warning, make_rows
from scalelab.ingest.sources import read_source

__all__ = ["Mapping", "Ingested", "ingest", "plan", "write"]

# a folder named as scalelab's own run files are (grid__variant__dWIDTH__RUNID) keeps its grid and run id
SCALELAB_STEM = re.compile(r"^(?P<grid>[^_].*?)__.+__d\d+__(?P<run_id>[0-9a-f]{12})$")
TOKENIZER_KEYS = ("tokenizer", "tokenizer_name")
# where each kind of source takes a run's name from (RawRun.name), i.e. what to change when it cannot be a file name
_NAME_FIX = {
    "curves": "rename the file",
    "tensorboard": "rename the folder",
    "wandb": "rename the folder",
    "dr-wandb": "change that run id in runs.jsonl and history.jsonl",
}
# a logged id (W&B offline, MLflow) is not a file's name: its history as a curves file, named safely, is
_NAME_FIX_DEFAULT = "export its history to a CSV file with a safe name and ingest that"


@dataclass
class Plan:
    runs: list[Ingested]
    out: str

    @property
    def warnings(self) -> list[str]:
        return [w for r in self.runs for w in r.warnings]


def plan(sources: Sequence[str], out: str, mapping: Mapping, model: Optional[str] = None, grid: str = "ingest"):
    """Read and map every run of `sources` (nothing written): a Plan, or a ScalelabError naming the problem."""
    if not sources:
        raise ScalelabError(
            "no sources given: pass TensorBoard folders, W&B export or run folders, MLflow mlruns or curve files"
        )
    given = modellib.parse(model) if model else None
    raws = [r for s in sources for r in read_source(str(s))]
    runs = [_one(r, mapping, given, grid) for r in raws]
    _check_unique(runs, raws)
    _check_tokenizers(runs)
    return Plan(runs, out)


def write(p: Plan) -> list[str]:
    """Write a plan's runs, one atomic Parquet file each; their paths."""
    os.makedirs(p.out, exist_ok=True)
    return [store.write_run(os.path.join(p.out, f"{r.stem}.parquet"), r.rows) for r in p.runs]


def ingest(sources: Sequence[str], out: str, mapping: Mapping, model: Optional[str] = None, grid: str = "ingest"):
    """plan, then write: (paths written, warnings)."""
    p = plan(sources, out, mapping, model, grid)
    return write(p), p.warnings


def _one(raw: RawRun, m: Mapping, given: Optional[ModelConfig], grid: str) -> Ingested:
    try:
        cfg = given or modellib.from_config(raw.config)
    except ScalelabError as e:
        raise ScalelabError(f"run {raw.name} ({raw.source}): {e}") from None
    if cfg is None:
        raise ScalelabError(
            f"run {raw.name} ({raw.source}): no model: its config names no d_model, n_layers and n_heads: pass "
            "--model d_model=...,n_layers=...,n_heads=...[,structure=lowrank,rank=...]"
        )
    c = curve(raw, m, cfg.seq_len)
    found = SCALELAB_STEM.match(raw.name)
    run_id = found["run_id"] if found else raw.name
    grid = found["grid"] if found else grid
    fix = _NAME_FIX.get(raw.kind, _NAME_FIX_DEFAULT)
    for what, name, how in (("run id", run_id, fix), ("grid name", grid, fix if found else "pass another --grid")):
        why = unsafe_name(name)
        if why:
            raise ScalelabError(f"run {raw.name} ({raw.source}): its {what} {name!r} {why}: {how}")
    tokenizer = m.tokenizer or _logged_tokenizer(raw.config) or ""
    provenance = dict(
        source=os.path.abspath(raw.source),
        sha256=raw.sha256,
        format=raw.kind,
        run=raw.name,
        mapping={"options": m.to_dict(), "read": c.keys},
        model_from="--model" if given else "the run's logged config",
        logged_flops=c.logged_flops,
        logged_config=raw.config,
    )

    notes: list[str] = []  # the trunk's and its branches' curve notes, as warnings

    def rows_of(r: RawRun, rc) -> list[dict]:
        notes.extend(rc.notes)
        return make_rows(r, rc, cfg, run_id=run_id, grid=grid, tokenizer=tokenizer, provenance=provenance)

    rows = with_branches(raw, rows_of(raw, c), m, cfg.seq_len, rows_of)  # a WSD run's cooldown branches' too
    warn = flops_warning(run_id, c.logged_flops, rows[-1]["flops"])
    return Ingested(run_id, f"{grid}__{cfg.variant}__d{cfg.d_model}__{run_id}", rows, notes + ([warn] if warn else []))


def _logged_tokenizer(config: dict) -> Optional[str]:
    for d in (config, config.get("data")):
        if isinstance(d, dict):
            for k in TOKENIZER_KEYS:
                if isinstance(d.get(k), str) and d[k].strip():
                    return d[k].strip()
    return None


def _check_unique(runs: list[Ingested], raws: list[RawRun]) -> None:
    seen: dict[str, str] = {}
    for r, raw in zip(runs, raws):
        if r.run_id in seen:
            raise ScalelabError(
                f"run id {r.run_id} comes twice (in {seen[r.run_id]} and {raw.source}): pass each run once"
            )
        seen[r.run_id] = raw.source


def _check_tokenizers(runs: list[Ingested]) -> None:
    """Losses in nats per token of different tokenizers are not comparable: one ingest, one tokenizer."""
    by: dict[str, list[str]] = {}
    for r in runs:
        if r.rows[0]["tokenizer"]:
            by.setdefault(r.rows[0]["tokenizer"], []).append(r.run_id)
    if len(by) > 1:
        listed = "; ".join(f"{t}: {', '.join(ids[:3])}{' ...' if len(ids) > 3 else ''}" for t, ids in by.items())
        raise ScalelabError(
            f"runs with different tokenizers in one ingest ({listed}): their losses are not comparable; ingest "
            "each tokenizer's runs into its own --out folder"
        )
