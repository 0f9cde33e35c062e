"""`--help` prints its own text: typer renders help through rich markup, where a bracketed word such as a grid
file's `[sweep]` table is a style tag and vanishes unless escaped (`\\[sweep]`)."""

from __future__ import annotations

import pytest
import typer
from rich.markup import RE_TAGS
from typer.testing import CliRunner

from scalelab.cli import app


def _commands(cmd, path=()):
    """(path, command) for the app and every command and subcommand under it."""
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, (*path, name))


@pytest.mark.parametrize(
    "args, words",
    [
        (["fit"], ["a grid's [sweep]"]),
        (["run"], ["else [slurm] partition"]),
        (["data", "prepare"], ['as [data] source = "OUT"']),
    ],
)
def test_bracketed_grid_tables_print_in_help(args, words):
    r = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "400"})  # wide: no line breaks in the words
    assert r.exit_code == 0, r.output
    for w in words:
        assert w in r.output, (w, r.output)


def test_no_help_text_holds_an_unescaped_markup_tag():
    """Every command's help and its options' help: a `[word]` not preceded by a backslash is eaten by rich."""
    eaten = [
        (" ".join(path) or "scalelab", name, m.group(0))
        for path, cmd in _commands(typer.main.get_command(app))
        for name, text in [("help", cmd.help or "")] + [(p.name, getattr(p, "help", None) or "") for p in cmd.params]
        for m in RE_TAGS.finditer(text)
        if not m.group(2)  # group 2: the backslashes before the tag; one escapes it
    ]
    assert eaten == []
