"""Fit-file integrity: the JSON records its samples file's sha256 and readers refuse samples of another fit;
a write killed between the two files never leaves a pair that loads; temp files of killed writes are
removed by the next write; hand-edited or torn fit files are refused in one line (exit 2) by every command
that reads fits (plan, plot, check)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time

import pytest
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.errors import ScalelabError
from scalelab.fit import fit_laws, load_fit, results

from .conftest import synthetic

OPTS = dict(n_col="N", d_col="D", loss_col="loss", run_col="run", bootstrap=30)


@pytest.fixture(scope="module")
def two_fits(tmp_path_factory):
    """Two fits of the same points with different bootstrap seeds, written side by side, and the CSV."""
    d = tmp_path_factory.mktemp("fits")
    df = synthetic(seed=3)
    df.to_csv(d / "points.csv", index=False)
    a = fit_laws(df, **OPTS, seed=1).to_json(d / "a.json")
    b = fit_laws(df, **OPTS, seed=2).to_json(d / "b.json")
    return d, a, b


def _copy(src, dst_dir, name="f"):
    """A fit file and its samples copied under a new name (the JSON's "samples" key renamed to match)."""
    d = json.loads(src.read_text())
    shutil.copy(src.parent / d["samples"], dst_dir / f"{name}.samples.parquet")
    d["samples"] = f"{name}.samples.parquet"
    out = dst_dir / f"{name}.json"
    out.write_text(json.dumps(d))
    return out


def test_the_json_records_the_samples_hash_and_a_mismatch_is_refused(two_fits, tmp_path):
    _, a, b = two_fits
    d = json.loads(a.read_text())
    sp = a.parent / d["samples"]
    assert d["samples_sha256"] == hashlib.sha256(sp.read_bytes()).hexdigest()
    f = _copy(a, tmp_path)
    assert len(load_fit(f)["all"].sample_arrays()["E"]) == 30
    shutil.copy(b.parent / "b.samples.parquet", tmp_path / "f.samples.parquet")  # another fit's samples
    with pytest.raises(
        ScalelabError, match=r"f\.samples\.parquet: bootstrap samples do not belong .* re-run `scalelab fit`"
    ):
        load_fit(f)


def test_a_fit_file_without_a_hash_loads_unchecked(two_fits, tmp_path):
    """Files written before the hash was recorded: no hash, no check (docs/interfaces.md)."""
    _, a, _ = two_fits
    f = _copy(a, tmp_path)
    d = json.loads(f.read_text())
    d.pop("samples_sha256")
    f.write_text(json.dumps(d))
    back = load_fit(f)
    assert back.samples_note == "" and len(back["all"].sample_arrays()["E"]) == 30


def test_a_write_killed_between_the_two_files_leaves_no_pair_that_loads(two_fits, tmp_path, monkeypatch):
    """New samples written, the process killed before the JSON: the old JSON refuses the new samples (it
    never reads them as its own); the next write leaves a consistent pair."""
    _, a, _ = two_fits
    f = _copy(a, tmp_path)
    old = load_fit(f)
    new = fit_laws(synthetic(seed=3), **OPTS, seed=9)
    real = results.atomic_write_bytes

    def killed_at_json(path, data):
        if str(path).endswith(".json"):
            raise KeyboardInterrupt
        real(path, data)

    monkeypatch.setattr(results, "atomic_write_bytes", killed_at_json)
    with pytest.raises(KeyboardInterrupt):
        new.to_json(f)
    monkeypatch.undo()
    assert json.loads(f.read_text())["created"] == old.info.created  # the old JSON is intact
    with pytest.raises(ScalelabError, match="do not belong"):
        load_fit(f)
    new.to_json(f)
    back = load_fit(f)
    assert back["all"].sample_arrays()["E"] == pytest.approx(new["all"].sample_arrays()["E"])
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_temp_files_of_killed_writes_are_removed_by_the_next_write(two_fits, tmp_path):
    _, a, _ = two_fits
    fit = load_fit(a)
    stale = [tmp_path / ".f.json.0123abcd.tmp", tmp_path / ".f.samples.parquet.deadbeef.tmp"]
    fresh = tmp_path / ".f.json.feedf00d.tmp"  # a concurrent writer's, seconds old: left alone
    other = [tmp_path / ".f.json.notatemp.tmp", tmp_path / ".g.json.0123abcd.tmp"]
    for p in [*stale, fresh, *other]:
        p.write_bytes(b"half a file")
    for p in [*stale, *other]:
        t = time.time() - 3600
        os.utime(p, (t, t))
    fit.to_json(tmp_path / "f.json")
    assert not any(p.exists() for p in stale) and fresh.exists() and all(p.exists() for p in other)
    assert load_fit(tmp_path / "f.json")["all"].params == fit["all"].params


def _edit(path, change):
    d = json.loads(path.read_text())
    change(d)
    path.write_text(json.dumps(d))


EDITS = {
    "missing parameter": (lambda d: d["groups"]["all"]["params"].pop("alpha"), "lacks parameter.* alpha"),
    "non-numeric parameter": (
        lambda d: d["groups"]["all"]["params"].update(beta="0.3x"),
        "parameter beta is '0.3x', not a finite number",
    ),
    "null parameter": (lambda d: d["groups"]["all"]["params"].update(E=None), "parameter E is None"),
    "interval not a pair": (lambda d: d["groups"]["all"]["conf_int"].update(E="wide"), "conf_int E"),
    "derived not a number": (lambda d: d["groups"]["all"]["derived"].update(a=[1]), "derived a"),
    "level not a number": (lambda d: d["bootstrap"].update(level="95%"), "bootstrap level"),
    "runs not a list": (lambda d: d["groups"]["all"].update(runs="r1"), "'runs' is not a list"),
}


@pytest.mark.parametrize("kind", list(EDITS))
def test_hand_edited_fit_files_are_refused_in_one_line(two_fits, tmp_path, kind):
    _, a, _ = two_fits
    f = _copy(a, tmp_path)
    change, msg = EDITS[kind]
    _edit(f, change)
    with pytest.raises(ScalelabError, match=msg) as e:
        load_fit(f)
    assert "edited or torn" in str(e.value) and "re-run `scalelab fit`" in str(e.value)


def _bad_files(a, folder):
    """One fit file per kind of damage, each beside a copy of its samples."""
    out = {}
    for kind, change in (
        ("missing", lambda d: d["groups"]["all"]["params"].pop("B")),
        ("non-numeric", lambda d: d["groups"]["all"]["params"].update(alpha="abc")),
    ):
        out[kind] = _copy(a, folder, kind)
        _edit(out[kind], change)
    out["malformed"] = _copy(a, folder, "malformed")
    out["malformed"].write_text(out["malformed"].read_text()[:-40])  # torn mid-write
    out["mismatch"] = _copy(a, folder, "mismatch")
    shutil.copy(a.parent / "b.samples.parquet", folder / "mismatch.samples.parquet")
    return out


@pytest.mark.parametrize("command", ["plan", "plot", "check"])
def test_every_command_that_reads_fits_refuses_a_damaged_one_in_one_line(two_fits, tmp_path, command):
    d, a, _ = two_fits
    runner = CliRunner()
    for kind, f in _bad_files(a, tmp_path).items():
        args = {
            "plan": ["plan", "--fit", str(f), "--flops", "1e20"],
            "plot": ["plot", "--fit", str(f), "--out", str(tmp_path / "figs")],
            "check": ["check", "--fit", str(f), str(d / "points.csv")],
        }[command]
        r = runner.invoke(app, args)
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and str(f.name[:-5]) in lines[0], (kind, r.output)
        assert "scalelab fit" in lines[0], (kind, lines[0])
    assert not (tmp_path / "figs").exists() or not any((tmp_path / "figs").iterdir())
