"""How numbers are written in tables, reports and messages: one function per format. A leaf, no imports
beyond the standard library.

    sig(v, 4)         significant digits: 0.001235, 1.235e+09 ('{:.4g}')
    finite(v, 3)      significant digits, '-' (or `missing`) for None, NaN and inf
    cell(v)           a table cell: floats to 4 significant digits, None empty, anything else as str()
    num(v)            fit reports: 4 decimals in [1e-3, 1e4), else 4 significant digits; 'nan' when missing
    flops(c)          a compute budget: 2 significant digits ('1e+21'); 'inf'
    multiplier(m)     a compute multiplier: '1.43x'; 'never' when infinite (the other never gets there)
    si(v, 3)          with a unit suffix T, B, M, K: 1.23B; '-' when missing, 'inf' when +inf
    count(v)          a compact count with T, B, M, k: 1.23M; '512' below a thousand
"""

from __future__ import annotations

import math
from typing import Any, Optional


def _missing(v: Any) -> bool:
    return v is None or v != v


def sig(v: float, digits: int = 4, missing: Optional[str] = None) -> str:
    """`digits` significant digits; `missing` (when given) for None and NaN."""
    if missing is not None and _missing(v):
        return missing
    return f"{float(v):.{digits}g}"


def finite(v: Optional[float], digits: int = 3, missing: str = "-") -> str:
    """`digits` significant digits of a finite number, `missing` for None, NaN and +-inf."""
    return f"{v:.{digits}g}" if v is not None and math.isfinite(v) else missing


def cell(v: Any) -> str:
    """A table cell: a float to 4 significant digits, None empty, anything else as written by str()."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def num(v: Any) -> str:
    """A fitted parameter: 4 decimals for magnitudes in [1e-3, 1e4) and 0, else 4 significant digits."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "nan"
    v = float(v)
    return f"{v:.4g}" if abs(v) >= 1e4 or abs(v) < 1e-3 and v != 0 else f"{v:.4f}"


def flops(c: float) -> str:
    """A compute budget in FLOPs, 2 significant digits."""
    return f"{c:.2g}" if math.isfinite(c) else "inf"


def multiplier(m: float) -> str:
    """A compute multiplier ('1.43x'); infinite: the variant never reaches the other's loss."""
    return "never" if not math.isfinite(m) else f"{m:.3g}x"


def si(v: Optional[float], digits: int = 3) -> str:
    """1.23e9 -> '1.23B' (suffixes T, B, M, K); None and NaN -> '-', +inf -> 'inf'."""
    if v is None or not math.isfinite(v):
        return "inf" if v is not None and v == math.inf else "-"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.{digits}g}{unit}"
    return f"{v:.{digits}g}"


def count(v: float) -> str:
    """1234567 -> '1.23M' (suffixes T, B, M, k); a whole number below a thousand."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.0f}"
