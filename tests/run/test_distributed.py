"""One run on several processes (gloo on CPU) trains exactly like one process with the same global batch.

The reference is a plain single-process loop with no scalelab.run.distributed code in it: the whole global
batch in one forward, AdamW, grad clipping. The distributed side runs 2 real processes (torch
multiprocessing spawn, gloo) through scalelab.run.distributed: per-rank slices, micro-batch accumulation with
no_sync, DDP or FSDP2 gradient averaging, all-reduced loss.
"""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch

from scalelab.config import ModelConfig
from scalelab.errors import ScalelabError
from scalelab.run import distributed as D

CFG = dict(d_model=32, n_layers=2, n_heads=2, vocab_size=64, seq_len=16)
GLOBAL_ROWS, STEPS, LR = 8, 5, 3e-3


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1234)
    out = []
    for _ in range(STEPS):
        tok = torch.randint(0, CFG["vocab_size"], (GLOBAL_ROWS, CFG["seq_len"] + 1), generator=g)
        out.append((tok[:, :-1], tok[:, 1:]))
    return out


def _model():
    from scalelab.model.gpt import GPT

    torch.manual_seed(0)
    return GPT(ModelConfig(**CFG))


def _reference_losses() -> tuple[list[float], dict]:
    """Single process, no accumulation, nothing from scalelab.run.distributed."""
    model = _model()
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=LR, betas=(0.9, 0.95))
    losses = []
    for x, y in _batches():
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, out_dir: str, shard: bool, micro_rows: int) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    with D.process_group("cpu") as env:
        assert env.backend == "gloo" and env.world_size == world
        plan = D.plan_batch(GLOBAL_ROWS, micro_rows, env.world_size)
        model = D.wrap_model(_model(), env, shard=shard)
        opt = torch.optim.AdamW(D.unwrap(model).param_groups(0.1), lr=LR, betas=(0.9, 0.95))
        losses = []
        for x, y in _batches():
            xr, yr = D.rank_rows(x, env), D.rank_rows(y, env)
            step_loss = 0.0
            for i in range(plan.accum_steps):
                sl = slice(i * plan.micro_rows, (i + 1) * plan.micro_rows)
                with D.grad_sync(model, sync=(i == plan.accum_steps - 1)):
                    _, loss = model(xr[sl], yr[sl])
                    (loss / plan.accum_steps).backward()
                step_loss += loss.item() / plan.accum_steps
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(D.mean(step_loss, env))
        model_sd, _ = D.full_state(model, opt)
        if env.is_main:
            torch.save(model_sd, os.path.join(out_dir, "final.pt"))
            with open(os.path.join(out_dir, "losses.json"), "w") as f:
                json.dump({"losses": losses, "plan": [plan.rows_per_rank, plan.micro_rows, plan.accum_steps]}, f)
    # as scalelab.run.worker does under torchrun: no interpreter teardown, where gloo's threads can abort
    os._exit(0)


def _spawn(tmp_path, shard: bool, micro_rows: int):
    import torch.multiprocessing as mp

    mp.spawn(_rank_main, args=(2, _free_port(), str(tmp_path), shard, micro_rows), nprocs=2, join=True)
    got = json.loads((tmp_path / "losses.json").read_text())
    return got, torch.load(tmp_path / "final.pt")


def test_two_gloo_processes_match_one_process(tmp_path):
    """DDP at the model level (FSDP2 is checked end to end below, through the trainer)."""
    ref_losses, ref_state = _reference_losses()
    # 2 ranks x 2 micro-batches x 2 rows: accumulation and averaging both exercised.
    got, state = _spawn(tmp_path, shard=False, micro_rows=2)
    assert got["plan"] == [4, 2, 2]
    assert len(got["losses"]) == STEPS
    for step, (a, b) in enumerate(zip(got["losses"], ref_losses)):
        assert abs(a - b) < 1e-5, f"step {step}: 2 processes {a} vs 1 process {b}"
    # the curve must actually move, or equality would say little
    assert ref_losses[-1] < ref_losses[0] - 1e-3
    # full_state gives the unwrapped single-process layout, with the same weights
    assert set(state) == set(ref_state)
    for k in ref_state:
        torch.testing.assert_close(state[k], ref_state[k], atol=1e-5, rtol=1e-4)


def test_plan_batch_keeps_the_global_batch():
    p = D.plan_batch(global_rows=32, micro_rows=8, world_size=1)
    assert (p.rows_per_rank, p.micro_rows, p.accum_steps) == (32, 8, 4)
    p = D.plan_batch(global_rows=32, micro_rows=8, world_size=4)
    assert (p.rows_per_rank, p.micro_rows, p.accum_steps) == (8, 8, 1)
    p = D.plan_batch(global_rows=24, micro_rows=5, world_size=2)  # 12 rows per rank -> micro 4 x 3
    assert (p.rows_per_rank, p.micro_rows, p.accum_steps) == (12, 4, 3)
    for world in (1, 2, 3, 4, 8):
        for micro in (1, 3, 8):
            if 48 % world == 0:
                p = D.plan_batch(48, micro, world)
                assert p.world_size * p.accum_steps * p.micro_rows == 48
    with pytest.raises(ScalelabError, match="does not split evenly"):
        D.plan_batch(global_rows=10, micro_rows=2, world_size=4)


def test_single_process_is_a_no_op(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    env = D.init("cpu")
    assert not env.distributed and env.is_main and env.device == "cpu"
    m = torch.nn.Linear(2, 2)
    assert D.wrap_model(m, env) is m
    x = torch.arange(6).reshape(3, 2)
    assert D.rank_rows(x, env) is x
    assert D.mean(2.5, env) == 2.5
    assert D.broadcast({"a": 1}, env) == {"a": 1}
    with pytest.raises(ScalelabError, match="--shard needs several processes"):
        D.wrap_model(m, env, shard=True)


def test_rank_rows_are_a_partition():
    x = torch.arange(16).reshape(8, 2)
    parts = [D.rank_rows(x, D.DistEnv(rank=r, world_size=4)) for r in range(4)]
    assert torch.equal(torch.cat(parts), x)


def test_stop_request_is_seen(monkeypatch):
    env = D.DistEnv()
    D.clear_stop()
    assert not D.stop_requested(env)
    D.request_stop()
    assert D.stop_requested(env)
    D.clear_stop()


# ---- end to end: `scalelab.run.worker` under torchrun (2 gloo ranks) vs the in-process runner --------------
WSD_GRID = """
name = "ddp"
seeds = [0]
[data]
source = "corpus.txt"
[model]
widths = [16]
n_layers = 1
heads = 2
seq_len = 16
[[variants]]
structure = "dense"
[budgets]
tokens = [2048, 4096]
[schedule]
kind = "wsd"
[optimizer]
lr = 3e-3
batch_size = 8
micro_batch = 2
[eval]
points = 3
val_tokens = 512
"""


@pytest.fixture(scope="module")
def wsd_grid(tmp_path_factory):
    """A WSD run (trunk + one cooldown branch: exercises the branch copy under DDP/FSDP2) and its
    single-process result from the plain in-process runner."""
    from scalelab.grid import Grid
    from scalelab.run.grid import run_grid
    from scalelab.store import read_runs

    root = tmp_path_factory.mktemp("ddp")
    (root / "corpus.txt").write_text("\n".join(f"line {i} of a small corpus for {i % 7} ranks" for i in range(3000)))
    (root / "ddp.toml").write_text(WSD_GRID)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_grid(Grid.load(str(root / "ddp.toml")), str(root / "ref"), device="cpu", quiet=True)
    finally:
        torch.set_num_threads(before)
    return str(root / "ddp.toml"), read_runs(str(root / "ref"))


def test_torchrun_run_gives_the_rows_of_a_single_process_run(wsd_grid, tmp_path, shard=True):
    """torchrun, 2 gloo ranks, FSDP2 (--shard). (DDP through the trainer, as 2 submitit tasks, is
    checked in tests/run/test_executors.py's preemption test.)"""
    from scalelab.grid import Grid
    from scalelab.run import executors
    from scalelab.store import read_runs

    path, ref = wsd_grid
    (run,) = Grid.load(path).runs()
    out = str(tmp_path / "runs")
    (res,) = executors.run_local(path, [run.run_id], out, executors.cpu_slots(1, 2), nproc_per_run=2, shard=shard)
    assert res.returncode == 0, open(res.log).read()[-3000:]
    assert "torch.distributed.run" in " ".join(executors.worker_argv(path, run.run_id, out, 2))
    got = read_runs(out)
    key = ["step", "budget", "final"]
    got, ref = got.sort_values(key).reset_index(drop=True), ref.sort_values(key).reset_index(drop=True)
    assert got["final"].sum() == 2  # the trunk's end and the cooldown branch
    for c in ("run_id", "step", "tokens", "flops", "budget", "final", "status", "batch_tokens"):
        assert got[c].tolist() == ref[c].tolist(), c
    for c in ("train_loss", "val_loss", "lr"):
        diff = (got[c] - ref[c]).abs().max()
        assert diff < 1e-5, f"{c}: 2 ranks differ from 1 process by {diff}"
    note = json.loads(open(os.path.join(out, ".status", f"{run.run_id}.json")).read())
    assert note["world_size"] == 2 and note["state"] == "done"
