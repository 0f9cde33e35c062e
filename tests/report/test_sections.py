"""The report's pure pieces: the design from any run store, figures' SVG made inline, the fit settings as TOML,
and reports from runs alone or a fit alone (through the CLI)."""

from __future__ import annotations

import pandas as pd
from plot.helpers import run_rows, write_runs
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.fit.spec import FitSpec
from scalelab.report.design import design_section, final_rows
from scalelab.report.figures import inline_svg
from scalelab.report.provenance import compact, spec_toml

from .page_parser import Page


def test_design_of_an_unfinished_run_and_a_store_without_optional_columns():
    done = run_rows("dense", 32, 10)
    unfinished = run_rows("dense", 48, 10).iloc[:3].assign(final=False)
    runs = pd.concat([done, unfinished], ignore_index=True)
    last = final_rows(runs)
    assert list(last["run_id"]) == ["dense-32-10", "dense-48-10"]
    assert list(last["tokens"]) == [done["tokens"].iloc[-1], unfinished["tokens"].iloc[-1]]
    bare = runs[["run_id", "variant", "step", "tokens", "val_loss"]]  # an ingested store: no config columns
    page = Page(design_section(bare))
    assert page.table("run")[0] == ["run", "variant", "tokens D", "final val loss"]
    assert len(page.table("run")) == 3 and not page.unbalanced


def test_inline_svg_drops_urls_and_prefixes_ids():
    doc = (
        '<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/x.dtd">\n'
        '<svg xmlns:xlink="http://www.w3.org/1999/xlink" width="10pt" xmlns="http://www.w3.org/2000/svg">'
        '<!-- <b>label</b> --><defs><path id="m1" d="M0 0"/><clipPath id="p1"><rect/></clipPath></defs>'
        '<g id="law" clip-path="url(#p1)"><use xlink:href="#m1"/></g><g id="law"/></svg>'
    )
    svg = inline_svg(doc, "fig3", "fig3: <alt> text")
    assert "http" not in svg and "<!--" not in svg and svg.startswith("<svg")
    assert 'id="fig3-m1"' in svg and 'href="#fig3-m1"' in svg and "url(#fig3-p1)" in svg
    assert 'id="fig3-law"' in svg and 'id="fig3-law-2"' in svg  # repeated ids made unique
    page = Page(svg)
    assert page.svg_titles == ["fig3: <alt> text"] and not page.unbalanced


def test_fit_settings_toml_reads_back_as_the_same_spec(tmp_path):
    spec = FitSpec(
        c_col="flops", by=("variant",), fix=(("E", 1.5),), compare=(("dense", "<b>x</b>"),), at_flops=(1e20,)
    )
    path = tmp_path / "spec.toml"
    path.write_text(spec_toml(spec.to_dict()))
    assert FitSpec.from_toml(path) == spec


def test_compact_writes_a_whole_folder_as_its_glob(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paths = write_runs("runs", variants=("dense",), widths=(32,), ratios=(10, 20))
    assert compact(sorted(paths)) == ["runs/*.parquet"]
    assert compact(paths[:1]) == paths[:1]


def test_report_from_runs_alone_and_from_a_fit_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = write_runs("runs", variants=("dense",), widths=(32, 64), ratios=(10, 40))
    r = CliRunner().invoke(app, ["report", *runs, "--out", "a/runs.html"])
    assert r.exit_code == 0, r.output
    page = Page(open("a/runs.html", encoding="utf-8").read())
    assert "fig1_loss_vs_flops" in page.figure_ids and "fig3_compute_optimal" not in page.figure_ids
    assert "No fit was given" in page.text and len(page.table("run", section="design")) == 5
    r = CliRunner().invoke(app, ["fit", *runs, "--bootstrap", "20", "--out", "fits/only.json"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["report", "--fit", "fits/only.json", "--out", "b.html"])
    assert r.exit_code == 0, r.output
    page = Page(open("b.html", encoding="utf-8").read())
    assert "No run files were given" in page.text and "fig5_fit_diagnostics" in page.figure_ids
