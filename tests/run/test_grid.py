"""Grid runner: every run once, finished runs skipped, locks respected, divergence does not stop it."""

import os

import pytest

pytest.importorskip("torch")

from grids import TINY, write_grid  # noqa: E402

from scalelab.grid import Grid  # noqa: E402
from scalelab.run.grid import run_grid  # noqa: E402
from scalelab.run.layout import lock_path, run_path  # noqa: E402
from scalelab.store import read_runs  # noqa: E402


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("SCALELAB_CACHE", str(tmp_path / "cache"))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_tiny_grid_end_to_end_then_skipped(tmp_path):
    out = str(tmp_path / "runs")
    g = Grid.load(TINY)
    sums = run_grid(g, out, device="cpu", quiet=True)
    assert [s.state for s in sums] == ["trained"] * 4
    files = sorted(os.listdir(out))
    assert [f for f in files if f.endswith(".parquet")] == sorted(os.path.basename(run_path(out, r)) for r in g.runs())
    df = read_runs(os.path.join(out, "*.parquet"))
    assert df.groupby("run_id")["final"].sum().tolist() == [2, 2, 2, 2]
    assert set(df["variant"]) == {"dense", "lowrank-31"} and (df["status"] == "ok").all()
    mtimes = {f: os.path.getmtime(os.path.join(out, f)) for f in files if f.endswith(".parquet")}
    again = run_grid(Grid.load(TINY), out, device="cpu", quiet=True)
    assert [s.state for s in again] == ["skipped"] * 4
    assert mtimes == {f: os.path.getmtime(os.path.join(out, f)) for f in mtimes}
    assert not os.listdir(os.path.join(out, ".ckpt"))  # checkpoints are removed once a run is written


def test_a_run_locked_by_another_process_is_left_alone(tmp_path):
    from filelock import FileLock

    out = str(tmp_path / "runs")
    p = write_grid(
        tmp_path,
        model="[model]\nwidths = [16, 32]\nn_layers = 2\nheads = 2\nseq_len = 32\n",
        budgets="[budgets]\ntokens = [2560]\n",
    )
    g = Grid.load(p)
    first = g.runs()[0]
    os.makedirs(os.path.dirname(lock_path(out, first)), exist_ok=True)
    with FileLock(lock_path(out, first)):
        sums = run_grid(g, out, device="cpu", quiet=True)
    assert [s.state for s in sums] == ["busy", "trained"]
    assert not os.path.exists(run_path(out, first))


def test_divergent_run_is_recorded_and_the_grid_goes_on(tmp_path):
    out = str(tmp_path / "runs")
    p = write_grid(
        tmp_path,
        model="[model]\nwidths = [16, 32]\nn_layers = 2\nheads = 2\nseq_len = 32\n",
        budgets="[budgets]\ntokens = [2560]\n",
        optimizer='[optimizer]\nlr_table = { "16" = 1e4, "32" = 3e-3 }\nbatch_size = 8\n',
    )
    sums = run_grid(Grid.load(p), out, device="cpu", quiet=True)
    assert [s.state for s in sums] == ["diverged", "trained"]
    df = read_runs(os.path.join(out, "*.parquet"))
    assert set(df[df["d_model"] == 16]["status"]) == {"diverged"}
    assert set(df[df["d_model"] == 32]["status"]) == {"ok"} and df[df["d_model"] == 32]["final"].sum() == 1
