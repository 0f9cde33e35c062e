"""One shape rule: a model's shape from its width. Torch-free, a leaf.

    depth      fixed n_layers, a per-width table, an aspect ratio d_model / n_layers, or a power law
               n_layers = coef d_model^exp (what the planner fits to a grid's runs)
    heads      a head count, or a head size: n_heads = width / head_dim where that divides, else the
               nearest head count whose (even, for RoPE) head size divides the width
    d_attn     d_model, or ratio x d_model rounded to whole heads
    d_ff       ratio x d_model: exact for an integer ratio, else rounded to a multiple of `multiple`
    kv heads   n_heads / ratio where that divides, else the largest divisor of n_heads below it

A grid file states these ([model] n_layers / depths / aspect, heads / head_dim, d_ff_ratio: scalelab.grid)
and the planner fits them to a fit's runs (plan/families.ShapeRule); both build shapes through these
functions, so a planned shape is one a grid would build.
"""

from __future__ import annotations

import math
from typing import Optional


def n_layers(
    d_model: int,
    *,
    fixed: Optional[int] = None,
    aspect: Optional[float] = None,
    coef: Optional[float] = None,
    exp: float = 1.0,
    default: int = 2,
) -> int:
    """Depth at width d_model: `fixed`, else d_model / aspect, else coef d_model^exp, else `default`."""
    if fixed is not None:
        return int(fixed)
    if aspect is not None:
        return max(1, round(d_model / float(aspect)))
    if coef is not None:
        return max(1, int(round(coef * d_model**exp)))
    return default


def n_heads(width: int, head_dim: int) -> int:
    """Heads of size head_dim where it divides the width, else the nearest even head size that does."""
    if width % head_dim == 0:
        return width // head_dim
    target = width / head_dim
    divisors = {x for h in range(1, math.isqrt(width) + 1) if width % h == 0 for x in (h, width // h)}
    ok = [h for h in divisors if (width // h) % 2 == 0]  # RoPE needs an even head size
    return min(ok, key=lambda h: (abs(h - target), h))


def attn_width(d_model: int, ratio: float, head_dim: int) -> int:
    """d_attn = ratio x d_model in whole heads of head_dim (at least one)."""
    return max(head_dim, int(round(ratio * d_model / head_dim)) * head_dim)


def ffn_width(d_model: int, ratio: float, multiple: int = 1) -> int:
    """d_ff = ratio x d_model: exactly for an integer ratio (4 d), else rounded to a multiple of `multiple`
    (8/3 d, 4.75 d; the planner rounds to 32, a grid's d_ff_ratio to 1)."""
    if abs(ratio - round(ratio)) < 1e-9:
        return int(round(ratio)) * d_model
    return max(multiple, int(round(ratio * d_model / multiple)) * multiple)


def kv_heads(heads: int, ratio: int) -> int:
    """Key/value heads for n_heads / n_kv_heads = ratio: exactly where it divides, else the largest
    divisor of the heads below heads / ratio."""
    if heads % ratio == 0 and heads >= ratio:
        return heads // ratio
    return max(k for k in range(1, heads + 1) if heads % k == 0 and k <= max(1, heads // ratio))
