"""One colour, one marker and one line style per variant (or fit group), the same in every figure of one
`scalelab plot` call: Okabe-Ito (colour-blind safe) then Paul Tol's muted set, 16 distinct colours, dense
always black, the others in sorted-name order. Markers and line styles differ per variant as well, so that
a greyscale print still tells up to 16 groups apart. Dashed is kept for extrapolation (the law beyond the
fitted data), so no group is drawn dashed.

Plain names and strings only (no matplotlib): the data-shaping layer (scalelab.plot.shape) orders and
names groups with these.
"""

from __future__ import annotations

from typing import Iterable, Sequence, TypeVar

T = TypeVar("T")  # a colour, a marker or a line style

# Okabe & Ito (2008) "Color Universal Design". Dense is the reference: always black.
DENSE_COLOR = "#000000"
OKABE_ITO = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#f0e442"]
# Tol (2021) "muted", for groups 8 to 16; its pale grey is left out (it reads as a missing value).
TOL_MUTED = ["#332288", "#882255", "#117733", "#999933", "#aa4499", "#88ccee", "#44aa99", "#cc6677", "#ddcc77"]
PALETTE = OKABE_ITO + TOL_MUTED  # 16 distinct colours besides dense's black
DENSE_MARKER = "o"
MARKERS = ["s", "^", "D", "v", "P", "X", "<", ">", "*", "h", "p", "H", "d"]  # 13: pairs with 4 styles repeat at 52
DENSE_LINESTYLE = "-"
# Group line styles: solid, dotted, dash-dot, dash-dot-dot. Plain dashes ("--") mean extrapolation.
LINESTYLES = ["-", ":", "-.", (0, (4, 1.2, 1, 1.2, 1, 1.2))]
EXTRAPOLATION = "--"


def literal(name) -> str:
    """A name read from data (variant, group, run) as figure text: printed as written, never parsed as
    mathtext. Matplotlib parses text with an even number of unescaped `$` as math; escaped, none is math,
    and outside math `\\frac`, `_` and `^` are plain characters."""
    return str(name).replace("$", r"\$")


def sort_variants(variants: Iterable[str]) -> list[str]:
    """dense first, then the others by name: the order of every legend and forest plot."""
    vs = sorted(set(variants))
    return (["dense"] if "dense" in vs else []) + [v for v in vs if v != "dense"]


def _by_variant(variants: Iterable[str], cycle: Sequence[T], dense_value: T) -> dict[str, T]:
    """Dense gets its own fixed value; the others take `cycle` in sort_variants order."""
    variants = list(variants)
    others = [v for v in sort_variants(variants) if v != "dense"]
    out = {v: cycle[i % len(cycle)] for i, v in enumerate(others)}
    if "dense" in variants:
        out["dense"] = dense_value
    return out


def variant_colors(variants: Iterable[str]) -> dict[str, str]:
    """Variant -> hex colour. Deterministic: dense black, others Okabe-Ito then Tol muted by sorted name
    (16 distinct colours; a 17th group repeats the first)."""
    return _by_variant(variants, PALETTE, DENSE_COLOR)


def variant_markers(variants: Iterable[str]) -> dict[str, str]:
    """Variant -> matplotlib marker, same ordering rule as the colours."""
    return _by_variant(variants, MARKERS, DENSE_MARKER)


def variant_linestyles(variants: Iterable[str]) -> dict:
    """Variant -> matplotlib line style (never plain dashes: those mark extrapolation), same ordering rule.
    With 13 markers and 4 styles, (marker, style) pairs stay distinct for 52 groups."""
    return _by_variant(variants, LINESTYLES, DENSE_LINESTYLE)
