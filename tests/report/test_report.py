"""`scalelab report` end to end: a synthetic run store (tests/plot/helpers.py) fitted by the real `scalelab fit`,
its report read back with the stdlib HTML parser."""

from __future__ import annotations

import glob
import json
import os
import re

import pandas as pd
import pytest
from plot.helpers import write_runs
from typer.testing import CliRunner

from scalelab import numfmt
from scalelab.cli import app
from scalelab.fileio import sha256_file
from scalelab.fit.results import load_fit
from scalelab.fit.spec import FitSpec

from .page_parser import Page

MARKUP = "<b>x</b>"  # a variant name with markup characters: data, never markup
FIGURES = ["fig1_loss_vs_flops", "fig2_loss_vs_params", "fig3_compute_optimal", "fig4_exponents"]
FIGURES += ["fig5_fit_diagnostics", "fig6_throughput"]  # fig7 needs an lr sweep: skipped with its reason


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """runs/ (dense and MARKUP), fits/t.json from `scalelab fit`, the plan hint, and out/report.html."""
    folder = tmp_path_factory.mktemp("study")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        for p in write_runs("runs"):
            if "lowrank" in p:
                df = pd.read_parquet(p)
                df["variant"] = MARKUP
                df.to_parquet(p, index=False)
        runs = sorted(glob.glob("runs/*.parquet"))
        fitted = invoke("fit", *runs, "--bootstrap", 40, "--out", "fits/t.json")
        assert fitted.exit_code == 0, fitted.output
        planned = invoke("plan", "budget", "--fit", "fits/t.json", "--flops", "1e15")
        assert planned.exit_code == 0, planned.output
        r = invoke("report", *runs, "--fit", "fits/t.json", "--flops", "1e15", "--out", "out/report.html")
        assert r.exit_code == 0, r.output
        html = open("out/report.html", encoding="utf-8").read()
        yield dict(
            folder=folder,
            fit_out=fitted.output,
            plan_out=planned.output,
            out=r.output,
            html=html,
            page=Page(html),
            fit=load_fit("fits/t.json"),
            runs=runs,
        )


def test_opens_offline_no_external_resource(study):
    page = study["page"]
    assert not page.unbalanced  # every element closed in order
    for tag, a in page.tags:
        assert tag not in ("script", "link", "iframe", "object", "embed"), tag
        for attr in ("src", "href"):
            v = a.get(attr) or ""
            assert not re.match(r"(https?:)?//", v), (tag, attr, v)
            assert v.startswith("#") or v.startswith("data:") or not v, (tag, attr, v)  # in-page links only
    assert "http://" not in study["html"] and "https://" not in study["html"]
    assert "@media print" in study["html"]  # printable


def test_every_figure_inline_with_alt_text(study):
    page = study["page"]
    assert page.figure_ids == FIGURES
    assert len(page.svg_titles) == len(FIGURES)
    for name, title in zip(FIGURES, page.svg_titles):
        assert title.startswith(f"{name}: ") and len(title) > len(name) + 20
    for tag, a in page.tags:
        if tag == "img":
            assert a.get("alt"), a
        if tag == "svg":
            assert a.get("role") == "img" and a.get("aria-labelledby")
    ids = [a["id"] for _, a in page.tags if "id" in a]
    assert len(ids) == len(set(ids))  # figures' markers and clip paths never collide
    assert "fig7_lr_transfer" in page.text and "Not drawn" in page.text
    assert "6 figures" in study["out"]


def _ci(g, p, derived=False):
    v = (g.derived if derived else g.params)[p]
    lo, hi = (g.derived_conf_int if derived else g.conf_int)[p]
    return f"{numfmt.sig(v, 3)}\n[{numfmt.sig(lo, 3)}, {numfmt.sig(hi, 3)}]"


def _e_cell(g):
    """An E the runs do not identify (the fit's rule, identify.e_gap) is shown as such over its interval."""
    from scalelab.fit.identify import e_gap

    lo, hi = g.conf_int["E"]
    if e_gap(g.params["E"], (lo, hi)):
        return f"not identified\n[{numfmt.sig(lo, 3)}, {numfmt.sig(hi, 3)}]"
    return _ci(g, "E")


def test_fit_table_holds_the_fits_numbers(study):
    fit = study["fit"]
    rows = study["page"].table("group", section="fits")
    head, body = rows[0], {r[0]: r for r in rows[1:]}
    assert set(body) == {"dense", MARKUP}
    for g in fit:
        row = dict(zip(head, body[g.name]))
        assert row["E"] == _e_cell(g)
        assert row["alpha|gamma"] == _ci(g, "alpha")
        assert row["beta"] == _ci(g, "beta")
        assert row["a"] == _ci(g, "a", derived=True)
        assert row["pts"] == str(g.n_points) and row["runs"] == str(g.n_runs)
        assert g.identification.why in study["page"].text  # the identifiability words


def test_comparisons_and_plan(study):
    fit, page = study["fit"], study["page"]
    (c,) = fit.comparisons
    rows = page.table("kind", section="comparisons")
    d = c.differences["alpha"]
    assert ["difference", "alpha", numfmt.sig(d.est, 3), f"[{numfmt.sig(d.lo, 3)}, {numfmt.sig(d.hi, 3)}]"] == rows[
        [r[1] for r in rows].index("alpha")
    ][:4]
    assert c.verdict in page.text
    assert any(t["section"] == "fits" and t["rows"][0][0] == "b vs a" for t in page.tables)  # compute multiplier
    assert any(t["section"] == "plan" for t in page.tables)


def test_names_from_data_are_escaped(study):
    html, page = study["html"], study["page"]
    assert MARKUP not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert not any(tag == "b" for tag, _ in page.tags)
    design = page.table("run", section="design")
    assert sum(r[1] == MARKUP for r in design[1:]) == 12


def test_design_lists_runs_and_data(study):
    rows = study["page"].table("run", section="design")
    assert len(rows) - 1 == len(study["runs"])
    facts = dict(study["page"].table("what", section="design")[1:])
    assert facts["data (corpus)"] == "synthetic" and facts["tokenizer"] == "byte"
    assert "<title>Study report: synthetic</title>" in study["html"]  # the grid the runs came from


def test_provenance_hashes_and_commands_that_reproduce(study, tmp_path):
    page = study["page"]
    folder = study["folder"]
    for f in study["runs"] + ["fits/t.json", "fits/t.samples.parquet", "fits/t.points.parquet"]:
        assert sha256_file(os.path.join(folder, f)) in page.text, f
    assert "scalelab fit runs/*.parquet --spec fit-spec.toml --out fits/t.json" in page.text
    assert "scalelab plot runs/*.parquet --fit fits/t.json --format svg --out figures" in page.text
    # the recorded settings, read back as the --spec file they are shown as, are the fit's own
    toml = page.text.split("fit-spec.toml (the fit's settings, as recorded in the fit file):")[1].split("\n\n")[0]
    spec = tmp_path / "fit-spec.toml"
    spec.write_text(toml.strip() + "\n")
    assert FitSpec.from_toml(spec) == study["fit"].spec


def test_next_step_hints(study):
    assert "Next: scalelab report runs/*.parquet --fit fits/t.json --out report.html" in study["fit_out"]
    assert "Next: scalelab report runs/*.parquet --fit fits/t.json --flops 1e15 --out report.html" in study["plan_out"]
    from scalelab.report.hints import after_run

    assert after_run("my runs") == "scalelab report 'my runs/'*.parquet --fit 'fits/my runs.json' --out report.html"


@pytest.mark.parametrize(
    "args, words",
    [
        ([], "nothing to report"),
        (["--fit", "bad.json"], "bad.json"),
        (["runs/x.parquet", "--flops", "1e15"], "--flops plans from a fit"),
        (["--fit", "missing.json"], "missing.json"),
    ],
)
def test_bad_inputs_one_line_exit_2_nothing_written(tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    r = invoke("report", *args, "--out", "report.html")
    assert r.exit_code == 2, r.output
    assert words in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert "Traceback" not in r.output
    assert not os.path.exists("report.html") and not glob.glob(".report.html*")
    json.dumps(args)  # the parametrisation stays plain data
