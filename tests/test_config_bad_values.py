"""ModelConfig refuses widths and head counts no model has (0 or negative d_ff / d_attn, n_kv_heads that does not
divide n_heads) on construction, so every entry point (inspect, ingest, run) refuses them in one line instead of
dividing by zero or counting negative parameters."""

from __future__ import annotations

import pytest
from refusal import refused
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.config import ModelConfig
from scalelab.errors import ScalelabError

SMALL = dict(d_model=32, n_layers=2, n_heads=4, seq_len=32, vocab_size=256)


@pytest.mark.parametrize(
    "changes, needle",
    [
        (dict(d_ff=0), "d_ff must be positive, got 0"),
        (dict(d_ff=-5), "d_ff must be positive, got -5"),
        (dict(d_attn=0), "d_attn must be positive, got 0"),
        (dict(d_attn=-8), "d_attn must be positive, got -8"),
        (dict(attn="gqa", n_kv_heads=0), "n_kv_heads must be a positive divisor of n_heads=4, got 0"),
        (dict(n_kv_heads=-2), "n_kv_heads must be a positive divisor of n_heads=4, got -2"),
    ],
)
def test_a_width_or_head_count_below_one_is_refused(changes, needle):
    with pytest.raises(ScalelabError) as e:
        ModelConfig(**SMALL, **changes)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_the_positive_values_next_to_them_still_build():
    m = ModelConfig(**SMALL, d_ff=1, d_attn=8, attn="gqa", n_kv_heads=1)
    assert (m.ffn_width, m.attn_width, m.kv_heads) == (1, 8, 1)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--attn", "gqa", "--kv-heads", "0"], "n_kv_heads must be a positive divisor"),
        (["--d-ff", "0"], "d_ff must be positive"),
        (["--d-ff", "-5"], "d_ff must be positive"),
        (["--d-attn", "0"], "d_attn must be positive"),
    ],
)
def test_inspect_refuses_them_in_one_line(args, needle):
    r = CliRunner().invoke(app, ["inspect", *args])
    refused(r, needle)
    assert r.stdout == ""  # no table of numbers for a model that does not exist
