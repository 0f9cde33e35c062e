"""`scalelab fit --throughput bench/NAME.json`: a bench train table as the time multipliers' basis, through the
command line (the library side, fit_laws(throughput=), is tested in tests/fit/test_timing.py)."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scalelab import flops as F
from scalelab import structures
from scalelab.cli import app
from scalelab.config import ModelConfig
from scalelab.fit import fit_laws, load_fit
from scalelab.plan import throughput_model as T

runner = CliRunner()

SIZES = (2e7, 6e7, 2e8, 6e8, 2e9)
WIDTH = dict(zip(SIZES, (64, 96, 128, 192, 256)))  # each size trained at this width
TPP = (5, 15, 40, 100)
OPTS = ["--n-col", "N", "--d-col", "D", "--loss-col", "loss", "--run-col", "run", "--group-col", "group"]
OPTS += ["--bootstrap", "20", "--seed", "1"]
LIB = dict(n_col="N", d_col="D", loss_col="loss", run_col="run", by=["group"], bootstrap=20, seed=1)


def shape(d: int, f: float) -> ModelConfig:
    cfg = ModelConfig(d_model=d, n_layers=4, n_heads=d // 32, vocab_size=256, seq_len=128)
    return cfg if f >= 1 else cfg.replace(ffn=structures.for_fraction("lowrank", d, 4 * d, f))


def log_rate(d: float, f: float) -> float:
    """Bench FLOP/s: lower at smaller shares, so the time multiplier differs from the compute one."""
    return math.log(1e12) + 0.5 * math.log(d / 64) - 2.0 * (1 - f)


def points(tmp_path):
    """A CSV of dense and lowrank-32 runs from known laws, each with its model config (the run's shape)."""
    rng = np.random.default_rng(0)
    rows = []
    for group, A, B, f in (("dense", 400.0, 2000.0, 1.0), ("lowrank", 520.0, 3600.0, 0.32)):
        for N in SIZES:
            for t in TPP:
                D = N * t
                L = (1.8 + A / N**0.34 + B / D**0.37) * np.exp(0.01 * rng.standard_normal())
                cfg = json.dumps({"model": shape(WIDTH[N], f).to_dict()})
                rows.append({"N": N, "D": D, "loss": L, "run": f"{group}-{N:.0e}-{t}", "group": group, "config": cfg})
    path = tmp_path / "points.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def bench_tables(tmp_path, device="cuda:H100", widths=(64, 128, 256)):
    """bench train tables, one per width (as `--preset` gives), dense and lowrank at shares 0.63 and 0.32."""
    paths = []
    for d in widths:
        rows = []
        for f in (1.0, 0.63, 0.32):
            cfg = shape(d, f)
            fpt = F.flops_per_token(cfg)
            share = T.shape_share(cfg)
            rows.append(
                {"variant": "dense" if f >= 1 else f"lowrank-{round(100 * f)}", "flops_per_token": fpt,
                 "tokens_per_s": math.exp(log_rate(d, share)) / fpt, "d_model": d, "n_layers": 4,
                 "ffn_kind": cfg.ffn.kind, "share": share}
            )  # fmt: skip
        doc = {"format": "scalelab-bench-train/1", "device": device, "created": "2026-12-07", "commit": "abc123"}
        doc.update(model=shape(d, 1.0).to_dict(), rows=rows)
        p = tmp_path / "bench" / f"train-{device.split(':')[0]}-{d}.json"
        p.parent.mkdir(exist_ok=True)
        p.write_text(json.dumps(doc))
        paths.append(p)
    return paths


def throughput_args(paths) -> list[str]:
    return [a for p in paths for a in ("--throughput", str(p))]


@pytest.fixture(scope="module")
def cli_fit(tmp_path_factory):
    """The command's fit with --throughput, its output, the inputs and the library's fit of the same."""
    tmp = tmp_path_factory.mktemp("fit_throughput")
    csv, tables = points(tmp), bench_tables(tmp)
    out = tmp / "fits" / "t.json"
    r = runner.invoke(app, ["fit", str(csv), *OPTS, *throughput_args(tables), "--out", str(out)])
    assert r.exit_code == 0, r.output
    lib = fit_laws(pd.read_csv(csv), throughput=T.load(tables), **LIB)
    return r.output, load_fit(out), lib, tables, csv, tmp


def test_the_command_gives_the_library_calls_time_multipliers(cli_fit):
    _, fit, lib, tables, _, _ = cli_fit
    comp, ref = fit.comparisons[0], lib.comparisons[0]
    assert (comp.a, comp.b) == (ref.a, ref.b) == ("dense", "lowrank")
    assert comp.time_verdict_missing is None and ref.time_verdict_missing is None
    assert len(comp.multiplier) == len(ref.multiplier) > 0
    for row, want in zip(comp.multiplier, ref.multiplier):
        assert row.est == pytest.approx(want.est, rel=1e-12)
        for got, exp in zip((row.time_est, row.time_lo, row.time_hi), (want.time_est, want.time_lo, want.time_hi)):
            if math.isfinite(exp):
                assert got == pytest.approx(exp, rel=1e-12)
            else:  # an unbounded end (B never reaches A's loss in some resamples): the fit file writes null
                assert got is None or not math.isfinite(got)
        assert row.time_est > 1.5 * row.est  # the lowrank shapes run fewer FLOP/s: the bench basis was used
    assert comp.time_basis == ref.time_basis


def test_the_basis_names_the_bench_tables_in_the_output_and_the_fit_file(cli_fit):
    output, fit, _, tables, _, _ = cli_fit
    basis = fit.comparisons[0].time_basis
    assert basis.startswith("bench train on cuda:H100, commit abc123")
    assert all(str(p) in basis for p in tables)
    assert "time, lowrank vs dense: bench train on cuda:H100" in " ".join(output.split())
    assert all(p.name in output for p in tables)
    assert fit.spec.throughput_tables == tuple(str(p) for p in tables)  # recorded: `--spec` reproduces it


def test_the_spec_file_takes_the_tables_too(cli_fit):
    _, fit, _, tables, csv, tmp = cli_fit
    spec = tmp / "spec.toml"
    spec.write_text("throughput_tables = [" + ", ".join(json.dumps(str(p)) for p in tables) + "]\n")
    out = tmp / "fits" / "from-spec.json"
    r = runner.invoke(app, ["fit", str(csv), *OPTS, "--spec", str(spec), "--out", str(out)])
    assert r.exit_code == 0, r.output
    again = load_fit(out).comparisons[0]
    assert again.time_basis == fit.comparisons[0].time_basis
    assert [m.time_est for m in again.multiplier] == pytest.approx([m.time_est for m in fit.comparisons[0].multiplier])
    spec.write_text("throughput_tables = [1, 2]\n")
    r = runner.invoke(app, ["fit", str(csv), *OPTS, "--spec", str(spec), "--out", str(tmp / "no.json")])
    assert r.exit_code == 2 and "throughput_tables" in r.output and "bench train tables" in r.output


def refused(tmp, args, match: str, csv=None):
    out = tmp / "refused" / "fit.json"
    r = runner.invoke(app, ["fit", str(csv or points(tmp)), *OPTS, *args, "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert match in r.output, r.output
    assert not out.exists() and not out.parent.exists() or not any(out.parent.iterdir())


def test_bad_tables_are_refused_in_one_line_with_nothing_written(tmp_path):
    csv, good = points(tmp_path), bench_tables(tmp_path)
    refused(tmp_path, ["--throughput", str(tmp_path / "missing.json")], "no such file", csv)
    (tmp_path / "broken.json").write_text("{not json")
    refused(tmp_path, ["--throughput", str(tmp_path / "broken.json")], "not readable JSON", csv)
    (tmp_path / "fit.json").write_text(json.dumps({"format": "scalelab-fit/3"}))
    refused(tmp_path, ["--throughput", str(tmp_path / "fit.json")], "not a `scalelab bench train` table", csv)
    cpu = bench_tables(tmp_path, device="cpu:x86_64x2", widths=(96,))
    refused(tmp_path, throughput_args([*good, *cpu]), "timed on different devices", csv)


@pytest.mark.parametrize(
    "args, match",
    [
        (["--approach", "1"], "--approach 1 does not report"),
        (["--approach", "2"], "--approach 2 does not report"),
        (["--share-col", "share"], "the law across FFN shares (--share-col) does not report"),
        (["--curves"], "drop it with --curves"),
    ],
)
def test_fits_without_compute_multipliers_refuse_the_table(tmp_path, args, match):
    refused(tmp_path, [*throughput_args(bench_tables(tmp_path)), *args], match)


def test_the_library_refuses_a_table_it_would_ignore(tmp_path):
    from scalelab.errors import ScalelabError

    df, model = pd.read_csv(points(tmp_path)), T.load(bench_tables(tmp_path))
    for opts in (dict(approach=1), dict(approach=2), dict(share_col="share")):
        with pytest.raises(ScalelabError, match="--throughput times compute multipliers"):
            fit_laws(df, throughput=model, **{**LIB, **opts})
    with pytest.raises(ScalelabError, match="takes a loaded bench table"):
        fit_laws(df, throughput=[str(p) for p in bench_tables(tmp_path)], **LIB)


def test_a_fit_with_no_comparison_says_there_is_nothing_to_time(tmp_path):
    csv = points(tmp_path)
    one = tmp_path / "dense.csv"
    pd.read_csv(csv).query("group == 'dense'").to_csv(one, index=False)
    out = tmp_path / "fits" / "dense.json"
    r = runner.invoke(app, ["fit", str(one), *OPTS, *throughput_args(bench_tables(tmp_path)), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "--throughput: no comparison has a compute multiplier" in r.output and out.exists()
