"""MLflow file stores (an `mlruns/` folder), read through mlflow's own client (MlflowClient with a file: tracking
URI; search_experiments, search_runs, get_metric_history), never by parsing the folder: one RawRun per active
run, its metric histories joined on MLflow's step, its params as config, its latest metrics as summary.

mlflow (mlflow-skinny suffices) is the optional extra `scalelab[mlflow]`. Torch-free.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.ingest.raw import RawRun, folder_sha256

INSTALL = "pip install 'scalelab[mlflow]'"
STEP_COLUMN = "step"  # MLflow's own step of each metric value; "mlflow_step" when a metric is itself named "step"
TRASH = ".trash"  # every file store holds it (mlflow creates it with the store)
PAGE = 1000


def is_store(p: Path) -> bool:
    """Whether folder p is an MLflow file store: named mlruns, or holding the store's .trash folder."""
    return p.is_dir() and (p.name == "mlruns" or (p / TRASH).is_dir())


def store_of(p: Path) -> tuple[Path, str, str] | None:
    """(store, experiment id, run id) when p is an experiment folder or a run folder of a file store (the ids
    are the folder names the store gives them; "" for all), else None."""
    if not (p / "meta.yaml").is_file():
        return None
    if is_store(p.parent):
        return p.parent, p.name, ""
    if is_store(p.parent.parent):
        return p.parent.parent, p.parent.name, p.name
    return None


def read_store(root: Path, experiment_id: str = "", run_id: str = "") -> list[RawRun]:
    """Every active run of the store at root (of one experiment, or one run, when given)."""
    if not any(e.name != TRASH for e in root.iterdir()):  # checked first: mlflow would create files in it
        raise ScalelabError(f"{root}: an empty MLflow store (no experiments): point at the mlruns folder mlflow wrote")
    client, mlflow = _client(root)
    active = mlflow.entities.ViewType.ACTIVE_ONLY
    with _file_store_allowed() as complaints:
        try:
            if experiment_id:  # that experiment alone: the rest of the store is not read
                exps = [e for e in [client.get_experiment(experiment_id)] if e.lifecycle_stage == "active"]
            else:
                exps = _all(lambda tok: client.search_experiments(view_type=active, page_token=tok))
            runs = _runs(client, active, [e.experiment_id for e in exps]) if exps else []
            if run_id:
                runs = [r for r in runs if r.info.run_id == run_id]
            raws = [_run(client, root, r) for r in runs]
        except mlflow.exceptions.MlflowException as e:
            complaints.append((str(e).strip().splitlines() or [type(e).__name__])[0])
            raws = []
    if complaints:  # mlflow skips what it cannot read, with a warning: refused, so that no run goes missing unseen
        raise ScalelabError(
            f"{root}: mlflow could not read all of the store ({complaints[0]}): repair or move away what it names, "
            "or point at one experiment's folder"
        )
    if not raws:
        names = ", ".join(sorted(e.name for e in exps)) or "none"
        raise ScalelabError(
            f"{root}: no MLflow runs (experiments: {names}): log runs with mlflow.start_run, or point at the "
            "mlruns folder that holds them"
        )
    return raws


def _runs(client: Any, active: Any, experiment_ids: list[str]) -> list:
    """The experiments' active runs, oldest first."""
    return _all(
        lambda tok: client.search_runs(
            experiment_ids,
            run_view_type=active,
            max_results=PAGE,
            order_by=["attributes.start_time ASC"],
            page_token=tok,
        )
    )


def _run(client: Any, root: Path, run: Any) -> RawRun:
    info, data = run.info, run.data
    folder = root / info.experiment_id / info.run_id
    source = folder if folder.is_dir() else root
    keys = sorted(data.metrics)
    if not keys:
        raise ScalelabError(
            f"run {info.run_id} ({source}): logged no metrics (params: {', '.join(sorted(data.params)) or 'none'}): "
            "log the loss with mlflow.log_metric(key, value, step=...), or leave the run out"
        )
    step_col = "mlflow_step" if STEP_COLUMN in keys else STEP_COLUMN
    values: dict[int, dict[str, float]] = {}
    histories = {}
    for k in keys:
        # a step logged twice (a restarted run) keeps its latest value, as the other sources do
        hist = sorted(client.get_metric_history(info.run_id, k), key=lambda m: (m.step, m.timestamp))
        histories[k] = [(m.step, m.timestamp, m.value) for m in hist]
        for m in hist:
            values.setdefault(int(m.step), {})[k] = float(m.value)
    history = pd.DataFrame([{step_col: s, **v} for s, v in sorted(values.items())])
    return RawRun(
        name=info.run_id,
        kind="mlflow",
        source=str(source),
        sha256=_digest(folder, dict(params=data.params, metrics=histories)),
        history=history,
        config=dict(data.params),
        summary=dict(data.metrics),
    )


def _digest(folder: Path, read: dict) -> str:
    """The run folder's files, artifacts left out (mlflow reads none of them for this), as the other folder
    sources are digested; the records read themselves where the store lays runs out otherwise."""
    files = [f for f in folder.rglob("*") if f.is_file() and "artifacts" not in f.relative_to(folder).parts]
    if files:
        return folder_sha256(files, folder)
    return hashlib.sha256(json.dumps(read, sort_keys=True, default=str).encode()).hexdigest()


def _client(root: Path) -> tuple[Any, Any]:
    """mlflow's client on the store at root, and the mlflow module (its entities and exceptions loaded)."""
    try:
        import mlflow
        import mlflow.entities
        import mlflow.exceptions
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ScalelabError(f"{root}: reading an MLflow store needs mlflow: {INSTALL}") from None
    with _file_store_allowed():
        return MlflowClient(tracking_uri=root.resolve().as_uri()), mlflow


@contextlib.contextmanager
def _file_store_allowed() -> Iterator[list[str]]:
    """Recent mlflow (3.18 here) refuses file stores unless MLFLOW_ALLOW_FILE_STORE is set: it keeps them in
    maintenance, readable, which is all this does. Its deprecation warnings are not the user's to act on here;
    its logged warnings (with tracebacks, on stderr) are collected instead, as one line each."""
    old = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    collect = _Collect()
    loggers = [logging.getLogger(), logging.getLogger("mlflow")]
    saved = [lg.handlers[:] for lg in loggers]
    for lg in loggers:
        lg.handlers = [collect]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield collect.lines
    finally:
        for lg, handlers in zip(loggers, saved):
            lg.handlers = handlers
        if old is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = old


class _Collect(logging.Handler):
    """The first line of each warning or error logged."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.getMessage().strip().splitlines() or [""])[0])


def _all(page) -> list:
    """Every item of a paged mlflow search (page(token) -> a PagedList with .token)."""
    out: list = []
    token = None
    while True:
        got = page(token)
        out.extend(got)
        token = got.token
        if not token:
            return out
