"""`scalelab report --check NEW`: the fit checked against runs it did not see, as `scalelab check` computes it,
in the report (tables, the check figure, provenance). A synthetic run store (tests/plot/helpers.py) fitted by the
real `scalelab fit`; new runs drawn from the same known law, three of them an IsoFLOP set."""

from __future__ import annotations

import glob
import json
import os

import pytest
from plot.helpers import K_FLOPS, params_of, run_rows, write_runs
from typer.testing import CliRunner

from scalelab import numfmt
from scalelab.cli import app
from scalelab.fileio import sha256_file
from scalelab.report.check import check_paths, check_section

from .page_parser import Page

ISO_C = 3e12  # the IsoFLOP set's budget (FLOPs, the synthetic store's C = 7 N D)


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _new_runs(folder: str, variant: str = "dense") -> list[str]:
    """Runs the fit did not see, in the synthetic store's format (with the columns `scalelab run` writes)."""
    os.makedirs(folder, exist_ok=True)
    specs = [(128, 20.0)] + [(d, ISO_C / (K_FLOPS * params_of(d)[0] ** 2)) for d in (48, 64, 96)]
    paths = []
    for d, ratio in specs:
        df = run_rows(variant, d, ratio)
        df["run_id"] = f"new-{d}"
        df["budget"], df["schedule"], df["guide_flops"] = int(df["tokens"].iloc[-1]), "cosine", df["flops"]
        paths.append(os.path.join(folder, f"new-{d}.parquet"))
        df.to_parquet(paths[-1], index=False)
    return paths


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    folder = tmp_path_factory.mktemp("check")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        runs = write_runs("runs", variants=("dense",))
        new = _new_runs("new")
        r = invoke("fit", *runs, "--bootstrap", 40, "--out", "fits/t.json")
        assert r.exit_code == 0, r.output
        r = invoke("report", *runs, "--fit", "fits/t.json", "--check", "new", "--out", "out/report.html")
        assert r.exit_code == 0, r.output
        as_json = invoke("check", "--fit", "fits/t.json", *new, "--json")
        assert as_json.exit_code == 0, as_json.output
        html = open("out/report.html", encoding="utf-8").read()
        yield dict(folder=folder, out=r.output, html=html, page=Page(html), new=new, check=json.loads(as_json.output))


def test_check_tables_hold_the_numbers_scalelab_check_computes(checked):
    page, want = checked["page"], checked["check"]
    rows = page.table("variant", section="check")  # the summary per variant comes first
    assert rows[1] == [
        "dense",
        str(want["summary"][0]["points"]),
        f"{want['summary'][0]['mean_abs_rel_error']:.2%}",
        f"{want['summary'][0]['coverage']:.0%}",
    ]
    t = next(t for t in page.tables if t["section"] == "check" and t["rows"][0][1] == "run")
    head, body = t["rows"][0], {r[1]: dict(zip(t["rows"][0], r)) for r in t["rows"][1:]}
    assert head[-1] == "inside" and len(body) == len(want["points"]) == 4
    for p in want["points"]:
        got = body[p["run_id"]]
        assert got["predicted"] == f"{p['predicted']:.4f}" and got["observed"] == f"{p['observed']:.4f}"
        assert got["95% interval"] == f"[{p['lo']:.4f}, {p['hi']:.4f}]"
        assert got["rel. error"] == f"{p['rel_error']:+.2%}"
        assert got["inside"] == ("yes" if p["covered"] else "NO")
        assert got["FLOPs C"].endswith(" *") == p["extrapolated"]
    assert body["new-128"]["FLOPs C"].endswith(" *")  # the largest run lies beyond the fitted budgets
    (iso,) = want["isoflop"]  # the three runs at ISO_C
    t = next(t for t in page.tables if t["section"] == "check" and t["rows"][0][1] == "budget C")
    assert t["rows"][1][1] == numfmt.sig(iso["C"], 3) and t["rows"][1][2] == "3"
    # the true optimum at ISO_C lies beyond d_model 96: the set does not bracket it, so no observed N_opt, no ratio
    # and no verdict, and the report names the run one size step larger
    assert not iso["bracketed"] and iso["side"] == "above" and iso["N_obs"] is None
    assert t["rows"][1][3] == "not bracketed" and t["rows"][1][6] == t["rows"][1][7] == "-"
    assert f"(N ~ {iso['next_N']:.3g}," in " ".join(page.text.split())


def test_check_figure_inline_with_alt_text(checked):
    page = checked["page"]
    assert page.figure_ids[0] == "fig_check" and "fig1_loss_vs_flops" in page.figure_ids
    assert page.svg_titles[0].startswith("check: observed loss")
    ids = [a["id"] for _, a in page.tags if "id" in a]
    assert len(ids) == len(set(ids))  # the check figure's ids never collide with the registry figures'
    assert not page.unbalanced and "http://" not in checked["html"] and "https://" not in checked["html"]
    assert "the check of 4 new run(s)" in checked["out"]


def test_check_provenance_hashes_and_commands(checked):
    page = checked["page"]
    inputs = page.table("kind", section="provenance")
    rows = {r[1]: r for r in inputs[1:]}
    for p in checked["new"]:
        assert rows[p] == ["check", p, sha256_file(os.path.join(checked["folder"], p))]
    assert "scalelab check --fit fits/t.json new/*.parquet --out check" in page.text
    assert "scalelab report runs/*.parquet --fit fits/t.json --check new --out out/report.html" in page.text


def test_without_check_the_section_says_how_to_add_it():
    assert "add --check NEW_RUNS" in check_section(None)


def test_check_paths_folder_glob_and_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    new = _new_runs("new")
    assert check_paths(["new"]) == sorted(new)
    assert check_paths(["new/*.parquet", new[0]]) == sorted(new)  # each file once


@pytest.mark.parametrize(
    "args, words",
    [
        (["runs/*.parquet", "--check", "new"], "--check compares new runs with a fit"),
        (["--fit", "fits/t.json", "--check", "nowhere"], "--check nowhere: no such file or folder"),
        (["--fit", "fits/t.json", "--check", "out"], "the folder holds no run files"),
        (["--fit", "fits/t.json", "--check", "fits/t.samples.parquet"], "not a run file or CSV"),
        (["runs/*.parquet", "--fit", "fits/t.json", "--check", "runs/dense-32-10.parquet"], "both as a study run"),
        (["--fit", "fits/t.json", "--check", "new/new-48.parquet", "new/new-64.parquet"], "give --check the folder"),
        (["--fit", "fits/t.json", "--check", "other"], "are not in fit fits/t.json"),
    ],
)
def test_bad_check_one_line_exit_2_nothing_written(checked, monkeypatch, args, words):
    monkeypatch.chdir(checked["folder"])
    _new_runs("other", variant="lowrank-25")  # runs of a variant the fit does not have
    args = [a for x in args for a in (sorted(glob.glob(x)) if "*" in x else [x])]
    r = invoke("report", *args, "--out", "bad/report.html")
    assert r.exit_code == 2, r.output
    assert words in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert "Traceback" not in r.output and not os.path.exists("bad")
