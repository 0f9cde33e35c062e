import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="session")
def chinchilla(chinchilla_path):
    """The replication's 240 points: drop rows with loss >= the 5th-largest loss; D = C / (6 N)."""
    df = pd.read_csv(chinchilla_path)
    thr = np.sort(df["loss"].to_numpy())[-5]
    df = df[df["loss"] < thr].reset_index(drop=True)
    assert len(df) == 240
    return df


def synthetic(
    E=1.8,
    A=400.0,
    B=2000.0,
    alpha=0.34,
    beta=0.37,
    sizes=(2e7, 5e7, 1e8, 2e8, 5e8, 1e9),
    tpp=(5, 10, 20, 40, 80),
    sd=0.01,
    seed=0,
    group="g",
):
    """One run per (N, D) from L = E + A/N^alpha + B/D^beta with log-normal noise of sd `sd`."""
    rng = np.random.default_rng(seed)
    rows = []
    for N in sizes:
        for t in tpp:
            D = N * t
            L = (E + A / N**alpha + B / D**beta) * np.exp(sd * rng.standard_normal())
            rows.append({"N": N, "D": D, "loss": L, "run": f"{group}-{N:.0e}-{t}", "group": group})
    return pd.DataFrame(rows)
