"""`scalelab inspect`."""
import typer

from scalelab.commands._common import not_yet


def inspect() -> None:
    """Not yet available."""
    not_yet("inspect")
