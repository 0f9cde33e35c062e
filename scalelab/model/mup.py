"""muP on a built GPT: each parameter's row of the table (scalelab.mup, torch-free, where the rules and
their derivation live), its init, and AdamW param groups carrying the per-group "lr_mult" that the
trainer's schedule applies every step (lr of a group = schedule lr x lr_mult)."""

from __future__ import annotations

import fnmatch

import torch
import torch.nn as nn

from scalelab import mup
from scalelab.model.guided import GuidedLinear


def assign(model: nn.Module) -> dict[str, mup.Group]:
    """parameter name -> its row (first matching pattern). Matrices must match a sized row whose fans
    account for the tensor exactly (count x fan_in x fan_out elements): a layer the table does not
    describe is a bug, not something to scale silently."""
    rows = mup.groups(model.cfg)
    out = {}
    for name, p in model.named_parameters():
        g = next(r for r in rows if fnmatch.fnmatchcase(name, r.pattern))
        if p.dim() >= 2:
            # a sized row has both fans (None only on the vector row)
            if (
                g.role == "vector"
                or g.fan_in is None
                or g.fan_out is None
                or g.count * g.fan_in * g.fan_out != p.numel()
            ):
                raise RuntimeError(f"muP table has no row for {name} {tuple(p.shape)} (matched {g.pattern!r})")
        out[name] = g
    return out


@torch.no_grad()
def init_(model: nn.Module) -> None:
    """Re-draw every sized tensor N(0, std^2) with its muP std (replacing the SP inits: SVD, polar, LPA's
    uniform), then reset self-guided dense copies to the product of their new factors."""
    rows = assign(model)
    for name, p in model.named_parameters():
        g = rows[name]
        if g.init_std is not None:
            nn.init.normal_(p, 0.0, g.init_std)
    for m in model.modules():
        if isinstance(m, GuidedLinear):
            m.reset_guide()


def param_groups(model: nn.Module, weight_decay: float, decay_all: bool = False) -> list[dict]:
    """AdamW groups, one per (lr_mult, decays): matrices decay (all tensors when decay_all), vectors not."""
    rows = assign(model)
    buckets: dict[tuple, dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        g = rows[name]
        wd = weight_decay if (decay_all or p.dim() >= 2) else 0.0
        key = (g.lr_mult, wd)
        if key not in buckets:
            buckets[key] = {"params": [], "weight_decay": wd, "lr_mult": g.lr_mult, "names": []}
        buckets[key]["params"].append(p)
        buckets[key]["names"].append(name)
    return list(buckets.values())
