"""Provenance: every input with its sha256, the software versions, and the exact commands that reproduce each
table and figure (the fit's settings as a --spec TOML file, so that the command needs no flag guessed back)."""

from __future__ import annotations

import glob
import math
import os
import platform
import shlex
from dataclasses import dataclass, field
from importlib import metadata

from scalelab.report.page import code_block, esc, paragraphs, table

PACKAGES = ("scalelab", "numpy", "scipy", "pandas", "pyarrow", "matplotlib")


@dataclass
class Commands:
    """The commands that reproduce the report's parts, in order: (what, command line)."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    spec_toml: str = ""  # the fit's settings, for `scalelab fit --spec`


def quote(paths) -> str:
    """Paths for a shell command line; a folder's every *.parquet as one glob (the shell expands it back)."""
    return " ".join(_globbed(p) if p.endswith("*.parquet") else shlex.quote(p) for p in compact(list(map(str, paths))))


def _globbed(pattern: str) -> str:
    folder = pattern[: -len("*.parquet")]
    return (shlex.quote(folder) if folder else "") + "*.parquet"


def compact(paths: list[str]) -> list[str]:
    """`paths`, with the files that are exactly a folder's *.parquet written as FOLDER/*.parquet."""
    by_folder: dict[str, list[str]] = {}
    for p in paths:
        by_folder.setdefault(os.path.dirname(p), []).append(p)
    out, done = [], set()
    for p in paths:
        folder = os.path.dirname(p)
        if folder in done:
            continue
        mine = by_folder[folder]
        every = sorted(glob.glob(os.path.join(glob.escape(folder) or ".", "*.parquet")))
        every = [os.path.join(folder, os.path.basename(f)) for f in every]
        if p.endswith(".parquet") and len(mine) > 1 and sorted(mine) == every:
            out.append(os.path.join(folder, "*.parquet"))
            done.add(folder)
        elif p not in out:
            out.append(p)
    return out


def flops_text(x: float) -> str:
    """A budget as a command line takes it: 1e15, 3.2e20."""
    return f"{x:.6g}".replace("e+", "e")


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def spec_toml(spec: dict) -> str:
    """A FitSpec's fields as the TOML `scalelab fit --spec` reads. Unset fields (None or empty) are left out,
    to keep their defaults; one unset whose default is set cannot be written in TOML (no null): a comment says so."""
    from dataclasses import MISSING, fields

    from scalelab.fit.spec import FitSpec

    defaults = {f.name: f.default for f in fields(FitSpec) if f.default is not MISSING}
    lines = []
    for k, v in spec.items():
        if v is None and defaults.get(k) is not None:
            lines.append(f"# {k} is unset in this fit (TOML has no null): the default {defaults[k]!r} would differ")
        elif not (v is None or v == {} or (isinstance(v, float) and not math.isfinite(v))):
            lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def versions() -> list[tuple[str, str]]:
    out = [("python", platform.python_version())]
    for p in PACKAGES:
        try:
            out.append((p, metadata.version(p)))
        except metadata.PackageNotFoundError:
            continue
    return out


def provenance_section(sources, fit, commands: Commands) -> str:
    """Inputs (kind, path, sha256), the fit's own record of its inputs, versions, commands."""
    parts = [table(["kind", "file", "sha256"], [[s.kind, s.path, s.sha256] for s in sources], caption="Inputs read")]
    if fit is not None and fit.info.inputs:
        rows = [[i.path, i.sha256 or "-"] for i in fit.info.inputs]
        caption = f"Inputs the fit read (scalelab {fit.info.scalelab_version}, {fit.info.created})"
        parts.append(table(["file", "sha256"], rows, caption=caption))
    parts.append(table(["software", "version"], versions(), caption="Versions (writing this report)"))
    parts.append("<h3>Commands that reproduce this report</h3>")
    parts += [f"<p>{esc(what)}</p>\n{code_block(line)}" for what, line in commands.lines]
    if commands.spec_toml:
        parts.append(paragraphs(["fit-spec.toml (the fit's settings, as recorded in the fit file):"]))
        parts.append(code_block(commands.spec_toml))
    return "\n".join(parts)
