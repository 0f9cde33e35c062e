"""The structure table: one entry per kind, seen by every user; names and parser are inverse."""

import itertools

import pytest

from scalelab import structures
from scalelab.errors import ScalelabError
from scalelab.structures import StructureConfig


def _settings(kind):
    """Many explicit settings of a kind (every size combination over a few values)."""
    k = structures.get(kind)
    values = {"rank": (1, 4, 8, 64, 384), "blocks": (1, 2, 4, 16)}
    for combo in itertools.product(*(values[f] for f in k.fields)):
        yield StructureConfig(kind, **dict(zip(k.fields, combo)))


@pytest.mark.parametrize("kind", structures.names())
def test_parse_inverts_the_name_for_every_kind(kind):
    for s in _settings(kind):
        assert structures.parse(s.name) == s, s
        assert structures.is_name(s.name)


@pytest.mark.parametrize("kind", [k for k in structures.names() if structures.get(k).fraction_rule])
@pytest.mark.parametrize("d, f", [(64, 256), (768, 3072), (1024, 4096), (96, 256), (512, 1365 + 1)])
@pytest.mark.parametrize("fraction", [0.63, 0.5, 0.32, 0.2])
def test_kept_share_names_parse_back_at_the_same_shape(kind, d, f, fraction):
    try:
        s = structures.for_fraction(kind, d, f, fraction)
    except ScalelabError:
        return  # no setting of this kind fits the shape
    assert s.name == f"{kind}-{round(fraction * 100)}"
    assert structures.parse(s.name, d, f) == s


def test_names_of_the_seed_kinds_are_unchanged():
    assert StructureConfig("dense").name == "dense"
    assert StructureConfig("lowrank", rank=64).name == "lowrank-r64"
    assert StructureConfig("blockdense", blocks=4, rank=64).name == "blockdense-b4r64"
    assert StructureConfig("blockshuffle", blocks=4).name == "blockshuffle-b4"
    assert StructureConfig("lowrank", rank=192, fraction=0.32).name == "lowrank-32"


def test_counts_and_checks_per_kind():
    assert structures.params(StructureConfig("lowrank", rank=4), 16, 32) == 4 * 48
    assert structures.params(StructureConfig("blockdense", blocks=2, rank=8), 16, 32) == 8 * 8 + 8 * 32
    assert structures.params(StructureConfig("blockshuffle", blocks=4), 16, 32) == 16 * 48 // 4
    for kind in structures.names():
        for s in _settings(kind):
            fwd = structures.forward_flops(s, 64, 256)
            assert fwd == 2 * structures.params(s, 64, 256) or structures.get(kind).flops
    with pytest.raises(ScalelabError, match="exceeds min"):
        StructureConfig("lowrank", rank=99).check_shape(16, 32)
    with pytest.raises(ScalelabError, match="needs a positive rank"):
        StructureConfig("lowrank").validate()
    with pytest.raises(ScalelabError, match="unknown structure 'conv'"):
        StructureConfig("conv").validate()


def test_bad_names_say_the_grammar():
    for bad in ("lowrank", "lowrank-x5", "monarch-r4", "dense-r4", "blockdense-r4b2"):
        assert not structures.is_name(bad)
        with pytest.raises(ScalelabError, match="not understood"):
            structures.parse(bad)
    with pytest.raises(ScalelabError, match="FFN shape"):
        structures.parse("lowrank-32")


def test_a_kind_registers_once_and_is_then_seen_everywhere():
    with pytest.raises(ValueError, match="twice"):
        structures.register(structures.Kind("lowrank", fields=("rank",), params=lambda s, n, m: 0))
    with pytest.raises(ValueError, match="unknown size field"):
        structures.register(structures.Kind("odd", fields=("width",), params=lambda s, n, m: 0))


def test_every_kind_has_a_torch_module():
    pytest.importorskip("torch")
    from scalelab.model.linear import MODULES

    assert set(MODULES) == set(structures.names())
