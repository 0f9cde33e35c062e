"""Each number format of scalelab.numfmt, at the edges where the written form changes."""

import pytest

from scalelab import numfmt

NAN, INF = float("nan"), float("inf")


def test_significant_digits():
    assert numfmt.sig(0.0012346) == "0.001235" and numfmt.sig(1234567.0) == "1.235e+06"
    assert numfmt.sig(1234567, 3) == "1.23e+06" and numfmt.sig(2) == "2"
    assert numfmt.sig(None, 3, missing="nan") == "nan" and numfmt.sig(NAN, 3, missing="nan") == "nan"
    assert numfmt.sig(INF, 3, missing="nan") == "inf"  # infinite is a value, not a missing one
    with pytest.raises(TypeError):
        numfmt.sig(None)  # no `missing`: a missing number is a bug, not a blank


def test_finite_only():
    assert numfmt.finite(0.012345) == "0.0123" and numfmt.finite(5e-7, 2) == "5e-07"
    assert [numfmt.finite(v) for v in (None, NAN, INF, -INF)] == ["-"] * 4


def test_table_cells():
    assert [numfmt.cell(v) for v in (1.23456, 3, None, "lowrank-32", True)] == ["1.235", "3", "", "lowrank-32", "True"]


@pytest.mark.parametrize(
    "v, text",
    [
        (0.0, "0.0000"),
        (0.001, "0.0010"),
        (0.000999, "0.000999"),
        (1.23456, "1.2346"),
        (9999.5, "9999.5000"),
        (10000.0, "1e+04"),
        (-12345.0, "-1.234e+04"),
        (None, "nan"),
        (NAN, "nan"),
        (INF, "nan"),
        (3, "3.0000"),
    ],
)
def test_fit_numbers(v, text):
    assert numfmt.num(v) == text


def test_flops_and_multipliers():
    assert numfmt.flops(1.26e21) == "1.3e+21" and numfmt.flops(INF) == "inf" and numfmt.flops(-INF) == "inf"
    assert numfmt.multiplier(1.4321) == "1.43x" and numfmt.multiplier(INF) == "never"
    assert numfmt.multiplier(NAN) == "never"


@pytest.mark.parametrize(
    "v, text",
    [
        (1.234e9, "1.23B"),
        (999.4, "999"),
        (1000.0, "1K"),
        (2.5e12, "2.5T"),
        (-3.2e6, "-3.2M"),
        (None, "-"),
        (NAN, "-"),
        (INF, "inf"),
        (-INF, "-"),
    ],
)
def test_si_suffixes(v, text):
    assert numfmt.si(v) == text


def test_si_digits_and_counts():
    assert numfmt.si(1.23456e9, 5) == "1.2346B"
    assert numfmt.count(1234567) == "1.23M" and numfmt.count(1500) == "1.5k" and numfmt.count(512.4) == "512"
    assert numfmt.count(3e12) == "3T"
