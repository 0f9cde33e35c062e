"""The GPU path on CPU: torch.compile with inductor (code generated and run, not the "eager" tracing backend),
bf16 autocast and fused AdamW, through the trainer, and bench/gpu_check.sh's CPU smoke mode.

An inductor compile costs tens of seconds of CPU here (most of it in the C++ compiler, one call per kernel), so
the compiled runs are few and small, and in one test (pytest -n 2 would run a shared fixture once per worker):
a low-rank FFN with a self-guide that fades halfway (alpha > 0: the guided graph; alpha = 0: the dense path
skipped), and the same FFN without a guide on WSD with two cooldown branches (deep copies of the model),
both under bf16 autocast with fused AdamW. Each one's eager twin (the same run without compile) is its
reference. The second run reuses most kernels of the first from inductor's on-disk cache.
"""

import math
import os
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from grids import write_grid  # noqa: E402

from scalelab.data import load_corpus  # noqa: E402
from scalelab.grid import Grid  # noqa: E402
from scalelab.run.schedule import make_plan  # noqa: E402
from scalelab.run.train import Trainer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOWRANK = '[[variants]]\nstructure = "lowrank"\nrank = 4\n'
# guide without reduce_flop: the coin of reduce_flop is a host-side draw, a graph break per guided layer,
# which multiplies the graphs to compile (15 graphs instead of 3 here, about 5 x the CPU time)
GUIDED = LOWRANK + "guide = { fraction = 0.5, reduce_flop = false }\n"
COSINE = ("[budgets]\ntokens = [5120]\n", '[schedule]\nkind = "cosine"\nwarmup = 0.1\n')  # 20 steps of 8 x 32
WSD = ("[budgets]\ntokens = [1280, 2560, 5120]\n", '[schedule]\nkind = "wsd"\nwarmup = 0.1\ncooldown = 0.2\n')


def _run(folder, name: str, variants: str, budgets_schedule, compile: bool):
    path = write_grid(
        folder,
        name=name + ("-c" if compile else "-e"),
        variants=variants,
        budgets=budgets_schedule[0],
        schedule=budgets_schedule[1],
        optimizer=f'[optimizer]\nlr = 3e-3\nbatch_size = 8\ndtype = "bfloat16"\ncompile = {str(compile).lower()}\n',
        eval="[eval]\npoints = 1\nval_tokens = 1024\n",
    )
    (run,) = Grid.load(path).runs()
    return run


@pytest.mark.slow  # inductor compiles from a cold cache: about a minute of CPU (see the module docstring)
def test_inductor_compiles_each_graph_once_and_trains_as_eager_does(tmp_path, monkeypatch):
    import torch._dynamo as dynamo
    import torch._inductor.compile_fx as cfx

    monkeypatch.setenv("SCALELAB_CACHE", str(tmp_path / "cache"))
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    graphs, adamw = [], []
    real_compile_fx, real_adamw = cfx.compile_fx, torch.optim.AdamW

    def spy_compile_fx(gm, *a, **kw):  # dynamo's "inductor" backend looks compile_fx up at each compile
        graphs.append(gm)
        return real_compile_fx(gm, *a, **kw)

    class SpyAdamW(real_adamw):
        def __init__(self, *a, **kw):
            adamw.append(kw)
            super().__init__(*a, **kw)

    monkeypatch.setattr(cfx, "compile_fx", spy_compile_fx)
    monkeypatch.setattr(torch.optim, "AdamW", SpyAdamW)
    res, n_graphs = {}, {}
    try:
        for name, variants, sched in (("guided", GUIDED, COSINE), ("wsd", LOWRANK, WSD)):
            dynamo.reset()
            n0 = len(graphs)
            for compile in (True, False):
                run = _run(tmp_path, name, variants, sched, compile)
                res[name, compile] = Trainer(run, load_corpus(run.data), device="cpu").train()
                if compile:
                    plans = make_plan(run)
            n_graphs[name] = len(graphs) - n0
            if name == "guided":
                assert plans.guide_steps < plans.total  # both the guided and the plain graph ran
    finally:
        dynamo.reset()
        torch.set_num_threads(n_threads)

    # each graph compiled once by inductor (forward and backward of the training ones): guided: the guided
    # training step (alpha > 0), the plain one (alpha = 0), validation; WSD: the training step and validation,
    # reused by both cooldown branches (new module objects) and across the changing alpha and learning rate.
    # A recompile per step, per alpha or per branch would show here.
    assert n_graphs == {"guided": 3, "wsd": 2}, n_graphs
    for name in ("guided", "wsd"):
        compiled, eager = res[name, True], res[name, False]
        assert compiled.status == eager.status == "ok"
        # the eager twin's rows, step for step: measured at most 1.4e-5 apart in val loss (compiled kernels keep
        # fused intermediates in float32 where eager rounds each op's output to bf16); a wrong kernel is off by
        # far more than the 2e-3 allowed, a tenth of bf16's rounding step at a loss of 4.7
        key = lambda r: (r["step"], r["budget"], r["final"])
        assert [key(r) for r in compiled.rows] == [key(r) for r in eager.rows]
        for a, b in zip(compiled.rows, eager.rows):
            assert math.isfinite(a["val_loss"]) and abs(a["val_loss"] - b["val_loss"]) < 2e-3, (name, key(a))
            assert abs(a["train_loss"] - b["train_loss"]) < 2e-3, (name, key(a))
            assert a["guide_flops"] == b["guide_flops"]  # counted inside the compiled graph as in eager mode
        # it learned: below uniform guessing over the byte corpus's 256 symbols (ln 256 = 5.55 nats) by 0.5
        assert min(r["val_loss"] for r in compiled.rows if r["final"]) < math.log(256) - 0.5
    assert res["guided", True].rows[-1]["guide_flops"] > 0
    assert sorted(r["budget"] for r in res["wsd", True].rows if r["final"]) == [1280, 2560, 5120]
    # the GPU path's optimizer: fused AdamW, here on CPU tensors (one per run and one per WSD branch)
    assert len(adamw) == 2 * (1 + 1 + 2) and all(kw.get("fused") is True for kw in adamw)


NO_SHELL = shutil.which("bash") is None or shutil.which("timeout") is None


@pytest.mark.slow  # about 40 s of CPU: seven processes, each importing torch and training or timing a little
@pytest.mark.skipif(NO_SHELL, reason="needs bash and timeout")
def test_gpu_check_cpu_smoke_mode_passes(tmp_path):
    """bench/gpu_check.sh --device cpu: every stage of the GPU check at tiny shapes on CPU (the suite's own
    tests left out), so that a first GPU run can fail only on what is CUDA-specific."""
    out = tmp_path / "gc"
    env = dict(os.environ, PYTHON=sys.executable, SCALELAB_CACHE=str(tmp_path / "cache"))
    p = subprocess.run(
        ["bash", os.path.join(ROOT, "bench", "gpu_check.sh"), "--device", "cpu", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "SOME STAGES FAILED" not in p.stdout and "all stages ok" in p.stdout
    assert "smoke-rows" in p.stdout and (out / "smoke-rows.log").exists()
    rows = (out / "smoke-rows.log").read_text()
    assert rows.count("finals") == 2 and rows.count("bfloat16") == 2, rows


@pytest.mark.skipif(NO_SHELL, reason="needs bash and timeout")
@pytest.mark.parametrize("args", [["--device", "tpu"], ["--device"], ["--fast"]])
def test_gpu_check_refuses_bad_options_in_one_line(tmp_path, args):
    p = subprocess.run(
        ["bash", os.path.join(ROOT, "bench", "gpu_check.sh"), *args, str(tmp_path / "gc")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "use --device" in p.stderr
    assert not (tmp_path / "gc").exists()
