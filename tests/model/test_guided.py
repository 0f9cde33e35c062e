"""Self-guided training: the alpha schedule, the mix at alpha = 1 / 0, reduce_flop, model wiring."""

import math

import pytest
import torch
import torch.nn.functional as F

from scalelab.config import GuideConfig, StructureConfig
from scalelab.model.gpt import GPT
from scalelab.model.guided import GuidedLinear, guide_alpha, guided_layers, set_guide_alpha
from scalelab.model.linear import make_linear
from scalelab.presets import get_preset, with_ffn


def test_schedule_cosine_reaches_zero_at_fraction():
    total, frac = 1000, 0.3
    t_g = 300
    assert guide_alpha(0, total, frac) == 1.0
    assert guide_alpha(150, total, frac) == pytest.approx(0.5)
    assert guide_alpha(75, total, frac) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert guide_alpha(t_g - 1, total, frac) > 0.0
    assert guide_alpha(t_g, total, frac) == 0.0
    assert all(guide_alpha(s, total, frac) == 0.0 for s in range(t_g, total + 5))
    seq = [guide_alpha(s, total, frac) for s in range(t_g + 1)]
    assert all(a >= b for a, b in zip(seq, seq[1:]))
    assert guide_alpha(0, total, 1.0) == 1.0 and guide_alpha(total, total, 1.0) == 0.0


@pytest.mark.parametrize(
    "struct,n,m",
    [
        (StructureConfig("lowrank", rank=4), 16, 40),
        (StructureConfig("blockdense", blocks=2, rank=8), 40, 16),
        (StructureConfig("blockshuffle", blocks=4), 16, 32),
    ],
)
def test_alpha_one_is_dense_alpha_zero_is_structured(struct, n, m):
    torch.manual_seed(0)
    inner = make_linear(struct, n, m, bias=True).double()
    g = GuidedLinear(inner).double()
    # W starts as the structured layer's dense equivalent
    assert torch.allclose(g.guide_weight, inner.materialize(), atol=1e-12)
    with torch.no_grad():
        g.guide_weight.add_(torch.randn_like(g.guide_weight))  # make the two paths differ
        inner.bias.normal_()
    x = torch.randn(3, n, dtype=torch.float64)
    g.set_alpha(1.0)
    assert torch.allclose(g(x), F.linear(x, g.guide_weight, inner.bias), atol=1e-12)
    g.set_alpha(0.0)
    assert torch.allclose(g(x), x @ inner.materialize().T + inner.bias, atol=1e-12)
    g.set_alpha(0.25)
    mix = 0.25 * F.linear(x, g.guide_weight) + 0.75 * (x @ inner.materialize().T) + inner.bias
    assert torch.allclose(g(x), mix, atol=1e-12)
    assert torch.allclose(x @ g.materialize().T + inner.bias, mix, atol=1e-12)


def test_gradients_flow_to_both_paths_then_only_structured():
    torch.manual_seed(0)
    g = GuidedLinear(make_linear(StructureConfig("lowrank", rank=4), 16, 32, bias=True))
    x = torch.randn(5, 16)
    g.set_alpha(0.5)
    g(x).pow(2).sum().backward()
    assert g.guide_weight.grad.abs().sum() > 0 and g.inner.U.grad.abs().sum() > 0
    g.zero_grad(set_to_none=True)
    g.set_alpha(0.0)
    g(x).pow(2).sum().backward()
    assert g.guide_weight.grad is None  # dense path skipped entirely once alpha = 0
    assert g.inner.U.grad.abs().sum() > 0


def test_reduce_flop_runs_dense_path_with_probability_alpha():
    torch.manual_seed(0)
    g = GuidedLinear(make_linear(StructureConfig("lowrank", rank=2), 8, 8, bias=False), reduce_flop=True)
    x = torch.randn(2, 8)
    g.train()
    g.set_alpha(0.3)
    n = 2000
    for _ in range(n):
        g(x)
    # binomial(2000, 0.3): sd about 20.5; 5 sd bounds
    assert abs(g.dense_calls - 0.3 * n) < 5 * math.sqrt(n * 0.3 * 0.7)
    g.eval()
    g.dense_calls = 0
    for _ in range(50):
        g(x)
    assert g.dense_calls == 50  # evaluation mixes deterministically
    g.train()
    g.set_alpha(0.0)
    g.dense_calls = 0
    for _ in range(50):
        g(x)
    assert g.dense_calls == 0


def test_model_wraps_structured_layers_and_set_guide_alpha_reaches_all():
    base = get_preset("tiny").replace(seq_len=16)
    cfg = with_ffn(base, "lowrank", rank=16).replace(attn="lpa", attn_rank=16, guide=GuideConfig(fraction=0.5))
    model = GPT(cfg)
    layers = guided_layers(model)
    # block 1: up, down, q, k, v, o; block 0: q, k, v, o (its FFN is dense)
    assert len(layers) == 6 + 4
    assert not isinstance(model.blocks[0].ffn.up, GuidedLinear)
    set_guide_alpha(model, 0.4)
    assert all(ln.alpha == pytest.approx(0.4) for ln in layers)
    set_guide_alpha(model, 0.0)
    assert all(ln.alpha == 0.0 and not ln.active for ln in layers)


def test_guided_model_at_alpha_one_equals_its_dense_guide_network():
    """At alpha = 1 the guided model is the network whose structured linears are replaced by W."""
    torch.manual_seed(0)
    base = get_preset("tiny").replace(seq_len=16)
    cfg = with_ffn(base, "blockshuffle", blocks=2).replace(guide=GuideConfig())
    model = GPT(cfg).double()
    dense = GPT(base).double()
    {k: v for k, v in model.state_dict().items()}
    with torch.no_grad():
        for ln in guided_layers(model):
            ln.guide_weight.add_(0.01 * torch.randn_like(ln.guide_weight))
    new = {}
    for k, v in model.state_dict().items():
        if ".inner." in k:
            if k.endswith(".inner.bias"):
                new[k.replace(".inner.bias", ".bias")] = v
            continue
        new[k.replace(".guide_weight", ".weight")] = v
    dense.load_state_dict(new)
    set_guide_alpha(model, 1.0)
    idx = torch.randint(0, 256, (2, 16))
    assert torch.allclose(model(idx)[0], dense(idx)[0], atol=1e-10)


@pytest.mark.parametrize("struct", [StructureConfig("lowrank", rank=4), StructureConfig("blockshuffle", blocks=4)])
def test_bf16_structured_factors_get_gradients_near_alpha_one(struct):
    # in bf16, 0.999 rounds to 1.0: a mix weight 1 - round(alpha) would be exactly 0 and freeze the factors
    assert float(torch.tensor(0.999).to(torch.bfloat16)) == 1.0
    torch.manual_seed(0)
    g = GuidedLinear(make_linear(struct, 16, 32, bias=False)).to(torch.bfloat16)
    g.set_alpha(0.999)
    g(torch.randn(8, 16, dtype=torch.bfloat16)).square().sum().backward()
    grads = [p.grad for n, p in g.named_parameters() if n.startswith("inner.")]
    assert grads and all(gr is not None and gr.float().abs().max() > 0 for gr in grads)


def test_bf16_autocast_structured_factors_get_gradients_near_alpha_one():
    # the training path: float32 weights under bf16 autocast
    torch.manual_seed(0)
    g = GuidedLinear(make_linear(StructureConfig("lowrank", rank=4), 16, 32, bias=False))
    g.set_alpha(0.999)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = g(torch.randn(8, 16))
    assert out.dtype == torch.bfloat16
    out.float().square().sum().backward()
    grads = [p.grad for n, p in g.named_parameters() if n.startswith("inner.")]
    assert grads and all(gr is not None and gr.abs().max() > 0 for gr in grads)


def test_bf16_mix_keeps_structured_factor_gradients_near_alpha_one():
    """Issue 12, defect 3: alpha rounded to bf16 before 1 - alpha gives the structured path weight 0 for
    alpha > 1 - 2^-9. With bf16 tensors at alpha = 0.999 the factors must get gradients, and the mix must be
    the float32 one (alpha, 1 - alpha) of the two bf16 path outputs, not a bf16-rounded alpha (0.999 -> 1)."""
    torch.manual_seed(0)
    g = GuidedLinear(make_linear(StructureConfig("lowrank", rank=4), 64, 64, bias=False)).to(torch.bfloat16)
    with torch.no_grad():
        g.guide_weight.normal_(0.0, 0.05)  # a trained guide differs from the factors' product
    g.set_alpha(0.999)
    x = torch.randn(256, 64, dtype=torch.bfloat16)
    y = g(x)
    y.float().sum().backward()
    assert g.inner.U.grad.abs().sum() > 0 and g.inner.V.grad.abs().sum() > 0
    with torch.no_grad():
        dense = F.linear(x, g.guide_weight)
        struct = g.inner.structured_forward(x)
        ref = 0.999 * dense.double() + (1 - 0.999) * struct.double()  # exact mix of the two bf16 paths
        w = torch.tensor([0.999, 1 - 0.999]).to(torch.bfloat16)  # the weights rounded to bf16: [1.0, 0.001]
        rounded = w[0] * dense + w[1] * struct
    # y is the exact mix rounded once to bf16 (float32 arithmetic may flip a rare tie), the bf16 weights are not
    exact = ref.to(torch.bfloat16)
    assert (y == exact).double().mean() > 0.99
    assert (y == exact).double().mean() > (rounded == exact).double().mean()
