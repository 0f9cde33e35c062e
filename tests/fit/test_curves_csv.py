"""Curve laws on CSV curves (fit/curves_csv.py): the schedule description, the branch encodings, recovery of a
known law from a CSV written under a described schedule, and one-line refusals of bad input."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.config import RunConfig
from scalelab.errors import ScalelabError
from scalelab.fit import curves, curves_csv
from scalelab.schedule import lr_at, make_plan

runner = CliRunner()
LAW = {"E": 1.0, "A_N": 0.5, "a_N": 0.4, "A": 1.2, "alpha": 0.4, "C": 0.002, "lam": 0.99}
SIZES = (1e6, 3e6, 1e7, 3e7)
N_REF = float(np.exp(np.log(SIZES).mean()))
DESC = "warmup_steps=40,peak_lr=3e-3,decay=constant,cooldown=0.1,shape=linear"


def test_schedule_description_parses_every_key():
    s = curves_csv.parse_schedule(
        " warmup=0.01, peak_lr=3e-3,decay=cosine,cooldown=0.25,shape=linear,min_lr=0.1,tokens_per_step=4096"
    )
    assert (s.warmup, s.peak_lr, s.decay, s.cooldown, s.shape, s.min_lr) == (0.01, 3e-3, "cosine", 0.25, "linear", 0.1)
    assert s.tokens_per_step == 4096 and s.warmup_for(1000) == 10
    assert curves_csv.parse_schedule("warmup_steps=7").warmup_for(10**6) == 7


@pytest.mark.parametrize(
    "text, named",
    [
        ("decay=wsd,cooldwn=0.2", "'cooldwn'"),  # a typo: the bad key and the accepted ones
        ("decay=step", "decay"),
        ("shape=sqrt", "shape"),
        ("cooldown=0", "cooldown"),
        ("warmup=1.5", "warmup"),
        ("peak_lr=abc", "peak_lr"),
        ("peak_lr=-1", "peak_lr"),
        ("decay", "key=value"),
        ("decay=wsd,decay=cosine", "twice"),
        ("warmup=0.1,warmup_steps=10", "not both"),
        ("", "empty"),
    ],
)
def test_bad_schedule_description_is_one_line_naming_the_key(text, named):
    with pytest.raises(ScalelabError) as e:
        curves_csv.parse_schedule(text)
    msg = str(e.value)
    assert named in msg and "\n" not in msg
    if "cooldwn" in text:
        assert "accepted keys: warmup, warmup_steps, peak_lr, decay, cooldown, shape" in msg


def test_described_wsd_schedule_is_scalelabs_own():
    """A described wsd 1-sqrt schedule gives the lr scalelab trains a run's trunk and branches with."""
    model = {"d_model": 32, "n_layers": 2, "n_heads": 2, "seq_len": 128, "vocab_size": 256}
    train = {"batch_size": 4, "budgets": [51200, 102400, 204800], "cooldown": 0.2, "lr": 0.003, "schedule": "wsd"}
    run = RunConfig.from_dict({"grid": "t", "model": model, "train": {**train, "warmup": 0.05}, "data": {}, "seed": 0})
    plan = make_plan(run)
    s = curves_csv.parse_schedule(f"warmup_steps={plan.warmup},peak_lr=0.003,decay=wsd,cooldown=0.2")
    for s_b in plan.budget_steps:
        want = [lr_at(run, plan, k, branch_steps=s_b) for k in range(s_b)]
        got = s.lr(plan.total, None if s_b == plan.total else s_b)
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_linear_shape_and_cosine():
    s = curves_csv.parse_schedule("decay=wsd,cooldown=0.5,shape=linear,peak_lr=2")
    np.testing.assert_allclose(s.lr(8), [2, 2, 2, 2, 2, 1.5, 1, 0.5])
    c = curves_csv.parse_schedule("decay=cosine,min_lr=0.1").lr(101)
    assert c[0] == 1 and c[-1] == pytest.approx(0.1) and c[50] == pytest.approx(0.55)


# ---- a CSV written from a known law ----------------------------------------------------------------------


def _lr(n, fork=None, warmup=40):
    """The test's own schedule: linear warmup, constant 1, a linear cooldown to 0 from `fork` to step n."""
    lr = np.ones(n)
    lr[:warmup] = np.arange(1, warmup + 1) / warmup
    if fork is not None:
        lr[fork:] = 1 - (np.arange(fork, n) - fork) / (n - fork)
    return lr


def _loss(N, lr, t):
    s1, tt = curves.schedule_features(lr, np.array([t]), 40)
    return float(curves.predict("annealing-area", LAW, curves.make_design(np.array([N / N_REF]), s1, tt))[0])


def gemstones_like(tmp_path):
    """Per size a constant-lr trunk (group hot, checkpoints every 300-900 steps) and a cooldown end branched from
    each checkpoint over 10% of its steps (group cool_end, fork at the checkpoint), as Gemstones encodes them."""
    rows = []
    for i, N in enumerate(SIZES):
        for k in range(1, 9):
            c = (300 + 200 * i) * k  # the shortest cooldown kept differs by size: lam is identified
            rows.append(dict(run=f"m{N:g}", N=N, step=c, loss=_loss(N, _lr(c), c), group="hot"))
            end = round(c * 1.1)
            rows.append(dict(run=f"m{N:g}", N=N, step=end, loss=_loss(N, _lr(end, fork=c), end), group="cool_end"))
    rows.append(dict(run="other", N=1e6, step=100, loss=3.0, group="lr_half"))  # left out by COL=TRUNK:BRANCH
    p = tmp_path / "g.csv"
    pd.DataFrame(rows).sample(frac=1, random_state=0).to_csv(p, index=False)  # any row order
    return p


def test_known_law_recovered_from_a_described_csv(tmp_path):
    p = gemstones_like(tmp_path)
    sched = curves_csv.parse_schedule(DESC.replace("cooldown=0.1", f"cooldown={0.1 / 1.1}"))
    pts, terms = curves_csv.csv_curves([p], curves_csv.Columns(), sched, ("group", ("hot", "cool_end")))
    assert len(pts) == 64 and set(pts["run"]) == {f"m{N:g}" for N in SIZES}
    g = curves.group_data(pts, terms)
    assert g.sized and g.n_ref == pytest.approx(N_REF) and g.lr_unit == 3e-3  # the law's lr is in units of peak
    theta, specs = curves.fit_form(g, "annealing-area", None, "lsq", 1e-3)
    est = curves.to_natural(theta, specs)
    for k, v in LAW.items():
        assert est[k] == pytest.approx(v, rel=0.02), (k, est)


def test_cli_fits_a_csv_and_predicts_held_out_cooldown_ends(tmp_path):
    p = gemstones_like(tmp_path)
    out = tmp_path / "g.curves.json"
    args = ["fit", str(p), "--curves", "--holdout-branches", "--schedule", DESC.replace("0.1,", "0.0909,")]
    args += ["--branch-col", "group=hot:cool_end", "--bootstrap", "0", "--loss", "lsq", "--out", str(out)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    g = json.loads(out.read_text())["groups"]["all"]
    aa = g["selection"]["forms"]["annealing-area"]
    # per size every cooldown end but the shortest kept (steps >= 20% of the run's last) is held out
    assert aa["n_finals"] == 4 * 6 and aa["final_mre"] < 2e-3 and aa["final_max"] < 5e-3
    assert "multi-power" in r.output and json.loads(out.read_text())["settings"]["schedule"].startswith("warmup")


def test_branch_names_and_lr_column(tmp_path):
    """COL encoding (whole cooldown curves named per row, trunk rows blank) and --lr-col on the same law."""
    rows = []
    for N in SIZES[:3]:
        for t in range(200, 2001, 200):
            rows.append(dict(run=f"m{N:g}", N=N, step=t, loss=_loss(N, _lr(2000), t), branch="", lr=1.0))
        for end in (1000, 2000):
            lr = _lr(end, fork=end - end // 10)
            for t in range(end - 90, end + 1, 30):
                rows.append(dict(run=f"m{N:g}", N=N, step=t, loss=_loss(N, lr, t), branch=f"b{end}", lr=lr[t - 1]))
    p = tmp_path / "b.csv"
    pd.DataFrame(rows).to_csv(p, index=False)
    sched = curves_csv.parse_schedule("warmup_steps=40,decay=constant,cooldown=0.1,shape=linear")
    pts, terms = curves_csv.csv_curves([p], curves_csv.Columns(), sched, ("branch", None))
    assert sorted(set(pts["budget"])) == [1000, 2000] and pts["decayed"].sum() == 3 * 2 * 4
    g = curves.group_data(pts, terms)
    law = {**LAW, "A_N": LAW["A_N"] * (g.n_ref / N_REF) ** -LAW["a_N"]}  # the same law about this N_ref
    np.testing.assert_allclose(curves.predict("annealing-area", law, g.design()), pts["loss"], rtol=1e-9)
    # the lr column: each row's lr, linear between rows (a cosine logged every 10 steps)
    cos = 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * np.arange(1000) / 999))
    t = np.arange(10, 1001, 10)
    rows = [dict(run=f"c{N:g}", N=N, step=int(x), loss=_loss(N, cos, x), lr=cos[x - 1]) for N in SIZES for x in t]
    pd.DataFrame(rows).to_csv(p, index=False)
    pts, terms = curves_csv.csv_curves([p], curves_csv.Columns(lr="lr"), None, None)
    g = curves.group_data(pts, terms)
    np.testing.assert_allclose(curves.predict("annealing-area", LAW, g.design()), pts["loss"], rtol=1e-3)
    lr, warm = curves_csv._lr_from_rows(np.array([10, 20, 30]), np.array([0.5, 1.0, 0.0]))
    assert warm == 19 and lr[14] == pytest.approx(0.75) and lr[0] == 0.5 and lr[-1] == 0.0


# ---- bad input: one line, exit 2 ---------------------------------------------------------------------------


def _err(r):
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    return lines[0]


@pytest.mark.parametrize(
    "extra, named",
    [
        ([], "--schedule"),  # no schedule at all
        (["--schedule", "decay=wsd", "--lr-col", "lr"], "one of them"),
        (["--schedule", "decay=wsd,cooldwn=0.2"], "cooldwn"),
        (["--schedule", "decay=constant", "--branch-col", "group=hot"], "--branch-col"),
        (["--schedule", "decay=constant", "--branch-col", "group=hot:nope"], "nope"),
        (["--schedule", "decay=cosine", "--branch-col", "group=hot:cool_end"], "stable trunk"),
        (["--schedule", "decay=constant", "--run-col", "nope"], "nope"),
        (["--schedule", "decay=constant", "--step-col", "nope"], "nope"),
        (["--schedule", "decay=constant", "--lr-col", "lr", "--branch-col", "group"], "--lr-col"),
    ],
)
def test_bad_csv_curve_input_is_one_line(tmp_path, extra, named):
    p = gemstones_like(tmp_path)
    line = _err(runner.invoke(app, ["fit", str(p), "--curves", "--bootstrap", "0", *extra]))
    assert named in line


def test_repeated_step_and_schedule_without_curves_are_one_line(tmp_path):
    p = gemstones_like(tmp_path)
    # without --branch-col the trunk checkpoints and cooldown ends are one curve: fine; hot rows twice are not
    df = pd.read_csv(p)
    df = pd.concat([df, df[df["group"] == "hot"].head(1)])
    df.to_csv(p, index=False)
    line = _err(runner.invoke(app, ["fit", str(p), "--curves", "--schedule", "decay=constant", "--bootstrap", "0"]))
    assert "appears twice" in line and "--branch-col" in line
    assert "--curves" in _err(runner.invoke(app, ["fit", str(p), "--schedule", "decay=constant"]))


def test_steps_from_a_tokens_column(tmp_path):
    """No step column: steps = D / tokens_per_step, the same points as from the steps themselves."""
    p = gemstones_like(tmp_path)
    df = pd.read_csv(p)
    q = tmp_path / "tokens.csv"
    df.assign(D=df["step"] * 4096).drop(columns="step").to_csv(q, index=False)
    branch = ("group", ("hot", "cool_end"))
    want, _ = curves_csv.csv_curves([p], curves_csv.Columns(), curves_csv.parse_schedule(DESC), branch)
    sched = curves_csv.parse_schedule(DESC + ",tokens_per_step=4096")
    got, _ = curves_csv.csv_curves([q], curves_csv.Columns(), sched, branch)
    pd.testing.assert_frame_equal(got, want)
