"""Sweeps in a fit (fit/hyper.py): the envelope keeps the best point per (group, N, D, seed), and the lr law
recovers a known lr_opt(N) = c N^k from a synthetic sweep, within its bootstrap interval."""

import math

import numpy as np
import pandas as pd
import pytest

from scalelab.fit import FitSpec, fit_laws, hyper, load_fit

C_TRUE, K_TRUE = 2.0, -0.3
SIZES = (1e5, 3e5, 1e6, 3e6, 1e7)
LRS = tuple(0.004 * 2**i for i in range(7))  # 0.004 .. 0.256: brackets lr_opt at every size


def lr_opt(N):
    return C_TRUE * N**K_TRUE


def sweep_frame(groups=("dense",), seeds=(0, 1), sd=0.002, seed=0, curvature=0.05, marker="lr", k=K_TRUE):
    """A WSD-like sweep: one run per (group, N, lr, seed) with two budgets (10 and 20 tokens/param);
    loss = Chinchilla law + curvature (ln lr - ln lr_opt(N))^2 + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for gi, g in enumerate(groups):
        for N in SIZES:
            opt = C_TRUE * N**k
            for lr in LRS:
                for s in seeds:
                    run = f"{g}-{N:.0e}-{lr:g}-{s}"
                    for tpp in (10, 20):
                        D = N * tpp
                        L = 1.8 + 0.05 * gi + 40 / N**0.3 + 60 / D**0.3 + curvature * math.log(lr / opt) ** 2
                        rows.append(
                            dict(
                                variant=g,
                                params=N,
                                tokens=D,
                                flops=6 * N * D,
                                val_loss=L + sd * rng.standard_normal(),
                                run_id=run,
                                seed=s,
                                peak_lr=lr,
                                sweep=marker,
                            )
                        )
    return pd.DataFrame(rows)


SPEC = FitSpec(
    n_col="params", d_col="tokens", loss_col="val_loss", c_col="flops", run_col="run_id", by=("variant",), bootstrap=300
)


def test_the_envelope_keeps_exactly_the_best_point_per_cell():
    df = sweep_frame(groups=("dense", "lowrank-32"), sd=0.01)
    sw = hyper.swept(df, SPEC)
    assert list(sw) == ["lr"] and sw["lr"] == list(LRS)
    kept, rec = hyper.envelope(df, SPEC, sw)
    best = {}  # brute force: the lowest loss of each (variant, N, D, seed)
    for _, r in df.iterrows():
        key = (r["variant"], r["params"], r["tokens"], r["seed"])
        if key not in best or r["val_loss"] < best[key]:
            best[key] = r["val_loss"]
    got = {(r["variant"], r["params"], r["tokens"], r["seed"]): r["val_loss"] for _, r in kept.iterrows()}
    assert got == best
    n_cells = 2 * len(SIZES) * 2 * 2
    assert rec["text"] == f"envelope over a {len(LRS)}-value lr sweep: {n_cells} of {len(df)} points kept"


def test_the_sweep_is_found_without_the_marker_and_seeds_alone_are_no_sweep():
    df = sweep_frame().drop(columns=["sweep"])
    assert list(hyper.swept(df, SPEC)) == ["lr"]
    one_lr = df[df["peak_lr"] == LRS[3]]  # several seeds per cell, one lr: no sweep, no envelope
    assert hyper.swept(one_lr, SPEC) == {}
    fit = fit_laws(one_lr, SPEC.replace(bootstrap=0))
    assert "sweep" not in fit.meta and fit["dense"].n_points == len(one_lr)
    marked = sweep_frame()  # a one-lr subset of a marked sweep's runs is no sweep either
    assert hyper.swept(marked[marked["peak_lr"] == LRS[3]], SPEC) == {}


def test_lr_optimum_parabola_best_and_edge():
    lrs = np.array([1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2])
    x0 = math.log(3e-3)
    L = 2 + 0.1 * (np.log(lrs) - x0) ** 2
    opt, method, edge = hyper.lr_optimum(lrs, L)
    assert method == "parabola" and not edge and opt == pytest.approx(3e-3, rel=1e-9)
    L2 = np.array([2.0, 1.95, 1.9, 2.5, 1.0])  # lowest at the top end: an edge optimum
    opt2, _, edge2 = hyper.lr_optimum(lrs, L2)
    assert edge2 and opt2 == pytest.approx(1.6e-2)
    concave = np.array([1.0, 1.5, 1.6])  # lowest at the end, the three points concave: the best value
    o3, m3, e3 = hyper.lr_optimum(lrs[:3], concave)
    assert (m3, e3) == ("best", True) and o3 == pytest.approx(lrs[0])
    steep = np.array([1.0, 1.1, 1.3])  # convex, vertex below the sweep: clipped to its end, flagged
    o4, m4, e4 = hyper.lr_optimum(lrs[:3], steep)
    assert (m4, e4) == ("parabola", True) and o4 == pytest.approx(lrs[0])


def test_the_lr_law_recovers_a_known_exponent_within_its_interval():
    # four seeds per (size, lr): the runs resampled within a size then carry the noise of each optimum (with
    # one or two, intervals are too narrow: 8 of 10 synthetic sets covered k with four seeds, 3 of 6 with two)
    fit = fit_laws(sweep_frame(seeds=(0, 1, 2, 3)), SPEC)
    law = fit["dense"].extra["hyper"]["lr"]
    lo, hi = law["conf_int"]["exp"]
    assert lo <= K_TRUE <= hi and abs(law["exp"] - K_TRUE) < 0.02
    clo, chi = law["conf_int"]["coef"]
    assert clo <= C_TRUE <= chi
    for p in law["per_size"]:  # each size's optimum near the truth (the sweep is a factor of 2 apart)
        assert abs(math.log(p["lr_opt"] / lr_opt(p["N"]))) < 0.15 and p["method"] == "parabola"
    pred = hyper.predict_lr(law, 2e6, fit["dense"].sample_arrays(hyper.HYPER_SAMPLE_COLUMNS), 0.95)
    assert pred["lo"] <= lr_opt(2e6) <= pred["hi"] and not pred["extrapolated"]
    assert hyper.predict_lr(law, 1e9)["extrapolated"]


def test_the_law_tells_sp_like_drift_from_mup_like_transfer():
    fit = fit_laws(
        pd.concat([sweep_frame(groups=("sp",)), sweep_frame(groups=("mup",), k=0.0)]), SPEC.replace(bootstrap=200)
    )
    sp, mup = (fit[g].extra["hyper"]["lr"] for g in ("sp", "mup"))
    assert sp["conf_int"]["exp"][1] < 0 and mup["conf_int"]["exp"][0] <= 0 <= mup["conf_int"]["exp"][1]


def test_fit_file_records_the_sweep_the_law_and_its_samples(tmp_path):
    df = sweep_frame(groups=("dense", "lowrank-32"))
    fit = fit_laws(df, SPEC)
    assert fit.meta["sweep"]["envelope"] and fit.meta["sweep"]["swept"] == ["lr"]
    assert fit["dense"].n_points == len(SIZES) * 2 * 2  # one point per (N, D, seed)
    fit.to_json(tmp_path / "f.json")
    back = load_fit(tmp_path / "f.json")
    law = back["lowrank-32"].extra["hyper"]["lr"]
    s = back["lowrank-32"].sample_arrays(hyper.HYPER_SAMPLE_COLUMNS)
    assert len(s["lr_exp"]) == 300 and law["conf_int"]["exp"][0] <= np.median(s["lr_exp"]) <= law["conf_int"]["exp"][1]
    every = fit_laws(df, SPEC.replace(envelope=False, bootstrap=0))
    assert every["dense"].n_points == len(df) // 2 and not every.meta["sweep"]["envelope"]
    assert "hyper" in every["dense"].extra  # the law is fitted either way


def test_fit_command_says_what_it_fitted_and_no_envelope_fits_every_point(tmp_path):
    from typer.testing import CliRunner

    from scalelab.cli import app

    df = sweep_frame(groups=("dense",), seeds=(0,)).drop(columns=["sweep"])
    df = df.rename(columns={"params": "N", "tokens": "D", "val_loss": "loss", "run_id": "run", "peak_lr": "lr"})
    csv = tmp_path / "sweep.csv"
    df.drop(columns=["flops"]).to_csv(csv, index=False)
    runner = CliRunner()
    r = runner.invoke(
        app, ["fit", str(csv), "--run-col", "run", "--bootstrap", "50", "--out", str(tmp_path / "a.json")]
    )
    assert r.exit_code == 0, r.output
    n_cells = len(SIZES) * 2
    assert f"envelope over a {len(LRS)}-value lr sweep: {n_cells} of {len(df)} points kept" in r.output
    assert "lr_opt = c N^k" in r.output
    assert load_fit(tmp_path / "a.json")["all"].n_points == n_cells
    r = runner.invoke(
        app,
        ["fit", str(csv), "--run-col", "run", "--bootstrap", "0", "--no-envelope", "--out", str(tmp_path / "b.json")],
    )
    assert r.exit_code == 0, r.output
    assert "points; --no-envelope)" in r.output and load_fit(tmp_path / "b.json")["all"].n_points == len(df)
