"""Model descriptions and logged configs build the ModelConfig scalelab counts params and FLOPs of."""

from __future__ import annotations

import pytest

from scalelab.config import ModelConfig, StructureConfig
from scalelab.errors import ScalelabError
from scalelab.ingest import model


def test_a_description_builds_the_model_with_its_structure():
    cfg = model.parse("d_model=64,n_layers=3,n_heads=4,seq_len=128,vocab_size=512,structure=blockdense,blocks=2,rank=8")
    assert cfg == ModelConfig(
        d_model=64, n_layers=3, n_heads=4, seq_len=128, vocab_size=512, ffn=StructureConfig("blockdense", 8, 2)
    )
    assert model.parse("d_model=64,n_layers=2,n_heads=4,attn=lpa,attn_rank=16,bias=false").variant == "lpa-r16"


def test_a_logged_config_in_nanogpt_or_scalelab_names():
    nano = {"n_embd": 48, "n_layer": 2, "n_head": 3, "block_size": 64, "vocab_size": 100, "dropout": 0.0}
    assert model.from_config(nano) == ModelConfig(d_model=48, n_layers=2, n_heads=3, seq_len=64, vocab_size=100)
    own = {"model": ModelConfig(d_model=32, n_layers=2, n_heads=2, ffn=StructureConfig("lowrank", 4)).to_dict()}
    assert model.from_config(own) == ModelConfig(d_model=32, n_layers=2, n_heads=2, ffn=StructureConfig("lowrank", 4))
    assert model.from_config({"lr": 3e-4, "d_model": 64}) is None  # not enough to build a model


@pytest.mark.parametrize(
    "text, words",
    [
        ("d_model=64,n_layers", "not KEY=VALUE"),
        ("d_model=64.5", "not a whole number"),
        ("d_model=64,bias=maybe", "not true or false"),
        ("d_model=64,structure=lowrank", "cannot be built"),
        ("d_model=64,n_heads=4,attn=lpa", "cannot be built"),
    ],
)
def test_descriptions_that_cannot_be_built_say_why(text, words):
    with pytest.raises(ScalelabError, match=words):
        model.parse(text)
