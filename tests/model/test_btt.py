"""Block Tensor-Train (BTT), added through the structure registry alone: the layer against its definition,
params and FLOPs against torch, and every stage (GPT, grid, inspect, bench, planner) accepting it unchanged."""

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

from scalelab.config import StructureConfig
from scalelab.errors import ScalelabError
from scalelab.flops import forward_flops_per_token, param_counts, structured_params
from scalelab.grid import Grid
from scalelab.model.gpt import GPT
from scalelab.model.linear import BTT, make_linear
from scalelab.presets import get_preset, with_ffn
from scalelab.structures import btt_factors, forward_flops

# (N, M, R): square, expanding, contracting, odd factors, the tiny preset's FFN pair, rank 1 (Monarch)
SHAPES = [(16, 16, 1), (16, 64, 2), (64, 16, 3), (12, 20, 2), (18, 45, 3), (64, 256, 4), (256, 64, 4), (36, 36, 6)]
IDS = [f"{n}x{m}-r{r}" for n, m, r in SHAPES]


def _btt(n, m, r, bias=True):
    return make_linear(StructureConfig("btt", rank=r), n, m, bias=bias)


def test_factors_are_closest_to_square():
    assert btt_factors(16) == (4, 4) and btt_factors(64) == (8, 8) and btt_factors(128) == (8, 16)
    assert btt_factors(12) == (3, 4) and btt_factors(45) == (5, 9) and btt_factors(3072) == (48, 64)


@pytest.mark.parametrize("n,m,r", SHAPES, ids=IDS)
def test_forward_equals_materialized_weight_float64(n, m, r):
    torch.manual_seed(0)
    layer = _btt(n, m, r).double()
    assert isinstance(layer, BTT)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(3, 5, n, dtype=torch.float64)
    w = layer.materialize()
    assert w.shape == (m, n)
    ref = x @ w.T + layer.bias
    y = layer(x)
    assert y.shape == (3, 5, m)
    assert ((y - ref).norm() / ref.norm()).item() < 1e-12


@pytest.mark.parametrize("n,m,r", SHAPES[:4], ids=IDS[:4])
def test_materialized_blocks_are_rank_r_products_of_the_cores(n, m, r):
    """The definition, block by block: W[b1 block, a1 block] = W2[b1, :, a1, :] @ W1[a1, b1] (b2 x R @ R x a2)."""
    layer = _btt(n, m, r, bias=False).double()
    W1, W2, w = layer.W1.detach(), layer.W2.detach(), layer.materialize().detach()
    a1, a2, b1, b2 = layer.a1, layer.a2, layer.b1, layer.b2
    assert (a2, a1) == btt_factors(n) and (b1, b2) == btt_factors(m)
    assert W1.shape == (a1, b1, r, a2) and W2.shape == (b1, b2, a1, r)
    for i in range(a1):
        for j in range(b1):
            blk = w[j * b2 : (j + 1) * b2, i * a2 : (i + 1) * a2]
            assert torch.allclose(blk, W2[j, :, i, :] @ W1[i, j], rtol=0, atol=1e-14)
            assert torch.linalg.matrix_rank(blk) <= r


@pytest.mark.parametrize("n,m,r", SHAPES, ids=IDS)
def test_params_equal_numel_and_closed_form(n, m, r):
    layer = _btt(n, m, r, bias=False)
    (a2, a1), (b1, b2) = btt_factors(n), btt_factors(m)
    numel = sum(p.numel() for p in layer.parameters())
    assert numel == r * a1 * b1 * (a2 + b2) == structured_params(StructureConfig("btt", rank=r), n, m)


@pytest.mark.parametrize("n,m,r", SHAPES, ids=IDS)
def test_analytic_flops_match_flop_counter(n, m, r):
    """Forward = the two batched matmuls, 2 x params per token; backward = 2 x forward."""
    layer = _btt(n, m, r)
    x = torch.randn(2, 7, n, requires_grad=True)
    fwd, bwd = FlopCounterMode(display=False), FlopCounterMode(display=False)
    with fwd:
        y = layer(x)
    with bwd:
        y.square().sum().backward()
    assert fwd.get_total_flops() == forward_flops(StructureConfig("btt", rank=r), n, m) * 2 * 7
    assert bwd.get_total_flops() == 2 * fwd.get_total_flops()


def test_gradients_reach_both_cores():
    layer = _btt(16, 64, 2).double()
    (layer(torch.randn(4, 16, dtype=torch.float64)) ** 2).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("r", [1, 4])
def test_init_gives_materialized_entries_std_init_std(r):
    torch.manual_seed(1)
    w = make_linear(StructureConfig("btt", rank=r), 256, 1024, bias=True, init_std=0.02).materialize()
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002


@pytest.mark.parametrize(
    "struct,n,m",
    [
        (StructureConfig("btt"), 16, 16),  # no rank
        (StructureConfig("btt", rank=0), 16, 16),
        (StructureConfig("btt", rank=5), 16, 16),  # rank > min(a2, b2) = 4
        (StructureConfig("btt", rank=1), 13, 16),  # prime width: no split with both factors >= 2
        (StructureConfig("btt", rank=1), 16, 1),
    ],
)
def test_bad_shapes_are_rejected_with_one_line(struct, n, m):
    with pytest.raises(ScalelabError) as e:
        make_linear(struct, n, m, bias=False)
    assert "\n" not in str(e.value) and "btt" in str(e.value)


def test_meta_device_builds_without_allocating():
    with torch.device("meta"):
        layer = BTT(4096, 16384, rank=4)
    assert all(p.is_meta for p in layer.parameters())


# ---- every stage accepts it through the registry ---------------------------------------------------------
SMALL = get_preset("tiny").replace(seq_len=32, vocab_size=100, vocab_multiple=64)


@pytest.mark.parametrize("kw", [dict(rank=2), dict(fraction=0.32), dict(fraction=0.63)], ids=str)
def test_gpt_params_and_flops_match_torch(kw):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    cfg = with_ffn(SMALL, "btt", **kw)
    torch.manual_seed(0)
    model = GPT(cfg)
    assert isinstance(model.blocks[1].ffn.up, BTT) and isinstance(model.blocks[1].ffn.down, BTT)
    assert model.num_params() == sum(p.numel() for p in model.parameters()) == param_counts(cfg).params
    ffn = sum(p.numel() for b in model.blocks for p in b.ffn.parameters())
    assert ffn == param_counts(cfg).ffn_params
    idx = torch.randint(0, cfg.vocab_size, (2, cfg.seq_len))
    fwd, bwd = FlopCounterMode(display=False), FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH):  # counted as two full bmm's (see tests/model/test_gpt.py)
        with fwd:
            _, loss = model(idx, idx)
        with bwd:
            loss.backward()
    assert fwd.get_total_flops() == forward_flops_per_token(cfg) * 2 * cfg.seq_len
    assert bwd.get_total_flops() == 2 * fwd.get_total_flops()


def test_self_guided_btt_starts_at_its_dense_product():
    from scalelab.config import GuideConfig
    from scalelab.flops import guide_flops_per_token
    from scalelab.model.guided import guided_layers

    cfg = with_ffn(SMALL, "btt", rank=2).replace(guide=GuideConfig())
    model = GPT(cfg)
    pc = param_counts(cfg)
    assert sum(p.numel() for p in model.parameters()) == pc.params + pc.guide_params and guide_flops_per_token(cfg) > 0
    for layer in guided_layers(model):
        assert torch.allclose(layer.guide_weight, layer.inner.materialize(), atol=1e-7)


def test_bf16_autocast_and_dynamo_single_graph():
    import torch._dynamo as dynamo

    torch.manual_seed(0)
    cfg = with_ffn(SMALL.replace(seq_len=16), "btt", rank=2)
    model = GPT(cfg)
    idx = torch.randint(0, cfg.vocab_size, (2, cfg.seq_len))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, loss = model(idx, idx)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())
    dynamo.reset()
    explained = dynamo.explain(model)(idx, idx)
    assert explained.graph_count == 1 and explained.graph_break_count == 0


def test_gpt_with_btt_ffn_trains_on_cpu():
    torch.manual_seed(0)
    cfg = with_ffn(get_preset("tiny").replace(seq_len=64), "btt", rank=2)
    model = GPT(cfg)
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=3e-3)
    x = torch.randint(0, 256, (4, 64))
    y = torch.roll(x, -1, dims=1)
    losses = []
    for _ in range(30):
        _, loss = model(x, y)
        losses.append(loss.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert losses[0] > 5.0 and losses[-1] < 0.6 * losses[0]


def test_variant_names_round_trip():
    from scalelab.structures import parse

    d, f = SMALL.d_model, SMALL.ffn_width
    by_share = with_ffn(SMALL, "btt", fraction=0.32).ffn
    for s in (StructureConfig("btt", rank=1), StructureConfig("btt", rank=32), by_share):
        assert parse(s.name, d, f) == s, s.name
    assert StructureConfig("btt", rank=1).name == "btt-r1"
    assert with_ffn(SMALL, "btt", fraction=0.32).ffn.name == "btt-32"


def test_grid_with_btt_variants_expands(tmp_path):
    (tmp_path / "corpus.txt").write_text("hello world " * 200)
    (tmp_path / "g.toml").write_text("""
name = "bttgrid"
[data]
source = "corpus.txt"
[model]
widths = [64, 128]
n_layers = 2
heads = 2
seq_len = 32
[[variants]]
structure = "dense"
[[variants]]
structure = "btt"
rank = 2
[[variants]]
structure = "btt"
fraction = 0.32
[budgets]
tokens = [6400]
""")
    runs = Grid.load(str(tmp_path / "g.toml")).runs()
    variants = sorted({(r.model.variant, r.model.d_model) for r in runs})
    assert variants == [("btt-32", 64), ("btt-32", 128), ("btt-r2", 64), ("btt-r2", 128), ("dense", 64), ("dense", 128)]
    for r in runs:
        if r.model.ffn.kind == "btt":
            with torch.device("meta"):
                assert GPT(r.model).num_params() == param_counts(r.model).params


runner = CliRunner()


def test_inspect_accepts_btt():
    from scalelab.cli import app

    for args in (["--rank", "2"], ["--ffn-fraction", "32"]):
        res = runner.invoke(app, ["inspect", "--preset", "tiny", "--ffn", "btt", *args, "--json"])
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        kw = dict(rank=2) if args[0] == "--rank" else dict(fraction=0.32)
        cfg = with_ffn(get_preset("tiny"), "btt", **kw)
        assert out["params"] == param_counts(cfg).params and out["ffn_params"] == param_counts(cfg).ffn_params


def test_bench_ffn_accepts_btt(tmp_path):
    from scalelab.cli import app

    res = runner.invoke(
        app,
        [
            "bench",
            "ffn",
            "--kinds",
            "btt",
            "--widths",
            "32",
            "--tokens",
            "64",
            "--repeats",
            "1",
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
            "--name",
            "f",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "f.json").read_text())["rows"]
    assert [r["variant"] for r in rows] == ["dense", "btt-63", "btt-32"]
    cfg = with_ffn(get_preset("tiny").replace(d_model=32), "btt", fraction=0.32)
    assert rows[2]["params"] == structured_params(cfg.ffn, 32, 128) + structured_params(cfg.ffn, 128, 32)


def test_bench_train_parses_a_btt_variant(tmp_path):
    from scalelab.cli import app

    res = runner.invoke(
        app,
        [
            "bench",
            "train",
            "--preset",
            "tiny",
            "--seq-len",
            "16",
            "--batch",
            "2",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--device",
            "cpu",
            "--variants",
            "dense,btt-r2",
            "--out",
            str(tmp_path),
            "--name",
            "t",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    row = json.loads((tmp_path / "t.json").read_text())["rows"][1]
    cfg = with_ffn(get_preset("tiny").replace(seq_len=16), "btt", rank=2)
    assert row["name"] == "btt-r2" and row["params"] == param_counts(cfg).params


def test_planner_proposes_a_btt_shape():
    """A ShapeRule fitted on BTT runs makes a BTT config at a new width that keeps the runs' FFN share."""
    from scalelab.plan import ShapeRule, ffn_fraction

    runs = [with_ffn(get_preset("tiny").replace(d_model=d, n_heads=d // 16), "btt", fraction=0.32) for d in (64, 128)]
    rule = ShapeRule.from_runs(runs, multiple=64)
    cfg = rule.make(256)
    assert cfg.ffn.kind == "btt" and cfg.d_model == 256 and cfg.ffn.name == "btt-32"
    assert ffn_fraction(cfg) == pytest.approx(0.32, rel=0.35)
    with torch.device("meta"):
        assert GPT(cfg).num_params() == param_counts(cfg).params
