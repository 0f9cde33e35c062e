"""Shared fixtures. The reference data lives in ../shared beside the checkout (as in CI)."""

import os
from pathlib import Path

import pytest

_CANDIDATES = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chinchilla_epoch.csv",
    Path("/work/shared/data/chinchilla_epoch.csv"),
)


@pytest.fixture(scope="session")
def chinchilla_path() -> Path:
    """Epoch AI's reconstructed Chinchilla runs. Skipped where ../shared is absent (a bare clone), but
    CI sets SCALELAB_REQUIRE_SHARED=1 so that the published-number tests can never be skipped there."""
    for p in _CANDIDATES:
        if p.exists():
            return p
    if os.environ.get("SCALELAB_REQUIRE_SHARED"):
        pytest.fail("../shared/data/chinchilla_epoch.csv is missing and SCALELAB_REQUIRE_SHARED is set")
    pytest.skip("../shared/data/chinchilla_epoch.csv not available")
