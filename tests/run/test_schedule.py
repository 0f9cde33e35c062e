"""Step plan and LR schedule (run/schedule.py) against closed forms, without torch."""

import math

import pytest
from grids import write_grid

from scalelab.grid import Grid
from scalelab.run.schedule import branch_starts, lr_at, make_plan, wsd_branches

WSD = '[schedule]\nkind = "wsd"\nwarmup = 0.1\ncooldown = 0.2\n'


def _run(tmp_path, **sections):
    (run,) = Grid.load(write_grid(tmp_path, **sections)).runs()
    return run


def test_cosine_is_halfway_between_peak_and_floor_at_half_the_decay(tmp_path):
    run = _run(tmp_path, budgets="[budgets]\ntokens = [23552]\n")  # 92 steps of 256 tokens
    plan = make_plan(run)
    assert (plan.total, plan.warmup) == (92, 9)
    peak, floor = run.train.lr, run.train.min_lr_ratio * run.train.lr
    half = plan.warmup + (plan.total - 1 - plan.warmup) // 2  # step 50: prog = 41/82 = 0.5 exactly
    assert lr_at(run, plan, half) == pytest.approx((peak + floor) / 2, rel=1e-12)
    assert lr_at(run, plan, plan.warmup) == pytest.approx(peak, rel=1e-12)
    assert lr_at(run, plan, plan.total - 1) == pytest.approx(floor, rel=1e-12)  # the last step: the floor


def test_warmup_is_linear_up_to_the_peak(tmp_path):
    run = _run(tmp_path, budgets="[budgets]\ntokens = [25600]\n")
    plan = make_plan(run)
    ramp = [lr_at(run, plan, s) for s in range(plan.warmup)]
    assert ramp == pytest.approx([run.train.lr * (s + 1) / plan.warmup for s in range(plan.warmup)], rel=1e-12)


def test_wsd_cooldown_is_one_minus_sqrt_not_linear(tmp_path):
    run = _run(tmp_path, budgets="[budgets]\ntokens = [25600]\n", schedule=WSD)  # 100 steps, cooldown 20
    plan = make_plan(run)
    c = plan.cooldown_start(plan.total, run.train.cooldown)
    assert c == 80
    peak = run.train.lr
    got = [lr_at(run, plan, s) / peak for s in range(c, plan.total)]
    assert got == pytest.approx([1 - math.sqrt(k / 20) for k in range(20)], rel=1e-12)
    # a quarter of the way in: 1 - sqrt(1/4) = 0.5 of the peak, where a linear cooldown would be at 0.75
    assert got[5] == pytest.approx(0.5, rel=1e-12)
    assert all(lr_at(run, plan, s) == peak for s in range(plan.warmup, c))  # stable phase: the peak


def test_wsd_branch_cools_down_over_its_own_budget(tmp_path):
    run = _run(tmp_path, budgets="[budgets]\ntokens = [10240, 25600]\n", schedule=WSD)  # 40 and 100 steps
    plan = make_plan(run)
    assert plan.budget_steps == [40, 100]
    assert wsd_branches(run, plan) == [(10240, 40)]
    assert branch_starts(run, plan) == {32: [(10240, 40)]}  # cooldown: the last 20% of 40 steps
    peak = run.train.lr
    assert lr_at(run, plan, 32, branch_steps=40) == peak
    assert lr_at(run, plan, 34, branch_steps=40) == pytest.approx(peak * (1 - math.sqrt(2 / 8)), rel=1e-12)
    assert lr_at(run, plan, 34) == peak  # the trunk at the same step stays at the peak


def test_budgets_of_equal_step_counts_fork_once_and_cosine_never_forks(tmp_path):
    run = _run(tmp_path, budgets="[budgets]\ntokens = [6400, 6500, 12800]\n", schedule=WSD)
    plan = make_plan(run)
    assert wsd_branches(run, plan) == [(6400, 25)]  # the smallest budget names the branch
    run = _run(tmp_path, budgets="[budgets]\ntokens = [12800]\n")
    assert wsd_branches(run, make_plan(run)) == [] and branch_starts(run, make_plan(run)) == {}


def test_eval_steps_are_geometric_and_end_at_the_last_step(tmp_path):
    run = _run(tmp_path, budgets="[budgets]\ntokens = [25600]\n", eval="[eval]\npoints = 4\nval_tokens = 1024\n")
    plan = make_plan(run)
    assert plan.eval_steps[-1] == plan.total == 100
    # 4 points from total/64 to total: ratio 64^(1/3) = 4 between neighbours
    assert plan.eval_steps == [round(100 / 64 * 4**k) for k in range(4)]
