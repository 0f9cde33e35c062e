"""The type check, run with the suite (so in CI): mypy over every package of scalelab (pyproject.toml [tool.mypy]),
so that the typed fit records, the configs they are built from and the commands that read them stay consistent."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None,
    reason="mypy is not installed (it is in the dev extra: pip install -e '.[dev]')",
)
def test_mypy():
    # the files and settings come from pyproject.toml; its cache (.mypy_cache/, git-ignored) makes reruns fast
    r = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-8000:] + r.stderr
    assert "Success" in r.stdout
