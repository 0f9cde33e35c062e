"""Bad inputs to `scalelab ingest`: one line naming the problem and the fix, exit 2, no traceback, nothing
written (every run is read and mapped before any file is written)."""

from __future__ import annotations

import pandas as pd
import pytest

from ingest import BATCH, NANO_MODEL, STEPS, cli, refused, write_tb, write_wandb_export

pytest.importorskip("tbparse")


def test_an_empty_event_directory(tmp_path):
    (tmp_path / "tb" / "run0").mkdir(parents=True)
    refused(cli("ingest", tmp_path / "tb" / "run0", "--out", tmp_path / "runs"), tmp_path / "runs", "no runs found")


def test_event_files_without_scalars(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    SummaryWriter(str(tmp_path / "tb" / "quiet")).close()  # an event file with no scalars in it
    r = cli("ingest", tmp_path / "tb", "--model", NANO_MODEL, "--out", tmp_path / "runs")
    refused(r, tmp_path / "runs", "quiet", "no scalars")


def test_a_history_without_the_loss_key_lists_the_keys_it_has(tmp_path):
    hist = pd.DataFrame({"_step": list(STEPS), "train/acc": 0.5, "tokens": [s * 128 for s in STEPS]})
    write_wandb_export(tmp_path / "noloss", history=hist)
    out = tmp_path / "runs"
    line = refused(cli("ingest", tmp_path / "noloss", "--out", out), out, "run noloss", "no loss key", "--loss-key")
    assert "_step, train/acc, tokens" in line
    r = cli("ingest", tmp_path / "noloss", "--loss-key", "eval/ppl", "--out", out)
    assert "'eval/ppl'" in refused(r, out, "train/acc")


def test_a_model_description_that_cannot_be_built(tmp_path):
    write_tb(tmp_path / "tb")
    out = tmp_path / "runs"
    bad = "d_model=30,n_layers=2,n_heads=4"  # head_dim 7.5: not a GPT scalelab can build
    refused(cli("ingest", tmp_path / "tb", "--model", bad, "--out", out), out, "--model", "cannot be built")
    refused(cli("ingest", tmp_path / "tb", "--model", "d_model=32,widht=3", "--out", out), out, "unknown key", "widht")
    refused(cli("ingest", tmp_path / "tb", "--model", "d_model=3x", "--out", out), out, "'3x' is not a whole number")
    write_wandb_export(tmp_path / "odd", config={"n_embd": 32, "n_layer": 2, "n_head": 3, "block_size": 32})
    r = cli("ingest", tmp_path / "odd", "--batch-size", BATCH, "--out", out)
    refused(r, out, "run odd", "logged config cannot be built", "n_heads=3", "--model")


def test_mixed_tokenizers_in_one_ingest_write_nothing(tmp_path):
    write_wandb_export(tmp_path / "a", config={"tokenizer": "gpt2"})
    write_wandb_export(tmp_path / "b", config={"tokenizer": "llama"})
    r = cli("ingest", tmp_path / "a", tmp_path / "b", "--model", NANO_MODEL, "--batch-size", BATCH,
            "--out", tmp_path / "runs")  # fmt: skip
    refused(r, tmp_path / "runs", "different tokenizers", "gpt2: a", "llama: b")


def test_a_missing_source_and_a_run_without_tokens(tmp_path):
    out = tmp_path / "runs"
    refused(cli("ingest", tmp_path / "nowhere", "--out", out), out, "no such file or folder")
    write_tb(tmp_path / "tb", tokens=False)
    refused(cli("ingest", tmp_path / "tb", "--model", NANO_MODEL, "--out", out), out, "--tokens-key", "--batch-size")
