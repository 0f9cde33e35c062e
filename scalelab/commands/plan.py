"""`scalelab plan`."""
import typer

from scalelab.commands._common import not_yet


def plan() -> None:
    """Not yet available."""
    not_yet("plan")
