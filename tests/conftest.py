"""Shared fixtures. The reference data lives in ../shared beside the checkout (as in CI), or in shared/ inside it."""

import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]
_ROOTS = (_REPO.parent / "shared" / "data", _REPO / "shared" / "data")  # beside the checkout, or inside it


def find_shared(name: str) -> Path:
    """A file of ../shared/data (NAME relative to it). Skipped where ../shared is absent (a bare clone), but
    CI sets SCALELAB_REQUIRE_SHARED=1 so that the published-number tests can never be skipped there."""
    for root in _ROOTS:
        if (root / name).is_file():
            return root / name
    if os.environ.get("SCALELAB_REQUIRE_SHARED"):
        pytest.fail(f"../shared/data/{name} is missing and SCALELAB_REQUIRE_SHARED is set")
    pytest.skip(f"../shared/data/{name} not available")


@pytest.fixture(scope="session")
def shared_data():
    """find_shared, for tests and fixtures: shared_data("external/porian.csv") -> its path."""
    return find_shared


@pytest.fixture(scope="session")
def chinchilla_path() -> Path:
    """Epoch AI's reconstructed Chinchilla runs."""
    return find_shared("chinchilla_epoch.csv")
