"""`scalelab plot`."""
import typer

from scalelab.commands._common import not_yet


def plot() -> None:
    """Not yet available."""
    not_yet("plot")
