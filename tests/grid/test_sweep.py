"""[sweep]: every (variant, width) at each swept value, WSD budgets as branches of one trunk per value,
swept values and the sweep marker in each run's config and row; bad sweeps are one-line errors."""

import itertools
import json
import subprocess
import sys

import pytest
from grids import TINY, write_grid

from scalelab.config import RunConfig
from scalelab.errors import ScalelabError
from scalelab.grid import Grid
from scalelab.grid.spec import parse

LRS = [1e-3, 3e-3, 1e-2]


def _tiny_with_sweep(tmp_path, sweep: str, optimizer="[optimizer]\nbatch_size = 8\nmicro_batch = 4\n"):
    text = open(TINY).read()
    text = text.replace("[optimizer]\nlr = 3e-3\nbatch_size = 8\nmicro_batch = 4\n", optimizer)
    if "warmup =" in sweep:
        text = text.replace("warmup = 0.1\n", "")
    text = text.replace('source = "corpus.txt"', f'source = "{TINY[:-9]}corpus.txt"')
    p = tmp_path / "sw.toml"
    p.write_text(text + "\n[sweep]\n" + sweep + "\n")
    return str(p)


def test_every_variant_and_width_at_each_lr_with_wsd_branches(tmp_path):
    base = Grid.load(TINY).runs()
    runs = Grid.load(_tiny_with_sweep(tmp_path, f"lr = {LRS}")).runs()
    assert len(runs) == len(base) * len(LRS)  # Cartesian product with the rest of the grid
    cells = {(r.model.variant, r.model.d_model, r.train.lr) for r in runs}
    want = {(r.model.variant, r.model.d_model, lr) for r in base for lr in LRS}
    assert cells == want and len(cells) == len(runs)  # one run per (variant, width, lr)
    for r in runs:  # WSD: one trunk per swept value, every budget a branch of it
        assert r.train.budgets == base[0].train.budgets and r.train.sweep == ("lr",)
    assert len({r.run_id for r in runs}) == len(runs)


def test_run_ids_outside_a_sweep_are_unchanged():
    r = Grid.load(TINY).runs()[0]
    assert "sweep" not in r.to_dict()["train"]  # the ids older run stores hold
    d = r.to_dict()
    assert RunConfig.from_dict(json.loads(json.dumps(d))).run_id == r.run_id


def test_the_sweep_round_trips_through_the_recorded_config(tmp_path):
    r = Grid.load(_tiny_with_sweep(tmp_path, f"lr = {LRS}")).runs()[0]
    back = RunConfig.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.train.sweep == ("lr",) and back.run_id == r.run_id


def test_several_keys_are_a_cartesian_product(tmp_path):
    sweep = "lr = [1e-3, 1e-2]\nwarmup = [0.0, 0.1]\nweight_decay = [0.0, 0.1, 0.2]\nbatch_size = [4, 8]"
    runs = Grid.load(_tiny_with_sweep(tmp_path, sweep, optimizer="[optimizer]\n")).runs()
    per_cell = {}
    for r in runs:
        t = r.train
        per_cell.setdefault((r.model.variant, r.model.d_model), set()).add(
            (t.lr, t.warmup, t.weight_decay, t.batch_size)
        )
        assert t.sweep == ("lr", "batch_size", "warmup", "weight_decay")
    want = set(itertools.product([1e-3, 1e-2], [0.0, 0.1], [0.0, 0.1, 0.2], [4, 8]))
    want = {(a, c, d, b) for a, c, d, b in want}
    assert all(v == want for v in per_cell.values()) and len(per_cell) == 4


@pytest.mark.parametrize(
    "sweep, opt, needle",
    [
        ("batch_size = [4, 8]", None, "[sweep] needs lr = [...]"),
        ("lr = [1e-3, -1e-3]", None, "every value must be positive"),
        ("lr = [0.0]", None, "every value must be positive"),
        ("lr = []", None, "non-empty list"),
        ("lr = 3e-3", None, "non-empty list"),
        ('lr = ["3e-3"]', None, "where a number goes"),
        ("lr = [true]", None, "where a number goes"),
        ("lr = [1e-3, 1e-3]", None, "lists a value twice"),
        ("lr = [1e-3]\nbeta1 = [0.9]", None, "unknown key(s) beta1 in [sweep]"),
        ("lr = [1e-3]\nbatch_size = [4.5]", None, "whole numbers"),
        ("lr = [1e-3]\nweight_decay = [-0.1]", None, "non-negative"),
        ("lr = [1e-3]", {"lr": 3e-3}, "remove it from [optimizer]"),
        ("lr = [1e-3]", {"lr_table": {"16": 1e-3}}, "also set by lr_table"),
    ],
)
def test_bad_sweeps_are_one_line_errors(sweep, opt, needle):
    import tomllib

    raw = {"budgets": {"tokens": [1]}, "sweep": tomllib.loads(sweep)}
    if opt:
        raw["optimizer"] = opt
    with pytest.raises(ScalelabError) as e:
        parse(raw)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_bad_sweep_exits_2_and_writes_nothing(tmp_path):
    p = write_grid(tmp_path, optimizer="[optimizer]\nbatch_size = 8\n", body='[sweep]\nlr = ["fast"]\n')
    out = tmp_path / "runs"
    r = subprocess.run(
        [sys.executable, "-m", "scalelab.cli", "run", "--grid", p, "--out", str(out), "--dry-run"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2, r.stderr
    assert "[sweep] lr" in r.stderr + r.stdout and not out.exists()


def test_a_swept_grid_trains_records_its_hyperparameters_and_skips_on_rerun(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import torch

    from scalelab.run.grid import run_grid
    from scalelab.store import read_runs

    monkeypatch.setenv("SCALELAB_CACHE", str(tmp_path / "cache"))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        p = write_grid(
            tmp_path,
            budgets="[budgets]\ntokens = [2560]\n",
            optimizer="[optimizer]\nbatch_size = 8\n",
            schedule='[schedule]\nkind = "wsd"\n',
            body="[sweep]\nlr = [1e-3, 1e-2]\nweight_decay = [0.0, 0.2]\n",
        )
        out = str(tmp_path / "runs")
        sums = run_grid(Grid.load(p), out, device="cpu", quiet=True)
        assert [s.state for s in sums] == ["trained"] * 4
        df = read_runs(out)
        fin = df[df["final"]]
        got = sorted(zip(fin["peak_lr"], fin["weight_decay"]))
        assert got == sorted(itertools.product([1e-3, 1e-2], [0.0, 0.2]))
        assert set(df["sweep"]) == {"lr,weight_decay"} and set(df["warmup"]) == {0.05}
        for _, r in fin.iterrows():  # each row's config holds the same values
            t = json.loads(r["config"])["train"]
            assert (t["lr"], t["weight_decay"]) == (r["peak_lr"], r["weight_decay"])
        again = run_grid(Grid.load(p), out, device="cpu", quiet=True)
        assert [s.state for s in again] == ["skipped"] * 4
    finally:
        torch.set_num_threads(n)


def test_older_run_files_without_the_new_columns_still_read(tmp_path):
    import pandas as pd

    from scalelab import store

    rows = pd.DataFrame([{c: 1 for c in store.COLUMNS}])
    for c in ("run_id", "grid", "variant", "structure", "status", "corpus", "corpus_sha", "tokenizer"):
        rows[c] = "ok" if c == "status" else "x"
    for c in ("device", "torch_version", "scalelab_version", "git_sha", "config", "schedule"):
        rows[c] = "x"
    rows["final"] = True
    old = rows.drop(columns=["peak_lr", "warmup", "weight_decay", "sweep", "epochs"])
    path = tmp_path / "old.parquet"
    old.to_parquet(path)
    df = store.read_runs(str(path))
    assert df["peak_lr"].isna().all() and df["sweep"].isna().all() and len(df) == 1


def test_the_builtin_lr_transfer_grid():
    from scalelab.grid import builtin_grids

    assert "lr-transfer" in builtin_grids()
    runs = Grid.load("lr-transfer").runs()
    cells = {(r.model.variant, r.model.d_model, r.train.lr) for r in runs}
    variants = {"dense", "lowrank-32", "dense+mup", "lowrank-32+mup"}
    assert {v for v, _, _ in cells} == variants and len(cells) == len(runs) == 4 * 3 * 6
    lrs = sorted({r.train.lr for r in runs})  # a factor of 2 apart, wide enough to bracket SP's and muP's optima
    assert len(lrs) == 6 and all(abs(b / a - 2) < 1e-9 for a, b in zip(lrs, lrs[1:]))
    assert all(r.train.schedule == "wsd" and len(r.train.budgets) == 2 and r.train.sweep == ("lr",) for r in runs)
    assert {r.model.param for r in runs if r.model.variant.endswith("+mup")} == {"mup"}
