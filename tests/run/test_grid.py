"""Grid runner: every run once, finished runs skipped, locks respected, divergence does not stop it."""

import json
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


# ---- issue 12: data repeats told at grid load, from the corpus size alone ------------------------------
def test_unique_train_tokens_are_told_without_tokenizing_and_match_the_loaded_corpus(tmp_path):
    """The grid-load check counts the corpus's training tokens from file sizes (byte tokenizer: one file
    split by position, a folder split by hashed names) or a .bin's size: the same number load_corpus gives."""
    import numpy as np

    from scalelab.data import load_corpus
    from scalelab.run.grid import repeat_warning, unique_train_tokens

    folder = tmp_path / "docs"
    folder.mkdir()
    text = open(os.path.join(os.path.dirname(TINY), "corpus.txt"), "rb").read()
    for i in range(12):
        (folder / f"doc{i}.txt").write_bytes(text[i * 3000 : (i + 1) * 3000])
    tok = tmp_path / "tok"
    tok.mkdir()
    np.arange(5000, dtype=np.uint16).tofile(tok / "train.bin")
    np.arange(700, dtype=np.uint16).tofile(tok / "val.bin")
    for source in (os.path.join(os.path.dirname(TINY), "corpus.txt"), str(folder), str(tok)):
        g = Grid.load(write_grid(tmp_path, data=f'[data]\nsource = "{source}"\nval_fraction = 0.2\n'))
        n = unique_train_tokens(g)
        assert n == load_corpus(g.data_config()).n_train, source
    assert unique_train_tokens(g) == 5000
    # 12800 tokens over 5000 unique ones: 2.56 epochs, named with the run
    w = repeat_warning(g)
    (run,) = g.runs()
    assert w is not None and "1 of 1 runs repeat training data" in w and f"{run.run_id} (dense d16) 2.56 epochs" in w
    assert repeat_warning(g, n_train=12800) is None


# ---- the GPU path on CPU: a whole grid under bf16 autocast, killed and resumed --------------------------------
class _Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing in the runner catches it and no cleanup code runs."""


def _same(rows_a, rows_b) -> None:
    """Rows of one run (dicts) equal key by key, timing columns aside; NaN equals NaN, None equals NaN."""
    timing = {"wall_s", "tokens_per_s", "mfu", "git_sha"}
    assert len(rows_a) == len(rows_b)
    for a, b in zip(rows_a, rows_b):
        for k in set(a) - timing:
            x, y = a[k], b[k]
            nan = lambda v: v is None or (isinstance(v, float) and v != v)
            assert (nan(x) and nan(y)) or x == y, (k, x, y)


def test_tiny_grid_in_bf16_on_cpu_trains_and_a_killed_run_resumes_to_the_same_rows(tmp_path, monkeypatch):
    """dtype = "bfloat16" on CPU: the tiny grid (2 widths x dense/low-rank, WSD with two budgets) under bf16
    autocast and fused AdamW. Every run writes its rows and its loss falls; a run killed mid-trunk resumes from
    its checkpoint to the rows of the same run trained without a break, bit for bit; and a run's rows differ
    from its float32 twin's (the autocast is real: bf16 was once silently float32 on CPU)."""
    import dataclasses

    from scalelab.data import load_corpus
    from scalelab.run import train as T

    corpus_txt = os.path.join(os.path.dirname(TINY), "corpus.txt")
    text = open(TINY).read().replace('source = "corpus.txt"', f'source = "{corpus_txt}"')
    path = tmp_path / "bf16.toml"
    path.write_text(text.replace("micro_batch = 4\n", 'micro_batch = 4\ndtype = "bfloat16"\n'))
    g = Grid.load(str(path))
    runs = g.runs()
    assert len(runs) == 4 and {r.train.dtype for r in runs} == {"bfloat16"}
    out = str(tmp_path / "runs")

    # kill the third run at its 23rd optimizer step (checkpoints every 5 steps: the last at step 20)
    real, calls = T.Trainer._train_step, {"n": 0}

    def step(self, *a, **kw):
        if self.run.run_id == runs[2].run_id:
            calls["n"] += 1
            if calls["n"] == 23:
                raise _Killed()
        return real(self, *a, **kw)

    monkeypatch.setattr(T.Trainer, "_train_step", step)
    with pytest.raises(_Killed):
        run_grid(g, out, device="cpu", quiet=True, checkpoint_every=5)
    monkeypatch.setattr(T.Trainer, "_train_step", real)
    assert sorted(f for f in os.listdir(out) if f.endswith(".parquet")) == sorted(
        os.path.basename(run_path(out, r)) for r in runs[:2]
    )  # nothing of the killed run written
    sums = run_grid(Grid.load(str(path)), out, device="cpu", quiet=True, checkpoint_every=5)
    assert [s.state for s in sums] == ["skipped", "skipped", "trained", "trained"]
    assert [s.resumed_from for s in sums] == [0, 0, 20, 0]

    df = read_runs(os.path.join(out, "*.parquet"))
    assert (df["status"] == "ok").all() and df.groupby("run_id")["final"].sum().tolist() == [2] * 4
    for _, r in df.groupby("run_id"):  # the loss falls from the first evaluation to the last final
        r = r.sort_values("step")
        assert r[r["final"]]["val_loss"].min() < r["val_loss"].iloc[0] - 0.5
    assert set(json.loads(c)["train"]["dtype"] for c in df["config"]) == {"bfloat16"}

    corpus = load_corpus(runs[0].data, base_dir=str(tmp_path))
    by_file = lambda run: read_runs([run_path(out, run)]).drop(columns="_file").to_dict("records")
    _same(by_file(runs[2]), T.Trainer(runs[2], corpus, device="cpu").train().rows)  # the uninterrupted run
    f32 = dataclasses.replace(runs[0], train=dataclasses.replace(runs[0].train, dtype="float32"))
    a = [r["val_loss"] for r in by_file(runs[0])]
    b = [r["val_loss"] for r in T.Trainer(f32, corpus, device="cpu").train().rows]
    assert len(a) == len(b) and a != b and max(abs(x - y) for x, y in zip(a, b)) < 0.05
