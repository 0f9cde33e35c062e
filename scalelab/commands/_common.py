"""Shared CLI plumbing: user errors become one line on stderr and exit code 2."""

from __future__ import annotations

import functools
import sys
from typing import Callable

import typer


def fail(message: str) -> None:
    """Print one error line (no traceback) and exit 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def user_errors(fn: Callable) -> Callable:
    """Decorate a command: ScalelabError -> one line, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from scalelab.errors import ScalelabError

        try:
            return fn(*args, **kwargs)
        except ScalelabError as e:
            fail(str(e))
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


def not_yet(command: str) -> None:
    fail(f"`scalelab {command}` is not yet available in this version")


def stdout_console():
    """Rich console for tables on stdout: the terminal's width, or wide in pipes and log files so that
    tables are not folded into 80 columns."""
    from rich.console import Console

    c = Console()
    return c if c.is_terminal else Console(width=160)
