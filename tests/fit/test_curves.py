"""Curve laws (fit/curves.py): the annealing area, recovery of a known law with run-bootstrap intervals, and
`scalelab fit --curves` on run-store files rebuilt from their recorded schedules."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.config import RunConfig
from scalelab.fit import curves
from scalelab.fit.bootstrap import intervals
from scalelab.schedule import lr_at, make_plan, wsd_branches

runner = CliRunner()
TRUE = {"E": 2.0, "A": 1.5, "alpha": 0.5, "C": 0.004, "lam": 0.99}


def test_annealing_area_is_the_momentum_sum():
    """S2 = sum_i m_i, m_i = lam m_{i-1} + (eta_{i-1} - eta_i) after warmup: the closed form predict uses."""
    rng = np.random.default_rng(1)
    lr = np.concatenate([np.linspace(0.1, 1, 10), np.ones(40), np.sort(rng.uniform(0, 1, 50))[::-1]])
    steps = np.array([30, 60, 99, 100])
    s1, terms = curves.schedule_features(lr, steps, warmup=9)
    lam = 0.97
    got = -curves.predict(
        "annealing-area", {"E": 0, "A": 0, "alpha": 1, "C": 1, "lam": lam}, curves.make_design(np.ones(4), s1, terms)
    )
    m, s2, want = 0.0, 0.0, {}
    for i in range(1, 100):
        m = lam * m + (lr[i - 1] - lr[i] if i > 9 else 0.0)
        s2 += m
        want[i + 1] = s2  # after step i (0-based) is applied, i + 1 steps are done
    np.testing.assert_allclose(got, [want.get(int(t), 0.0) for t in steps], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s1, [lr[:t].sum() for t in steps])


def _schedules(total=2000, warmup=50):
    """Seven lr schedules of one size: WSD trunks, their 1-sqrt cooldown branches, cosine and constant."""

    def wsd(n, frac=0.2):
        lr, c = np.ones(n), n - round(frac * n)
        lr[c:] = 1 - np.sqrt((np.arange(c, n) - c) / (n - c))
        return lr

    def cosine(n):
        return 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * np.clip((np.arange(n) - warmup) / (n - warmup), 0, 1)))

    out = [
        ("trunk", wsd(total)),
        ("trunk", wsd(total // 2)),
        ("trunk2", wsd(total, 0.4)),
        ("trunk2", wsd(total // 4, 0.4)),
    ]
    out += [("cos1", cosine(total)), ("cos2", cosine(total // 2)), ("const", np.ones(total))]
    for _, lr in out:
        lr[:warmup] = np.arange(1, warmup + 1) / warmup
    return out


def _synthetic(seed, noise=0.003, warmup=50):
    rng = np.random.default_rng(seed)
    rows, terms = [], []
    for run, lr in _schedules(warmup=warmup):
        steps = np.unique(np.linspace(200, lr.size, 12).astype(int))
        s1, tt = curves.schedule_features(lr, steps, warmup)
        loss = curves.predict("annealing-area", TRUE, curves.make_design(np.ones(steps.size), s1, tt))
        loss = loss * np.exp(noise * rng.standard_normal(steps.size))
        rows += [
            dict(run=run, N=1e6, step=int(t), budget=lr.size, loss=y, s1=a, final=t == lr.size, peak=1.0)
            for t, y, a in zip(steps, loss, s1)
        ]
        terms += tt
    pts = pd.DataFrame(rows).assign(decayed=lambda d: d["final"], group="g")
    return curves.group_data(pts, terms)


def test_known_law_recovered_within_its_run_bootstrap_intervals():
    covered = {k: 0 for k in TRUE}
    seeds = range(10)
    for seed in seeds:
        g = _synthetic(seed)
        assert not g.sized  # one size: L0 = E
        theta, specs = curves.fit_form(g, "annealing-area", None, "lsq", 1e-3)
        est = curves.to_natural(theta, specs)
        samples = curves.bootstrap_params(
            g, "annealing-area", theta, specs, np.ones(len(g.pts), bool), 60, seed, "lsq", 1e-3
        )
        conf, _ = intervals(samples, est, 0.95)
        for k, v in TRUE.items():
            covered[k] += k in conf and conf[k][0] <= v <= conf[k][1]
        assert abs(est["alpha"] - TRUE["alpha"]) < 0.15 and abs(est["E"] - TRUE["E"]) < 0.1
    assert all(c >= 0.8 * len(seeds) for c in covered.values()), covered


def test_noise_free_known_law_predicts_every_point():
    g = _synthetic(0, noise=0.0)
    theta, specs = curves.fit_form(g, "annealing-area", None, "lsq", 1e-3)
    pred = curves.predict("annealing-area", curves.to_natural(theta, specs), g.design())
    np.testing.assert_allclose(pred, g.loss(), rtol=1e-4)


# ---- run-store files -----------------------------------------------------------------------------------

LAW = {"E": 1.0, "A_N": 0.5, "a_N": 0.4, "A": 1.2, "alpha": 0.4, "C": 0.002, "lam": 0.99}


def _config(width, budgets, schedule="wsd", eval_points=10):
    model = {"d_model": width, "n_layers": 2, "n_heads": 2, "seq_len": 128, "vocab_size": 256}
    train = {"batch_size": 4, "budgets": budgets, "cooldown": 0.2, "lr": 0.003, "schedule": schedule}
    train.update(warmup=0.05, eval_points=eval_points)
    return {"grid": "t", "model": model, "train": train, "data": {}, "seed": 0}


def write_runs(tmp_path, widths=(24, 32, 40, 48), eval_points=10, config=None):
    """One WSD run per width (a trunk, two cooldown branches) whose val_loss follows LAW at its schedule."""
    d = tmp_path / "runs"
    d.mkdir(exist_ok=True)
    for w in widths:
        N = 400.0 * w**2
        cfg = _config(w, [int(N * 5 * k) for k in (1, 2, 4)], eval_points=eval_points)
        run, plan = RunConfig.from_dict(cfg), make_plan(RunConfig.from_dict(cfg))
        rows = [(plan.total, s, s == plan.total) for s in plan.eval_steps]  # (budget steps, step, final)
        rows += [(s_b, s_b, True) for _, s_b in wsd_branches(run, plan)]
        by_steps = dict(zip(plan.budget_steps, sorted(run.train.budgets)))
        out = []
        for s_b, t, final in rows:
            lr = np.array([lr_at(run, plan, s, branch_steps=s_b) for s in range(t)]) / 0.003
            s1, tt = curves.schedule_features(lr, np.array([t]), plan.warmup)
            loss = curves.predict("annealing-area", LAW, curves.make_design(np.array([N / 4e5]), s1, tt))[0]
            out.append(
                dict(
                    run_id=f"r{w}", variant="dense", params=N, step=t, budget=by_steps[s_b], final=final, val_loss=loss
                )
            )
        df = pd.DataFrame(out).assign(status="ok", config=json.dumps(config if config is not None else cfg))
        df.to_parquet(d / f"r{w}.parquet")
    return d


def _err(r):
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    return lines[0]


def test_fit_curves_cli_holds_out_branches_and_writes_its_file(tmp_path):
    d = write_runs(tmp_path)
    out = tmp_path / "c.curves.json"
    r = runner.invoke(app, ["fit", str(d), "--curves", "--holdout-branches", "--bootstrap", "4", "--out", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    g = doc["groups"]["dense"]
    assert doc["format"] == curves.FORMAT and g["fitted_on"] == "without the held-out branches"
    assert set(g["selection"]["forms"]) == set(curves.FORMS) and g["form"] == g["selection"]["picked"]
    # per width the two longer branches (the middle one and the trunk's own cooldown) are held out
    assert len(g["holdout"]) == 8 and all(h["budget"] > int(h["N"] * 5) for h in g["holdout"])
    aa = g["selection"]["forms"]["annealing-area"]
    assert aa["n_finals"] == 8 and aa["final_mre"] < 0.01  # the law the losses follow predicts its held-out finals
    assert "annealing-area" in r.output and "multi-power" in r.output and f"picked {g['form']}" in r.output


def test_fewer_points_than_parameters_is_one_line(tmp_path):
    d = write_runs(tmp_path, widths=(24, 32, 40), eval_points=1)
    line = _err(runner.invoke(app, ["fit", str(d), "--curves", "--bootstrap", "0"]))
    assert "fewer than the" in line and "parameters" in line


def test_unreadable_schedule_is_one_line(tmp_path):
    d = write_runs(tmp_path, widths=(24,), config={"model": {}})
    line = _err(runner.invoke(app, ["fit", str(d), "--curves", "--bootstrap", "0"]))
    assert "cannot read its schedule" in line and "r24" in line


def test_non_monotone_steps_is_one_line(tmp_path):
    d = write_runs(tmp_path, widths=(24,))
    p = d / "r24.parquet"
    df = pd.read_parquet(p)
    trunk = df.index[df["budget"] == df["budget"].max()]
    df.loc[trunk[[0, 1]], "step"] = df.loc[trunk[[1, 0]], "step"].to_numpy()  # two trunk rows out of order
    df.to_parquet(p)
    line = _err(runner.invoke(app, ["fit", str(d), "--curves", "--bootstrap", "0"]))
    assert "do not increase" in line and "r24" in line


@pytest.mark.parametrize("bad", ["x.csv"])
def test_csv_input_is_refused(tmp_path, bad):
    p = tmp_path / bad
    p.write_text("N,D,loss\n1,2,3\n")
    assert "--schedule" in _err(runner.invoke(app, ["fit", str(p), "--curves"]))  # a CSV needs its schedule


def test_fitted_law_predicts_an_unseen_schedule(tmp_path):
    """The law fitted on WSD runs predicts a cosine schedule of another size in range (no such run was fitted)."""
    fits = curves.fit_curves([write_runs(tmp_path)], bootstrap=0, loss="lsq")
    f = fits["dense"]
    n, warmup = 3000, 150
    lr = 0.003 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * np.clip((np.arange(n) - warmup) / (n - warmup), 0, 1))))
    lr[:warmup] = 0.003 * np.arange(1, warmup + 1) / warmup
    steps = np.array([1000, 2000, 3000])
    N = 400.0 * 36**2
    s1, tt = curves.schedule_features(lr / 0.003, steps, warmup)
    want = curves.predict("annealing-area", LAW, curves.make_design(np.full(3, N / 4e5), s1, tt))
    np.testing.assert_allclose(f.predict(N, lr, steps, warmup), want, rtol=0.01)


def test_a_form_with_more_parameters_than_points_is_left_out_of_the_comparison(tmp_path):
    d = write_runs(tmp_path, eval_points=4)  # 2 fitted points per run: 8 < the multi-power law's 9 parameters
    sel = curves.fit_curves([d], bootstrap=0)["dense"].selection
    assert "fewer than the 9 parameters" in sel["forms"]["multi-power"]["error"]
    assert sel["picked"] == "annealing-area" and sel["forms"]["annealing-area"]["n_finals"] == 8


# ---- speed: analytic Jacobian, merged annealing terms, resamples in worker processes -------------------


def _long_design():
    """Points along a WSD trunk with a long 1-sqrt cooldown (a drop at every step) at three sizes."""
    lr = np.ones(6000)
    lr[:60] = np.arange(1, 61) / 60
    lr[4800:] = 1 - np.sqrt(np.arange(1200) / 1200)
    steps = np.array([3000, 4900, 5200, 5600, 6000])
    s1, terms = curves.schedule_features(lr, steps, 60)
    n = np.repeat([0.5, 1.0, 2.0], steps.size)
    return curves.make_design(n, np.tile(s1, 3), terms * 3), [curves.merge_terms(*t) for t in terms * 3], n, s1


@pytest.mark.parametrize("form", curves.FORMS)
def test_analytic_jacobian_is_the_derivative_of_the_law(form):
    from scipy.optimize._numdiff import approx_derivative

    d = _long_design()[0]
    specs = curves.param_specs(form, True, 2.5)
    rng = np.random.default_rng(3)
    for _ in range(3):
        th = np.array([rng.uniform(lo + 0.2 * (hi - lo), hi - 0.2 * (hi - lo)) for _, _, lo, hi in specs])
        th[[s[0] for s in specs].index("C")] = np.log(0.01)  # keep the annealing term a fraction of the loss
        pred, jac = curves.predict_jac(form, th, specs, d)
        np.testing.assert_allclose(pred, curves.predict(form, curves.to_natural(th, specs), d), rtol=1e-12)
        num = approx_derivative(lambda t: curves.predict(form, curves.to_natural(t, specs), d), th, method="3-point")
        np.testing.assert_allclose(jac, num, rtol=1e-5, atol=1e-7 * np.abs(num).max())


@pytest.mark.parametrize("lam", [0.9, 0.99, 0.999, 0.9999])
def test_merged_annealing_terms_change_the_law_by_little(lam):
    """The fits' merged terms: 7x fewer here, and the annealing term moves by < 1e-4 of its largest value
    (it is a few % of the loss: ~1e-6 of the loss, against noise of ~1e-3)."""
    d, merged, n, s1 = _long_design()
    dm = curves.make_design(n, np.tile(s1, 3), merged)
    assert dm.drop.size < d.drop.size / 5
    np.testing.assert_allclose(np.bincount(dm.idx, dm.drop), np.bincount(d.idx, d.drop), rtol=1e-12)  # drops kept
    laws = {  # E = A = 0: the law is minus its annealing term
        "annealing-area": dict(E=0.0, A=0.0, alpha=0.5, C=1.0, lam=lam),
        "multi-power": dict(E=0.0, A=0.0, alpha=0.5, B=1.0, C=200 * (1 - lam), beta=0.6, gamma=0.5),
    }
    for form, p in laws.items():
        exact, fast = -curves.predict(form, p, d), -curves.predict(form, p, dm)
        assert np.abs(fast - exact).max() < 1e-4 * exact.max(), form


def test_resamples_in_worker_processes_equal_the_serial_ones(monkeypatch):
    g = _synthetic(1)
    theta, specs = curves.fit_form(g, "annealing-area", None, "lsq", 1e-3)
    mask = np.ones(len(g.pts), bool)
    monkeypatch.setattr(curves, "WORKERS", 1)
    serial = curves.bootstrap_params(g, "annealing-area", theta, specs, mask, 6, 4, "lsq", 1e-3)
    monkeypatch.setattr(curves, "WORKERS", 2)
    monkeypatch.setattr(curves, "MIN_PER_WORKER", 3)
    monkeypatch.setattr(curves, "_cores", lambda: 2)
    parallel = curves.bootstrap_params(g, "annealing-area", theta, specs, mask, 6, 4, "lsq", 1e-3)
    for k in serial:
        np.testing.assert_array_equal(serial[k], parallel[k])


def test_curves_file_round_trips_with_its_resamples(tmp_path):
    fits = curves.fit_curves([write_runs(tmp_path)], bootstrap=3, loss="lsq")
    path = tmp_path / "c.curves.json"
    curves.write_json(fits, path, [], {"level": 0.95})
    back = curves.load_curves(path)
    f, b = fits["dense"], back.fits["dense"]
    assert b.params == f.params and b.runs == ["r24", "r32", "r40", "r48"] and b.by == ["variant"]
    for k, v in f.samples.items():
        np.testing.assert_allclose(b.samples[k], v, rtol=1e-6)
    lr, steps = np.full(500, 0.003), np.array([100, 500])
    np.testing.assert_allclose(b.predict(1e6, lr, steps), f.predict(1e6, lr, steps), rtol=1e-12)
    assert b.predict_samples(1e6, lr, steps).shape == (3, 2)


def test_a_foreign_curves_file_is_refused(tmp_path):
    p = tmp_path / "x.curves.json"
    p.write_text(json.dumps({"format": "scalelab-fit/3", "groups": {}}))
    with pytest.raises(curves.ScalelabError, match="not a scalelab-curves/1 file"):
        curves.load_curves(p)


@pytest.mark.parametrize("form", curves.FORMS)
def test_batched_refits_reach_scipys_optimum(form):
    """batch_lm (all resamples at once, scipy for the ones it leaves unconverged) ends where scipy's solver
    does: the same objective value to 1e-6 on nearly every resample, never much above it."""
    g = _synthetic(2)
    theta, _ = curves.fit_form(g, form, None, "huber", 1e-3)
    d, y = g.design(compact=True), g.loss()
    W = list(curves.unit_counts(g.pts["run"].to_numpy(), 24, np.random.default_rng(0)))
    batched = curves._refit(((form, d, y, g.sized, "huber", 1e-3, theta), W))
    specs = curves.param_specs(form, g.sized, float(y.min()))

    def cost(th, w):
        r = np.sqrt(w) * (np.log(curves.predict(form, curves.to_natural(th, specs), d)) - np.log(y))
        return curves._robust_cost(r, "huber", 1e-3)

    rel = np.array(
        [
            cost(b, w) / cost(curves.solve(form, d, y, g.sized, "huber", 1e-3, w=w, x0=theta)[0], w) - 1
            for b, w in zip(batched, W)
        ]
    )
    assert np.mean(rel < 1e-6) >= 0.9 and rel.max() < 1e-2, rel


def test_a_curve_law_is_known_by_its_format_whatever_its_name(tmp_path):
    from scalelab.errors import ScalelabError
    from scalelab.fit.results import load_fit

    law = tmp_path / "law.json"  # `fit --curves --out law.json`: no .curves.json suffix
    law.write_text(json.dumps({"format": "scalelab-curves/1", "inputs": [], "settings": {}, "groups": {}}, indent=2))
    other = tmp_path / "fit.json"
    other.write_text(json.dumps({"format": "scalelab-fit/2", "groups": {}}, indent=2))
    assert curves.is_curves_file(law) and curves.is_curves_file(tmp_path / "x.curves.json")
    assert not curves.is_curves_file(other)
    with pytest.raises(ScalelabError, match=r"a curve law .* --curves --derive"):
        load_fit(law)
