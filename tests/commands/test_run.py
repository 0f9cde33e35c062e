"""`scalelab run`: end to end through the CLI, SIGKILL + resume in a real subprocess, dry run, and
one-line errors (exit 2, no traceback, nothing written) for bad input."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from grids import CORPUS, write_grid
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.store import COLUMNS

TIMING = {"wall_s", "tokens_per_s", "mfu", "git_sha"}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALELAB_CACHE", str(tmp_path / "cache"))


def _cli(*args):
    return CliRunner().invoke(app, list(args))


def _scalelab(*args, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "scalelab.cli", *args], env=env, **kw)


BAD = {
    "malformed": lambda d: _raw(d, "name = 'x'\n[model\n"),
    "variant": lambda d: write_grid(d, variants='[[variants]]\nstructure = "monarchy"\n'),
    "shape": lambda d: write_grid(d, variants='[[variants]]\nstructure = "blockshuffle"\nblocks = 3\n'),
    "data": lambda d: write_grid(d, data='[data]\nsource = "no/such/folder"\n'),
    "bin": lambda d: write_grid(d, data=f'[data]\nsource = "{_odd_bin(d)}"\n'),
    # issue 12: a wrong value type in every grid table, a file that is not UTF-8, a folder
    "type-seeds": lambda d: _raw(d, open(write_grid(d)).read().replace("seeds = [0]", 'seeds = ["zero"]')),
    "type-data": lambda d: write_grid(d, data=f'[data]\nsource = "{CORPUS}"\nval_fraction = "a fifth"\n'),
    "type-model": lambda d: write_grid(d, model='[model]\nwidths = ["sixteen"]\nn_layers = 2\nseq_len = 32\n'),
    "type-model-field": lambda d: write_grid(d, model='[model]\nwidths = [16]\nn_layers = 2\nseq_len = "32"\n'),
    "type-variants": lambda d: write_grid(d, variants='[[variants]]\nstructure = "lowrank"\nrank = "four"\n'),
    "type-guide": lambda d: write_grid(
        d, variants='[[variants]]\nstructure = "lowrank"\nrank = 4\nguide = { fraction = "half" }\n'
    ),
    "type-budgets": lambda d: write_grid(d, budgets='[budgets]\ntokens = ["lots"]\n'),
    "type-schedule": lambda d: write_grid(d, schedule='[schedule]\nkind = "cosine"\nwarmup = "0.1"\n'),
    "type-optimizer": lambda d: write_grid(d, optimizer='[optimizer]\nlr = "fast"\nbatch_size = 8\n'),
    "type-micro": lambda d: write_grid(d, optimizer='[optimizer]\nlr = 3e-3\nbatch_size = 8\nmicro_batch = "2"\n'),
    "type-eval": lambda d: write_grid(d, eval='[eval]\npoints = "four"\n'),
    "not-utf8": lambda d: _raw_bytes(d, b'name = "caf\xe9"\n'),
    "folder": lambda d: str(d),
}


def _raw_bytes(d, data: bytes):
    p = os.path.join(str(d), "latin1.toml")
    open(p, "wb").write(data)
    return p


def _raw(d, text):
    p = os.path.join(str(d), "bad.toml")
    open(p, "w").write(text)
    return p


def _odd_bin(d):
    b = os.path.join(str(d), "tok")
    os.makedirs(b, exist_ok=True)
    open(os.path.join(b, "train.bin"), "wb").write(b"\x00\x01\x02")
    open(os.path.join(b, "val.bin"), "wb").write(b"\x00\x01")
    return b


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, case):
    grid = BAD[case](tmp_path)
    out = tmp_path / "out"
    r = _cli("run", "--grid", grid, "--out", str(out))
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.output
    assert not out.exists()


def test_dry_run_lists_runs_and_trains_nothing(tmp_path):
    grid = write_grid(tmp_path, model="[model]\nwidths = [16, 32]\nn_layers = 2\nheads = 2\nseq_len = 32\n")
    r = _cli("run", "--grid", grid, "--out", str(tmp_path / "out"), "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    import json

    rows = json.loads(r.stdout)
    assert [x["d_model"] for x in rows] == [16, 32] and all(x["tokens"] == 12800 and x["est_s"] > 0 for x in rows)
    assert not (tmp_path / "out").exists()
    assert _cli("run", "--grid", "demo", "--dry-run").exit_code == 0


def _rows(path):
    df = pd.read_parquet(path)
    return df.drop(columns=[c for c in TIMING if c in df.columns])


def test_sigkill_mid_run_then_rerun_gives_the_uninterrupted_rows(tmp_path):
    # one WSD run, 200 steps of d 16: long enough to be killed after its first checkpoints
    grid = write_grid(
        tmp_path,
        budgets="[budgets]\ntokens = [25600, 51200]\n",
        schedule='[schedule]\nkind = "wsd"\nwarmup = 0.05\ncooldown = 0.2\n',
    )
    ref_out, out = tmp_path / "ref", tmp_path / "killed"
    common = ["run", "--grid", grid, "--quiet", "--device", "cpu", "--threads", "1", "--checkpoint-every", "20"]
    ref = _scalelab(*common, "--out", str(ref_out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    p = _scalelab(*common, "--out", str(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = out / ".ckpt"
    deadline = time.time() + 120
    has_ckpt = lambda: ck.exists() and any(f.suffix == ".pt" for f in ck.iterdir())
    while time.time() < deadline and p.poll() is None and not has_ckpt():
        time.sleep(0.02)
    assert p.poll() is None, "the run finished before it could be killed"
    time.sleep(0.05)  # let it train a little past the checkpoint (not to the end on a fast machine)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not list(out.glob("*.parquet"))  # nothing half-written
    r = _scalelab(*common, "--out", str(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, _ = r.communicate(timeout=300)
    assert r.returncode == 0
    assert ref.wait(timeout=300) == 0
    (a,), (b,) = list(ref_out.glob("*.parquet")), list(out.glob("*.parquet"))
    assert a.name == b.name
    ra, rb = _rows(a), _rows(b)
    assert list(ra.columns) == list(rb.columns)
    assert len(ra) == len(rb) == len(rb.drop_duplicates(["step", "budget", "final"]))
    for c in ra.columns:
        if ra[c].dtype.kind == "f":
            assert ((ra[c] - rb[c]).abs().fillna(0) <= 1e-6).all(), c
        else:
            assert ra[c].tolist() == rb[c].tolist(), c
    assert ra["final"].sum() == 2


def test_cli_end_to_end_parquet_loads_in_pandas(tmp_path):
    import json

    from scalelab import flops as flopslib
    from scalelab.config import ModelConfig

    grid = write_grid(
        tmp_path,
        budgets="[budgets]\ntokens = [3200, 6400]\n",
        schedule='[schedule]\nkind = "wsd"\n',
        variants='[[variants]]\nstructure = "dense"\n[[variants]]\nstructure = "blockshuffle"\nblocks = 2\n',
    )
    r = _cli("run", "--grid", grid, "--out", str(tmp_path / "runs"), "--quiet", "--threads", "1")
    assert r.exit_code == 0, r.output
    files = sorted((tmp_path / "runs").glob("*.parquet"))
    assert len(files) == 2 and all(f.name.startswith("t__") for f in files)
    for f in files:
        df = pd.read_parquet(f)
        assert set(COLUMNS) <= set(df.columns)
        cfg = ModelConfig.from_dict(json.loads(df["config"].iloc[0])["model"])
        assert (df["flops"] == flopslib.flops_per_token(cfg) * df["tokens"]).all()
        assert df["final"].sum() == 2 and df["val_loss"].between(0, 6).all()
        assert df["corpus"].iloc[0] == CORPUS and len(df["corpus_sha"].iloc[0]) == 64
        assert df["torch_version"].iloc[0] and df["scalelab_version"].iloc[0] == "0.1.0"
    assert "trained" in r.stdout


def test_a_failed_run_finishes_the_others_then_exits_1_naming_it(tmp_path, monkeypatch):
    """Issue 12: a grid with a crashed run exited 0. The other runs still train; then exit 1 with one line
    naming the failed run and its error."""
    from scalelab.grid import Grid
    from scalelab.run import one

    grid = write_grid(
        tmp_path,
        variants='[[variants]]\nstructure = "lowrank"\nrank = 4\n[[variants]]\nstructure = "dense"\n',
        budgets="[budgets]\ntokens = [1280]\n",
    )
    lowrank, dense = Grid.load(grid).runs()  # the crash comes first: the dense run must still train
    real = one.train_one

    def crash_lowrank(run, *a, **kw):
        if run.run_id == lowrank.run_id:
            raise RuntimeError("Expected to have finished reduction in the prior iteration")
        return real(run, *a, **kw)

    monkeypatch.setattr(one, "train_one", crash_lowrank)
    out = tmp_path / "out"
    r = _cli("run", "--grid", grid, "--out", str(out), "--quiet")
    assert r.exit_code == 1, r.output
    last = r.stderr.strip().splitlines()[-1]
    assert lowrank.run_id in last and "failed" in last and "RuntimeError" in last and dense.run_id not in last
    assert os.path.isfile(out / f"{dense.file_stem}.parquet")
    assert not os.path.exists(out / f"{lowrank.file_stem}.parquet")


# ---- issue 12: dry-run estimates on a named accelerator; data repeats warned at grid load --------------
def test_dry_run_of_a_seed_size_grid_gives_gpu_hours_with_the_gpu_and_the_mfu_basis(tmp_path, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)  # no bench/train.json here: an assumed MFU
    r = _cli("run", "--grid", "seed-paper", "--dry-run", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "GPU-hours on one H100 (989 TFLOP/s bf16 peak, assumed 40% MFU" in r.stdout
    assert "this grid is for GPUs (seed-size models" in r.stdout and "min at" not in r.stdout
    r = _cli("run", "--grid", "seed-paper", "--dry-run", "--gpu", "a100", "--json")
    rows = json.loads(r.stdout)
    assert {x["accelerator"] for x in rows} == {"a100"} and {x["mfu_basis"] for x in rows} == {"assumed"}
    for x in rows:
        assert x["est_gpu_hours"] * 3600 * 312e12 * 0.4 == pytest.approx(x["flops"], rel=1e-9)
    # a bench file measured on an H100: its MFU (dense row's achieved FLOP/s over the peak) for --gpu h100 only
    os.makedirs("bench")
    bench = {
        "device": "NVIDIA H100 80GB HBM3",
        "shape": "d_model 1024, layers 24",
        "rows": [
            {"variant": "dense", "tokens_per_s": 1000.0, "flops_per_token": 494.5e9, "mfu": 0.5},
            {"variant": "lowrank-32", "tokens_per_s": 900.0, "flops_per_token": 300e9, "mfu": 0.27},
        ],
    }
    open("bench/train.json", "w").write(json.dumps(bench))
    r = _cli("run", "--grid", "seed-paper", "--dry-run", "--gpu", "h100")
    assert "50% MFU measured on NVIDIA H100 80GB HBM3 in bench/train.json" in r.stdout, r.stdout
    rows = json.loads(_cli("run", "--grid", "seed-paper", "--dry-run", "--gpu", "h100", "--json").stdout)
    assert {x["mfu"] for x in rows} == {0.5} and {x["mfu_basis"] for x in rows} == {"measured"}
    assert "assumed 40% MFU" in _cli("run", "--grid", "seed-paper", "--dry-run", "--gpu", "a100").stdout
    r = _cli("run", "--grid", "seed-paper", "--dry-run", "--gpu", "v100")
    assert r.exit_code == 2 and r.stderr.strip().startswith("error: --gpu v100") and len(r.stderr.splitlines()) == 1


def test_dry_run_of_a_cpu_grid_gives_cpu_minutes_only(tmp_path):
    r = _cli("run", "--grid", write_grid(tmp_path), "--dry-run", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "min at 25% of" in r.stdout and "this CPU, measured now" in r.stdout
    assert "GPU" not in r.stdout
    # the same small grid asking for bf16 is a GPU grid
    bf16 = write_grid(tmp_path, name="b", optimizer='[optimizer]\nlr = 3e-3\nbatch_size = 8\ndtype = "bfloat16"\n')
    r = _cli("run", "--grid", bf16, "--dry-run", "--device", "cpu")
    assert "GPU-hours on one H100" in r.stdout and "[optimizer] dtype = bfloat16" in r.stdout


def test_a_budget_beyond_the_corpus_warns_at_grid_load_naming_runs_and_epochs(tmp_path):
    from scalelab.data import load_corpus
    from scalelab.grid import Grid

    grid = write_grid(tmp_path, budgets="[budgets]\ntokens = [12800, 40000]\n")
    g = Grid.load(grid)
    n = load_corpus(g.data_config()).n_train
    assert 12800 < n < 40000
    big = next(r for r in g.runs() if r.train.budgets == (40000,))
    expect = f"1 of 2 runs repeat training data, up to {40000 / n:.3g} epochs of the corpus's {n:,} unique"
    r = _cli("run", "--grid", grid, "--dry-run", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert expect in r.stderr and f"{big.run_id} (dense d16) {40000 / n:.3g} epochs" in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if "warning:" in ln]) == 1
    r = _cli("run", "--grid", write_grid(tmp_path, name="fits"), "--dry-run", "--device", "cpu")
    assert "repeat" not in r.stderr  # 12800 tokens fit in the corpus
    # training: the warning once (at load), not again from the trainer's corpus note
    r = _cli("run", "--grid", grid, "--out", str(tmp_path / "out"), "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert r.stderr.count("repeat training data") == 1 and "note: the largest run" not in r.output
