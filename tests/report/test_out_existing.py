"""`scalelab report --out FILE` over an existing file: an earlier report (or an empty file) is replaced, as a
researcher re-running the study expects; any other file (a CSV, an HTML page scalelab did not write) is kept and
the command refused in one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from refusal import refused
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.fit import fit_laws
from scalelab.report.page import GENERATOR, is_report


def report(*args):
    return CliRunner().invoke(app, ["report", *map(str, args)])


@pytest.fixture(scope="module")
def fit(tmp_path_factory):
    d = tmp_path_factory.mktemp("fit")
    rng = np.random.default_rng(0)
    rows = [
        {"N": N, "D": N * t, "loss": (1.8 + 400 / N**0.34 + 2000 / (N * t) ** 0.37) * np.exp(0.01 * rng.normal())}
        for N in (2e7, 5e7, 1e8, 2e8)
        for t in (5, 10, 20, 40)
    ]
    fit_laws(pd.DataFrame(rows), n_col="N", d_col="D", loss_col="loss", bootstrap=10).to_json(d / "f.json")
    return d / "f.json"


@pytest.mark.parametrize(
    "name, content",
    [
        ("data.csv", "N,D,loss\n1,2,3\n"),
        ("page.html", "<!DOCTYPE html>\n<html><head><title>my notes</title></head><body>mine</body></html>\n"),
        ("report.html", "<!DOCTYPE html>\n<html>" + "x" * 5000 + GENERATOR + "</html>\n"),  # not in its head
    ],
)
def test_a_file_scalelab_did_not_write_is_kept_and_refused(fit, tmp_path, name, content):
    out = tmp_path / name
    out.write_text(content)
    refused(report("--fit", fit, "--out", out), f"--out {out}", "not a report scalelab wrote", "another --out")
    assert out.read_text() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temp file left


def test_an_earlier_report_or_an_empty_file_is_replaced(fit, tmp_path):
    out = tmp_path / "report.html"
    out.write_text("")
    r = report("--fit", fit, "--out", out)
    assert r.exit_code == 0, r.output
    first = out.read_text()
    assert GENERATOR in first[:1000] and is_report(str(out))
    out.write_text(first.replace("</main>", "<p>an older run</p></main>"))
    r = report("--fit", fit, "--out", out)
    assert r.exit_code == 0, r.output
    assert "an older run" not in out.read_text()


def test_reports_written_before_the_generator_mark_are_recognised(fit, tmp_path):
    from scalelab.report.page import page

    legacy = page("study", "sub", []).replace(GENERATOR + "\n", "")
    (tmp_path / "old.html").write_text(legacy)
    assert is_report(str(tmp_path / "old.html"))
    assert not is_report(str(tmp_path / "missing.html"))
