"""muP (scalelab/mup.py, scalelab/model/mup.py): multipliers against the spectral-condition formulas
computed here from each tensor's shape, SP untouched, the trainer applying lr_mult, and the coordinate
check (flat under muP, growing under SP)."""

import math

import pytest

torch = pytest.importorskip("torch")

from grids import write_grid  # noqa: E402

from scalelab import structures  # noqa: E402
from scalelab.bench import coord  # noqa: E402
from scalelab.config import DataConfig, GuideConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from scalelab.errors import ScalelabError  # noqa: E402
from scalelab.model.gpt import GPT  # noqa: E402
from scalelab.model.linear import make_linear  # noqa: E402
from scalelab.structures import StructureConfig  # noqa: E402

KINDS = ("dense", "lowrank", "blockdense", "blockshuffle", "btt")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # small models on a shared 2-core CPU
    yield
    torch.set_num_threads(n)


def _cfg(kind, width, **kw):
    ffn = structures.for_fraction(kind, width, 4 * width, 0.32)
    kw = dict(d_model=width, n_layers=2, n_heads=4, vocab_size=256, seq_len=16, ffn=ffn, param="mup") | kw
    return ModelConfig(**kw)


def _fans(name: str, shape: tuple) -> tuple:
    """(fan_in, fan_out, count) of a weight tensor from its shape and the layer's definition
    (scalelab/model/linear.py docstring), written out here independently of structures.factors."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf in ("weight", "guide_weight"):  # dense (M, N)
        return shape[1], shape[0], 1
    if leaf in ("V", "U") and len(shape) == 2:  # lowrank V (R, N), U (M, R); blockdense U (M, R)
        return shape[1], shape[0], 1
    if leaf == "V":  # blockdense V (B, R/B, N/B)
        return shape[2], shape[1], shape[0]
    if len(shape) == 3:  # blockshuffle W1 / W2 (B, out, in)
        return shape[2], shape[1], shape[0]
    if leaf == "W1":  # btt core 1 (a1, b1, R, a2): a1 blocks of a2 -> b1 R
        return shape[3], shape[1] * shape[2], shape[0]
    if leaf == "W2":  # btt core 2 (b1, b2, a1, R): b1 blocks of a1 R -> b2
        return shape[2] * shape[3], shape[1], shape[0]
    raise AssertionError(f"no shape rule for {name} {shape}")


def test_sp_configs_and_run_ids_are_unchanged():
    """SP records no new keys, so every existing run id stays (values computed before muP existed)."""
    r1 = RunConfig("g", ModelConfig(), TrainConfig(), DataConfig())
    m2 = ModelConfig(d_model=64, ffn=StructureConfig("lowrank", rank=16), guide=GuideConfig())
    r2 = RunConfig("g", m2, TrainConfig(lr=1e-3), DataConfig(), seed=3)
    assert (r1.run_id, r2.run_id) == ("52fc528167d8", "45151b8e4eba")
    assert "param" not in r1.to_dict()["model"] and "mup_groups" not in r1.to_dict()["model"]
    mup = m2.replace(param="mup")
    d = mup.to_dict()
    assert d["param"] == "mup" and d["mup_base_width"] == 64 and d["mup_groups"]
    assert ModelConfig.from_dict(d) == mup and mup.variant == "lowrank-r16+sg+mup"
    assert (
        RunConfig("g", mup, TrainConfig(), DataConfig()).run_id
        != RunConfig("g", m2, TrainConfig(), DataConfig()).run_id
    )


def test_sp_model_is_bit_identical_to_the_default():
    torch.manual_seed(0)
    a = GPT(ModelConfig(d_model=32, n_layers=2, n_heads=2, ffn=StructureConfig("lowrank", rank=8)))
    torch.manual_seed(0)
    b = GPT(ModelConfig(d_model=32, n_layers=2, n_heads=2, ffn=StructureConfig("lowrank", rank=8), param="sp"))
    for (n, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), n
    assert all("lr_mult" not in g for g in a.param_groups(0.1))


def test_unknown_param_is_a_one_line_error():
    with pytest.raises(ScalelabError, match=r"unknown param 'mupp': use one of sp, mup"):
        ModelConfig(param="mupp")
    with pytest.raises(ScalelabError, match="mup_base_width must be positive"):
        ModelConfig(param="mup", mup_base_width=0)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_declares_factors_matching_its_module(kind):
    s = structures.for_fraction(kind, 64, 256, 0.32)
    for n, m in ((64, 256), (256, 64)):
        f = structures.factors(s, n, m)
        assert sum(c * fi * fo for fi, fo, c in f.values()) == structures.params(s, n, m)
        layer = make_linear(s, n, m, bias=False)
        shapes = {k: tuple(p.shape) for k, p in layer.named_parameters()}
        assert set(shapes) == set(f)
        for k, shape in shapes.items():
            assert _fans(k, shape) == f[k], (kind, n, m, k)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("width", [64, 256])
@pytest.mark.parametrize("extra", [{}, {"attn": "lpa", "attn_rank": 16}, {"guide": GuideConfig()}])
def test_multipliers_and_inits_match_the_spectral_formulas(kind, width, extra):
    """Each tensor: std = 0.02 sqrt(b / fan_in) min(1, sqrt(fan_out / fan_in)), lr_mult = b / fan_in
    (Qiu et al. 2024, each factor a dense layer under the spectral condition); embedding std 0.02 and
    lr 1; vectors lr 1; guide copies lr b / N and equal to their factors' product. Checked on the table,
    on the AdamW groups and on the drawn tensors' measured std."""
    if kind == "dense" and "guide" in extra:
        pytest.skip("a dense model has nothing to guide")
    b = 64
    cfg = _cfg(kind, width, **extra)
    torch.manual_seed(0)
    model = GPT(cfg)
    lr_of = {id(p): g["lr_mult"] for g in model.param_groups(0.1) for p in g["params"]}
    from scalelab.model import mup as mup_torch

    rows = mup_torch.assign(model)
    seen_roles = set()
    for name, p in model.named_parameters():
        row = rows[name]
        seen_roles.add(row.role)
        if name == "wte.weight":
            want_std, want_lr = 0.02, 1.0
        elif p.dim() < 2:
            want_std, want_lr = None, 1.0
        else:
            fi, fo, count = _fans(name, tuple(p.shape))
            assert (row.fan_in, row.fan_out, row.count) == (fi, fo, count), name
            want_lr = b / fi
            want_std = None if name.endswith("guide_weight") else 0.02 * math.sqrt(b / fi) * min(1, math.sqrt(fo / fi))
        assert lr_of[id(p)] == pytest.approx(want_lr, rel=1e-12) and row.lr_mult == pytest.approx(want_lr), name
        if want_std is not None:
            assert row.init_std == pytest.approx(want_std, rel=1e-12), name
            if p.numel() >= 2000:  # the drawn tensor's std (sampling error ~ 1 / sqrt(2 numel) < 2%)
                assert float(p.detach().std()) == pytest.approx(want_std, rel=0.06), name
    for m in model.modules():
        if hasattr(m, "guide_weight"):
            assert torch.allclose(m.guide_weight, m.inner.materialize(), atol=1e-6)
    assert {"embedding", "hidden", "vector"} <= seen_roles


def test_attention_scale_and_logit_multiplier():
    """muP: q.k / (sqrt(hd) sqrt(d / b)) (SP's 1 / sqrt(hd) at width b, ~ 1 / hd beyond), logits x b / d."""
    from scalelab import mup

    for d in (64, 256):
        cfg = _cfg("dense", d)
        assert mup.attn_scale(cfg) == pytest.approx(1 / math.sqrt(cfg.head_dim * d / 64))
        assert mup.logit_mult(cfg) == pytest.approx(64 / d)
    assert mup.attn_scale(_cfg("dense", 64)) == pytest.approx(1 / math.sqrt(16))
    assert mup.attn_scale(_cfg("dense", 256, param="sp")) is None
    # the forward really uses them: logits = (b / d) ln_f(x) wte^T
    torch.manual_seed(0)
    model = GPT(_cfg("dense", 128))
    idx = torch.randint(0, 256, (2, 16))
    feats = {}
    model.ln_f.register_forward_hook(lambda m, i, y: feats.__setitem__("x", y))
    logits, _ = model(idx)
    assert torch.allclose(logits, 0.5 * feats["x"] @ model.wte.weight.t(), atol=1e-6)


def test_trainer_applies_each_groups_lr_multiplier(tmp_path, monkeypatch):
    """The run's AdamW groups carry lr_mult, every step sets lr x lr_mult, and Adam's first step moves
    each entry by about that lr (its update is the gradient's sign); the multipliers are in the config."""
    from scalelab.data import load_corpus
    from scalelab.grid import Grid
    from scalelab.run.train import Trainer

    monkeypatch.setenv("SCALELAB_CACHE", str(tmp_path / "cache"))
    model_t = '[model]\nwidths = [32]\nn_layers = 2\nheads = 2\nseq_len = 32\nparam = "mup"\nmup_base_width = 16\n'
    variants = '[[variants]]\nstructure = "lowrank"\nrank = 8\nmodel = { dense_first_ffn = false }\n'
    (run,) = Grid.load(write_grid(tmp_path, model=model_t, variants=variants)).runs()
    assert run.model.param == "mup" and run.to_dict()["model"]["mup_groups"]
    tr = Trainer(run, load_corpus(run.data), device="cpu")
    model, opt = tr._build()
    mults = {g["lr_mult"] for g in opt.param_groups}
    assert {0.5, 2.0, 1.0} <= mults  # b / d for width 32, b / R for rank 8, vectors and embedding
    before = {id(p): p.detach().clone() for p in model.parameters()}
    tr._train_step(model, opt, 0, 1e-3)
    for g in opt.param_groups:
        assert g["lr"] == pytest.approx(1e-3 * g["lr_mult"])
        for p in g["params"]:
            if p.dim() >= 2:
                step = float((p.detach() - before[id(p)]).abs().max())
                assert step == pytest.approx(1e-3 * g["lr_mult"], rel=0.05)


def test_variant_table_sets_param(tmp_path):
    from scalelab.grid import Grid

    variants = (
        '[[variants]]\nstructure = "dense"\n'
        '[[variants]]\nstructure = "dense"\nmodel = { param = "mup" }\n'
    )  # fmt: skip
    runs = Grid.load(write_grid(tmp_path, variants=variants)).runs()
    assert sorted(r.model.variant for r in runs) == ["dense", "dense+mup"]
    bad = '[[variants]]\nstructure = "dense"\nmodel = { param = "ntk" }\n'
    with pytest.raises(ScalelabError, match="unknown param 'ntk'"):
        Grid.load(write_grid(tmp_path, variants=bad, name="bad")).runs()


# Coordinate check. muP's defining property: after t Adam steps the change of every layer's output
# coordinates is Theta(1) in width, so the slope of log RMS(change) vs log width is 0; under SP with one
# lr an Adam step moves each weight entry by ~lr and a layer's output by ~lr x fan_in, slope ~1 (the
# logits through the tied embedding likewise). The bound 0.4 sits between the two predictions with room
# for finite-width effects at widths 32..256: measured muP slopes are within [-0.7, 0.25] (they dip below
# zero where a structure's factor fan-ins are still tiny, e.g. BTT's 4..16, and flatten above 256: see
# `scalelab bench coord-check`), SP slopes >= 0.55 for the logits and >= 0.7 for the FFN output.
BOUND = 0.4


def test_coordinate_check_is_flat_under_mup_and_grows_under_sp():
    res = coord.coord_check(widths=(32, 64, 128, 256), steps=4, lr=1e-2, batch=4, seq_len=16, seed=0)
    s = {(r["kind"], r["param"], r["stat"]): r["slope"] for r in res["slopes"]}
    for kind in KINDS:
        for stat in ("ffn", "logits"):
            assert s[kind, "mup", stat] < BOUND, (kind, stat, s[kind, "mup", stat])
            assert s[kind, "sp", stat] > BOUND, (kind, stat, s[kind, "sp", stat])
        # two-sided for the logits, the quantity the readout rule pins; loose for the FFN output
        assert abs(s[kind, "mup", "logits"]) < BOUND, kind
        assert abs(s[kind, "mup", "ffn"]) < 2 * BOUND, kind
