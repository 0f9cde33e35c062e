"""A run's step counts and learning-rate schedule, from its RunConfig. Torch-free.

Per optimizer step s, peak LR eta:
- cosine: linear warmup over `warmup` x S steps, then cosine from eta to min_lr_ratio x eta at S.
- wsd (warmup-stable-decay): warmup, then constant eta on one trunk; every token budget b (S_b steps)
  gets a (1 - sqrt) cooldown over its last `cooldown` x S_b steps, eta (1 - sqrt((s - c_b)/(S_b - c_b))),
  branched from the trunk's state at c_b (the largest budget's cooldown is the trunk's own end). Each
  branch end is a `final` row: several (N, D) points for about the cost of one run (Hagele et al. 2024).
Self-guided models in the seeds' equal-FLOPs mode train S + r S steps (r = flops.equal_flops_ratio): the
guide fades over the first r S and the last r S replay their data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from scalelab import flops as flopslib
from scalelab.config import RunConfig


@dataclass
class StepPlan:
    """Step counts of one run, all derived from the RunConfig."""

    tokens_per_step: int
    budget_steps: list  # S_b per budget, ascending
    total: int  # trunk steps (largest budget, + replay in equal-FLOPs mode)
    warmup: int
    guide_steps: int  # steps over which alpha fades (0: no guide)
    replay: int  # equal-FLOPs replay steps at the end of the trunk
    eval_steps: list  # trunk steps after which validation runs (the last is the final point)

    def cooldown_start(self, s_b: int, cooldown: float) -> int:
        return s_b - max(1, round(cooldown * s_b))


def make_plan(run: RunConfig) -> StepPlan:
    t, m = run.train, run.model
    tps = t.batch_size * m.seq_len
    steps = [max(1, round(b / tps)) for b in sorted(t.budgets)]
    total = steps[-1]
    replay = guide = 0
    if m.guide is not None:
        if m.guide.equal_flops:
            replay = flopslib.equal_flops_replay(m, total)  # exact in either reduce_flop mode
            guide = replay
        else:
            guide = max(1, round(m.guide.fraction * total))
        total += replay
    warmup = round(t.warmup * steps[0])
    n = max(1, t.eval_points)
    pts = np.round(np.geomspace(max(1.0, total / 64), total, n)).astype(int)
    # the last step is always evaluated: np.geomspace(a, b, 1) is [a], which would leave no final row
    pts = np.unique(np.append(pts[:-1] if n > 1 else pts[:0], total))
    return StepPlan(tps, steps, total, warmup, guide, replay, [int(p) for p in pts if p >= 1])


def wsd_branches(run: RunConfig, plan: StepPlan) -> list[tuple[int, int]]:
    """(budget, S_b) of the WSD cooldown branches: one per distinct step count below the trunk's.

    Budgets that round to the same number of optimizer steps would train identical branches and give
    duplicate final rows (double weight in a fit); the smallest such budget names the branch."""
    if run.train.schedule != "wsd":
        return []
    out, seen = [], {plan.budget_steps[-1]}
    for b, s_b in zip(sorted(int(x) for x in run.train.budgets), plan.budget_steps):
        if s_b not in seen:
            seen.add(s_b)
            out.append((b, s_b))
    return out


def branch_starts(run: RunConfig, plan: StepPlan) -> dict[int, list[tuple[int, int]]]:
    """Trunk step -> the (budget, S_b) branches that fork there (at their cooldown start c_b)."""
    out: dict[int, list[tuple[int, int]]] = {}
    for b, s_b in wsd_branches(run, plan):
        out.setdefault(plan.cooldown_start(s_b, run.train.cooldown), []).append((b, s_b))
    return out


def lr_at(run: RunConfig, plan: StepPlan, step: int, branch_steps: Optional[int] = None) -> float:
    """LR for optimizer step `step` (0-based). branch_steps: the WSD budget whose cooldown applies."""
    t = run.train
    if step < plan.warmup:
        return t.lr * (step + 1) / plan.warmup
    if t.schedule == "cosine":
        span = max(1, plan.total - 1 - plan.warmup)  # the last step runs at min_lr_ratio x peak
        prog = min(1.0, (step - plan.warmup) / span)
        return t.lr * (t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * prog)))
    s_b = branch_steps if branch_steps is not None else plan.total
    c_b = plan.cooldown_start(s_b, t.cooldown)
    if step < c_b:
        return t.lr
    return t.lr * (1 - math.sqrt((step - c_b) / (s_b - c_b)))


def estimate_tokens(run: RunConfig) -> int:
    """Tokens a run trains in all (trunk + WSD cooldown branches)."""
    plan = make_plan(run)
    steps = plan.total
    steps += sum(max(1, round(run.train.cooldown * s_b)) for _, s_b in wsd_branches(run, plan))
    return steps * plan.tokens_per_step
