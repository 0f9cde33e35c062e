"""Atomic file writes and file hashes, shared by every module that writes results.

Every file scalelab writes (run stores, fits, figures, bench tables, checkpoints, data caches) goes
through `atomic_write`: the bytes go to a hidden temp file in the target's own folder, are flushed and
fsync'ed, and then `os.replace` swaps it in. So a reader (another worker, `scalelab status`, a plot)
sees either the old file or the new one, never half a file, and a crash or Ctrl-C mid-write leaves
the old file intact and no temp file behind. Stdlib only: torch-free modules import this.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
from typing import IO, Callable, Optional, Union

from scalelab.errors import ScalelabError

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


class DiskFull(ScalelabError, OSError):
    """A write stopped by a full disk (ENOSPC) or quota (EDQUOT): one line naming the file (a ScalelabError, so
    commands exit 2 without a traceback) that is still an OSError for callers that catch those. The file being
    written keeps its previous content; files written before are untouched."""

    def __init__(self, err: int, path: str):
        OSError.__init__(self, err, os.strerror(err), path)

    def __str__(self) -> str:
        what = "the disk is full" if self.errno == errno.ENOSPC else "the disk quota is exceeded"
        return (
            f"cannot write {self.filename}: {what} (no space left on device): free space and run the command again "
            "(finished outputs are kept; `scalelab run` resumes unfinished runs from their checkpoints)"
        )


def _disk_full(e: Optional[BaseException]) -> Optional[int]:
    """The errno (ENOSPC / EDQUOT) of the full-disk OSError behind `e` (itself, or in its cause/context chain:
    torch.save and pyarrow wrap the OSError of a failed write in their own errors), else None."""
    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return e.errno
        if "No space left on device" in str(e):  # wrapped without the errno (pyarrow's, torch's writers)
            return errno.ENOSPC
        e = e.__cause__ or e.__context__
        seen += 1
    return None


def atomic_write(path: PathLike, write: Callable[[IO], object], mode: str = "wb") -> None:
    """Call `write(f)` on a temp file beside `path`, then fsync and os.replace it onto `path`.

    `mode` is "wb" (binary) or "w" (UTF-8 text). The folder must exist. On any exception
    (KeyboardInterrupt included) the temp file is removed, `path` keeps its previous content,
    and the exception propagates unchanged (OSError stays OSError, for callers that wrap it), but for a
    full disk, met directly or wrapped by the writer: that becomes DiskFull (still an OSError).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', not {mode!r}")
    path = os.fspath(path)
    fd, tmp = _open_temp(path)
    try:
        with os.fdopen(fd, mode, encoding="utf-8" if mode == "w" else None) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        full = _disk_full(e)
        if full is not None and not isinstance(e, DiskFull):
            raise DiskFull(full, path) from e
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


def head_text(path: PathLike, n: int) -> Optional[str]:
    """A file's first `n` bytes as text (undecodable bytes replaced): how scalelab recognises a file it wrote
    before replacing or reading it. None for a file that cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(n).decode("utf-8", "replace")
    except OSError:
        return None


def json_format(path: PathLike) -> Optional[str]:
    """The "format" a JSON file scalelab wrote declares ("scalelab-fit/2", "scalelab-curves/1"), read from its first
    bytes (every such file starts with that key); None for anything else or an unreadable file."""
    import re

    head = head_text(path, 200)
    m = re.match(r'\s*\{\s*"format"\s*:\s*"([^"]+)"', head) if head is not None else None
    return m.group(1) if m else None


def remove_stale_temps(path: PathLike, older_than_s: float = 60.0) -> int:
    """Remove temp files that killed `atomic_write`s of `path` left beside it (a SIGKILL or power loss skips
    the cleanup above). Only those older than `older_than_s`, so that a concurrent writer's temp file is left
    alone. Returns how many were removed."""
    import time

    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    prefix, n = f".{name}.", 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for e in entries:
        rest = e.name[len(prefix) : -len(".tmp")] if e.name.startswith(prefix) and e.name.endswith(".tmp") else ""
        if len(rest) != 8 or any(c not in "0123456789abcdef" for c in rest):
            continue
        try:
            if e.is_file(follow_symlinks=False) and time.time() - e.stat(follow_symlinks=False).st_mtime > older_than_s:
                os.unlink(e.path)
                n += 1
        except OSError:
            pass
    return n


# A name taken from a file (a grid's name) that becomes part of a file name: at most this many characters, so
# that runs/{grid}__{variant}__d{width}__{id}.parquet stays under the 255 bytes file systems allow.
MAX_NAME = 100
_UNSAFE = set('/\\:*?[]<>|"') | {chr(c) for c in range(32)} | {chr(127)}


def unsafe_name(name: str) -> str:
    """Why `name` cannot be part of a file name ("" when it can): empty, '.' or '..', a leading dot (hidden
    file), a path separator, glob or control characters, or longer than MAX_NAME characters."""
    if not name.strip():
        return "is empty"
    if name in (".", "..") or name.startswith("."):
        return "starts with a dot"
    if len(name) > MAX_NAME:
        return f"is {len(name)} characters long (at most {MAX_NAME})"
    bad = sorted({c for c in name if c in _UNSAFE})
    if bad:
        return f"contains {', '.join(repr(c) for c in bad)}"
    if len(name.encode("utf-8", "surrogateescape")) > 2 * MAX_NAME:
        return "is too long in bytes"
    return ""
