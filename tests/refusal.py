"""The promise every command keeps on bad input, as one test helper: exit 2, one stderr line starting 'error: '
that names the problem, no traceback (and, where asked, nothing written)."""

from __future__ import annotations

import os


def files(folder) -> list[str]:
    """Every file under `folder`, relative to it, sorted."""
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def refused(r, *words, out=None) -> str:
    """A CliRunner result refused in one line containing every word; with `out`, nothing written under it.
    Returns the line."""
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.output
    for w in words:
        assert w in lines[0], (w, lines[0])
    if out is not None:
        assert not os.path.exists(out) or files(out) == [], files(out)
    return lines[0]
