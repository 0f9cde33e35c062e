"""MLflow file stores (mlruns/), written by mlflow's own logging API (start_run, log_param, log_metric with a step)
into a tmp folder and read back through mlflow's client: scalelab's own params and FLOPs for the model the
params name, the logged losses at the logged tokens, provenance; bad inputs refused in one line, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ingest import BATCH, NANO_CONFIG, NANO_MODEL, STEPS, cli, losses, refused
from scalelab import flops, store
from scalelab.config import ModelConfig
from scalelab.ingest.raw import folder_sha256

NANO = ModelConfig(d_model=32, n_layers=2, n_heads=2, seq_len=32, vocab_size=256)
TOKENS = [s * BATCH * 32 for s in STEPS]


@pytest.fixture
def log_runs(monkeypatch):
    """log_runs(mlruns, [(params, {metric: [(step, value), ...]}), ...], experiment): the runs' ids, logged by
    mlflow itself into the file store at mlruns."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # recent mlflow keeps file stores behind this switch

    def log(root, runs, experiment="nano"):
        mlflow.set_tracking_uri(root.resolve().as_uri())
        exp = mlflow.set_experiment(experiment)
        ids = []
        for params, metrics in runs:
            with mlflow.start_run(experiment_id=exp.experiment_id) as run:
                mlflow.log_params(params)
                for key, points in metrics.items():
                    for step, value in points:
                        mlflow.log_metric(key, value, step=step)
            ids.append(run.info.run_id)
        return ids

    yield log
    mlflow.set_tracking_uri(None)


def _curve(scale=1.0, key="val_loss", tokens="tokens"):
    out = {key: list(zip(STEPS, losses(scale)))}
    if tokens:
        out[tokens] = [(s, float(t)) for s, t in zip(STEPS, TOKENS)]
    return out


def test_an_mlflow_store_model_from_each_runs_params(tmp_path, log_runs):
    mlruns = tmp_path / "mlruns"
    params = dict(d_model=32, n_layers=2, n_heads=2, seq_len=32, vocab_size=256, tokenizer="gpt2")
    nano_names = {k: v for k, v in NANO_CONFIG.items() if k != "batch_size"} | {"n_embd": 64}
    ids = log_runs(mlruns, [(params, _curve()), (nano_names, _curve(scale=0.9))])
    r = cli("ingest", mlruns, "--out", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    df = store.read_runs(str(tmp_path / "runs"))
    assert set(df["run_id"]) == set(ids)
    for run_id, cfg, scale in ((ids[0], NANO, 1.0), (ids[1], NANO.replace(d_model=64), 0.9)):
        run = df[df["run_id"] == run_id].sort_values("step")
        assert run["step"].tolist() == list(STEPS) and run["tokens"].tolist() == TOKENS
        assert np.allclose(run["val_loss"], losses(scale), rtol=1e-12)
        assert (run["params"] == flops.param_counts(cfg).params).all()
        assert np.allclose(run["flops"], [flops.train_flops(cfg, t) for t in TOKENS], rtol=1e-12)
        assert (run["d_model"] == cfg.d_model).all()
        prov = json.loads(run["config"].iloc[0])["ingest"]
        folder = next(mlruns.glob(f"*/{run_id}"))
        assert prov["format"] == "mlflow" and prov["source"] == os.path.abspath(folder)
        read = [f for f in folder.rglob("*") if f.is_file() and "artifacts" not in f.parts]
        assert prov["sha256"] == folder_sha256(read, folder)
        assert prov["mapping"]["read"] == dict(loss="val_loss", step="step", tokens="tokens", train_loss=None, lr=None)
    logged = json.loads(df[df["run_id"] == ids[0]]["config"].iloc[0])["ingest"]["logged_config"]
    assert logged == {k: str(v) for k, v in params.items()}  # MLflow keeps params as strings
    assert set(df[df["run_id"] == ids[0]]["tokenizer"]) == {"gpt2"}


def test_metric_names_mapped_by_the_options_and_a_relogged_step(tmp_path, log_runs):
    mlruns = tmp_path / "mlruns"
    metrics = _curve(key="eval/ce", tokens=None)
    metrics["eval/ce"].insert(1, (STEPS[1], 99.0))  # logged first, then again at the same step: the last wins
    metrics["seen"] = [(s, float(t)) for s, t in zip(STEPS, TOKENS)]
    (run_id,) = log_runs(mlruns, [({}, metrics)])
    out = tmp_path / "runs"
    r = cli("ingest", mlruns, "--model", NANO_MODEL, "--loss-key", "eval/ce", "--tokens-key", "seen", "--out", out)
    assert r.exit_code == 0, r.output
    df = store.read_runs(str(out)).sort_values("step")
    assert np.allclose(df["val_loss"], losses(), rtol=1e-12) and df["tokens"].tolist() == TOKENS
    prov = json.loads(df["config"].iloc[0])["ingest"]
    assert prov["mapping"]["options"]["loss_key"] == "eval/ce" and prov["mapping"]["read"]["tokens"] == "seen"
    assert prov["model_from"] == "--model"


def test_an_experiment_folder_or_a_run_folder_reads_only_its_runs(tmp_path, log_runs):
    mlruns = tmp_path / "mlruns"
    a = log_runs(mlruns, [(dict(n_embd=32, n_layer=2, n_head=2, block_size=32, vocab_size=256), _curve())] * 2, "a")
    (b,) = log_runs(mlruns, [(dict(n_embd=32, n_layer=2, n_head=2, block_size=32, vocab_size=256), _curve())], "b")
    exp_a = next(mlruns.glob(f"*/{a[0]}")).parent
    r = cli("ingest", exp_a, "--out", tmp_path / "ra")
    assert r.exit_code == 0, r.output
    assert set(store.read_runs(str(tmp_path / "ra"))["run_id"]) == set(a)
    r = cli("ingest", next(mlruns.glob(f"*/{b}")), "--out", tmp_path / "rb")
    assert r.exit_code == 0, r.output
    assert set(store.read_runs(str(tmp_path / "rb"))["run_id"]) == {b}


def test_an_empty_mlruns_folder_is_refused_and_left_as_it_was(tmp_path):
    (tmp_path / "mlruns").mkdir()
    refused(cli("ingest", tmp_path / "mlruns", "--out", tmp_path / "runs"), tmp_path / "runs", "empty MLflow store")
    assert os.listdir(tmp_path / "mlruns") == []


def test_a_store_without_runs_names_its_experiments(tmp_path, log_runs):
    mlruns = tmp_path / "mlruns"
    log_runs(mlruns, [], experiment="sweep-1")
    line = refused(cli("ingest", mlruns, "--out", tmp_path / "runs"), tmp_path / "runs", "no MLflow runs")
    assert "sweep-1" in line


def test_an_experiment_without_the_loss_metric_lists_its_metrics(tmp_path, log_runs):
    mlruns = tmp_path / "mlruns"
    ok = (dict(), _curve())
    (_, bad) = log_runs(mlruns, [ok, (dict(), {"train/ce": [(10, 3.0)], "grad_norm": [(10, 1.0)]})])
    r = cli("ingest", mlruns, "--model", NANO_MODEL, "--batch-size", BATCH, "--out", tmp_path / "runs")
    line = refused(r, tmp_path / "runs", bad, "no loss key", "--loss-key")
    assert "grad_norm" in line and "train/ce" in line  # what it did log, so the user can pick the key
    line = refused(
        cli("ingest", mlruns, "--model", NANO_MODEL, "--loss-key", "val/ce", "--out", tmp_path / "runs"),
        tmp_path / "runs",
        "no loss key 'val/ce'",
    )
    assert "val_loss" in line and "tokens" in line


def test_a_store_mlflow_cannot_read_whole_is_refused_not_read_in_part(tmp_path, log_runs):
    mlruns = tmp_path / "mlruns"
    (a,) = log_runs(mlruns, [(dict(), _curve())], "a")
    (b,) = log_runs(mlruns, [(dict(), _curve())], "b")
    exp_b = next(mlruns.glob(f"*/{b}")).parent
    (exp_b / "meta.yaml").unlink()  # mlflow skips such an experiment with a logged warning and a traceback
    # in a process of its own, so that what mlflow logs to stderr is seen as a user sees it
    cmd = [sys.executable, "-c", "from scalelab.cli import app; app()", "ingest", str(mlruns), "--model", NANO_MODEL]
    done = subprocess.run([*cmd, "--out", str(tmp_path / "runs")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    line = done.stderr.strip()
    assert "mlflow could not read all of the store" in line and exp_b.name in line, line
    assert not (tmp_path / "runs").exists()
    r = cli("ingest", next(mlruns.glob(f"*/{a}")).parent, "--model", NANO_MODEL, "--out", tmp_path / "runs")
    assert r.exit_code == 0, r.output  # the readable experiment alone still comes in
    assert set(store.read_runs(str(tmp_path / "runs"))["run_id"]) == {a}, line


def test_mlflow_not_installed_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "mlruns" / "0").mkdir(parents=True)  # a store mlflow wrote: ingest must not need mlflow to see it
    for m in ("mlflow", "mlflow.entities", "mlflow.exceptions", "mlflow.tracking"):
        monkeypatch.setitem(sys.modules, m, None)  # import mlflow now raises ImportError, as when not installed
    r = cli("ingest", tmp_path / "mlruns", "--out", tmp_path / "runs")
    refused(r, tmp_path / "runs", "pip install 'scalelab[mlflow]'")
