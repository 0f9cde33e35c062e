"""scalelab.fileio: atomic replace, cleanup on failure, chunked sha256 (reference: hashlib over the bytes)."""

import errno
import hashlib
import os

import pytest

from scalelab.fileio import atomic_write, atomic_write_bytes, atomic_write_text, sha256_file


def test_replaces_whole_file(tmp_path):
    p = tmp_path / "a.json"
    p.write_bytes(b"x" * 1000)  # longer than the new content: a non-truncating write would leave a tail
    atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"new"
    atomic_write_text(str(p), "caf\u00e9\n")
    assert p.read_bytes() == "caf\u00e9\n".encode("utf-8")
    atomic_write(p, lambda f: (f.write(b"ab"), f.write(b"cd")))
    assert p.read_bytes() == b"abcd"
    assert os.listdir(tmp_path) == ["a.json"]


def test_creates_missing_target_with_umask_permissions(tmp_path):
    p = tmp_path / "new.bin"
    atomic_write_bytes(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("exc", [OSError(13, "Permission denied"), KeyboardInterrupt()])
def test_failure_midway_keeps_old_content_and_leaves_no_temp(tmp_path, exc):
    p = tmp_path / "fit.json"
    p.write_bytes(b"old content")
    seen = []

    def write(f):
        f.write(b"half of the new")
        f.flush()
        seen.extend(n for n in os.listdir(tmp_path) if n != "fit.json")  # the temp file, in the same folder
        raise exc

    with pytest.raises(type(exc)) as info:
        atomic_write(p, write)
    assert info.value is exc  # propagated unchanged, so callers' `except OSError` wrappers still fire
    assert len(seen) == 1 and seen[0].startswith(".")  # hidden temp beside the target
    assert p.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["fit.json"]


def test_failure_without_previous_file_leaves_folder_empty(tmp_path):
    with pytest.raises(ValueError):
        atomic_write(tmp_path / "x.parquet", lambda f: (_ for _ in ()).throw(ValueError("bad")))
    assert os.listdir(tmp_path) == []


def test_missing_folder_is_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "nope" / "a.bin", b"x")


@pytest.mark.parametrize("n", [0, 1, 1 << 10, (1 << 10) * 3 + 7])
def test_sha256_file_matches_hashlib(tmp_path, n):
    data = os.urandom(n)
    p = tmp_path / "d.bin"
    p.write_bytes(data)
    # small chunk so several chunks (and a partial last one) are hashed
    assert sha256_file(p, chunk=1 << 10) == hashlib.sha256(data).hexdigest()
    assert sha256_file(str(p)) == hashlib.sha256(data).hexdigest()


def test_fileio_is_torch_free():
    import subprocess
    import sys

    code = "import sys, scalelab.fileio; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file"),
    ],
)
def test_a_full_disk_is_named_in_one_line_and_keeps_the_old_file(tmp_path, exc):
    """ENOSPC, met directly or wrapped by the writer (torch.save raises a RuntimeError from the OSError), becomes
    DiskFull: a ScalelabError (one line, exit 2) naming the file and the full disk, still an OSError."""
    from scalelab.errors import ScalelabError
    from scalelab.fileio import DiskFull

    p = tmp_path / "fit.json"
    p.write_bytes(b"old content")

    def write(f):
        f.write(b"half of the new")
        if isinstance(exc, OSError):
            raise exc
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise exc

    with pytest.raises(DiskFull) as info:
        atomic_write(p, write)
    e = info.value
    assert isinstance(e, OSError) and isinstance(e, ScalelabError) and e.errno == errno.ENOSPC
    assert str(p) in str(e) and "disk is full" in str(e) and "\n" not in str(e)
    assert p.read_bytes() == b"old content" and os.listdir(tmp_path) == ["fit.json"]


def test_a_write_error_that_is_not_a_full_disk_stays_what_it_was(tmp_path):
    with pytest.raises(RuntimeError, match="other"):
        atomic_write(tmp_path / "x", lambda f: (_ for _ in ()).throw(RuntimeError("other")))
