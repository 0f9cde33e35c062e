"""A small synthetic run store and fit file built from known law parameters, shared by the figure tests
(tests/plot/test_figures.py) and the CLI tests (tests/commands/test_plot.py).

They follow the documented formats (docs/DESIGN.md "Run store", docs/interfaces.md "Fit file"), not the
store or fit modules, so that the tests hold the plotting code to the contract.
"""

from __future__ import annotations

import json
import os
import zlib

import numpy as np
import pandas as pd

ALL = [
    "fig1_loss_vs_flops",
    "fig2_loss_vs_params",
    "fig3_compute_optimal",
    "fig4_exponents",
    "fig5_fit_diagnostics",
    "fig6_throughput",
]
# Figures that need inputs these synthetic runs and fits do not have (a sweep, a law across shares, a curve
# law, a repetition law): skipped with a note here, drawn by their own tests.
NEEDS_MORE = ["fig7_lr_transfer", "fig8_share_law", "fig9_curve_law", "fig10_loss_vs_epochs"]

# Known laws the synthetic runs are drawn from (nats/token; N = params, D = tokens).
LAWS = {
    "dense": dict(E=1.2, A=40.0, B=25.0, alpha=0.32, beta=0.26),
    "lowrank-25": dict(E=1.2, A=30.0, B=25.0, alpha=0.28, beta=0.27),
    "blockshuffle-50": dict(E=1.2, A=35.0, B=25.0, alpha=0.30, beta=0.25),
}
WIDTHS = (32, 48, 64, 96)
RATIOS = (10, 20, 40)
K_FLOPS = 7.0  # synthetic "seeds' convention": C = 7 N D


def law(p, N, D):
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


def params_of(d, layers=2, vocab=256):
    nonembed = 12 * layers * d * d
    return nonembed + vocab * d, nonembed


def run_rows(variant, d, ratio, seed=0, n_eval=8):
    """One run's rows (every DESIGN.md column), its val curve following the variant's law."""
    p = LAWS[variant]
    params, nonembed = params_of(d)
    if variant != "dense":
        params, nonembed = int(params * 0.8), int(nonembed * 0.75)
    D_final = ratio * params
    rid = f"{variant}-{d}-{ratio}"
    rng = np.random.default_rng(zlib.crc32(rid.encode()))
    tokens = np.unique(np.geomspace(D_final / 40, D_final, n_eval).astype(np.int64))
    val = law(p, params, tokens) * (1 + 0.004 * rng.standard_normal(len(tokens)))
    n = len(tokens)
    tps = 84000.0 * (32 / d) ** 1.6 * (1.15 if variant != "dense" else 1.0)
    return pd.DataFrame(
        {
            "run_id": rid,
            "grid": "synthetic",
            "variant": variant,
            "structure": variant.split("-")[0],
            "d_model": d,
            "n_layers": 2,
            "n_heads": 4,
            "n_kv_heads": 4,
            "d_ff": 4 * d,
            "rank": pd.array([None if variant == "dense" else d // 4] * n, dtype="Int64"),
            "blocks": pd.array([None] * n, dtype="Int64"),
            "params": params,
            "params_nonembed": nonembed,
            "seq_len": 128,
            "batch_tokens": 1024,
            "step": (tokens // 1024).astype(np.int64),
            "tokens": tokens,
            "flops": K_FLOPS * params * tokens.astype(float),
            "flops_6nd": 6.0 * nonembed * tokens.astype(float),
            "train_loss": val + 0.02,
            "val_loss": val,
            "lr": 3e-3,
            "final": np.arange(n) == n - 1,
            "wall_s": tokens / tps,
            "tokens_per_s": tps * (1 + 0.02 * rng.standard_normal(n)),
            "mfu": 0.3 * (d / 96) * np.ones(n),
            "status": "ok",
            "seed": seed,
            "corpus": "synthetic",
            "corpus_sha": "0" * 64,
            "tokenizer": "byte",
            "device": "cpu",
            "torch_version": "2.13.0",
            "scalelab_version": "0.1.0",
            "git_sha": "abc",
            "config": json.dumps({"model": {"d_model": d}}),
        }
    )


def write_runs(folder, variants=("dense", "lowrank-25"), widths=WIDTHS, ratios=RATIOS):
    os.makedirs(folder, exist_ok=True)
    paths = []
    for v in variants:
        for d in widths:
            for r in ratios:
                df = run_rows(v, d, r)
                path = os.path.join(folder, f"{df['run_id'][0]}.parquet")
                df.to_parquet(path, index=False)
                paths.append(path)
    return paths


def write_fit(
    folder, variants=("dense", "lowrank-25"), comparisons=True, hold_out_largest=True, n_samples=200, name="synth"
):
    """fits/NAME.json + NAME.samples.parquet from the known laws (interfaces.md 'Fit file')."""
    os.makedirs(folder, exist_ok=True)
    groups, samples = {}, []
    rng = np.random.default_rng(0)
    for v in variants:
        p = LAWS[v]
        draws = {k: p[k] * np.exp(0.015 * rng.standard_normal(n_samples)) for k in p}
        runs = []
        for d in WIDTHS:
            for r in RATIOS:
                f = run_rows(v, d, r).iloc[-1]
                keys = ("run_id", "params", "params_nonembed", "tokens", "flops", "tokens_per_s", "mfu", "device")
                runs.append(
                    {k: (f[k].item() if hasattr(f[k], "item") else f[k]) for k in keys}
                    | {"loss": float(f["val_loss"]), "model": None}
                )
        N = [x["params"] for x in runs]
        Dt = [x["tokens"] for x in runs]
        C = [x["flops"] for x in runs]
        a = p["beta"] / (p["alpha"] + p["beta"])
        da = draws["beta"] / (draws["alpha"] + draws["beta"])
        groups[v] = {
            "key": {"variant": v},
            "form": "chinchilla",
            "params": dict(p),
            "conf_int": {k: [float(np.quantile(x, 0.025)), float(np.quantile(x, 0.975))] for k, x in draws.items()},
            "derived": {"a": a, "b": 1 - a, "G": 1.0},
            "derived_conf_int": {"a": [float(np.quantile(da, 0.025)), float(np.quantile(da, 0.975))]},
            "residual_sd": 0.004,
            "n_points": len(runs),
            "n_runs": len(runs),
            "n_sizes": 3,
            "range": {"N": [min(N), max(N)], "D": [min(Dt), max(Dt)], "C": [min(C), max(C)]},
            "diagnostics": {},
            "warnings": [],
            "runs": runs,
        }
        if hold_out_largest:  # scalelab fit --holdout largest: a refit without the largest size
            groups[v]["holdout"] = {
                "rule": "largest N",
                "value": float(max(N)),
                "n_points": len(RATIOS),
                "mean_rel_error": 0.01,
                "params": {**p, "A": p["A"] * 1.05},
            }
        samples.append(
            pd.DataFrame({"group": v, "sample": np.arange(n_samples), **draws, "K": np.nan, "gamma": np.nan})
        )
    comps = []
    if comparisons and "dense" in variants:
        for v in variants:
            if v != "dense":
                # stated as dense - variant, to check that the figure orients it as variant - dense
                comps.append(
                    {
                        "a": "dense",
                        "b": v,
                        "verdict": "",
                        **{
                            f"d_{k}": [
                                LAWS["dense"][k] - LAWS[v][k],
                                LAWS["dense"][k] - LAWS[v][k] - 0.02,
                                LAWS["dense"][k] - LAWS[v][k] + 0.02,
                            ]
                            for k in ("alpha", "beta")
                        },
                        "d_a": [0.0, -0.03, 0.03],
                    }
                )
    fit = {
        "format": "scalelab-fit/1",
        "scalelab_version": "0.1.0",
        "created": "2026-01-01T00:00:00",
        "inputs": [],
        "flop_convention": "flops",
        "by": ["variant"],
        "approach": 3,
        "loss": {"kind": "huber", "delta": 1e-3},
        "bootstrap": {"n": n_samples, "seed": 0, "level": 0.95, "unit": "run"},
        "samples": f"{name}.samples.parquet",
        "groups": groups,
        "comparisons": comps,
        "columns": {"N": "params", "D": "tokens", "loss": "val_loss", "C": "flops", "run": "run_id"},
    }
    path = os.path.join(folder, f"{name}.json")
    with open(path, "w") as f:
        json.dump(fit, f)
    pd.concat(samples, ignore_index=True).to_parquet(os.path.join(folder, f"{name}.samples.parquet"), index=False)
    return path
