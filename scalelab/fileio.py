"""Atomic file writes and file hashes, shared by every module that writes results.

Every file scalelab writes (run stores, fits, figures, bench tables, checkpoints, data caches) goes
through `atomic_write`: the bytes go to a hidden temp file in the target's own folder, are flushed and
fsync'ed, and then `os.replace` swaps it in. So a reader (another worker, `scalelab status`, a plot)
sees either the old file or the new one, never half a file, and a crash or Ctrl-C mid-write leaves
the old file intact and no temp file behind. Stdlib only: torch-free modules import this.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from typing import IO, Callable, Union

PathLike = Union[str, "os.PathLike[str]"]


def _open_temp(path: str) -> tuple[int, str]:
    # Same folder as the target, so os.replace is a rename within one file system (atomic).
    # Hidden name (leading dot, .tmp suffix) so globs like runs/*.parquet never pick it up.
    # os.open with 0o666 (not mkstemp's 0o600) so the final file gets the usual umask permissions,
    # like a plain open(path, "w") would give.
    folder, name = os.path.split(os.path.abspath(path))
    while True:
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def atomic_write(path: PathLike, write: Callable[[IO], object], mode: str = "wb") -> None:
    """Call `write(f)` on a temp file beside `path`, then fsync and os.replace it onto `path`.

    `mode` is "wb" (binary) or "w" (UTF-8 text). The folder must exist. On any exception
    (KeyboardInterrupt included) the temp file is removed, `path` keeps its previous content,
    and the exception propagates unchanged (OSError stays OSError, for callers that wrap it).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', not {mode!r}")
    path = os.fspath(path)
    fd, tmp = _open_temp(path)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically; see `atomic_write`."""
    atomic_write(path, lambda f: f.write(text), mode="w")


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically; see `atomic_write`."""
    atomic_write(path, lambda f: f.write(data))


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in `chunk`-byte pieces so big files never sit in memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
