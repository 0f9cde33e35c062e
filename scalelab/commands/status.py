"""`scalelab status`."""
import typer

from scalelab.commands._common import not_yet


def status() -> None:
    """Not yet available."""
    not_yet("status")
