"""Bad input and faults, third round (issue 21 item 9), through the CLI: each kind of input gets one line naming
the problem and the fix, exit 2, no traceback and nothing written; names from files print as they are; a full
disk is named and keeps finished runs; temp files of killed writes are cleaned by the next run."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pandas as pd
import pytest
from grids import CORPUS, write_grid
from refusal import files as _files
from refusal import refused as _refused
from typer.testing import CliRunner

from scalelab.cli import app


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALELAB_CACHE", str(tmp_path / "cache"))


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


# ---- grids: names that would become unsafe paths, non-finite or zero numbers, duplicates, sizes -------------
def _grid(tmp_path, name="t", text_edit=None, **sections):
    p = write_grid(tmp_path, **sections)
    text = open(p).read()
    if name != "t":
        text = text.replace('name = "t"', f"name = {json.dumps(name)}")
    if text_edit:
        text = text_edit(text)
    open(p, "w").write(text)
    return p


GRID_NAMES = {"slash": "a/b", "dotdot": "..", "absolute": "/tmp/scalelab-evil", "long": "x" * 300, "markup": "[/x]"}


@pytest.mark.parametrize("case", sorted(GRID_NAMES))
def test_a_grid_name_unsafe_as_a_file_name_is_refused_and_nothing_written(tmp_path, case):
    # before: a/b wrote out/a/b__...parquet, /tmp/... wrote outside --out, 300 characters failed after training
    # (ENAMETOOLONG), [/x] crashed rich (MarkupError)
    grid = _grid(tmp_path, name=GRID_NAMES[case])
    r = _cli("run", "--grid", grid, "--out", tmp_path / "out", "--quiet")
    _refused(r, "name", "file names")
    # other processes write to /tmp too: look only for what this grid's name would have written there
    assert not (tmp_path / "out").exists() and not any(f.startswith("scalelab-evil") for f in os.listdir("/tmp"))


NUMBERS = {
    "tokens inf": dict(budgets="[budgets]\ntokens = [inf]\n"),
    "tokens table inf": dict(budgets='[budgets]\ntokens = { "16" = [inf] }\n'),
    "tokens 1e30": dict(budgets="[budgets]\ntokens = [1e30]\n"),
    "flops inf": dict(budgets="[budgets]\nflops = [inf]\n"),
    "tokens_per_param inf": dict(budgets="[budgets]\ntokens_per_param = [inf]\n"),
    "lr inf": dict(optimizer="[optimizer]\nlr = inf\nbatch_size = 8\n"),
    "lr_table inf": dict(optimizer='[optimizer]\nlr_table = { "16" = inf }\nbatch_size = 8\n'),
    "lr_law width 0": dict(optimizer="[optimizer]\nlr_law = { base = 1e-3, width = 0, exponent = -1 }\n"),
    "lr_law base inf": dict(optimizer="[optimizer]\nlr_law = { base = inf, width = 16, exponent = -1 }\n"),
    "width inf": dict(model="[model]\nwidths = [inf]\nn_layers = 2\nheads = 2\nseq_len = 32\n"),
    "width 16.5": dict(model="[model]\nwidths = [16.5]\nn_layers = 2\nheads = 2\nseq_len = 32\n"),
    "aspect 0": dict(model="[model]\nwidths = [16]\naspect = 0\nheads = 2\nseq_len = 32\n"),
    "d_ff_ratio 0": dict(model="[model]\nwidths = [16]\nd_ff_ratio = 0\nn_layers = 2\nheads = 2\nseq_len = 32\n"),
    "d_ff_ratio inf": dict(model="[model]\nwidths = [16]\nd_ff_ratio = inf\nn_layers = 2\nheads = 2\nseq_len = 32\n"),
    "rank_ratio inf": dict(variants='[[variants]]\nstructure = "lowrank"\nrank_ratio = inf\n'),
    "rope_base 0": dict(model="[model]\nwidths = [16]\nn_layers = 2\nheads = 2\nseq_len = 32\nrope_base = 0\n"),
    "init_std nan": dict(model="[model]\nwidths = [16]\nn_layers = 2\nheads = 2\nseq_len = 32\ninit_std = nan\n"),
    "grad_clip nan": dict(optimizer="[optimizer]\nlr = 3e-3\nbatch_size = 8\ngrad_clip = nan\n"),
    "weight_decay inf": dict(optimizer="[optimizer]\nlr = 3e-3\nbatch_size = 8\nweight_decay = inf\n"),
    "beta nan": dict(optimizer="[optimizer]\nlr = 3e-3\nbatch_size = 8\nbetas = [nan, 0.95]\n"),
    "diverge_factor 0": dict(optimizer="[optimizer]\nlr = 3e-3\nbatch_size = 8\ndiverge_factor = 0\n"),
}


@pytest.mark.parametrize("case", sorted(NUMBERS))
def test_a_non_finite_or_zero_number_in_a_grid_is_refused_before_training(tmp_path, case):
    # before: tracebacks (OverflowError, ZeroDivisionError, TypeError), or silent training with lr = inf, width
    # 16.5 -> 16, rope_base 0, grad_clip nan, weight decay inf; init_std nan and beta nan failed mid-grid (exit 1)
    r = _cli("run", "--grid", _grid(tmp_path, **NUMBERS[case]), "--out", tmp_path / "out", "--quiet")
    _refused(r, "grid" if "rope" not in case and "diverge" not in case else "config")
    assert not (tmp_path / "out").exists()


DUPLICATES = {
    "variants": dict(variants='[[variants]]\nstructure = "dense"\n[[variants]]\nstructure = "dense"\n'),
    "same name": dict(
        variants='[[variants]]\nstructure = "dense"\n[[variants]]\nstructure = "dense"\n'
        'model = { activation = "relu" }\n'
    ),
    "widths": dict(model="[model]\nwidths = [16, 16]\nn_layers = 2\nheads = 2\nseq_len = 32\n"),
    "seeds": dict(text_edit=lambda t: t.replace("seeds = [0]", "seeds = [0, 0]")),
}


@pytest.mark.parametrize("case", sorted(DUPLICATES))
def test_duplicate_variants_widths_and_seeds_are_refused(tmp_path, case):
    # before: two identical runs (one file, trained twice) or two variants named "dense" whose points a fit mixes
    r = _cli("run", "--grid", _grid(tmp_path, **DUPLICATES[case]), "--out", tmp_path / "out", "--quiet")
    _refused(r, "grid")
    assert not (tmp_path / "out").exists()


SIZES = {
    "params": dict(model="[model]\nwidths = [1048576]\nn_layers = 64\nheads = 8\nseq_len = 32\n"),
    "vocab": dict(data=f'[data]\nsource = "{CORPUS}"\nval_fraction = 0.2\nvocab_size = 1000000000\n'),
    "runs": dict(text_edit=lambda t: t.replace("seeds = [0]", f"seeds = {list(range(10_001))}")),
    "eval points": dict(eval="[eval]\npoints = 100000\nval_tokens = 1024\n"),
}


@pytest.mark.parametrize("case", sorted(SIZES))
def test_sizes_and_counts_no_machine_could_train_are_refused_even_in_a_dry_run(tmp_path, case):
    # before: the dry run priced them (8.4e14 parameters, a 1e9 vocab, 10,001 runs, 100,000 evaluations)
    r = _cli("run", "--grid", _grid(tmp_path, **SIZES[case]), "--out", tmp_path / "out", "--dry-run")
    _refused(r, "more than")


def test_a_model_too_large_for_this_machine_is_refused_before_it_is_allocated(tmp_path, monkeypatch):
    from scalelab import flops
    from scalelab.run import grid as rungrid
    from scalelab.run import train

    grid = _grid(tmp_path)
    monkeypatch.setattr(rungrid, "device_memory", lambda device: (10_000, "this machine's"))
    monkeypatch.setattr(train, "train_run", lambda *a, **k: pytest.fail("a model was built"))
    r = _cli("run", "--grid", grid, "--out", tmp_path / "out", "--quiet")
    line = _refused(r, "GiB", "parameters")
    from scalelab.grid import Grid

    (run,) = Grid.load(grid).runs()
    assert f"{flops.param_counts(run.model).params:,} parameters" in line  # the exact count
    assert not (tmp_path / "out").exists() or not _files(tmp_path / "out")


# ---- CSV and Parquet inputs -----------------------------------------------------------------------------------
def _points() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for n in (1e7, 3e7, 1e8, 3e8, 1e9):
        for tpp in (5, 10, 20, 40, 80):
            d = n * tpp
            loss = (1.7 + 400 / n**0.34 + 410 / d**0.28) * np.exp(rng.normal(0, 0.005))
            rows.append(dict(group="g", run=f"r{len(rows)}", N=n, D=d, loss=loss))
    return pd.DataFrame(rows)


def _fit(path, out, *extra):
    return _cli("fit", path, "--bootstrap", "0", "--group-col", "group", "--out", out, *extra)


def _set(col, value, row=3):
    def edit(df):
        df[col] = df[col].astype(object)
        df.loc[row, col] = value
        return df

    return edit


CSVS = {
    "blank group": (lambda p: _set("group", np.nan)(_points()).to_csv(p, index=False), "blank"),
    "blank run": (lambda p: _set("run", "")(_points()).to_csv(p, index=False), "blank"),
    "duplicated column": (
        lambda p: open(p, "w").write(_points().to_csv(index=False).replace("group,run,N,D,loss", "group,run,N,N,loss")),
        "more than once",
    ),
    "semicolons": (lambda p: _points().to_csv(p, index=False, sep=";"), "comma-separated"),
    "tabs in a .csv": (lambda p: _points().to_csv(p, index=False, sep="\t"), "comma-separated"),
    "huge N": (lambda p: _set("N", 1e300)(_points()).to_csv(p, index=False), "units"),
    "huge loss": (lambda p: _set("loss", 1e300)(_points()).to_csv(p, index=False), "units"),
    "header only": (lambda p: open(p, "w").write("group,run,N,D,loss\n"), "no rows"),
    "true/false N": (lambda p: _points().assign(N=True).to_csv(p, index=False), "true/false"),
}


@pytest.mark.parametrize("case", sorted(CSVS))
def test_a_bad_csv_is_refused_naming_the_file_and_nothing_is_written(tmp_path, case):
    # before: blank group -> IndexError, blank run -> TypeError, a repeated column fitted its first copy under
    # "N.1", another delimiter was "missing columns", 1e300 fitted with overflow warnings, a header-only CSV and
    # true/false N wrote a fit file
    make, word = CSVS[case]
    p = tmp_path / "points.csv"
    make(p)
    out = tmp_path / "fits" / "x.json"
    line = _refused(_fit(p, out), word)
    assert str(p) in line
    assert not (tmp_path / "fits").exists()


def test_a_tsv_file_is_read_with_tabs_and_a_bom_is_ignored(tmp_path):
    ref, tsv, bom = tmp_path / "ref.csv", tmp_path / "p.tsv", tmp_path / "bom.csv"
    _points().to_csv(ref, index=False)
    _points().to_csv(tsv, index=False, sep="\t")
    bom.write_bytes(b"\xef\xbb\xbf" + ref.read_bytes())
    got = {}
    for p in (ref, tsv, bom):
        r = _fit(p, tmp_path / f"{p.stem}.json", "--json")
        assert r.exit_code == 0, r.output
        got[p.stem] = json.loads(r.stdout)["groups"]
    assert got["p"] == got["ref"] == got["bom"]


def _store_file(path, **changes):
    """A reduced run-store Parquet file (the columns `fit` reads) for 25 runs, with `changes` applied."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = _points().rename(columns={"N": "params", "D": "tokens", "loss": "val_loss", "group": "variant"})
    df = df.assign(run_id=df["run"], status="ok", final=True, flops=6 * df["params"] * df["tokens"])
    df = df.drop(columns=["run"])
    cols = {c: pa.array(df[c]) for c in df.columns}
    for k, v in changes.items():
        cols[k] = v(df)
    names = list(cols)
    arrays = list(cols.values())
    if "_dup" in changes:
        names = [n if n != "_dup" else "params" for n in names]
    pq.write_table(pa.Table.from_arrays(arrays, names=names), path)
    return path


PARQUETS = {
    "params as text": (dict(params=lambda df: __import__("pyarrow").array(df["params"].map(str))), "type"),
    "final as text": (dict(final=lambda df: __import__("pyarrow").array(["no"] * len(df))), "type"),
    "blank variant": (dict(variant=lambda df: __import__("pyarrow").array([""] + ["g"] * (len(df) - 1))), "blank"),
    # pyarrow itself refuses to read a repeated column (one line before, too): kept so that it stays one line
    "duplicated column": (dict(_dup=lambda df: __import__("pyarrow").array(df["params"])), "params"),
}


@pytest.mark.parametrize("case", sorted(PARQUETS))
def test_a_parquet_input_with_wrong_types_blanks_or_repeated_columns_is_refused(tmp_path, case):
    # before: params as text and final = "no" were fitted (final "no" is true), a blank variant was its own group,
    # a repeated column was read as one of its copies
    changes, word = PARQUETS[case]
    p = _store_file(tmp_path / "runs.parquet", **changes)
    out = tmp_path / "fits" / "x.json"
    _refused(_cli("fit", p, "--bootstrap", "0", "--out", out), word)
    assert not (tmp_path / "fits").exists()


def test_group_names_with_markup_print_as_they_are(tmp_path):
    # before: "[/x]" crashed the table (rich MarkupError) after the fit file was written
    p = tmp_path / "p.csv"
    _points().assign(group="[/x] [bold]g").to_csv(p, index=False)
    r = _fit(p, tmp_path / "x.json")
    assert r.exit_code == 0, r.output
    assert "[/x] [bold]g" in r.stdout


# ---- output paths -------------------------------------------------------------------------------------------
def _outputs(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    adir = tmp_path / "adir.json"
    adir.mkdir()
    csv = tmp_path / "p.csv"
    _points().to_csv(csv, index=False)
    return afile, adir, csv


def test_output_paths_that_are_folders_files_or_under_files_are_refused(tmp_path):
    # before: IsADirectoryError, FileExistsError and NotADirectoryError tracebacks
    afile, adir, csv = _outputs(tmp_path)
    _refused(_fit(csv, adir), "is a folder")
    _refused(_fit(csv, afile / "x.json"), "is a file")
    grid = write_grid(tmp_path)
    _refused(_cli("run", "--grid", grid, "--out", afile, "--quiet"), "is a file")
    _refused(_cli("run", "--grid", grid, "--out", afile / "runs", "--quiet"), "is a file")
    _refused(_cli("data", "prepare", CORPUS, "--out", afile, "-q"), "is a file")
    assert afile.read_text() == "x" and not list(adir.iterdir())
    assert set(os.listdir(tmp_path)) - {"cache"} == {"adir.json", "afile", "p.csv", "t.toml"}


def test_emit_grid_into_a_folder_is_refused_before_planning(tmp_path):
    afile, adir, csv = _outputs(tmp_path)
    fit = tmp_path / "f.json"
    assert _cli("fit", csv, "--bootstrap", "20", "--group-col", "group", "--out", fit).exit_code == 0
    _refused(_cli("plan", "--fit", fit, "--flops", "1e21", "--emit-grid", adir), "is a folder")
    _refused(_cli("plan", "--fit", fit, "--flops", "1e21", "--emit-grid", afile / "g.toml"), "is a file")
    _refused(_cli("plan", "--fit", fit, "--sweep", "1e19:1e23", "--sweep-points", "1001"), "between 1 and 1000")
    _refused(_cli("plan", "--fit", fit, "--sweep", "1e19:inf"), "finite")


def test_a_read_only_output_folder_is_refused(tmp_path, monkeypatch):
    # root bypasses file modes, so "not writable" is what os.access says; before: the command wrote anyway
    afile, adir, csv = _outputs(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p).startswith(str(ro)) else real(p, mode))
    _refused(_fit(csv, ro / "x.json"), "not writable")
    _refused(_cli("plot", csv, "--out", ro), "not writable")
    _refused(_cli("run", "--grid", write_grid(tmp_path), "--out", ro, "--quiet"), "not writable")
    _refused(_cli("data", "prepare", CORPUS, "--out", ro, "-q"), "not writable")
    assert not list(ro.iterdir())


def test_a_write_refused_by_the_system_is_one_line(tmp_path, monkeypatch):
    # permission lost between the check and the write (or a read-only mount): before, a PermissionError traceback
    afile, adir, csv = _outputs(tmp_path)

    def deny(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", deny)
    line = _refused(_fit(csv, tmp_path / "out" / "x.json"), "permission denied")
    assert str(tmp_path / "out") in line and not _files(tmp_path / "out")


# ---- data prepare ---------------------------------------------------------------------------------------------
def _binary(p):
    p.write_bytes(bytes(range(256)) * 20)
    return p


PREPARE = {
    "empty file": (lambda d: (d / "empty.txt").write_text("") and None or d / "empty.txt", "too few"),
    "binary file": (lambda d: _binary(d / "blob.dat"), "not a text file"),
    "folder with a binary file": (
        lambda d: (d / "docs").mkdir() or _binary(d / "docs" / "a.dat") and d / "docs",
        "not a text file",
    ),
    "empty jsonl": (lambda d: (d / "e.jsonl").write_text('{"text": ""}\n') and d / "e.jsonl", "too few"),
}


@pytest.mark.parametrize("case", sorted(PREPARE))
def test_data_prepare_refuses_sources_with_no_text(tmp_path, case):
    # before: written as a corpus of 0 tokens (empty file, empty documents) or of binary noise
    make, word = PREPARE[case]
    src = make(tmp_path)
    out = tmp_path / "corpus"
    _refused(_cli("data", "prepare", src, "--out", out, "-q"), word)
    assert not out.exists()


@pytest.mark.parametrize("content", ["", '{"a": 1}', "not json"])
def test_data_prepare_refuses_a_tokenizer_file_that_is_not_one(tmp_path, content):
    pytest.importorskip("tokenizers")
    tok = tmp_path / "tokenizer.json"
    tok.write_text(content)
    out = tmp_path / "corpus"
    _refused(_cli("data", "prepare", CORPUS, "--out", out, "--tokenizer", tok, "-q"), "tokenizer")
    assert not out.exists()


# ---- status ---------------------------------------------------------------------------------------------------
def test_status_on_a_folder_that_is_not_a_run_store_is_refused(tmp_path):
    # before: an empty table titled "run store ..."
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    _refused(_cli("status", tmp_path), "not a run store")


NOTES = {
    "a list": "[1, 2]",
    "no run_id": '{"state": "running"}',
    "wrong types": '{"run_id": ["a"], "state": 5, "grid": {"x": 1}, "d_model": "big", "pid": "x", "time": "now"}',
    "markup": '{"run_id": "abc", "state": "failed", "grid": "[/x]", "variant": "[bold]v", "error": "[red]boom"}',
}


@pytest.mark.parametrize("case", sorted(NOTES))
def test_status_reads_malformed_worker_notes_and_prints_names_as_they_are(tmp_path, case):
    # before: AttributeError, KeyError, TypeError (unhashable) or rich MarkupError tracebacks
    store = tmp_path / "runs"
    (store / ".status").mkdir(parents=True)
    (store / ".status" / "abc.json").write_text(NOTES[case])
    r = _cli("status", store, "--runs")
    assert r.exit_code == 0, (r.output, r.exception)
    if case == "markup":
        assert "[/x]" in r.stdout and "[bold]v" in r.stdout and "[red]boom" in r.stdout
    r = _cli("status", store, "--json")
    ids = [e["run_id"] for e in json.loads(r.stdout)["runs"]]
    assert r.exit_code == 0 and ids == ([] if case == "a list" else ["abc"])  # a note that is not an object: skipped


# ---- faults: a full disk, temp files of killed writes -----------------------------------------------------------
def _two_runs(tmp_path):
    return write_grid(
        tmp_path,
        model="[model]\nwidths = [16, 24]\nn_layers = 2\nheads = 2\nseq_len = 32\n",
        budgets="[budgets]\ntokens = [2560]\n",
    )


def test_a_full_disk_is_named_in_one_line_and_keeps_the_finished_run(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    grid, out = _two_runs(tmp_path), tmp_path / "runs"
    real, calls = pq.write_table, []

    def second_fills_the_disk(table, where, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            where.write(b"PAR1 half a file")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, where, *a, **k)

    monkeypatch.setattr(pq, "write_table", second_fills_the_disk)
    r = _cli("run", "--grid", grid, "--out", out, "--quiet", "--threads", "1")
    _refused(r, "disk is full")  # before: exit 1, "1 of 2 run(s) failed: ... OSError: [Errno 28] ..."
    (first,) = sorted(out.glob("*.parquet"))
    rows = pd.read_parquet(first)
    assert rows["final"].sum() == 1 and not [f for f in _files(out) if f.endswith(".tmp")]
    stamp = (first.stat().st_mtime_ns, first.read_bytes())
    monkeypatch.setattr(pq, "write_table", real)  # space freed: the rerun trains the other run only
    r = _cli("run", "--grid", grid, "--out", out, "--quiet", "--threads", "1")
    assert r.exit_code == 0, r.output
    assert len(list(out.glob("*.parquet"))) == 2 and (first.stat().st_mtime_ns, first.read_bytes()) == stamp


def test_the_next_run_removes_the_temp_files_of_killed_writes(tmp_path):
    from scalelab.grid import Grid
    from scalelab.run import layout

    grid, out = _two_runs(tmp_path), tmp_path / "runs"
    a, b = Grid.load(grid).runs()
    stale = [
        out / f".{os.path.basename(layout.run_path(out, a))}.0123abcd.tmp",
        out / ".ckpt" / f".{a.run_id}.pt.89abcdef.tmp",
        out / ".status" / f".{b.run_id}.json.deadbeef.tmp",
    ]
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half a file of a killed write")
    keep = out / "notes.txt.tmp"  # not a scalelab temp name: left alone
    keep.write_text("mine")
    r = _cli("run", "--grid", grid, "--out", out, "--quiet", "--threads", "1")
    assert r.exit_code == 0, r.output
    assert not any(p.exists() for p in stale) and keep.exists()
    assert len(list(out.glob("*.parquet"))) == 2


def test_a_crashed_run_whose_error_holds_markup_is_reported_as_it_is(tmp_path, monkeypatch):
    # before: rich raised MarkupError while printing "run ... failed (...[/x]...)": a traceback, no exit-1 line
    from scalelab.run import one

    def crash(run, *a, **kw):
        raise RuntimeError("bad value [/x] in [bold]")

    monkeypatch.setattr(one, "train_one", crash)
    r = _cli("run", "--grid", write_grid(tmp_path), "--out", tmp_path / "out")
    assert r.exit_code == 1, (r.output, r.exception)
    assert "bad value [/x] in [bold]" in r.stderr.strip().splitlines()[-1]
