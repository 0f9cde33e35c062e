"""`scalelab run`."""
import typer

from scalelab.commands._common import not_yet


def run() -> None:
    """Not yet available."""
    not_yet("run")
