"""FitSpec from a TOML file (`scalelab fit --spec`): its fields, and one-line refusals naming the key."""

from __future__ import annotations

import pytest

from scalelab.errors import ScalelabError
from scalelab.fit.spec import FitSpec, read_toml


def write(tmp_path, text: str):
    p = tmp_path / "spec.toml"
    p.write_text(text)
    return p


def test_from_toml_sets_the_fields_it_names_and_keeps_the_defaults(tmp_path):
    p = write(
        tmp_path,
        'n_col = "N"\nd_col = "D"\nby = ["variant", "width"]\nbootstrap = 40\nlevel = 0.9\ndelta = 1\n'
        'compare = [["dense", "lowrank"]]\nat_flops = [1e21, 1e22]\nfix = {E = 1.69}\nshare_e = true\n',
    )
    s = FitSpec.from_toml(p)
    assert (s.n_col, s.d_col, s.by, s.bootstrap, s.level, s.delta) == ("N", "D", ("variant", "width"), 40, 0.9, 1)
    assert s.compare == (("dense", "lowrank"),) and s.at_flops == (1e21, 1e22) and s.fixed == {"E": 1.69}
    assert s.share_e and s.seed == FitSpec().seed and s.loss == FitSpec().loss


def test_unknown_key_names_it_and_the_known_ones(tmp_path):
    with pytest.raises(ScalelabError) as e:
        read_toml(write(tmp_path, "bootstrap = 10\nboostrap = 5\n"))
    msg = str(e.value)
    assert "unknown key 'boostrap'" in msg and "bootstrap" in msg and "n_col" in msg and "\n" not in msg


@pytest.mark.parametrize(
    "text, key",
    [
        ('bootstrap = "many"', "bootstrap"),
        ("share_e = 1", "share_e"),
        ("approach = true", "approach"),
        ('at_flops = ["1e21"]', "at_flops"),
        ('compare = ["dense,lowrank"]', "compare"),
        ("by = [1, 2]", "by"),
    ],
)
def test_wrong_types_are_refused_naming_the_key(tmp_path, text, key):
    with pytest.raises(ScalelabError, match=f"{key} = .* should be"):
        read_toml(write(tmp_path, text))


def test_missing_file_and_bad_toml_are_one_line_errors(tmp_path):
    with pytest.raises(ScalelabError, match="no such file"):
        read_toml(tmp_path / "nope.toml")
    with pytest.raises(ScalelabError, match="not valid TOML"):
        read_toml(write(tmp_path, "bootstrap = = 3"))


@pytest.mark.parametrize(
    "kw, needle",
    [({"seed": -1}, "--seed -1: give a non-negative integer"), ({"fix": [1, 2]}, "fix 1: give NAME=VALUE")],
)
def test_a_negative_seed_or_a_fix_list_of_numbers_is_refused(kw, needle):
    # both reached numpy or a tuple() as a traceback
    with pytest.raises(ScalelabError, match=needle):
        FitSpec(**kw)


def test_fix_as_pairs_or_strings_reads_the_same():
    assert FitSpec(fix=[("E", 1.69)]).fix == FitSpec(fix=["E=1.69"]).fix == FitSpec(fix={"E": 1.69}).fix
