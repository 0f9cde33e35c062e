"""Every number published beside the public data sets (../shared/data/external/published.json; what each is:
../shared/data/README.md) against scalelab's fit of the same points, through the public API (fit_laws, laws).

Each tolerance is the published precision where the value is printed rounded (half a unit in its last digit),
or says why it is wider. A number scalelab does not reproduce is an xfail(strict=True) naming the measured
gap and the reason, never a wider tolerance. Epoch AI's Chinchilla replication (Besiroglu et al. 2024) is
held in test_fit_against_references.py. Point fits only (no bootstrap): the whole file takes a few seconds.
"""

import json

import numpy as np
import pandas as pd
import pytest

from scalelab.fit import fit_laws, laws


def printed(value: float, published: float, decimals: int) -> bool:
    """`value` rounds to the published number printed with `decimals` decimals (half a unit of the last digit)."""
    return abs(value - published) <= 0.5 * 10.0**-decimals + 1e-12


@pytest.fixture(scope="module")
def pub(shared_data) -> dict:
    return json.loads(shared_data("external/published.json").read_text())


# ---- Gemstones (McLeish et al. 2025): approach 3, Huber on log loss, per frame ------------------------------
FRAMES = ("cool_end", "hot", "hot_350b", "lr_half")


@pytest.fixture(scope="module")
def gemstones(shared_data):
    df = pd.read_csv(shared_data("external/gemstones.csv"))
    opts = dict(n_col="N", d_col="D", loss_col="loss", run_col="run", by="group", form="chinchilla", bootstrap=0)
    return {d: fit_laws(df, delta=d, **opts) for d in (1e-3, 1e-4)}


@pytest.mark.parametrize("frame", FRAMES)
def test_gemstones_delta_1e3_is_the_published_optimum(gemstones, pub, frame):
    """At delta 1e-3 the published point is the optimum (README: a tighter optimiser reaches the same objective
    to 1e-10). Objective: ours at most the published one plus half its last printed digit (printed to 1e-10),
    and at most 1e-9 below it (the same optimum; measured 0.03-2.3e-10 below). Parameters: the published point
    is where scipy's L-BFGS-B stopped (default gtol 1e-5); along the objective's flat ridge that leaves the
    exponents free to about 1e-4 (measured 1e-5 to 1.1e-4), so exponents and a to 5e-4, E to 1e-3 (measured
    2e-4), A and B to 1% (measured 0.25%)."""
    p = pub["gemstones"][frame]["delta_1e-3"]
    g = gemstones[1e-3][frame]
    f = g.diagnostics["objective"]
    assert p["objective"] - 1e-9 <= f <= p["objective"] + 0.5e-10, (f, p["objective"])
    q = {**g.params, **g.derived}
    for k in ("alpha", "beta", "a"):
        assert abs(q[k] - p[k]) < 5e-4, (k, q[k], p[k])
    assert abs(q["E"] - p["E"]) < 1e-3, (q["E"], p["E"])
    for k in ("A", "B"):
        assert abs(q[k] / p[k] - 1) < 0.01, (k, q[k], p[k])


@pytest.mark.parametrize("frame", FRAMES)
def test_gemstones_delta_1e4_objective_at_most_published(gemstones, pub, frame):
    """At delta 1e-4 the published fits stopped short of the optimum (README), so the fair check is that ours
    reaches an objective at most the published one (plus half its last printed digit, 1e-10). Measured:
    0.56%, 0.047%, 0.0002% and 0.029% below for cool_end, hot, hot_350b, lr_half."""
    p = pub["gemstones"][frame]["delta_1e-4"]
    f = gemstones[1e-4][frame].diagnostics["objective"]
    assert f <= p["objective"] + 0.5e-10, (f, p["objective"])


# ---- Porian et al. 2024: approach 2 per configuration --------------------------------------------------------
SKEWED = {  # whole-slice a - published a, and near-min's, measured; README: their slices are skewed about the minima
    "rw_last_layer": (0.0731, -0.0157),
    "rw_warmup": (0.0570, -0.0105),
    "owt2_last_layer": (0.0545, -0.0051),
}
CONFIGS = (
    "rw_kaplan_repro", "rw_last_layer", "rw_warmup", "rw_cosine", "rw_tuned",
    "owt2_kaplan_repro", "owt2_last_layer", "owt2_warmup", "owt2_cosine", "owt2_tuned",
)  # fmt: skip


def _xfail_skewed(config):
    if config in SKEWED:
        whole, near = SKEWED[config]
        return pytest.param(
            config,
            marks=pytest.mark.xfail(
                strict=True,
                reason=f"whole-slice a is {whole:+.4f} from the published a: Porian et al. take Akima-interpolated "
                f"minima, and this long-cosine configuration's slices are skewed about them, which a parabola over "
                f"the whole slice reads as a larger N_opt; --slice-window near-min gives {near:+.4f} (tested below)",
            ),
        )
    return config


@pytest.fixture(scope="module")
def porian(shared_data):
    df = pd.read_csv(shared_data("external/porian.csv"))
    opts = dict(n_col="N", d_col="D", c_col="C", loss_col="loss", run_col="run", by="group", approach=2, bootstrap=0)
    return {rule: fit_laws(df, slice_window=rule, **opts) for rule in ("whole", "near-min")}


@pytest.mark.parametrize("config", [_xfail_skewed(c) for c in CONFIGS])
def test_porian_approach_2_exponents(porian, pub, config):
    """a and b = 1 - a within 0.03 of the authors' (the issue's bound for a parabola against their Akima minima:
    the method, not the print precision, limits agreement). Measured a - published (whole slice): rw
    +0.0299, +0.0731, +0.0570, -0.0085, +0.0168; owt2 -0.0208, +0.0545, +0.0081, -0.0195, -0.0071 (kaplan_repro,
    last_layer, warmup, cosine, tuned)."""
    p, g = pub["porian"][config], porian["whole"][config]
    assert abs(g.params["a"] - p["a"]) < 0.03, (g.params["a"], p["a"])
    assert abs(g.params["b"] - p["b"]) < 0.03, (g.params["b"], p["b"])


@pytest.mark.parametrize("config", sorted(SKEWED))
def test_porian_skewed_configurations_with_the_near_minimum_window(porian, pub, config):
    """The configurations the whole slice misses come out with --slice-window near-min, a window about each
    slice's minimum, which is closer to Porian et al.'s local (Akima) minima: a within the same 0.03."""
    p, g = pub["porian"][config], porian["near-min"][config]
    assert abs(g.params["a"] - p["a"]) < 0.03, (g.params["a"], p["a"])


RHO_OUT = {  # whole-slice rho* outside the published 95% range, measured (budget: scalelab vs published point)
    "rw_kaplan_repro": "2344 at 1.25e16 (published 1473, range up to 1536): a is 0.030 higher",
    "rw_last_layer": "583 at 1.25e16 and 8.2 at 2.56e19 (published 219 and 10.2): skewed slices, as for a",
    "rw_warmup": "94.5 at 1.25e16 (published 43.0, range up to 50.7): skewed slices, as for a",
    "rw_tuned": "22.1, 19.9, 17.9 (published 14.9, 15.2, 15.6, range 14.2-16.7): a is 0.017 higher and the "
    "parabola minima sit 15-50% lower in N than the Akima ones",
    "owt2_last_layer": "469 at 1.25e16 (published 222, range up to 262): skewed slices, as for a",
    "owt2_warmup": "60.5 at 1.25e16 (published 45.1, range up to 55.7)",
}


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=f"rho* {RHO_OUT[c]}")) if c in RHO_OUT else c
        for c in CONFIGS
    ],
)
def test_porian_tokens_per_parameter(porian, pub, config):
    """Optimal tokens per parameter rho* = D_opt / N_opt at each published budget inside the authors' 95%
    range over their budgets (rho_star_ci95_range): the precision they publish rho* with."""
    p, g = pub["porian"][config], porian["whole"][config]
    lo, hi = p["rho_star_ci95_range"]
    for c in p["rho_star_at"]:
        rho = float(laws.allocation(g.params, float(c))["tokens_per_param"])
        assert lo <= rho <= hi, (c, rho, lo, hi)


# ---- the Open-Athena compendium (Czech et al. 2026) on its own IsoFLOP points -------------------------------
@pytest.fixture(scope="module")
def iso(shared_data):
    return pd.read_csv(shared_data("external/isoflops.csv"))


def approach2(points):
    opts = dict(n_col="N", d_col="D", c_col="C", loss_col="loss", approach=2, bootstrap=0)
    return fit_laws(points, **opts)["all"]


def approach3(points):
    """The compendium's approach 3: least squares on log loss (scalelab --loss lsq) over all points."""
    return fit_laws(points, n_col="N", d_col="D", loss_col="loss", loss="lsq", form="chinchilla", bootstrap=0)["all"]


def wasted_pct(a2_params, a3_params, C):
    """Compute approach 2's allocation wastes at budget C against approach 3's law, as a share of C (the
    compendium's "DCL"): train approach 2's D_opt(C) tokens with N = C / (6 D), read that run's loss off the
    approach-3 law, and find the smaller budget at which the law's compute-optimal loss is the same."""
    D = float(laws.allocation(a2_params, C)["D_opt"])
    L = laws.predict("chinchilla", a3_params, N=C / (6 * D), D=D)
    return 100 * (C - float(laws.compute_for_loss("chinchilla", a3_params, L))) / C


@pytest.fixture(scope="module")
def llama3(iso):
    pts = iso[iso.group == "llama3"]
    return pts, approach2(pts), approach3(pts)


def test_llama3_approach_2(llama3, pub):
    """Printed (compute_allocation_errors.txt): a, b to 4 decimals, N to 393.3B, D to 16.1T at 3.8e25 FLOPs."""
    p = pub["isoflops"]["compendium_llama3"]
    pts, a2, _ = llama3
    assert len(pts) == 133 and pts.C.nunique() == 10 and not a2.warnings
    assert printed(a2.params["a"], p["approach2"]["a"], 4) and printed(a2.params["b"], p["approach2"]["b"], 4)
    opt = laws.allocation(a2.params, p["eval_flops"])
    assert printed(float(opt["N_opt"]) / 1e9, p["approach2"]["N_at_eval"] / 1e9, 1)
    assert printed(float(opt["D_opt"]) / 1e12, p["approach2"]["D_at_eval"] / 1e12, 1)


def test_llama3_approach_3(llama3, pub):
    """Printed: E, alpha, beta, a to 4 decimals, A and B to 1, N to 628.3B, D to 10.1T and L_opt to 6 decimals."""
    p = pub["isoflops"]["compendium_llama3"]
    a3 = llama3[2]
    q = {**a3.params, **a3.derived}
    for k, dec in (("E", 4), ("A", 1), ("B", 1), ("alpha", 4), ("beta", 4), ("a", 4)):
        assert printed(q[k], p["approach3"][k], dec), (k, q[k], p["approach3"][k])
    opt = laws.compute_optimal(a3.params, p["eval_flops"])
    assert printed(float(opt["N_opt"]) / 1e9, p["approach3"]["N_at_eval"] / 1e9, 1)
    assert printed(float(opt["D_opt"]) / 1e12, p["approach3"]["D_at_eval"] / 1e12, 1)
    assert printed(float(opt["L_opt"]), p["approach3"]["L_opt_at_eval"], 6)


@pytest.mark.xfail(
    strict=True,
    reason="VPNLS minimises squared error of the loss itself; scalelab fits log loss only (huber or lsq), whose "
    "optimum is E = 0.6021, alpha = 0.3068, beta = 0.3110 (the compendium's approach 3) against VPNLS's 0.6047, "
    "0.3100, 0.3136",
)
def test_llama3_vpnls(llama3, pub):
    p = pub["isoflops"]["compendium_llama3"]["vpnls"]
    a3 = llama3[2]
    for k, dec in (("E", 4), ("alpha", 4), ("beta", 4)):
        assert printed(a3.params[k], p[k], dec), (k, a3.params[k], p[k])


def test_llama3_wasted_compute(llama3, pub):
    """Approach 2's D_opt against approach 3's at 3.8e25 (printed 59.7%), the compute it wastes (2.48e24 FLOPs,
    6.5% in the text, 6.53% in the QC figure's table) and, with approach 2 on the 116 points the compendium's
    QC keeps (outlier == False, 8 budgets), 0.02%."""
    p = pub["isoflops"]["compendium_llama3"]
    pts, a2, a3 = llama3
    C = p["eval_flops"]
    d2 = float(laws.allocation(a2.params, C)["D_opt"])
    d3 = float(laws.compute_optimal(a3.params, C)["D_opt"])
    assert printed(100 * (d2 / d3 - 1), p["a2_over_a3_D_pct"], 1)
    pct = wasted_pct(a2.params, a3.params, C)
    assert printed(pct * C / 100 / 1e24, p["dcl_flops"] / 1e24, 2)
    assert printed(pct, p["dcl_pct"], 1) and printed(pct, p["qc"]["dcl_pct_raw"], 2)
    qc = pts[~pts.outlier.astype(bool)]
    assert len(qc) == p["qc"]["points_qc"] and qc.C.nunique() == p["qc"]["budgets_qc"]
    assert printed(wasted_pct(approach2(qc).params, a3.params, C), p["qc"]["dcl_pct_qc"], 2)


@pytest.fixture(scope="module")
def chinchilla_iso(iso):
    pts = iso[iso.group == "chinchilla_epoch"]
    return pts, approach2(pts), approach3(pts)


def test_chinchilla_approach_2_and_qc_wasted_compute(chinchilla_iso, pub):
    """Hoffmann et al. Table 2: approach 2 a = 0.49, b = 0.51 (printed to 2 decimals) on the compendium's
    Epoch digitisation of their IsoFLOP runs (measured 0.4920, 0.5080); the compendium's wasted compute at
    5.76e23 FLOPs with approach 2 on the 85 points its QC keeps: 12.5% (read off a figure's table to 2
    decimals; measured 12.502%)."""
    pts, a2, a3 = chinchilla_iso
    paper = pub["isoflops"]["chinchilla_paper"]["approach2"]
    assert printed(a2.params["a"], paper["a"], 2) and printed(a2.params["b"], paper["b"], 2)
    p = pub["isoflops"]["compendium_chinchilla_epoch"]
    assert len(pts) == p["points_raw"] and pts.C.nunique() == p["budgets_raw"]
    qc = pts[~pts.outlier.astype(bool)]
    assert len(qc) == p["points_qc"] and qc.C.nunique() == p["budgets_qc"]
    assert printed(wasted_pct(approach2(qc).params, a3.params, p["eval_flops"]), p["dcl_pct_qc"], 2)


def _classic_keep_all(pts):
    """The compendium's approach 2 written here with numpy: a parabola per budget over every point, no slice
    dropped; OLS of log N* and log D* on log C. Returns allocation parameters."""
    cs, ns, ds = [], [], []
    for c, s in pts.groupby("C"):
        for col, out in (("N", ns), ("D", ds)):
            q = np.polyfit(np.log(s[col]), s["loss"], 2)
            out.append(np.exp(-q[1] / (2 * q[0])))
        cs.append(c)
    (a, ia), (b, ib) = (np.polyfit(np.log(cs), np.log(v), 1) for v in (ns, ds))
    return {"a": a, "b": b, "kN": np.exp(ia), "kD": np.exp(ib)}


@pytest.mark.xfail(
    strict=True,
    reason="scalelab drops the 1e20-FLOPs slice, whose parabola's vertex lies outside the sizes it was fitted "
    "on (an extrapolated minimum, listed in the fit's warnings); the compendium keeps it: 35.83% against the "
    "published 37.86% (with the slice kept the same law gives 37.86%: tested below)",
)
def test_chinchilla_wasted_compute_all_points(chinchilla_iso, pub):
    p = pub["isoflops"]["compendium_chinchilla_epoch"]
    _, a2, a3 = chinchilla_iso
    assert printed(wasted_pct(a2.params, a3.params, p["eval_flops"]), p["dcl_pct_raw"], 2)


def test_chinchilla_wasted_compute_gap_is_the_dropped_slice(chinchilla_iso, pub):
    """The reason of the xfail above, checked: the one slice scalelab drops is the vertex-outside one, and with it
    kept (the compendium's rule, written here with numpy) scalelab's approach-3 law gives the published 37.86%."""
    p = pub["isoflops"]["compendium_chinchilla_epoch"]
    pts, a2, a3 = chinchilla_iso
    dropped = [s for s in a2.diagnostics["slices"] if not s["used"]]
    assert len(dropped) == 1 and dropped[0]["reason"] == "vertex outside the sizes fitted"
    assert dropped[0]["C"] == pytest.approx(1e20, rel=1e-9)
    assert printed(wasted_pct(_classic_keep_all(pts), a3.params, p["eval_flops"]), p["dcl_pct_raw"], 2)


# ---- the papers' own headline numbers (fitted on the original points, not the digitised ones) ----------------
@pytest.mark.xfail(
    strict=True,
    reason="digitised points: on the compendium's 133 Llama 3 points the token exponent is 0.5368, D = 16.10T "
    "and N = 393.3B at 3.8e25, against the paper's 0.53, 16.55T and 402B (fitted on the original runs)",
)
def test_llama3_paper_headline(llama3, pub):
    """Llama 3 sec. 3.2.1: D*(C) = 0.29 C^0.53 (2 decimals), 16.55T tokens and 402B parameters at 3.8e25."""
    p = pub["isoflops"]["llama3_paper"]
    a2 = llama3[1]
    assert printed(a2.params["b"], p["tokens_exponent"], 2)
    opt = laws.allocation(a2.params, p["extrapolation"]["C"])
    assert printed(float(opt["D_opt"]) / 1e12, p["extrapolation"]["D"] / 1e12, 2)
    assert printed(float(opt["N_opt"]) / 1e9, p["extrapolation"]["N"] / 1e9, 0)


@pytest.mark.xfail(
    strict=True,
    reason="Hoffmann et al.'s approach-3 law does not fit their own runs (Besiroglu et al. 2024); scalelab "
    "reproduces the replication instead (test_fit_against_references.py: E = 1.82, alpha = 0.348, beta = 0.366, "
    "a = 0.51 "
    "against the paper's 1.69, 0.34, 0.28, 0.46)",
)
def test_chinchilla_paper_approach_3(chinchilla_path, pub):
    p = pub["isoflops"]["chinchilla_paper"]["approach3"]
    df = pd.read_csv(chinchilla_path)
    g = fit_laws(
        df, n_col="Model Size", d_col=None, c_col="Training FLOP", loss_col="loss", drop_top_loss=5, bootstrap=0
    )["all"]
    q = {**g.params, **g.derived}
    for k, dec in (("E", 2), ("alpha", 2), ("beta", 2), ("a", 2)):
        assert printed(q[k], p[k], dec), (k, q[k], p[k])
