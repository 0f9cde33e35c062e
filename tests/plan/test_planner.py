"""scalelab.plan against closed forms (REFERENCE.md section 3), brute force and hand-built fit files.

The fit files here are written by the tests themselves in the format pinned in docs/interfaces.md
("Fit file"), from known law parameters and synthetic bootstrap draws, so these tests do not depend on
the fitter's numerics (one test at the end does use the fitter on chinchilla_epoch.csv).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize_scalar

from scalelab import flops as F
from scalelab import plan as P
from scalelab.config import ModelConfig, StructureConfig
from scalelab.errors import ScalelabError

# Besiroglu et al. 2024 replication of Chinchilla approach 3 (point, SE)
EPOCH = dict(E=1.817, A=482.0, B=2085.0, alpha=0.348, beta=0.366)
EPOCH_SE = dict(E=0.026, A=124.5, B=1293.0, alpha=0.015, beta=0.021)
# the chinchilla data's range: N 5.7e7..1.6e10, C 1.4e18..1.3e22
CHIN_RANGE = {"N": [5.7e7, 1.62e10], "D": [1e9, 5e11], "C": [1.4e18, 1.3e22]}


def closed_form(p, C):
    """REFERENCE.md section 3, written out independently of scalelab.plan."""
    E, A, B, a, b = p["E"], p["A"], p["B"], p["alpha"], p["beta"]
    G = (a * A / (b * B)) ** (1 / (a + b))
    N = G * (C / 6) ** (b / (a + b))
    D = (C / 6) ** (a / (a + b)) / G
    L = E + (A * G**-a + B * G**b) * (C / 6) ** (-a * b / (a + b))
    return N, D, L


def pinned_samples(point: dict, n: int = 400, seed: int = 0, C0: float = 1.35e20, scale: float = 1.0) -> pd.DataFrame:
    """Bootstrap-like draws that agree at the data's centre, like real refits do.

    Exponents and E vary with the published SEs (times `scale`); A and B follow so that every draw has
    the same compute-optimal (N0, D0) and loss at C0 (the geometric centre of the chinchilla data's
    FLOPs): the two terms keep their sum (less the change in E) and the optimality condition
    alpha A N0^-alpha = beta B D0^-beta.
    """
    rng = np.random.default_rng(seed)
    al = point["alpha"] + scale * EPOCH_SE["alpha"] * rng.standard_normal(n)
    be = point["beta"] + scale * EPOCH_SE["beta"] * rng.standard_normal(n)
    E = point["E"] + scale * EPOCH_SE["E"] * rng.standard_normal(n)
    N0, D0, _ = closed_form(point, C0)
    total = point["A"] * N0 ** -point["alpha"] + point["B"] * D0 ** -point["beta"] - (E - point["E"])
    tA, tB = total * be / (al + be), total * al / (al + be)
    return pd.DataFrame(
        dict(sample=np.arange(n), E=E, A=tA * N0**al, B=tB * D0**be, alpha=al, beta=be, K=np.nan, gamma=np.nan)
    )


def write_fit(
    tmp: Path,
    groups: dict,
    convention: str = "6ND",
    name: str = "fit",
    samples: bool = True,
    level: float = 0.95,
    joint: bool = False,
) -> Path:
    """groups: name -> dict(point=..., samples=DataFrame, form=..., range=..., runs=..., residual_sd=...)."""
    out = {
        "format": "scalelab-fit/1",
        "scalelab_version": "test",
        "created": "2026-01-01T00:00:00",
        "inputs": [],
        "flop_convention": convention,
        "by": ["variant"],
        "approach": 3,
        "loss": {"kind": "huber", "delta": 1e-3},
        "bootstrap": {"n": 400, "seed": 0, "level": level, "unit": "run"},
        "samples": f"{name}.samples.parquet",
        "groups": {},
        "comparisons": [],
    }
    if joint:
        out["joint"] = True
    frames = []
    for gname, g in groups.items():
        out["groups"][gname] = {
            "key": {"variant": g.get("variant", gname)},
            "form": g.get("form", "chinchilla"),
            "params": g["point"],
            "conf_int": {},
            "derived": {},
            "derived_conf_int": {},
            "residual_sd": g.get("residual_sd", 0.0),
            "n_points": 10,
            "n_runs": 10,
            "n_sizes": 5,
            "range": g.get("range", CHIN_RANGE),
            "diagnostics": {},
            "warnings": [],
            "runs": g.get("runs", []),
        }
        df = g["samples"].copy()
        df.insert(0, "group", gname)
        frames.append(df)
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(out))
    if samples:
        pd.concat(frames).to_parquet(tmp / f"{name}.samples.parquet")
    return path


@pytest.fixture
def epoch_fit(tmp_path):
    return write_fit(tmp_path, {"chinchilla": {"point": EPOCH, "samples": pinned_samples(EPOCH), "residual_sd": 0.01}})


# ------------------------------------------------------------------------------------------------
# Allocation on a 6ND (CSV) fit
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("C", [1e21, 3.2e20, 5e23])
def test_point_plan_matches_closed_form(epoch_fit, C):
    r = P.plan_budget(epoch_fit, C)
    p = r["chinchilla"]
    N, D, L = closed_form(EPOCH, C)
    assert p.N_opt == pytest.approx(N, rel=1e-10)
    assert p.D_opt == pytest.approx(D, rel=1e-10)
    assert p.L_opt == pytest.approx(L, rel=1e-10)
    assert 6 * p.N_opt * p.D_opt == pytest.approx(C, rel=1e-10)
    assert p.tokens_per_param == pytest.approx(D / N, rel=1e-10)
    # published exponent a = beta / (alpha + beta) = 0.513 (REFERENCE.md)
    assert math.log(P.plan_budget(epoch_fit, 10 * C)["chinchilla"].N_opt / p.N_opt, 10) == pytest.approx(
        0.5126, abs=1e-3
    )


def test_intervals_push_every_sample_through(epoch_fit):
    C = 1e22
    p = P.plan_budget(epoch_fit, C)["chinchilla"]
    s = pinned_samples(EPOCH)
    N, D, L = closed_form({k: s[k].to_numpy() for k in EPOCH}, C)
    np.testing.assert_allclose(p.N_int, np.percentile(N, [2.5, 97.5]), rtol=1e-9)
    np.testing.assert_allclose(p.D_int, np.percentile(D, [2.5, 97.5]), rtol=1e-9)
    np.testing.assert_allclose(p.L_int, np.percentile(L, [2.5, 97.5]), rtol=1e-9)
    np.testing.assert_allclose(p.tpp_int, np.percentile(D / N, [2.5, 97.5]), rtol=1e-9)
    assert np.allclose(6 * N * D, C)


def test_prediction_interval_adds_residual_noise(tmp_path):
    s = pinned_samples(EPOCH)
    noisy = write_fit(tmp_path, {"g": {"point": EPOCH, "samples": s, "residual_sd": 0.02}}, name="a")
    quiet = write_fit(tmp_path, {"g": {"point": EPOCH, "samples": s, "residual_sd": 0.0}}, name="b")
    pn, pq = P.plan_budget(noisy, 1e21)["g"], P.plan_budget(quiet, 1e21)["g"]
    assert pq.L_pred_int == pytest.approx(pq.L_int)
    lo, hi = pn.L_pred_int
    assert lo < pn.L_int[0] and hi > pn.L_int[1]
    # at the data's centre every draw has the same mean loss, so the width is the noise alone:
    # L exp(+-1.96 sd)
    c = P.plan_budget(noisy, 1.35e20)["g"]
    assert c.L_int[1] - c.L_int[0] < 1e-9
    assert c.L_pred_int[1] - c.L_pred_int[0] == pytest.approx(2 * 1.96 * 0.02 * c.L_opt, rel=0.05)


def test_intervals_widen_away_from_the_data(epoch_fit):
    def widths(C):
        p = P.plan_budget(epoch_fit, C)["chinchilla"]
        return math.log(p.N_int[1] / p.N_int[0]), p.L_int[1] - p.L_int[0]

    w = [widths(C) for C in (1.35e20, 1e22, 1e24, 1e26)]
    for (n0, l0), (n1, l1) in zip(w, w[1:]):
        assert n1 > n0 and l1 > l0


def test_numeric_minimiser_matches_closed_form():
    """The numeric path (used for real FLOP models) on F(N) = 6N must reproduce the closed form."""

    class Numeric6N:  # not a SixND: forces the numerical minimisation
        log_n_bounds = (math.log(1e3), math.log(1e16))

        def log_flops_per_token(self, logN):
            return math.log(6.0) + logN

    s = pinned_samples(EPOCH, n=50)
    p = {k: s[k].to_numpy() for k in EPOCH}
    for C in (1e19, 1e21, 1e24):
        N, D, L, edge = P.planner.optimum(p, Numeric6N(), C)
        Nc, Dc, Lc = closed_form(p, C)
        assert not edge.any()
        np.testing.assert_allclose(N, Nc, rtol=1e-5)
        np.testing.assert_allclose(D, Dc, rtol=1e-5)
        np.testing.assert_allclose(L, Lc, rtol=1e-12)


def test_inference_tokens_shift_to_smaller_longer_trained_models(epoch_fit):
    C, T = 1e22, 2e12
    r = P.plan_budget(epoch_fit, C, inference_tokens=T)["chinchilla"]
    # independent: minimise L(N, C/(6N) - T/3) over N with scipy
    f = lambda x: (
        EPOCH["E"]
        + EPOCH["A"] * math.exp(-EPOCH["alpha"] * x)
        + EPOCH["B"] * (C / (6 * math.exp(x)) - T / 3) ** -EPOCH["beta"]
    )
    hi = math.log(C / (2 * T)) - 1e-9  # D > 0
    x = minimize_scalar(f, bounds=(math.log(1e6), hi), method="bounded", options={"xatol": 1e-10}).x
    assert r.N_opt == pytest.approx(math.exp(x), rel=1e-4)
    assert 6 * r.N_opt * r.D_opt + 2 * r.N_opt * T == pytest.approx(C, rel=1e-9)
    N_co, _, _ = closed_form(EPOCH, C)
    assert r.N_opt < N_co
    assert r.inference["tokens_per_param_over_compute_optimal"] > 1
    assert r.inference["N_over_compute_optimal"] == pytest.approx(r.N_opt / N_co, rel=1e-9)


def test_target_loss_inverts_the_frontier(epoch_fit):
    target = 2.0
    r = P.plan_budget(epoch_fit, target_loss=target)["chinchilla"]
    C = r.target["C"]
    assert closed_form(EPOCH, C)[2] == pytest.approx(target, rel=1e-10)
    lo, hi = r.target["C_int"]
    assert lo < C < hi
    # at or below E no budget suffices, and a loss is positive: refused, naming E
    for bad, needle in ((1.5, "E = 1.82"), (EPOCH["E"], "E = 1.82"), (-1.0, "positive"), (0.0, "positive")):
        with pytest.raises(ScalelabError, match=needle):
            P.plan_budget(epoch_fit, target_loss=bad)


def test_sweep_columns_and_monotone(epoch_fit):
    df = P.sweep(epoch_fit, 1e19, 1e23, 5)
    assert list(df.columns) == [
        "variant",
        "C",
        "N_opt",
        "N_lo",
        "N_hi",
        "D_opt",
        "D_lo",
        "D_hi",
        "L_opt",
        "L_lo",
        "L_hi",
        "extrapolated",
        "identified",
    ]
    assert len(df) == 5 and df.identified.all()
    np.testing.assert_allclose(df.C, np.geomspace(1e19, 1e23, 5))
    N, D, L = closed_form(EPOCH, df.C.to_numpy())
    np.testing.assert_allclose(df.N_opt, N, rtol=1e-10)
    assert (df.N_lo < df.N_opt).all() and (df.N_opt < df.N_hi).all()
    assert df.extrapolated.tolist() == [False, False, False, False, False]
    assert P.sweep(epoch_fit, 1e23, 1e25, 2).extrapolated.tolist() == [False, True]


def test_sweep_without_samples_only_when_asked(tmp_path):
    """The figures draw a fit without bootstrap samples: its sweep has the point allocation, no intervals."""
    bare = write_fit(tmp_path, {"g": {"point": EPOCH, "samples": pinned_samples(EPOCH)}}, name="bare", samples=False)
    with pytest.raises(ScalelabError, match="no bootstrap samples"):
        P.sweep(bare, 1e19, 1e23, 3)
    df = P.sweep(bare, 1e19, 1e23, 3, require_samples=False)
    N, D, L = closed_form(EPOCH, df.C.to_numpy())
    np.testing.assert_allclose(df.N_opt, N, rtol=1e-10)
    np.testing.assert_allclose(df.L_opt, L, rtol=1e-10)
    assert df[["N_lo", "N_hi", "D_lo", "D_hi", "L_lo", "L_hi"]].isna().all().all()


# ------------------------------------------------------------------------------------------------
# Decision between variants
# ------------------------------------------------------------------------------------------------


def test_ranking_and_probability_independent(tmp_path):
    worse = dict(EPOCH, E=EPOCH["E"] + 0.01)
    sa, sb = pinned_samples(EPOCH, seed=1), pinned_samples(worse, seed=2)
    path = write_fit(
        tmp_path, {"dense": {"point": EPOCH, "samples": sa}, "lowrank-63": {"point": worse, "samples": sb}}
    )
    r = P.plan_budget(path, 1e21)
    assert [p.variant for p in r.plans] == ["dense", "lowrank-63"]
    assert not r.paired
    La = closed_form({k: sa[k].to_numpy() for k in EPOCH}, 1e21)[2]
    Lb = closed_form({k: sb[k].to_numpy() for k in EPOCH}, 1e21)[2]
    expect = np.mean(La[:, None] < Lb[None, :])  # every pair of draws
    assert r.p_beats == pytest.approx(expect, abs=1e-12)
    assert 0.5 < r.p_beats < 1


def test_probability_paired_for_joint_fits(tmp_path):
    sa = pinned_samples(EPOCH, seed=1)
    sb = sa.copy()
    sb["A"] = sb["A"] * 1.02  # the same draw with a worse A: loses in every paired draw
    path = write_fit(
        tmp_path,
        {
            "dense": {"point": EPOCH, "samples": sa},
            "lowrank-63": {"point": dict(EPOCH, A=EPOCH["A"] * 1.02), "samples": sb},
        },
    )
    r = P.plan_budget(path, 1e21)
    assert r.paired  # identical E in every sample: a joint fit
    assert r.p_beats == 1.0


def test_extrapolation_and_unique_tokens_warnings(epoch_fit):
    r = P.plan_budget(epoch_fit, 1e21)
    assert not r.warnings
    r = P.plan_budget(epoch_fit, 1e24, unique_tokens=1e12)
    assert any("extrapolation" in w for w in r.warnings)
    assert any("unique" in w for w in r.warnings)
    assert r["chinchilla"].extrapolated


def test_frontier_group_gives_loss_not_allocation(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    s = pd.DataFrame(
        dict(
            sample=np.arange(n),
            E=1.8 + 0.02 * rng.standard_normal(n),
            A=np.nan,
            B=np.nan,
            alpha=np.nan,
            beta=np.nan,
            K=np.exp(8 + 0.1 * rng.standard_normal(n)),
            gamma=0.15 + 0.005 * rng.standard_normal(n),
        )
    )
    runs = [dict(run_id=str(i), params=1e8 * 2**i, tokens=20e8 * 2**i) for i in range(4)]
    path = write_fit(
        tmp_path,
        {"dense": {"form": "frontier", "point": dict(E=1.8, K=math.exp(8), gamma=0.15), "samples": s, "runs": runs}},
    )
    p = P.plan_budget(path, 1e21)["dense"]
    assert p.L_opt == pytest.approx(1.8 + math.exp(8) * 1e21**-0.15)
    np.testing.assert_allclose(p.L_int, np.percentile(s.E + s.K * 1e21**-s.gamma, [2.5, 97.5]))
    assert not p.identified and math.isnan(p.N_int[0])
    assert p.tokens_per_param == pytest.approx(20.0)
    assert 6 * p.N_opt * p.D_opt == pytest.approx(1e21, rel=1e-6)
    assert any("not identified" in n for n in p.notes)


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------


def test_errors(tmp_path, epoch_fit):
    with pytest.raises(ScalelabError, match="below the smallest fitted run"):
        P.plan_budget(epoch_fit, 1e17)
    with pytest.raises(ScalelabError, match="not in fit"):
        P.plan_budget(epoch_fit, 1e21, variants=["nope"])
    bare = write_fit(tmp_path, {"g": {"point": EPOCH, "samples": pinned_samples(EPOCH)}}, name="bare", samples=False)
    with pytest.raises(ScalelabError, match="no bootstrap samples"):
        P.plan_budget(bare, 1e21)
    with pytest.raises(ScalelabError, match="not found"):
        P.plan_budget(tmp_path / "missing.json", 1e21)


# ------------------------------------------------------------------------------------------------
# Fits of scalelab runs: real FLOPs per token, shapes, wall clock
# ------------------------------------------------------------------------------------------------


def tiny(d, layers, kind="dense", fraction=None):
    from scalelab.presets import structure_for_fraction

    ffn = StructureConfig() if kind == "dense" else structure_for_fraction(kind, d, 4 * d, fraction)
    return ModelConfig(d_model=d, n_layers=layers, n_heads=d // 32, vocab_size=256, seq_len=256, ffn=ffn).validate()


# a small law in the scale of tiny CPU models (N ~ 1e5..1e7)
SMALL = dict(E=1.2, A=60.0, B=400.0, alpha=0.30, beta=0.32)


def runs_for(cfgs, tokens_per_param=20.0, device="h100", tps=1e5):
    runs = []
    for i, c in enumerate(cfgs):
        pc = F.param_counts(c)
        D = tokens_per_param * pc.params
        runs.append(
            dict(
                run_id=f"r{i}",
                params=pc.params,
                params_nonembed=pc.params_nonembed,
                tokens=D,
                flops=F.train_flops(c, D),
                loss=2.0,
                tokens_per_s=tps,
                mfu=0.3,
                device=device,
                model=c.to_dict(),
            )
        )
    return runs


def structured_fit(tmp_path, kind="lowrank", fraction=0.63, device="h100"):
    # grid with aspect rule n_layers = d_model / 32
    cfgs = {
        v: [tiny(d, d // 32, k, f) for d in (64, 128, 192, 256)]
        for v, k, f in (("dense", "dense", None), (f"{kind}-{round(fraction * 100)}", kind, fraction))
    }
    groups = {}
    for v, cs in cfgs.items():
        runs = runs_for(cs, device=device, tps=2e5 if v == "dense" else 3e5)
        groups[v] = {
            "point": SMALL,
            "samples": pinned_samples(SMALL, C0=1e14, scale=0.3),
            "runs": runs,
            "range": {
                "N": [min(r["params"] for r in runs), max(r["params"] for r in runs)],
                "D": [min(r["tokens"] for r in runs), max(r["tokens"] for r in runs)],
                "C": [min(r["flops"] for r in runs), max(r["flops"] for r in runs)],
            },
        }
    return write_fit(tmp_path, groups, convention="flops", name=f"runs-{kind}"), cfgs


@pytest.mark.parametrize("kind,fraction", [("lowrank", 0.63), ("blockshuffle", 0.32), ("blockdense", 0.63)])
def test_structured_shape_keeps_fraction_and_budget(tmp_path, kind, fraction):
    path, _ = structured_fit(tmp_path, kind, fraction)
    C = 3e16
    r = P.plan_budget(path, C, multiple=32)  # tiny models: 64-wide steps are 25% apart
    v = f"{kind}-{round(fraction * 100)}"
    p = r[v]
    sh = p.shape
    cfg = sh.config
    assert cfg.ffn.kind == kind and cfg.d_model % 32 == 0 and cfg.head_dim == 32
    assert not p.notes
    assert cfg.variant == v
    # fraction of the replaced FFN params, counted by hand (REFERENCE.md section 1)
    d, m, s = cfg.d_model, cfg.ffn_width, cfg.ffn
    if kind == "lowrank":
        kept = s.rank * (d + m) / (d * m)
    elif kind == "blockdense":
        kept = (s.rank * d / s.blocks + s.rank * m + s.rank * m / s.blocks + s.rank * d) / (2 * d * m)
    else:
        kept = min(d, m) * (d + m) / s.blocks / (d * m)
    assert kept == pytest.approx(fraction, abs=0.07)
    assert sh.params == F.param_counts(cfg).params
    assert sh.params == pytest.approx(p.N_opt, rel=0.15)
    # the shape spends the budget exactly; at D_opt it is within a few percent
    assert F.train_flops(cfg, sh.tokens) == pytest.approx(C, rel=1e-9)
    assert abs(sh.flops_at_D_opt / C - 1) <= 0.05
    # depth follows the grid's aspect rule n_layers = d_model / 32 (+-1 layer to fit the budget)
    assert abs(cfg.n_layers - round(cfg.d_model / 32)) <= 1


def test_flops_family_optimum_matches_brute_force(tmp_path):
    """N_opt along the real-FLOPs family vs a brute force over buildable shapes of the grid's rule."""
    path, cfgs = structured_fit(tmp_path, "lowrank", 0.63)
    C = 3e16
    p = P.plan_budget(path, C)["dense"]
    law = lambda N, D: SMALL["E"] + SMALL["A"] * N ** -SMALL["alpha"] + SMALL["B"] * D ** -SMALL["beta"]
    best = min(
        (
            (law(F.param_counts(c).params, C / F.train_flops(c, 1.0)), c)
            for c in (tiny(d, max(1, round(d / 32))) for d in range(64, 4097, 64))
        ),
        key=lambda t: t[0],
    )
    # the ideal along the family bounds every buildable shape of the rule, and is close to the best one
    assert p.L_opt <= best[0] + 1e-12
    assert best[0] - p.L_opt < 2e-3
    assert p.N_opt == pytest.approx(F.param_counts(best[1]).params, rel=0.25)
    # the chosen shape (within 5% of the budget at D_opt, depth searched around the rule) is near-optimal
    assert p.shape.loss < best[0] + 5e-3 and abs(p.shape.loss - p.L_opt) < 5e-3
    # real FLOPs per token exceed 6N here (attention and logits at tiny width): fewer tokens than 6ND
    N6, D6, _ = closed_form(SMALL, C)
    assert p.D_opt < D6


def test_depth_override_and_multiple(tmp_path):
    path, _ = structured_fit(tmp_path)
    p = P.plan_budget(path, 3e16, depth=6, multiple=128)["dense"]
    assert p.shape.config.n_layers == 6 and p.shape.config.d_model % 128 == 0


def test_gpu_hours_from_measured_throughput(tmp_path):
    path, cfgs = structured_fit(tmp_path)
    C = 3e16
    r = P.plan_budget(path, C, gpu="h100")
    # runs measured on h100: achieved FLOP/s = tokens/s x FLOPs per token of the run
    c = cfgs["dense"][-1]
    rate = 2e5 * F.train_flops(c, 1.0)  # the largest run's
    assert r["dense"].gpu_hours == pytest.approx(C / rate / 3600, rel=1e-9)
    # --gpu-hours: each variant gets the FLOPs its measured speed buys
    r = P.plan_budget(path, gpu_hours=10.0, gpu="h100")
    assert r["dense"].C == pytest.approx(10 * 3600 * rate, rel=1e-9)
    c = cfgs["lowrank-63"][-1]
    assert r["lowrank-63"].C == pytest.approx(10 * 3600 * 3e5 * F.train_flops(c, 1.0), rel=1e-9)


def test_below_smallest_model_errors(tmp_path):
    path, _ = structured_fit(tmp_path)
    with pytest.raises(ScalelabError, match="below"):
        P.plan_budget(path, 1e9)


# ------------------------------------------------------------------------------------------------
# End to end with the fitter on the real Chinchilla data
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chinchilla_fit(tmp_path_factory, chinchilla_path):
    import scalelab.fit as fitmod

    df = pd.read_csv(chinchilla_path)
    df = df[df["loss"] < df["loss"].nlargest(5).min()]  # the replication's 240 rows
    res = fitmod.fit_laws(
        df,
        n_col="Model Size",
        d_col=None,
        c_col="Training FLOP",
        loss_col="loss",
        form="chinchilla",
        bootstrap=200,
        seed=0,
        flop_convention="6ND",
    )
    return res.to_json(tmp_path_factory.mktemp("fits") / "chinchilla.json")


def test_plan_from_fitted_chinchilla_csv(chinchilla_fit):
    doc = json.loads(chinchilla_fit.read_text())
    ((name, g),) = doc["groups"].items()
    pt = g["params"]
    # the fitter reproduces the replication (REFERENCE.md section 3) closely enough to plan from
    assert pt["E"] == pytest.approx(EPOCH["E"], abs=0.01) and pt["alpha"] == pytest.approx(EPOCH["alpha"], abs=0.005)
    C = 1e21
    p = P.plan_budget(chinchilla_fit, C)[name]
    N, D, L = closed_form(pt, C)
    assert (p.N_opt, p.D_opt, p.L_opt) == pytest.approx((N, D, L), rel=1e-10)
    assert 6 * p.N_opt * p.D_opt == pytest.approx(C, rel=1e-10)
    assert N == pytest.approx(closed_form(EPOCH, C)[0], rel=0.05)  # and the published law's plan
    # every bootstrap draw pushed through
    s = pd.read_parquet(chinchilla_fit.parent / doc["samples"])
    Ns = closed_form({k: s[k].to_numpy() for k in EPOCH}, C)[0]
    np.testing.assert_allclose(p.N_int, np.percentile(Ns, [2.5, 97.5]), rtol=1e-9)
    assert p.N_int[0] < p.N_opt < p.N_int[1] and p.L_pred_int[0] < p.L_int[0]


def test_fitted_intervals_widen_away_from_the_data(chinchilla_fit):
    """The data's runs sit at 1.4e18..1.3e22 FLOPs, most below 1e20: intervals grow both ways."""

    def w(C):
        p = P.plan_budget(chinchilla_fit, C).plans[0]
        return math.log(p.N_int[1] / p.N_int[0]), p.L_int[1] - p.L_int[0]

    up = [w(C) for C in (1e20, 1e22, 1e24, 1e25)]
    for (n0, l0), (n1, l1) in zip(up, up[1:]):
        assert n1 > n0 and l1 > l0
    lo, mid = w(1.5e18), w(1e19)
    assert lo[0] > mid[0] and lo[1] > mid[1]


def test_plan_from_fitted_scalelab_runs(tmp_path):
    """Runs -> fit_laws (real FLOPs convention, run configs) -> plan: shapes of the run's family."""
    import scalelab.fit as fitmod

    rng = np.random.default_rng(0)
    rows = []
    for v, kind, frac in (("dense", "dense", None), ("lowrank-63", "lowrank", 0.63)):
        for d in (64, 96, 128, 160, 192, 256):
            cfg = tiny(d, max(2, d // 32), kind, frac)
            pc = F.param_counts(cfg)
            for tpp in (5, 10, 20, 40):
                D = tpp * pc.params
                loss = (
                    SMALL["E"] + SMALL["A"] * pc.params ** -SMALL["alpha"] + SMALL["B"] * D ** -SMALL["beta"]
                ) * math.exp(0.003 * rng.standard_normal())
                rows.append(
                    dict(
                        run_id=f"{v}-{d}-{tpp}",
                        variant=v,
                        params=pc.params,
                        params_nonembed=pc.params_nonembed,
                        tokens=D,
                        flops=F.train_flops(cfg, D),
                        loss=loss,
                        tokens_per_s=1e5,
                        mfu=np.nan,
                        device="cpu",
                        config=json.dumps({"model": cfg.to_dict()}),
                    )
                )
    df = pd.DataFrame(rows)
    res = fitmod.fit_laws(
        df,
        n_col="params",
        d_col="tokens",
        c_col="flops",
        loss_col="loss",
        run_col="run_id",
        by=["variant"],
        form="chinchilla",
        bootstrap=100,
        seed=0,
        flop_convention="flops",
    )
    path = res.to_json(tmp_path / "runs.json")
    C = 3e16
    r = P.plan_budget(path, C, multiple=32)
    assert {p.variant for p in r.plans} == {"dense", "lowrank-63"}
    assert r.convention == "flops"
    p = r["lowrank-63"]
    cfg = p.shape.config
    assert cfg.variant == "lowrank-63" and cfg.d_model % 32 == 0
    assert cfg.ffn.rank * (cfg.d_model + cfg.ffn_width) / (cfg.d_model * cfg.ffn_width) == pytest.approx(0.63, abs=0.07)
    assert F.param_counts(cfg).params == pytest.approx(p.N_opt, rel=0.15)
    assert F.train_flops(cfg, p.shape.tokens) == pytest.approx(C, rel=1e-9)
    assert p.N_int[0] < p.N_opt < p.N_int[1]
    # the same through a FitResults object
    assert P.plan_budget(res, C, multiple=32)["lowrank-63"].N_opt == pytest.approx(p.N_opt, rel=1e-12)
    # extrapolating 1000x past the largest run warns
    big = 1000 * max(df.flops)
    assert any("extrapolation" in w for w in P.plan_budget(path, big, shape=False).warnings)


def test_other_convention_without_configs_uses_runs_k(tmp_path):
    """C counted another way (here 8 N D) and no model configs: C = k N D with k from the runs."""
    runs = [
        dict(run_id=str(i), params=1e8 * 2**i, tokens=2e9 * 2**i, flops=8 * 1e8 * 2e9 * 4**i, model=None)
        for i in range(4)
    ]
    path = write_fit(
        tmp_path, {"g": {"point": EPOCH, "samples": pinned_samples(EPOCH), "runs": runs}}, convention="flops"
    )
    p = P.plan_budget(path, 1e21)["g"]
    N, D, _ = closed_form(EPOCH, 1e21 * 6 / 8)  # C/8 = (C * 6/8)/6
    assert p.N_opt == pytest.approx(N, rel=1e-10) and 8 * p.N_opt * p.D_opt == pytest.approx(1e21, rel=1e-10)
    assert any("median C/(N D)" in n for n in p.notes)


def test_target_loss_along_real_flops_family(tmp_path):
    path, _ = structured_fit(tmp_path)
    r = P.plan_budget(path, target_loss=2.4)
    for p in r.plans:
        C = p.target["C"]
        assert P.plan_budget(path, C, shape=False)[p.variant].L_opt == pytest.approx(2.4, abs=1e-6)
        lo, hi = p.target["C_int"]
        assert lo < C < hi


def test_gpu_hours_cpu_measured_runs_scaled_to_gpu(tmp_path):
    """Runs timed on a CPU: dense gets the assumed MFU on the GPU, others keep their speed ratio to dense."""
    path, cfgs = structured_fit(tmp_path, device="cpu")
    r = P.plan_budget(path, 3e16, gpu="a100")
    rate_d = 2e5 * F.train_flops(cfgs["dense"][-1], 1.0)
    rate_l = 3e5 * F.train_flops(cfgs["lowrank-63"][-1], 1.0)
    assert r["dense"].gpu_hours is None and r["dense"].throughput is None  # no MFU is assumed
    r = P.plan_budget(path, 3e16, gpu="a100", mfu=0.4)  # a stated MFU for dense, relative speeds measured
    assert r["dense"].throughput == pytest.approx(0.4 * 312e12)
    assert r["lowrank-63"].throughput == pytest.approx(0.4 * 312e12 * rate_l / rate_d)
    # --gpu cpu: the measured rates as they are
    r = P.plan_budget(path, 3e16, gpu="cpu")
    assert r["dense"].gpu_hours == pytest.approx(3e16 / rate_d / 3600)


@pytest.mark.parametrize("name", ["gqa", "lpa", "lowrank+sg", "wide", "swiglu"])
def test_shape_rule_keeps_each_family(name):
    """The family of a grid's runs at a new width: heads of the same size, kv-head ratio, LPA rank
    ratio, guide, d_ff ratio, the FFN fraction; depth from the runs' aspect rule."""
    from scalelab.config import GuideConfig
    from scalelab.presets import structure_for_fraction as sff

    make = {
        "gqa": lambda d, L: ModelConfig(d_model=d, n_layers=L, n_heads=d // 32, n_kv_heads=d // 64, attn="gqa"),
        "lpa": lambda d, L: ModelConfig(d_model=d, n_layers=L, n_heads=d // 32, attn="lpa", attn_rank=d // 4),
        "lowrank+sg": lambda d, L: ModelConfig(
            d_model=d,
            n_layers=L,
            n_heads=d // 32,
            ffn=sff("lowrank", d, 4 * d, 0.32),
            guide=GuideConfig(reduce_flop=True),
        ),
        "wide": lambda d, L: ModelConfig(
            d_model=d,
            n_layers=L,
            n_heads=d // 64,
            d_attn=d // 2,
            n_kv_heads=d // 128,
            attn="gqa",
            d_ff=d * 19 // 4,
            ffn=sff("lowrank", d, d * 19 // 4, 0.32),
        ),
        "swiglu": lambda d, L: ModelConfig(
            d_model=d, n_layers=L, n_heads=d // 32, d_ff=d * 8 // 3, activation="swiglu"
        ),
    }[name]
    runs = [make(d, L).validate() for d, L in ((128, 2), (256, 4), (512, 8))]  # n_layers = d / 64
    rule = P.ShapeRule.from_runs(runs)
    t = runs[-1]
    for d in (1024, 2048):
        c = rule.make(d)
        assert c.d_model == d and c.n_layers == d // 64
        assert c.head_dim == t.head_dim and c.n_heads // c.kv_heads == t.n_heads // t.kv_heads
        assert c.attn == t.attn and c.activation == t.activation and c.guide == t.guide
        assert c.attn_width / d == pytest.approx(t.attn_width / t.d_model)
        assert c.ffn_width / d == pytest.approx(t.ffn_width / t.d_model, rel=0.02) and c.ffn_width % 32 == 0
        if t.attn == "lpa":
            assert c.attn_rank / d == pytest.approx(t.attn_rank / t.d_model)
        if t.ffn.kind != "dense":
            assert c.ffn.kind == t.ffn.kind and P.ffn_fraction(c) == pytest.approx(0.32, abs=0.03)
        # the family's counts (affine in depth past 2 layers) match flops.py on the full config
        cand = P.Candidate(c, F.param_counts(c).params, F.train_flops(c, 1.0))
        from scalelab.plan.families import _candidate

        fast = _candidate(c, "params", "flops")
        assert (fast.N, fast.flops_per_token) == pytest.approx((cand.N, cand.flops_per_token), rel=1e-12)


def test_budget_too_small_for_the_smallest_buildable_model(tmp_path):
    """C inside the fitted range but below what the smallest shape of the family (d_model = --multiple)
    can use: one clear error, not a plan at the edge of the search."""
    path, _ = structured_fit(tmp_path)
    cmin = json.loads(path.read_text())["groups"]["dense"]["range"]["C"][0]
    assert P.plan_budget(path, 2 * cmin, variants=["dense"], multiple=32).plans  # fine with small widths allowed
    with pytest.raises(ScalelabError, match="smallest dense model"):
        P.plan_budget(path, 2 * cmin, variants=["dense"], multiple=1024)


def test_numeric_fallback_when_the_guess_is_far_off(monkeypatch):
    """A family whose FLOPs per param-token change steeply with N: the closed-form start is far from the
    optimum, the local bracket misses, and the full-range search must still find it (vs scipy)."""

    class Steep:
        log_n_bounds = (math.log(1e4), math.log(1e14))

        def log_flops_per_token(self, logN):  # F = 6 N (N / 1e6)^2: FLOPs per param grow fast with N
            return math.log(6.0) + logN + 2.0 * (logN - math.log(1e6))

    from scalelab.plan import optimum as O

    s = pinned_samples(EPOCH, n=20)
    p = {k: s[k].to_numpy() for k in EPOCH}
    C = 1e21
    calls = []
    orig = O._minimise_logN

    def spy(f, lo, hi, n_grid, iters=64):
        x, e = orig(f, lo, hi, n_grid, iters)
        calls.append((n_grid, int(e.sum())))
        return x, e

    monkeypatch.setattr(O, "_minimise_logN", spy)
    N, D, L, edge = P.planner.optimum(p, Steep(), C)
    assert calls == [(41, 20), (400, 0)]  # every local bracket missed; the full search found them all
    for i in range(3):
        f = lambda x: (
            p["E"][i]
            + p["A"][i] * math.exp(-p["alpha"][i] * x)
            + p["B"][i] * (C / math.exp(Steep().log_flops_per_token(x))) ** -p["beta"][i]
        )
        x = minimize_scalar(f, bounds=Steep.log_n_bounds, method="bounded", options={"xatol": 1e-10}).x
        assert N[i] == pytest.approx(math.exp(x), rel=1e-4)
    assert not edge.any()


def test_narrow_constant_depth_grid_keeps_its_depth_and_width_step(tmp_path):
    """A CPU-demo-like grid (d 32..64, 2 layers everywhere): with no --multiple the widths step by the
    runs' common divisor (8), not 64, and the depth stays the grid's 2 layers."""
    cfgs = [
        ModelConfig(d_model=d, n_layers=2, n_heads=2, vocab_size=256, seq_len=128).validate()
        for d in (32, 40, 48, 56, 64)
    ]
    runs = runs_for(cfgs)
    rng = {
        "N": [runs[0]["params"], runs[-1]["params"]],
        "D": [runs[0]["tokens"], runs[-1]["tokens"]],
        "C": [runs[0]["flops"], runs[-1]["flops"]],
    }
    path = write_fit(
        tmp_path,
        {"dense": {"point": SMALL, "samples": pinned_samples(SMALL, C0=1e12, scale=0.3), "runs": runs, "range": rng}},
        convention="flops",
        name="demo-like",
    )
    C = 30 * rng["C"][1]
    cfg = P.plan_budget(path, C)["dense"].shape.config
    assert cfg.n_layers == 2
    assert cfg.d_model % 8 == 0
    assert P.Planner(path).rules["dense"].multiple == 8
    assert P.Planner(path, multiple=64).rules["dense"].multiple == 64
    # a budget far below anything buildable is a gap in the sweep, not an exception
    df = P.sweep(path, 1e3, C, 4)
    assert len(df) == 4 and df["N_opt"].isna().iloc[0] and bool(df["extrapolated"].iloc[0])
    assert df["N_opt"].notna().iloc[-1]


def test_an_interval_that_excludes_its_plan_is_withheld_with_the_reason(tmp_path):
    # samples of a law whose alpha sits well below the point's: every sample's N_opt lies on one side of the
    # plug-in optimum, so the percentile range does not contain it and is not shown as an interval
    s = pinned_samples(EPOCH)
    s["alpha"] = s["alpha"] - 0.05
    path = write_fit(tmp_path, {"chinchilla": {"point": EPOCH, "samples": s, "residual_sd": 0.01}})
    p = P.plan_budget(path, 1e22)["chinchilla"]
    N, _, _ = closed_form({k: s[k].to_numpy() for k in EPOCH}, 1e22)
    assert not np.percentile(N, 2.5) <= p.N_opt <= np.percentile(N, 97.5)  # the premise
    assert all(math.isnan(x) for x in p.N_int)
    assert any(n.startswith("no 95% interval for N_opt") and "lies outside" in n for n in p.notes)
    # the honest fit keeps its intervals
    q = P.plan_budget(
        write_fit(tmp_path, {"chinchilla": {"point": EPOCH, "samples": pinned_samples(EPOCH)}}, name="ok"), 1e22
    )
    assert q["chinchilla"].N_int[0] <= q["chinchilla"].N_opt <= q["chinchilla"].N_int[1]
