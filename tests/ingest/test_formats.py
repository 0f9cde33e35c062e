"""Each format ingest reads lands in the run store with scalelab's own params and FLOPs for the run's model, its
logged losses at the logged tokens, and its provenance (source, sha256, mapping)."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from ingest import BATCH, NANO_MODEL, STEPS, cli, losses, write_dr_wandb, write_tb, write_wandb_export
from scalelab import flops, store
from scalelab.config import ModelConfig, StructureConfig
from scalelab.fileio import sha256_file

pytest.importorskip("tbparse")

NANO = ModelConfig(d_model=32, n_layers=2, n_heads=2, seq_len=32, vocab_size=256)
TOKENS = [s * BATCH * 32 for s in STEPS]


def _ingested(out) -> pd.DataFrame:
    return store.read_runs(str(out))  # full schema and value checks


def _check_run(df: pd.DataFrame, cfg: ModelConfig, scale: float = 1.0) -> None:
    df = df.sort_values("step")
    counts = flops.param_counts(cfg)
    assert (df["params"] == counts.params).all() and (df["params_nonembed"] == counts.params_nonembed).all()
    assert df["tokens"].tolist() == TOKENS
    assert np.allclose(df["flops"], [flops.train_flops(cfg, t) for t in TOKENS], rtol=1e-12)
    assert np.allclose(df["val_loss"], losses(scale), rtol=1e-6)
    assert df["final"].tolist() == [False] * (len(STEPS) - 1) + [True]
    assert (df["variant"] == cfg.variant).all() and (df["status"] == "ok").all()


def test_tensorboard_events_by_summary_writer(tmp_path):
    src = write_tb(tmp_path / "tb" / "nano-run")
    r = cli("ingest", tmp_path / "tb", "--model", NANO_MODEL, "--out", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    df = _ingested(tmp_path / "runs")
    _check_run(df, NANO)
    assert set(df["run_id"]) == {"nano-run"} and df["step"].tolist() == list(STEPS)
    prov = json.loads(df["config"].iloc[0])["ingest"]
    (event,) = os.listdir(src)
    assert prov["sha256"] == sha256_file(os.path.join(src, event))
    assert prov["source"] == os.path.abspath(src) and prov["format"] == "tensorboard"
    assert prov["mapping"]["read"]["loss"] == "val_loss" and prov["mapping"]["read"]["tokens"] == "tokens"


def test_tokens_from_step_times_batch_and_a_structured_model(tmp_path):
    write_tb(tmp_path / "tb", tags=("eval/loss",), tokens=False)
    model = NANO_MODEL + ",structure=lowrank,rank=8"
    r = cli("ingest", tmp_path / "tb", "--model", model, "--batch-size", BATCH, "--out", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    cfg = NANO.replace(ffn=StructureConfig("lowrank", rank=8))
    df = _ingested(tmp_path / "runs")
    _check_run(df, cfg)
    assert df["rank"].tolist() == [8] * len(STEPS) and (df["batch_tokens"] == BATCH * 32).all()


@pytest.mark.parametrize("jsonl", [False, True], ids=["history.csv", "history.jsonl"])
def test_wandb_export_folder_model_from_its_logged_config(tmp_path, jsonl):
    hist = pd.DataFrame({"_step": list(STEPS), "val/loss": losses(), "tokens": TOKENS})
    write_wandb_export(tmp_path / "wandb" / "abc123xy", history=hist, jsonl=jsonl, config=dict(tokenizer="gpt2"))
    r = cli("ingest", tmp_path / "wandb" / "abc123xy", "--model", NANO_MODEL, "--out", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    df = _ingested(tmp_path / "runs")
    _check_run(df, NANO)
    assert set(df["run_id"]) == {"abc123xy"} and set(df["tokenizer"]) == {"gpt2"}
    prov = json.loads(df["config"].iloc[0])["ingest"]
    assert prov["logged_config"] == {"tokenizer": "gpt2"}  # W&B's {desc, value} unwrapped, _wandb dropped


def test_nanogpt_names_in_the_logged_config_give_the_model(tmp_path):
    write_wandb_export(tmp_path / "run1")  # config: n_embd, n_layer, n_head, block_size; history: _step, val/loss
    r = cli("ingest", tmp_path / "run1", "--batch-size", BATCH, "--out", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    df = _ingested(tmp_path / "runs")
    _check_run(df, NANO)
    assert json.loads(df["config"].iloc[0])["ingest"]["model_from"] == "the run's logged config"


def test_dr_wandb_runs_and_history_jsonl(tmp_path):
    wide = {"n_embd": 64, "n_layer": 2, "n_head": 2, "block_size": 32, "vocab_size": 256}
    src = write_dr_wandb(tmp_path / "proj", {"r1": (dict(wide, n_embd=32), 1.0), "r2": (wide, 0.9)})
    r = cli("ingest", src, "--tokens-key", "train/tokens", "--out", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    df = _ingested(tmp_path / "runs")
    assert sorted(set(df["run_id"])) == ["r1", "r2"]
    _check_run(df[df["run_id"] == "r1"], NANO)
    _check_run(df[df["run_id"] == "r2"], NANO.replace(d_model=64), scale=0.9)


def test_plain_curves_csv(tmp_path):
    path = tmp_path / "curves.csv"
    pd.DataFrame({"step": list(STEPS), "tokens": TOKENS, "loss": losses()}).to_csv(path, index=False)
    r = cli("ingest", path, "--model", NANO_MODEL, "--out", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    df = _ingested(tmp_path / "runs")
    _check_run(df, NANO)
    assert json.loads(df["config"].iloc[0])["ingest"]["sha256"] == sha256_file(path)


def test_a_run_whose_loss_went_non_finite_is_diverged_and_left_out_of_fits(tmp_path):
    path = tmp_path / "blowup.jsonl"
    rows = [{"step": s, "tokens": t, "loss": v} for s, t, v in zip(STEPS, TOKENS, losses())]
    rows[-1]["loss"] = float("inf")
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")  # json writes Infinity, as trainers' logs do
    r = cli("ingest", path, "--model", NANO_MODEL, "--out", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    df = _ingested(tmp_path / "runs")
    assert (df["status"] == "diverged").all() and not df["final"].any()
