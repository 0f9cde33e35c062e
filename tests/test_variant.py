"""One variant grammar: names and parser are inverse for every registered kind; grid tables, inspect's
flags and models give the variants (and names) they always had."""

import itertools

import pytest

from scalelab import structures, variant
from scalelab.config import GuideConfig, ModelConfig
from scalelab.errors import ScalelabError
from scalelab.structures import StructureConfig
from scalelab.variant import Variant


def _ffns(kind):
    """Every size combination over a few values, and kept shares, of one kind."""
    k = structures.get(kind)
    values = {"rank": (1, 4, 64, 384), "blocks": (1, 2, 16)}
    for combo in itertools.product(*(values[f] for f in k.fields)):
        yield StructureConfig(kind, **dict(zip(k.fields, combo)))
    if k.fields:
        for percent in (1, 32, 57, 63, 99):
            yield StructureConfig(kind, fraction=percent / 100)


def _variants(kind):
    for ffn in _ffns(kind):
        for attn_rank, kv_heads in ((None, None), (16, None), (None, 2), (16, 2)):
            for guide, mup in itertools.product((False, True), repeat=2):
                yield Variant(ffn=ffn, attn_rank=attn_rank, kv_heads=kv_heads, guide=guide, mup=mup)


@pytest.mark.parametrize("kind", structures.names())
def test_parse_inverts_name_for_every_registered_kind(kind):
    seen = set()
    for v in _variants(kind):
        assert variant.parse(variant.name(v)) == v, v
        seen.add(v.name)
    assert len(seen) == len(list(_variants(kind)))  # distinct variants, distinct names


def test_names_are_the_ones_runs_always_had():
    assert Variant().name == "dense"
    assert Variant(StructureConfig("lowrank", rank=192, fraction=0.32)).name == "lowrank-32"
    assert Variant(StructureConfig("blockdense", blocks=4, rank=64), kv_heads=2, guide=True).name == (
        "blockdense-b4r64+gqa-kv2+sg"
    )
    assert Variant(attn_rank=64, mup=True).name == "lpa-r64+mup"
    # parts in any order, spaces around them ignored
    assert variant.parse(" sg + gqa-kv2+lowrank-r8") == variant.parse("lowrank-r8+gqa-kv2+sg")
    assert variant.parse("dense+lpa-r8") == variant.parse("lpa-r8")


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(), "dense"),
        (dict(ffn=StructureConfig("lowrank", rank=8)), "lowrank-r8"),
        (dict(ffn=StructureConfig("lowrank", rank=8, blocks=3)), "lowrank-r8"),  # sizes it does not take
        (dict(ffn=StructureConfig("blockshuffle", blocks=2, fraction=0.625)), "blockshuffle-62"),
        (dict(n_kv_heads=2), "gqa-kv2"),
        (dict(attn="lpa", attn_rank=8, n_kv_heads=2), "lpa-r8"),  # kv heads are not named under LPA
        (dict(ffn=StructureConfig("lowrank", rank=8), guide=GuideConfig(), param="mup"), "lowrank-r8+sg+mup"),
    ],
)
def test_a_model_is_named_by_its_variant(kw, name):
    cfg = ModelConfig(d_model=32, n_heads=4, **kw)
    assert cfg.variant == variant.of_model(cfg).name == name


def test_bad_names_are_one_line_and_say_the_grammar():
    for bad, needle in [
        ("lowrank", "part 'lowrank' not understood: use dense, lowrank-rR"),
        ("lowrank-r8+monarch-3", "part 'monarch-3' not understood"),
        ("lowrank-r8+blockshuffle-b2", "names its ffn twice"),
        ("gqa-kv2+gqa-kv4", "names its kv heads twice"),
        ("lpa-r0", "must be positive"),
        ("lowrank-r0", "needs a positive rank"),
        ("", "part '' not understood"),
    ]:
        with pytest.raises(ScalelabError, match=needle) as e:
            variant.parse(bad)
        assert "\n" not in str(e.value) and "lpa-rR, gqa-kvK, sg, mup" in variant.grammar()
    assert variant.is_dense("dense+mup") and not variant.is_dense("lpa-r8") and not variant.is_dense("seed-x")


def test_a_kept_share_picks_its_sizes_at_the_shape():
    v = variant.parse("lowrank-63")
    assert v.ffn == StructureConfig("lowrank", fraction=0.63)
    assert v.structure(768, 3072) == StructureConfig("lowrank", rank=384, fraction=0.63)
    assert variant.parse("lowrank-r8").structure(768, 3072) == StructureConfig("lowrank", rank=8)


def test_from_table_resolves_ratios_at_the_width():
    t = {"structure": "lowrank", "rank_ratio": 0.25, "attn_rank_ratio": 0.5, "kv_heads": 2, "guide": GuideConfig()}
    v = variant.from_table(t, 64, 256)
    assert v.ffn.rank == 16 and v.attn_rank == 32 and v.kv_heads == 2 and v.guide
    assert v.ffn.fraction == round(structures.ffn_fraction(StructureConfig("lowrank", rank=16), 64, 256), 2)
    assert variant.from_table({"structure": "blockdense", "fraction": 0.63}, 768, 3072).ffn.name == "blockdense-63"
    assert variant.from_table({"structure": "dense", "rank": 3}, 64, 256) == Variant()


def test_from_flags_is_the_cli_grammar():
    assert variant.from_flags("lowrank", fraction=0.63).structure(768, 3072) == StructureConfig(
        "lowrank", rank=384, fraction=0.63
    )
    assert variant.from_flags("blockdense", blocks=2, rank=8).ffn == StructureConfig("blockdense", rank=8, blocks=2)
    for kw, needle in [
        (dict(ffn="lowrank", blocks=2), "lowrank takes --rank, not --blocks"),
        (dict(ffn="lowrank"), "needs its size"),
        (dict(ffn="dense", rank=2), "need a structured --ffn"),
        (dict(ffn="dense", fraction=0.5), "--ffn-fraction needs a structured --ffn"),
        (dict(ffn="lowrank", rank=2, fraction=0.5), "not both"),
        (dict(ffn="lowrank", fraction=1.5), r"must be in \(0, 1\)"),
        (dict(ffn="conv"), "unknown structure 'conv'"),
    ]:
        with pytest.raises(ScalelabError, match=needle):
            variant.from_flags(**kw)
