"""Structured linear layers (Wei et al., arXiv 2406.16450, section "structured FFN").

Every layer maps N input features to M output features (like nn.Linear(N, M)) and has
`materialize() -> Tensor[M, N]`, the equivalent dense weight (bias excluded), built from the factors
by a route independent of `forward` (explicit block_diag and permutation matrices), so tests can hold
one against the other.

    Dense          y = W x                                   params M N
    LowRank(R)     y = U (V x)            V: R x N, U: M x R  params R (N + M)
    BlockDense(B,R)y = U blockdiag(V_1..V_B) x               params R N / B + R M
                   V_i: (R/B) x (N/B), U: M x R
    BlockShuffle(B)y = P_M^T blockdiag(W2) P_K blockdiag(W1) x, K = min(N, M)
                   N <= M: W1 blocks (N/B) x (N/B), W2 blocks (M/B) x (N/B)
                   N >  M: W1 blocks (M/B) x (N/B), W2 blocks (M/B) x (M/B)
                   P_n: stride-B interleave of a length-n vector (view (n/B, B), transpose)
                   params min(N, M) (N + M) / B
    BTT(R)         W[(b1, b2), (a1, a2)] = sum_r W2[b1, b2, a1, r] W1[a1, b1, r, a2]   (Qiu et al. 2406.06248)
                   N = a1 a2, M = b1 b2 (closest to square); params R a1 b1 (a2 + b2)

Block-diagonal products are batched einsums over the block axis: no Python loop over blocks.
Parameter names (weight, U, V, W1, W2) are the ones each kind's `factors` declares in
scalelab/structures.py: muP (scalelab/mup.py) scales every factor by its own fan-in and fan-out.
Inits follow the seeds: dense N(0, std^2); LowRank the truncated SVD of a dense N(0, std^2) draw split
as U_R sqrt(S_R), sqrt(S_R) V_R^T; BlockDense / BlockShuffle a N(0, std^2) draw of every block (and U)
replaced by its polar factor (U_svd V_svd^T, all singular values 1); BTT the paper's fan-in init scaled
so the materialised entries have std init_std.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from scalelab.config import StructureConfig
from scalelab.structures import btt_factors


# ---- init helpers -----------------------------------------------------------------------------------
@torch.no_grad()
def _polar_(w: torch.Tensor) -> torch.Tensor:
    """Replace a matrix (or a batch of matrices) in place by its orthogonal polar factor U V^T."""
    if w.device.type == "meta":
        return w
    u, _, vh = torch.linalg.svd(w.float(), full_matrices=False)
    w.copy_((u @ vh).to(w.dtype))
    return w


def _stride_perm(n: int, b: int) -> torch.Tensor:
    """Index form of the stride-B interleave P_n: (P x)[j] = x[perm[j]].

    P x = x.view(n/B, B).T.flatten(): position c*q + a (q = n/B) takes x[a*B + c].
    """
    q = n // b
    return torch.arange(n).view(q, b).t().reshape(-1)


def _interleave(x: torch.Tensor, b: int) -> torch.Tensor:
    """P x on the last axis: (..., n) -> (..., n) with (..., q, B) -> (..., B, q)."""
    n = x.shape[-1]
    return x.unflatten(-1, (n // b, b)).transpose(-1, -2).flatten(-2)


def _deinterleave(x: torch.Tensor, b: int) -> torch.Tensor:
    """P^T x on the last axis: the inverse of `_interleave`."""
    n = x.shape[-1]
    return x.unflatten(-1, (b, n // b)).transpose(-1, -2).flatten(-2)


def _block_apply(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """blockdiag(w_1..w_B) x on the last axis. x (..., B*i), w (B, o, i) -> (..., B*o)."""
    nb, o, i = w.shape
    xb = x.unflatten(-1, (nb, i))  # (..., B, i)
    yb = torch.einsum("...bi,boi->...bo", xb, w)  # (..., B, o)
    return yb.flatten(-2)


class _Structured(nn.Module):
    """Shared bias handling and repr."""

    in_features: int
    out_features: int

    def _init_bias(self, bias: bool, device=None, dtype=None) -> None:
        if bias:
            self.bias = nn.Parameter(torch.zeros(self.out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)

    def _add_bias(self, y: torch.Tensor) -> torch.Tensor:
        return y if self.bias is None else y + self.bias

    def materialize(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def structured_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The structured product without bias (used by the self-guided wrapper)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._add_bias(self.structured_forward(x))


class Dense(_Structured):
    """nn.Linear with N(0, std^2) init and `materialize()`; weight (M, N)."""

    def __init__(self, n_in: int, n_out: int, bias: bool = True, init_std: float = 0.02, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = n_in, n_out
        self.weight = nn.Parameter(torch.empty(n_out, n_in, device=device, dtype=dtype))
        nn.init.normal_(self.weight, 0.0, init_std)
        self._init_bias(bias, device, dtype)

    def structured_forward(self, x):
        return F.linear(x, self.weight)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def materialize(self):
        return self.weight

    def extra_repr(self):
        return f"in={self.in_features}, out={self.out_features}, bias={self.bias is not None}"


class LowRank(_Structured):
    """y = U (V x) + b; V (R, N), U (M, R). Init: truncated SVD of a dense N(0, std^2) draw."""

    def __init__(
        self, n_in: int, n_out: int, rank: int, bias: bool = True, init_std: float = 0.02, device=None, dtype=None
    ):
        super().__init__()
        StructureConfig("lowrank", rank=rank).check_shape(n_in, n_out)
        self.in_features, self.out_features, self.rank = n_in, n_out, rank
        self.V = nn.Parameter(torch.empty(rank, n_in, device=device, dtype=dtype))
        self.U = nn.Parameter(torch.empty(n_out, rank, device=device, dtype=dtype))
        self._init_bias(bias, device, dtype)
        self.reset_parameters(init_std)

    @torch.no_grad()
    def reset_parameters(self, init_std: float = 0.02) -> None:
        if self.U.device.type == "meta":
            return
        w = torch.randn(self.out_features, self.in_features, device=self.U.device, dtype=torch.float32) * init_std
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        r, sq = self.rank, s[: self.rank].sqrt()
        self.U.copy_((u[:, :r] * sq).to(self.U.dtype))  # U_R sqrt(S_R)
        self.V.copy_((sq[:, None] * vh[:r]).to(self.V.dtype))  # sqrt(S_R) V_R^T

    def structured_forward(self, x):
        return F.linear(F.linear(x, self.V), self.U)

    def materialize(self):
        return self.U @ self.V

    def extra_repr(self):
        return f"in={self.in_features}, out={self.out_features}, rank={self.rank}, bias={self.bias is not None}"


class BlockDense(_Structured):
    """y = U blockdiag(V_1..V_B) x + b; V (B, R/B, N/B), U (M, R). Polar init."""

    def __init__(
        self,
        n_in: int,
        n_out: int,
        blocks: int,
        rank: int,
        bias: bool = True,
        init_std: float = 0.02,
        device=None,
        dtype=None,
    ):
        super().__init__()
        StructureConfig("blockdense", rank=rank, blocks=blocks).check_shape(n_in, n_out)
        self.in_features, self.out_features, self.blocks, self.rank = n_in, n_out, blocks, rank
        self.V = nn.Parameter(torch.empty(blocks, rank // blocks, n_in // blocks, device=device, dtype=dtype))
        self.U = nn.Parameter(torch.empty(n_out, rank, device=device, dtype=dtype))
        self._init_bias(bias, device, dtype)
        self.reset_parameters(init_std)

    @torch.no_grad()
    def reset_parameters(self, init_std: float = 0.02) -> None:
        nn.init.normal_(self.V, 0.0, init_std)
        nn.init.normal_(self.U, 0.0, init_std)
        _polar_(self.V)
        _polar_(self.U)

    def structured_forward(self, x):
        return F.linear(_block_apply(x, self.V), self.U)

    def materialize(self):
        return self.U @ torch.block_diag(*self.V.unbind(0))

    def extra_repr(self):
        return (
            f"in={self.in_features}, out={self.out_features}, blocks={self.blocks}, rank={self.rank}, "
            f"bias={self.bias is not None}"
        )


class BlockShuffle(_Structured):
    """Monarch-like: y = P_M^T blockdiag(W2) P_K blockdiag(W1) x + b, K = min(N, M). Polar init."""

    def __init__(
        self, n_in: int, n_out: int, blocks: int, bias: bool = True, init_std: float = 0.02, device=None, dtype=None
    ):
        super().__init__()
        StructureConfig("blockshuffle", blocks=blocks).check_shape(n_in, n_out)
        self.in_features, self.out_features, self.blocks = n_in, n_out, blocks
        b = blocks
        ni, no = n_in // b, n_out // b
        if n_in <= n_out:  # expand in the second factor
            s1, s2 = (ni, ni), (no, ni)
        else:  # contract in the first factor
            s1, s2 = (no, ni), (no, no)
        self.mid = b * s1[0]  # K = min(N, M)
        self.W1 = nn.Parameter(torch.empty(b, *s1, device=device, dtype=dtype))
        self.W2 = nn.Parameter(torch.empty(b, *s2, device=device, dtype=dtype))
        self._init_bias(bias, device, dtype)
        self.reset_parameters(init_std)

    @torch.no_grad()
    def reset_parameters(self, init_std: float = 0.02) -> None:
        nn.init.normal_(self.W1, 0.0, init_std)
        nn.init.normal_(self.W2, 0.0, init_std)
        _polar_(self.W1)
        _polar_(self.W2)

    def structured_forward(self, x):
        h = _block_apply(x, self.W1)  # (..., K)
        h = _interleave(h, self.blocks)  # P_K
        y = _block_apply(h, self.W2)  # (..., M)
        return _deinterleave(y, self.blocks)  # P_M^T

    def materialize(self):
        b, k, m = self.blocks, self.mid, self.out_features
        eye_k = torch.eye(k, dtype=self.W1.dtype, device=self.W1.device)
        eye_m = torch.eye(m, dtype=self.W1.dtype, device=self.W1.device)
        p_k = eye_k[_stride_perm(k, b)]  # (P_K)[j, perm[j]] = 1
        p_m = eye_m[_stride_perm(m, b)]
        w1 = torch.block_diag(*self.W1.unbind(0))  # (K, N)
        w2 = torch.block_diag(*self.W2.unbind(0))  # (M, K)
        return p_m.t() @ w2 @ p_k @ w1

    def extra_repr(self):
        return f"in={self.in_features}, out={self.out_features}, blocks={self.blocks}, bias={self.bias is not None}"


class BTT(_Structured):
    """Block Tensor-Train with two cores (Qiu et al., arXiv 2406.06248), rank R.

    N = a1 a2 and M = b1 b2, each split closest to square (`btt_factors`: a1 >= a2, b1 <= b2, as the
    paper's code orders them). x is viewed as (a1, a2), y as (b1, b2), and

        W[(b1, b2), (a1, a2)] = sum_r W2[b1, b2, a1, r] W1[a1, b1, r, a2]

    i.e. every (b2 x a2) sub-block of W is a rank-R product whose factors are shared along the rows and
    columns of blocks. The forward is two batched block matmuls with a transpose between them:
        blockdiag over a1 of W1: (a2 -> b1 R), transpose (a1, b1, R) -> (b1, a1, R),
        blockdiag over b1 of W2: (a1 R -> b2).
    params R a1 b1 (a2 + b2); forward FLOPs per token 2 x params (the two matmuls, exactly).
    R = 1 is Monarch (blockdiag, permutation, blockdiag); R = min(a2, b2), the largest allowed, spans every
    N x M matrix.
    Init: the paper's fan-in init (std 1/sqrt(a2) for W1, 1/sqrt(R a1) for W2, so the materialised
    entries have std 1/sqrt(N)), both cores rescaled by one common factor so that the materialised
    entries have std init_std like the other kinds (var = R std1^2 std2^2).
    """

    def __init__(
        self, n_in: int, n_out: int, rank: int, bias: bool = True, init_std: float = 0.02, device=None, dtype=None
    ):
        super().__init__()
        StructureConfig("btt", rank=rank).check_shape(n_in, n_out)
        self.in_features, self.out_features, self.rank = n_in, n_out, rank
        (a2, a1), (b1, b2) = btt_factors(n_in), btt_factors(n_out)  # each (p, q), p <= q
        self.a1, self.a2, self.b1, self.b2 = a1, a2, b1, b2
        self.W1 = nn.Parameter(torch.empty(a1, b1, rank, a2, device=device, dtype=dtype))  # core 1
        self.W2 = nn.Parameter(torch.empty(b1, b2, a1, rank, device=device, dtype=dtype))  # core 2
        self._init_bias(bias, device, dtype)
        self.reset_parameters(init_std)

    @torch.no_grad()
    def reset_parameters(self, init_std: float = 0.02) -> None:
        c = math.sqrt(init_std * math.sqrt(self.in_features))  # paper's init x c on each core
        nn.init.normal_(self.W1, 0.0, c / math.sqrt(self.a2))
        nn.init.normal_(self.W2, 0.0, c / math.sqrt(self.rank * self.a1))

    def structured_forward(self, x):
        a1, b1, r = self.a1, self.b1, self.rank
        h = _block_apply(x, self.W1.flatten(1, 2))  # (..., a1 b1 R)
        h = h.unflatten(-1, (a1, b1, r)).transpose(-3, -2).flatten(-3)  # (..., b1 a1 R)
        return _block_apply(h, self.W2.flatten(2))  # (..., b1 b2)

    def materialize(self):
        w = torch.einsum("jlir,ijrk->jlik", self.W2, self.W1)  # (b1, b2, a1, a2), the definition
        return w.reshape(self.out_features, self.in_features)

    def extra_repr(self):
        return (
            f"in={self.in_features}={self.a1}x{self.a2}, out={self.out_features}={self.b1}x{self.b2}, "
            f"rank={self.rank}, bias={self.bias is not None}"
        )


# structure kind (scalelab.structures) -> its module: (struct, n_in, n_out, bias, init_std) -> nn.Module
MODULES = {
    "dense": lambda s, n, m, bias, std: Dense(n, m, bias=bias, init_std=std),
    "lowrank": lambda s, n, m, bias, std: LowRank(n, m, s.rank, bias=bias, init_std=std),
    "blockdense": lambda s, n, m, bias, std: BlockDense(n, m, s.blocks, s.rank, bias=bias, init_std=std),
    "blockshuffle": lambda s, n, m, bias, std: BlockShuffle(n, m, s.blocks, bias=bias, init_std=std),
    "btt": lambda s, n, m, bias, std: BTT(n, m, s.rank, bias=bias, init_std=std),
}


def make_linear(struct: StructureConfig, n_in: int, n_out: int, bias: bool, init_std: float = 0.02) -> _Structured:
    """The linear layer N=n_in -> M=n_out of the given structure (shape errors are ScalelabErrors)."""
    struct.check_shape(n_in, n_out)
    return MODULES[struct.kind](struct, n_in, n_out, bias, init_std)
