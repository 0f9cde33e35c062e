"""Structured linears: forward == x @ materialize().T, REFERENCE.md's definitions, params, inits, errors."""

import math

import pytest
import torch

from scalelab.config import StructureConfig
from scalelab.errors import ScalelabError
from scalelab.model.linear import BlockDense, BlockShuffle, Dense, LowRank, make_linear


def _random_cases(n_cases=24, seed=0):
    """Random (structure, N, M) that divide, N < M, N > M and N == M all present."""
    g = torch.Generator().manual_seed(seed)
    ri = lambda lo, hi: int(torch.randint(lo, hi + 1, (), generator=g))
    cases = []
    for i in range(n_cases):
        b = [1, 2, 4, 8][i % 4]
        n, m = b * ri(1, 12), b * ri(1, 12)
        if i % 3 == 0:
            n, m = min(n, m), max(n, m) + b  # N < M
        elif i % 3 == 1:
            n, m = max(n, m) + b, min(n, m)  # N > M
        r = ri(1, min(n, m))
        rb = b * ri(1, max(1, min(n, m) // b))
        cases += [
            (StructureConfig("lowrank", rank=r), n, m),
            (StructureConfig("blockdense", blocks=b, rank=rb), n, m),
            (StructureConfig("blockshuffle", blocks=b), n, m),
        ]
    cases += [(StructureConfig("blockshuffle", blocks=4), 16, 16), (StructureConfig("dense"), 7, 5)]
    return cases


CASES = _random_cases()


@pytest.mark.parametrize("struct,n,m", CASES, ids=[f"{s.kind}-r{s.rank}-b{s.blocks}-{n}x{m}" for s, n, m in CASES])
def test_forward_equals_materialized_weight_float64(struct, n, m):
    torch.manual_seed(1)
    layer = make_linear(struct, n, m, bias=True).double()
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(3, 5, n, dtype=torch.float64)
    w = layer.materialize()
    assert w.shape == (m, n)
    ref = x @ w.T + layer.bias
    y = layer(x)
    assert y.shape == (3, 5, m)
    assert ((y - ref).norm() / ref.norm()).item() < 1e-10


@pytest.mark.parametrize("struct,n,m", CASES[:12], ids=[f"{s.kind}-{n}x{m}" for s, n, m in CASES[:12]])
def test_gradients_reach_every_factor(struct, n, m):
    torch.manual_seed(2)
    layer = make_linear(struct, n, m, bias=True).double()
    x = torch.randn(4, n, dtype=torch.float64)
    (layer(x) ** 2).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def _expected_params(struct, n, m):
    """REFERENCE.md section 1 closed forms."""
    r, b = struct.rank, struct.blocks
    return {
        "dense": lambda: n * m,
        "lowrank": lambda: r * (n + m),
        "blockdense": lambda: r * n // b + r * m,
        "blockshuffle": lambda: min(n, m) * (n + m) // b,
    }[struct.kind]()


@pytest.mark.parametrize("struct,n,m", CASES, ids=[f"{s.kind}-{n}x{m}" for s, n, m in CASES])
def test_param_count_matches_reference_formula(struct, n, m):
    from scalelab.flops import structured_params

    layer = make_linear(struct, n, m, bias=False)
    numel = sum(p.numel() for p in layer.parameters())
    assert numel == _expected_params(struct, n, m) == structured_params(struct, n, m)


def _blockshuffle_by_definition(layer: BlockShuffle, x: torch.Tensor) -> torch.Tensor:
    """y = P_M^T blockdiag(W2) P_K blockdiag(W1) x, written with explicit loops and index formulas:
    P_n is the stride-B interleave: (P v)[c q + a] = v[a B + c], q = n / B."""
    B = layer.blocks
    W1, W2 = layer.W1.detach(), layer.W2.detach()
    out = []
    for v in x:
        k1o, k1i = W1.shape[1:]
        h = torch.cat([W1[i] @ v[i * k1i : (i + 1) * k1i] for i in range(B)])
        _K, q = h.numel(), h.numel() // B
        ph = torch.empty_like(h)
        for c in range(B):
            for a in range(q):
                ph[c * q + a] = h[a * B + c]
        k2o, k2i = W2.shape[1:]
        z = torch.cat([W2[i] @ ph[i * k2i : (i + 1) * k2i] for i in range(B)])
        _M, p = z.numel(), z.numel() // B
        y = torch.empty_like(z)
        for c in range(B):  # P^T: y[a B + c] = z[c p + a]
            for a in range(p):
                y[a * B + c] = z[c * p + a]
        out.append(y)
    return torch.stack(out)


@pytest.mark.parametrize("n,m,b", [(8, 24, 2), (24, 8, 4), (16, 16, 4), (12, 36, 3)])
def test_blockshuffle_matches_reference_definition(n, m, b):
    torch.manual_seed(3)
    layer = BlockShuffle(n, m, b, bias=False).double()
    # block shapes per REFERENCE: N < M: (N/B)^2 then (M/B) x (N/B); N > M: (M/B) x (N/B) then (M/B)^2
    if n <= m:
        assert layer.W1.shape == (b, n // b, n // b) and layer.W2.shape == (b, m // b, n // b)
    else:
        assert layer.W1.shape == (b, m // b, n // b) and layer.W2.shape == (b, m // b, m // b)
    x = torch.randn(5, n, dtype=torch.float64)
    ref = _blockshuffle_by_definition(layer, x)
    assert torch.allclose(layer(x), ref, rtol=1e-12, atol=1e-12)


def test_blockdense_matches_reference_definition():
    torch.manual_seed(4)
    layer = BlockDense(12, 20, blocks=3, rank=6, bias=False).double()
    x = torch.randn(7, 12, dtype=torch.float64)
    V, U = layer.V.detach(), layer.U.detach()
    h = torch.cat([x[:, i * 4 : (i + 1) * 4] @ V[i].T for i in range(3)], dim=1)  # V_i: (R/B) x (N/B)
    assert torch.allclose(layer(x), h @ U.T, atol=1e-12)


def test_lowrank_init_is_balanced_truncated_svd():
    torch.manual_seed(5)
    layer = LowRank(64, 96, rank=16, bias=False, init_std=0.02)
    U, V = layer.U.detach().double(), layer.V.detach().double()
    # U = U_R sqrt(S), V = sqrt(S) V_R^T  =>  U^T U = V V^T = diag(S_R), decreasing
    utu, vvt = U.T @ U, V @ V.T
    assert torch.allclose(utu, vvt, atol=1e-6)
    s = torch.diagonal(utu)
    assert torch.allclose(utu, torch.diag(s), atol=1e-6)
    assert (s[:-1] >= s[1:] - 1e-7).all()
    # the top singular value of a 96 x 64 N(0, 0.02^2) matrix is about 0.02 (sqrt(96) + sqrt(64))
    assert 0.5 * 0.02 * (math.sqrt(96) + 8) < s[0] < 1.5 * 0.02 * (math.sqrt(96) + 8)


def _is_semi_orthogonal(w):
    w = w.double()
    small = min(w.shape[-2:])
    g = w @ w.transpose(-1, -2) if w.shape[-2] <= w.shape[-1] else w.transpose(-1, -2) @ w
    return torch.allclose(g, torch.eye(small, dtype=w.dtype).expand_as(g), atol=1e-5)


def test_polar_inits():
    torch.manual_seed(6)
    bd = BlockDense(32, 48, blocks=4, rank=16)
    assert _is_semi_orthogonal(bd.V) and _is_semi_orthogonal(bd.U)
    for n, m in [(16, 64), (64, 16)]:
        bs = BlockShuffle(n, m, blocks=4)
        assert _is_semi_orthogonal(bs.W1) and _is_semi_orthogonal(bs.W2)


def test_dense_init_and_bias_zero():
    torch.manual_seed(7)
    d = Dense(256, 256, bias=True, init_std=0.02)
    assert abs(d.weight.std().item() - 0.02) < 0.001
    assert d.bias.abs().sum() == 0


@pytest.mark.parametrize(
    "struct,n,m",
    [
        (StructureConfig("lowrank", rank=17), 16, 64),
        (StructureConfig("blockdense", blocks=3, rank=6), 16, 48),
        (StructureConfig("blockdense", blocks=4, rank=6), 16, 48),
        (StructureConfig("blockshuffle", blocks=3), 16, 48),
        (StructureConfig("blockshuffle", blocks=4), 16, 50),
        (StructureConfig("lowrank"), 16, 16),
        (StructureConfig("conv"), 16, 16),
    ],
)
def test_bad_shapes_are_rejected_with_a_clear_error(struct, n, m):
    with pytest.raises(ScalelabError):
        make_linear(struct, n, m, bias=False)


def test_meta_device_builds_without_allocating():
    with torch.device("meta"):
        for layer in (LowRank(4096, 8192, 1024), BlockDense(4096, 8192, 4, 1536), BlockShuffle(8192, 4096, 2)):
            assert all(p.is_meta for p in layer.parameters())
