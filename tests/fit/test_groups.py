"""Grouping the points of a fit's input (scalelab/fit/groups.py): a group too small to fit is refused naming
the group and its column, or the whole data where nothing is grouped."""

from refusal import refused
from typer.testing import CliRunner

from scalelab.cli import app

runner = CliRunner()


def _csv(tmp_path, rows):
    p = tmp_path / "runs.csv"
    p.write_text("N,D,loss,run,group\n" + "".join(f"{n},{d},{loss},{r},{g}\n" for n, d, loss, r, g in rows))
    return p


def test_too_few_points_without_groups_names_the_data_not_a_column(tmp_path):
    p = _csv(tmp_path, [(1e7, 1e9, 3.0, "a", "x"), (2e7, 1e9, 2.9, "b", "x")])
    out = tmp_path / "fit"
    line = refused(
        runner.invoke(app, ["fit", str(p), "--out", str(out / "f.json")]), "has 2 point(s)", "add runs", out=out
    )
    assert "column" not in line


def test_too_few_points_in_one_group_names_the_group_and_its_column(tmp_path):
    rows = [(n, 20 * n * k, 3.0 - 0.1 * k, f"r{i}{k}", "big") for i, n in enumerate((1e7, 2e7, 4e7)) for k in (1, 2)]
    p = _csv(tmp_path, rows + [(1e7, 1e9, 3.0, "s1", "small")])
    out = tmp_path / "fit"
    refused(
        runner.invoke(app, ["fit", str(p), "--by", "group", "--out", str(out / "f.json")]),
        "group 'small' (column(s) 'group') has 1 point(s)",
        "leave it out",
        out=out,
    )
