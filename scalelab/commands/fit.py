"""`scalelab fit`."""
import typer

from scalelab.commands._common import not_yet


def fit() -> None:
    """Not yet available."""
    not_yet("fit")
