"""Shared CLI plumbing: user errors become one line on stderr and exit code 2."""

from __future__ import annotations

import errno
import functools
import os
import sys
from typing import Callable, Optional

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
        except OSError as e:
            why = os_error(e)
            if why is None:
                raise
            fail(why)
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


# What the user can do about an OSError met while writing outputs: one line, not a traceback.
_OS_FIXES = {
    errno.ENOSPC: "the disk is full: free space (or write elsewhere) and run the command again; finished outputs "
    "are kept",
    errno.EDQUOT: "the disk quota is exceeded: free space (or write elsewhere) and run the command again",
    errno.EACCES: "permission denied: choose a folder you can write to",
    errno.EPERM: "permission denied: choose a folder you can write to",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EISDIR: "it is a folder: give a file path",
    errno.ENOTDIR: "part of the path is a file, not a folder: choose another path",
    errno.EEXIST: "a file is in the way: choose another path",
    errno.ENAMETOOLONG: "the file name is too long: use a shorter path or name",
}


def os_error(e: OSError) -> Optional[str]:
    """One line naming the file and what to do, for the OSErrors a user can fix (disk full, permissions,
    read-only, a file where a folder goes); None for others (a bug: keep the traceback)."""
    fix = _OS_FIXES.get(e.errno) if e.errno is not None else None
    if fix is None:
        return None
    where = e.filename if e.filename is not None else "an output file"
    return f"cannot write {where}: {fix}"


def check_out_dir(path: str, option: str) -> None:
    """An output folder that can be created or written: not a file, not under a file, writable."""
    from scalelab.errors import ScalelabError

    p = os.path.abspath(path)
    if os.path.exists(p) and not os.path.isdir(p):
        raise ScalelabError(f"{option} {path} is a file, not a folder: give a folder (it is created if missing)")
    parent = p
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ScalelabError(f"{option} {path}: {parent} is a file, not a folder: choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ScalelabError(f"{option} {path}: {parent} is not writable: choose a folder you can write to")


def check_out_file(path, option: str) -> None:
    """An output file path whose folder can be created or written and that is not itself a folder."""
    from scalelab.errors import ScalelabError

    path = os.fspath(path)
    if os.path.isdir(path):
        raise ScalelabError(f"{option} {path} is a folder: give a file path (e.g. {os.path.join(path, 'out.json')})")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ScalelabError(f"{option} {path} is read-only: choose another path, or make it writable")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ScalelabError(f"{option} {path}: {folder} is a file, not a folder: choose another path")
    check_out_dir(folder, option)


def stdout_console(markup: bool = True):
    """Rich console for tables on stdout: the terminal's width, or wide in pipes and log files so that
    tables are not folded into 80 columns. markup=False: everything prints as it is (names taken from files,
    "[bold]" or "[/x]", included); with markup, pass such names through rich.markup.escape."""
    from rich.console import Console

    c = Console(markup=markup)
    return c if c.is_terminal else Console(width=160, markup=markup)
