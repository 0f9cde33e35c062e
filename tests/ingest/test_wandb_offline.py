"""W&B run folders as wandb leaves them (wandb/offline-run-*/run-ID.wandb), written by wandb itself in offline
mode (nothing sent) and read back through the installed wandb's reader: the logged losses at the logged tokens,
the model from the logged config (init's and later config.update's), provenance; bad inputs in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ingest import BATCH, NANO_MODEL, STEPS, cli, losses, refused
from scalelab import flops, store
from scalelab.config import ModelConfig
from scalelab.fileio import sha256_file

NANO = ModelConfig(d_model=32, n_layers=2, n_heads=2, seq_len=32, vocab_size=256)
TOKENS = [s * BATCH * 32 for s in STEPS]

# Two runs: scalelab's config names with the loss, tokens (and a nested dict) at STEPS; nanoGPT's names under
# "model", n_head only in a later config.update, eval/loss with a train/loss row between the eval rows.
WRITER = textwrap.dedent(
    """
    import json, sys
    import wandb

    root, steps, tokens, la, lb = json.loads(sys.argv[1])
    ids = []
    run = wandb.init(project="p", dir=root, mode="offline",
                     config=dict(d_model=32, n_layers=2, n_heads=2, seq_len=32, vocab_size=256, tokenizer="gpt2"))
    for s, t, v in zip(steps, tokens, la):
        run.log({"val_loss": v, "tokens": t, "opt": {"lr": 0.1}}, step=s)
    ids.append(run.id)
    run.finish()
    run = wandb.init(project="p", dir=root, mode="offline",
                     config={"model": dict(n_embd=64, n_layer=2, block_size=32, vocab_size=256)})
    run.config.update({"model": dict(n_embd=64, n_layer=2, n_head=2, block_size=32, vocab_size=256)},
                      allow_val_change=True)
    for s, v in zip(steps, lb):
        run.log({"train/loss": v + 0.5}, step=s - 1)
        run.log({"eval/loss": v}, step=s)
    ids.append(run.id)
    run.finish()
    print(json.dumps(ids))
    """
)


@pytest.fixture(scope="module")
def offline_runs(tmp_path_factory):
    """(the wandb/ folder, the two runs' ids), written by wandb in offline mode in a process of its own."""
    pytest.importorskip("wandb")
    root = tmp_path_factory.mktemp("wb")
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", WANDB_ERROR_REPORTING="false")
    args = json.dumps([str(root), list(STEPS), TOKENS, losses(), losses(0.9)])
    done = subprocess.run(
        [sys.executable, "-c", WRITER, args], env=env, capture_output=True, text=True, timeout=300, cwd=root
    )
    assert done.returncode == 0, done.stderr
    ids = json.loads(done.stdout.strip().splitlines()[-1])
    return root / "wandb", ids


def test_a_wandb_folder_of_offline_runs(tmp_path, offline_runs):
    wandb_dir, (a, b) = offline_runs
    assert (wandb_dir / "latest-run").is_symlink()  # wandb's link to the last run: that run must not come twice
    r = cli("ingest", wandb_dir, "--batch-size", BATCH, "--out", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    df = store.read_runs(str(tmp_path / "runs"))
    assert sorted(set(df["run_id"])) == sorted([a, b]) and len(df) == 2 * len(STEPS)
    ra = df[df["run_id"] == a].sort_values("step")
    assert ra["step"].tolist() == list(STEPS) and ra["tokens"].tolist() == TOKENS
    assert np.allclose(ra["val_loss"], losses(), rtol=1e-12)
    assert (ra["params"] == flops.param_counts(NANO).params).all() and set(ra["tokenizer"]) == {"gpt2"}
    rb = df[df["run_id"] == b].sort_values("step")
    wide = NANO.replace(d_model=64)  # n_head came only in config.update
    assert (rb["params"] == flops.param_counts(wide).params).all()
    assert np.allclose(rb["val_loss"], losses(0.9), rtol=1e-12) and rb["tokens"].tolist() == TOKENS
    assert np.allclose(rb["flops"], [flops.train_flops(wide, t) for t in TOKENS], rtol=1e-12)
    (log,) = wandb_dir.glob(f"offline-run-*-{a}/run-{a}.wandb")
    prov = json.loads(ra["config"].iloc[0])["ingest"]
    assert prov["format"] == "wandb-offline" and prov["sha256"] == sha256_file(log)
    assert prov["source"] == os.path.abspath(log.parent) and prov["mapping"]["read"]["loss"] == "val_loss"
    assert prov["logged_config"]["d_model"] == 32 and "_wandb" not in prov["logged_config"]
    provb = json.loads(rb["config"].iloc[0])["ingest"]
    assert provb["mapping"]["read"]["loss"] == "eval/loss" and provb["mapping"]["read"]["train_loss"] == "train/loss"


def test_a_run_folder_or_its_log_file(tmp_path, offline_runs):
    wandb_dir, (a, _) = offline_runs
    (log,) = wandb_dir.glob(f"offline-run-*-{a}/run-{a}.wandb")
    for i, src in enumerate((log.parent, log)):
        r = cli("ingest", src, "--out", tmp_path / f"runs{i}")
        assert r.exit_code == 0, r.output
        assert set(store.read_runs(str(tmp_path / f"runs{i}"))["run_id"]) == {a}


def test_a_missing_loss_key_lists_what_the_run_logged(tmp_path, offline_runs):
    wandb_dir, (a, _) = offline_runs
    (folder,) = wandb_dir.glob(f"offline-run-*-{a}")
    r = cli("ingest", folder, "--loss-key", "val/ce", "--out", tmp_path / "runs")
    line = refused(r, tmp_path / "runs", a, "no loss key 'val/ce'", "--loss-key")
    assert "val_loss" in line and "tokens" in line and "_step" in line
    assert "opt.lr" in line  # a nested dict logged, under W&B's dotted name


def test_a_damaged_log_is_refused_and_an_old_wandb_named(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    run = tmp_path / "wandb" / "offline-run-20260101_000000-abcd1234"
    run.mkdir(parents=True)
    (run / "run-abcd1234.wandb").write_bytes(b"not a transaction log")
    refused(cli("ingest", tmp_path / "wandb", "--out", tmp_path / "runs"), tmp_path / "runs", "not a readable .wandb")
    # a wandb before 0.31 fails on any log (it has no `leet inspect --json`): the error says to upgrade
    monkeypatch.setattr("scalelab.ingest.wandb_offline._version", lambda: (0, 17))
    r = cli("ingest", tmp_path / "wandb", "--out", tmp_path / "runs")
    refused(r, tmp_path / "runs", "wandb 0.17 has no .wandb reader", "wandb>=0.31", "wandb sync")


def test_wandb_not_installed_says_what_to_do(tmp_path, monkeypatch):
    run = tmp_path / "offline-run-20260101_000000-abcd1234"
    run.mkdir()
    (run / "run-abcd1234.wandb").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "wandb", None)  # find_spec("wandb") is None, as when not installed
    r = cli("ingest", run, "--model", NANO_MODEL, "--out", tmp_path / "runs")
    refused(r, tmp_path / "runs", "pip install 'scalelab[wandb]'", "wandb sync")
