"""Self-guided training (Wei et al., arXiv 2406.16450): a dense guide path that fades out.

Each structured linear also holds a dense W (M x N) initialised to the product of its factors:

    out = a W x + (1 - a) structured(x) + bias,   a = (1 + cos(pi t / T_g)) / 2,  T_g = fraction x steps

so training starts as the dense network and ends as the structured one. With `reduce_flop` each layer
runs the dense path only with probability a per training step (expected guide cost halved over the
window); once a = 0 the dense path costs nothing (it is skipped).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

if TYPE_CHECKING:
    from scalelab.model.linear import _Structured


def guide_alpha(step: int, total_steps: int, fraction: float) -> float:
    """Cosine from 1 at step 0 to 0 at step fraction x total_steps; 0 after."""
    t_g = fraction * total_steps
    if t_g <= 0 or step >= t_g:
        return 0.0
    return 0.5 * (1.0 + math.cos(math.pi * max(step, 0) / t_g))


class GuidedLinear(nn.Module):
    """Wrap a structured linear (anything with `structured_forward`, `materialize`, `bias`)."""

    mix_t: torch.Tensor  # buffers (registered in __init__), declared for the type checker
    _dense_calls: torch.Tensor

    def __init__(self, inner: _Structured, reduce_flop: bool = False):
        super().__init__()
        self.inner = inner
        self.in_features, self.out_features = inner.in_features, inner.out_features
        self.reduce_flop = reduce_flop
        # the coin is a host-side draw: excluded from torch.compile graphs. Wrapped here, not with a
        # decorator, because torch.compiler.disable imports torch._dynamo (about 1 s of start-up for every
        # process that merely imports the model).
        self._coin_fn = torch.compiler.disable(_host_coin) if reduce_flop else None
        self.guide_weight = nn.Parameter(torch.empty(inner.out_features, inner.in_features))
        # the mixing weights (alpha, 1 - alpha) live in a float32 buffer (changing them does not recompile
        # under torch.compile), both formed in float64 on the host, and the mix is done in float32:
        # rounding alpha to bf16 first would make 1 - alpha exactly 0 for alpha > 1 - 2^-9 and freeze the
        # structured factors early in every guide window, and a bf16 alpha (0.999 -> 1.0) weights the
        # paths wrongly. `active` (alpha > 0) is the only Python-level branch. Set by set_guide_alpha.
        self.register_buffer("mix_t", torch.tensor([1.0, 0.0], dtype=torch.float32), persistent=False)
        self.active = True
        self._alpha_f = 1.0
        # forward calls that ran the dense path (guide FLOP accounting): a buffer, so that counting also
        # works inside a torch.compile graph without guards on a Python int
        self.register_buffer("_dense_calls", torch.zeros((), dtype=torch.long), persistent=False)
        self.reset_guide()

    @torch.no_grad()
    def reset_guide(self) -> None:
        """Set W to the structured layer's dense equivalent."""
        if self.guide_weight.device.type != "meta":
            self.guide_weight.copy_(self.inner.materialize().to(self.guide_weight))

    @property
    def bias(self):
        return self.inner.bias

    @property
    def alpha(self) -> float:
        return self._alpha_f if self.active else 0.0

    @property
    def dense_calls(self) -> int:
        return int(self._dense_calls)

    @dense_calls.setter
    def dense_calls(self, value: int) -> None:
        self._dense_calls.fill_(int(value))

    def _apply(self, fn, recurse=True):
        # model.to(torch.bfloat16) would round the mixing weights too: re-form them in float32 afterwards
        super()._apply(fn, recurse)
        a = self._alpha_f
        self.mix_t = torch.tensor([a, 1.0 - a], dtype=torch.float64).to(torch.float32).to(self.mix_t.device)
        return self

    def set_alpha(self, alpha: float) -> None:
        alpha = float(min(max(alpha, 0.0), 1.0))
        self.mix_t.copy_(torch.tensor([alpha, 1.0 - alpha], dtype=torch.float64))
        self._alpha_f = alpha
        self.active = alpha > 0.0

    def materialize(self) -> torch.Tensor:
        """The effective dense weight at the current alpha (bias excluded)."""
        a = self.alpha
        return a * self.guide_weight + (1.0 - a) * self.inner.materialize()

    def _use_dense(self) -> bool:
        if not self.active:
            return False
        if self.reduce_flop and self.training:
            return self._coin()
        return True

    def _coin(self) -> bool:
        """Heads with probability alpha (a host-side decision: a graph break under torch.compile)."""
        assert self._coin_fn is not None  # set under reduce_flop, the only case that calls this
        return self._coin_fn(self._alpha_f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner.structured_forward(x)
        if self._use_dense():
            self._dense_calls.add_(1)
            # mix in at least float32: [alpha, 1 - alpha] are never rounded to a bf16 activation dtype
            mix = torch.promote_types(y.dtype, torch.float32)
            w = self.mix_t.to(mix)
            y = (w[0] * F.linear(x, self.guide_weight).to(mix) + w[1] * y.to(mix)).to(y.dtype)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:.4f}, reduce_flop={self.reduce_flop}"


def _host_coin(p: float) -> bool:
    return float(torch.rand(())) < p  # CPU generator, host float: no device sync


def guided_layers(model: nn.Module) -> list[GuidedLinear]:
    return [m for m in model.modules() if isinstance(m, GuidedLinear)]


def set_guide_alpha(model: nn.Module, alpha: float) -> None:
    """Set alpha on every guided layer of the model (call once per optimizer step)."""
    for m in guided_layers(model):
        m.set_alpha(alpha)
