"""A nanoGPT-style run trained for real in the test (its own loop: random windows of a byte corpus, AdamW, an
eval every few iters) and logged to TensorBoard under nanoGPT's names (`train/loss`, `val/loss` by iter), then
ingested: the losses come back as logged, at tokens = iter x batch x block size, and params and FLOPs are those of
the model it trained (every tensor counted from the module, FLOPs by torch's FlopCounterMode)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingest import cli
from scalelab import flops, store
from scalelab.config import ModelConfig

pytest.importorskip("tbparse")
torch = pytest.importorskip("torch")

CORPUS = Path(__file__).resolve().parents[1] / "grids" / "corpus.txt"
CFG = ModelConfig(d_model=32, n_layers=2, n_heads=2, seq_len=32, vocab_size=256)
MODEL = "d_model=32,n_layers=2,n_heads=2,seq_len=32,vocab_size=256"
BATCH, ITERS, EVAL_EVERY = 4, 40, 10


def _train_and_log(folder: Path):
    """Train CFG's GPT for ITERS iters, logging as nanoGPT does; the val losses logged, by iter, and the model."""
    from torch.utils.tensorboard import SummaryWriter

    from scalelab.model.gpt import GPT

    torch.manual_seed(0)
    data = torch.tensor(list(CORPUS.read_bytes()), dtype=torch.long)
    train, val = data[: int(0.9 * len(data))], data[int(0.9 * len(data)) :]
    T = CFG.seq_len

    def get_batch(split, gen):
        ix = torch.randint(len(split) - T - 1, (BATCH,), generator=gen)
        return torch.stack([split[i : i + T] for i in ix]), torch.stack([split[i + 1 : i + 1 + T] for i in ix])

    model = GPT(CFG)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    gen, writer, logged = torch.Generator().manual_seed(0), SummaryWriter(str(folder)), {}
    for it in range(1, ITERS + 1):
        x, y = get_batch(train, gen)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        writer.add_scalar("train/loss", loss.item(), it)
        if it % EVAL_EVERY == 0:
            model.eval()
            with torch.no_grad():
                vx, vy = get_batch(val, torch.Generator().manual_seed(1))
                logged[it] = model(vx, vy)[1].item()
            model.train()
            writer.add_scalar("val/loss", logged[it], it)
    writer.close()
    return model, logged


def test_a_nanogpt_style_run_trained_here_comes_back_as_the_model_it_trained(tmp_path):
    from torch.utils.flop_counter import FlopCounterMode

    model, logged = _train_and_log(tmp_path / "tb" / "nano-run")
    assert logged[ITERS] < logged[EVAL_EVERY]  # it learned
    r = cli("ingest", tmp_path / "tb", "--model", MODEL, "--batch-size", BATCH, "--loss-key", "val/loss",
            "--step-key", "step", "--out", tmp_path / "runs")  # fmt: skip
    assert r.exit_code == 0, r.output
    df = store.read_runs(str(tmp_path / "runs")).sort_values("step")
    assert df["step"].tolist() == sorted(logged)
    np.testing.assert_allclose(df["val_loss"], [logged[s] for s in sorted(logged)], rtol=1e-6)  # float32 events
    assert df["tokens"].tolist() == [s * BATCH * CFG.seq_len for s in sorted(logged)]
    # params: every tensor of the trained module; FLOPs: the forward's matmuls as torch counts them, x 3 for a step
    assert (df["params"] == sum(p.numel() for p in model.parameters())).all()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    idx = torch.zeros(1, CFG.seq_len, dtype=torch.long)
    # the math SDPA backend: two full T x T bmm's the counter sees (it counts the CPU flash kernel as 0)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(idx)
    assert flops.flops_per_token(CFG) == 3 * counter.get_total_flops() / CFG.seq_len
    np.testing.assert_allclose(df["flops"], [flops.train_flops(CFG, t) for t in df["tokens"]], rtol=1e-12)
    assert df["final"].tolist() == [False] * (len(logged) - 1) + [True]
