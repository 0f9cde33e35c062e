"""GPT: exact param counts, FLOPs against FlopCounterMode, causality, RoPE, training on CPU."""

import contextlib
import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from scalelab.config import GuideConfig, ModelConfig
from scalelab.flops import forward_flops_per_token, guide_flops_per_token, param_counts
from scalelab.model.gpt import GPT, apply_rope, rope_cache
from scalelab.model.linear import Dense, LowRank
from scalelab.presets import PRESETS, get_preset, with_ffn

STRUCTS = ("dense", "lowrank", "blockdense", "blockshuffle")


def _variants(base):
    """One config of every FFN structure and attention kind at the base shape."""
    out = {k: with_ffn(base, k, fraction=0.32) for k in STRUCTS}
    out["gqa"] = base.replace(attn="gqa", n_kv_heads=1)
    out["lpa"] = base.replace(attn="lpa", attn_rank=base.d_model // 4)
    out["lpa+lowrank"] = with_ffn(base, "lowrank", rank=base.d_model // 4).replace(
        attn="lpa", attn_rank=base.d_model // 4
    )
    out["d_attn+swiglu"] = base.replace(d_attn=base.d_model // 2, activation="swiglu", d_ff=3 * base.d_model)
    out["relu+nobias+blockdense"] = with_ffn(base, "blockdense", blocks=2, rank=base.d_model // 2).replace(
        activation="relu", bias=False
    )
    out["all-structured"] = with_ffn(base, "blockshuffle", blocks=2).replace(dense_first_ffn=False)
    out["guided-lowrank"] = with_ffn(base, "lowrank", fraction=0.63).replace(guide=GuideConfig(reduce_flop=False))
    out["guided-lpa"] = base.replace(attn="lpa", attn_rank=base.d_model // 4, guide=GuideConfig(reduce_flop=True))
    return out


@pytest.mark.parametrize("preset", list(PRESETS))
def test_param_counts_equal_numel_every_preset_and_structure(preset):
    base = get_preset(preset)
    for name, cfg in _variants(base).items():
        with torch.device("meta"):  # seed-xl is ~1.3B params: never allocated
            model = GPT(cfg)
        numel = sum(p.numel() for p in model.parameters())
        pc = param_counts(cfg)
        assert model.num_params() == pc.params, (preset, name)
        assert numel == pc.params + pc.guide_params, (preset, name)
        emb = model.wte.weight.numel()
        assert pc.params_nonembed == numel - pc.guide_params - emb
        ffn = sum(p.numel() for b in model.blocks for n, p in b.ffn.named_parameters() if "guide_weight" not in n)
        assert pc.ffn_params == ffn, (preset, name)


def test_padded_vocab_is_counted_and_masked():
    cfg = get_preset("tiny").replace(vocab_size=100, vocab_multiple=64, seq_len=16)
    torch.manual_seed(0)
    model = GPT(cfg)
    assert model.wte.weight.shape == (128, cfg.d_model) == (cfg.padded_vocab, cfg.d_model)
    assert param_counts(cfg).params == model.num_params()
    idx = torch.randint(0, 100, (2, 16))
    tgt = torch.randint(0, 100, (2, 16))
    logits, loss = model(idx, tgt)
    assert logits.shape == (2, 16, 100)
    ref = F.cross_entropy(logits.reshape(-1, 100), tgt.reshape(-1))
    assert torch.allclose(loss, ref)
    assert abs(loss.item() - math.log(100)) < 0.3  # near-uniform at init over the REAL vocab


def _count(model, idx, math_sdpa: bool):
    ctx = sdpa_kernel(SDPBackend.MATH) if math_sdpa else contextlib.nullcontext()
    with ctx:
        fwd = FlopCounterMode(display=False)
        with fwd:
            _, loss = model(idx, idx)
        bwd = FlopCounterMode(display=False)
        with bwd:
            loss.backward()
    return fwd.get_total_flops(), bwd.get_total_flops()


# Small configs: tiny shape, short sequence, vocab padded (the logits matmul uses the padded vocab).
SMALL = get_preset("tiny").replace(seq_len=32, vocab_size=100, vocab_multiple=64)


@pytest.mark.parametrize("name,cfg", list(_variants(SMALL).items()))
def test_forward_flops_match_flop_counter(name, cfg):
    """Analytic forward FLOPs == FlopCounterMode, exactly.

    SDPA accounting: FlopCounterMode has formulas for the CUDA SDPA kernels (flash / efficient / cudnn:
    QK^T and AV over the full T x T, no causal halving, i.e. 4 T d_attn per token, the seeds'
    convention) but not for the CPU flash kernel, which it counts as 0. So on CPU we run the model with
    the MATH backend, which decomposes SDPA into two full bmm's that the counter does see (the causal
    mask is applied after the full product): that equals the analytic count exactly. With the default
    CPU backend the counter misses exactly the attention term, which the second assertion checks.
    Backward: math SDPA backward is 4 bmm = 2 x forward like every matmul, so training = 3 x forward
    holds exactly on CPU; the CUDA flash formula counts 5 backward bmm (2.5 x its forward, see
    test_sdpa_flop_formulas), so FlopCounterMode on CUDA reads 4 L T d_attn x 0.5 more per token than
    the seeds' 3 x forward convention.
    """
    torch.manual_seed(0)
    model = GPT(cfg)
    B, T = 2, cfg.seq_len
    idx = torch.randint(0, cfg.vocab_size, (B, T))
    guide = guide_flops_per_token(cfg) / 3  # forward share of the guide path, which runs at alpha = 1
    fwd, bwd = _count(model, idx, math_sdpa=True)
    assert fwd == (forward_flops_per_token(cfg) + guide) * B * T, name
    if cfg.guide is None or not cfg.guide.reduce_flop:
        assert bwd == 2 * fwd, name
    model.zero_grad()
    fwd_cpu, _ = _count(model, idx, math_sdpa=False)
    attn_term = cfg.n_layers * 4 * T * cfg.attn_width * B * T
    assert fwd_cpu in (fwd, fwd - attn_term), name  # CPU flash kernel uncounted


def test_sdpa_flop_formulas():
    """What FlopCounterMode books for an SDPA call (the CUDA kernels): forward 4 b h s^2 d (QK^T and AV,
    no causal halving) and backward 2.5 x that (5 bmm)."""
    b, h, s, d = 2, 4, 32, 16
    q = (b, h, s, d)
    assert sdpa_flop_count(q, q, q) == 4 * b * h * s * s * d
    assert sdpa_backward_flop_count(q, q, q, q) == 10 * b * h * s * s * d


def test_guided_flops_vanish_at_alpha_zero():
    from scalelab.model.guided import set_guide_alpha

    cfg = _variants(SMALL)["guided-lowrank"]
    model = GPT(cfg)
    set_guide_alpha(model, 0.0)
    idx = torch.randint(0, 100, (2, 32))
    fwd, _ = _count(model, idx, math_sdpa=True)
    assert fwd == forward_flops_per_token(cfg) * 2 * 32


def test_structure_placement():
    cfg = with_ffn(SMALL, "lowrank", rank=16).replace(attn="lpa", attn_rank=8)
    m = GPT(cfg)
    assert isinstance(m.blocks[0].ffn.up, Dense) and isinstance(m.blocks[0].ffn.down, Dense)
    assert isinstance(m.blocks[1].ffn.up, LowRank) and m.blocks[1].ffn.up.rank == 16
    for proj in ("q", "k", "v", "o"):
        layer = getattr(m.blocks[1].attn, proj)
        assert isinstance(layer, LowRank) and layer.rank == 8
    m2 = GPT(cfg.replace(dense_first_ffn=False))
    assert isinstance(m2.blocks[0].ffn.up, LowRank)


def test_causal():
    torch.manual_seed(0)
    for cfg in (SMALL, SMALL.replace(attn="gqa", n_kv_heads=1)):
        model = GPT(cfg)
        idx = torch.randint(0, 100, (1, 32))
        idx2 = idx.clone()
        idx2[0, 20:] = (idx2[0, 20:] + 1) % 100
        a, _ = model(idx)
        b, _ = model(idx2)
        assert torch.allclose(a[0, :20], b[0, :20], atol=1e-6)
        assert not torch.allclose(a[0, 20:], b[0, 20:])


def test_rope_scores_depend_on_relative_position_only():
    torch.manual_seed(0)
    hd = 16
    cos, sin = rope_cache(64, hd, 10000.0)
    q, k = torch.randn(hd, dtype=torch.float64), torch.randn(hd, dtype=torch.float64)
    cos, sin = cos.double(), sin.double()

    def score(m, n):
        qm = apply_rope(q.view(1, 1, 1, hd), cos[m : m + 1], sin[m : m + 1]).flatten()
        kn = apply_rope(k.view(1, 1, 1, hd), cos[n : n + 1], sin[n : n + 1]).flatten()
        return (qm @ kn).item()

    assert score(5, 2) == pytest.approx(score(40, 37), rel=1e-6)  # float32 cos/sin tables
    assert score(0, 0) == pytest.approx((q @ k).item(), rel=1e-9)
    assert score(5, 2) != pytest.approx(score(5, 3), rel=1e-3)


def test_gqa_equals_mha_with_shared_kv_heads():
    """GQA with kv heads == MHA whose K/V heads are copies (each KV head serves consecutive query heads)."""
    torch.manual_seed(0)
    g = GPT(SMALL.replace(n_heads=4, attn="gqa", n_kv_heads=2))
    m = GPT(SMALL.replace(n_heads=4))
    sd = g.state_dict()
    hd, d = SMALL.d_model // 4, SMALL.d_model
    for i in range(SMALL.n_layers):
        w = sd[f"blocks.{i}.attn.qkv.weight"]
        bb = sd[f"blocks.{i}.attn.qkv.bias"]
        q, k, v = w.split((d, 2 * hd, 2 * hd))
        qb, kb, vb = bb.split((d, 2 * hd, 2 * hd))
        rep = lambda t: t.view(2, hd, *t.shape[1:]).repeat_interleave(2, dim=0).reshape(4 * hd, *t.shape[1:])
        sd[f"blocks.{i}.attn.qkv.weight"] = torch.cat([q, rep(k), rep(v)])
        sd[f"blocks.{i}.attn.qkv.bias"] = torch.cat([qb, rep(kb), rep(vb)])
    m.load_state_dict(sd)
    idx = torch.randint(0, 100, (2, 32))
    assert torch.allclose(g(idx)[0], m(idx)[0], atol=1e-5)


def test_param_groups_decay_matrices_only():
    model = GPT(with_ffn(SMALL, "blockshuffle", blocks=2))
    dec, nodec = model.param_groups(0.1)
    assert dec["weight_decay"] == 0.1 and nodec["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in dec["params"]) and all(p.dim() == 1 for p in nodec["params"])
    assert len(dec["params"]) + len(nodec["params"]) == len(list(model.parameters()))
    assert any(p is model.wte.weight for p in dec["params"])


@pytest.mark.parametrize("kind", ["dense", "lowrank"])
def test_tiny_model_trains_on_a_fixed_batch(kind):
    torch.manual_seed(0)
    cfg = with_ffn(get_preset("tiny").replace(seq_len=64), kind, rank=16 if kind == "lowrank" else None)
    model = GPT(cfg)
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=3e-3)
    x = torch.randint(0, 256, (4, 64))
    y = torch.roll(x, -1, dims=1)
    first = None
    for _ in range(30):
        _, loss = model(x, y)
        first = first if first is not None else loss.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert first > 5.0  # about ln 256 at init
    assert loss.item() < 0.6 * first


TRACE = {
    k: v
    for k, v in _variants(SMALL.replace(seq_len=16)).items()
    if k in ("dense", "blockdense", "blockshuffle", "gqa", "lpa+lowrank", "d_attn+swiglu", "guided-lowrank")
}


@pytest.mark.parametrize("name,cfg", list(TRACE.items()))
def test_bf16_autocast_and_dynamo_single_graph(name, cfg):
    """Every structure runs forward and backward under bf16 autocast (CPU here) and traces into one
    torch.compile graph with no graph breaks (backend "eager": tracing only, no codegen)."""
    import torch._dynamo as dynamo

    torch.manual_seed(0)
    model = GPT(cfg)
    idx = torch.randint(0, cfg.vocab_size, (2, cfg.seq_len))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, loss = model(idx, idx)
    loss.backward()
    assert torch.isfinite(loss) and loss.dtype == torch.float32
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    dynamo.reset()
    explained = dynamo.explain(model)(idx, idx)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, name


def test_guided_alpha_changes_do_not_recompile():
    import torch._dynamo as dynamo
    from torch._dynamo.testing import CompileCounter

    from scalelab.model.guided import set_guide_alpha

    dynamo.reset()
    model = GPT(TRACE["guided-lowrank"])
    counter = CompileCounter()
    compiled = torch.compile(model, backend=counter)
    idx = torch.randint(0, 100, (2, 16))
    from scalelab.model.guided import guided_layers

    layer = guided_layers(model)[0]
    for a in (1.0, 0.9, 0.5, 0.1, 0.0, 0.0):
        set_guide_alpha(model, a)
        compiled(idx, idx)
    assert counter.frame_count == 2  # one graph with the guide path, one without (alpha = 0)
    assert layer.dense_calls == 4  # counted inside the compiled graph too (FLOP accounting)


@pytest.mark.parametrize("init", ["default", "svd"])
def test_lpa_projection_init(init):
    """lpa_init = "default": LPA's nn.Linear init per factor, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias after the
    second factor likewise; "svd": the structured-FFN SVD init (factors balanced: U^T U = V V^T), zero bias."""
    cfg = ModelConfig(d_model=64, n_layers=2, n_heads=4, vocab_size=64, seq_len=16, attn="lpa", attn_rank=16)
    torch.manual_seed(0)
    q = GPT(cfg.replace(lpa_init=init)).blocks[0].attn.q
    d, r = 64, 16
    if init == "default":
        for w, fan_in in ((q.V, d), (q.U, r)):
            b = 1 / math.sqrt(fan_in)
            assert w.abs().max() <= b and w.abs().max() > 0.9 * b  # fills its uniform range
            assert w.var().item() == pytest.approx(b * b / 3, rel=0.15)  # variance of U(-b, b)
        assert q.bias.abs().max() <= 1 / math.sqrt(r) and q.bias.abs().max() > 0
    else:
        assert torch.allclose(q.U.T @ q.U, q.V @ q.V.T, atol=1e-6)
        assert q.bias.abs().max() == 0
