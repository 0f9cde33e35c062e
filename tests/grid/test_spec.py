"""Grid files are parsed once into typed tables; runs() expands them once."""

import pytest
from grids import TINY, write_grid

from scalelab.errors import ScalelabError
from scalelab.grid import Grid
from scalelab.grid.spec import VariantSpec, parse


def test_the_spec_is_typed_and_parsed_once():
    g = Grid.load(TINY)
    s = g.parsed
    assert s.model.widths == (16, 32) and s.model.n_layers == 2 and s.model.heads == 2
    assert s.variants[1] == VariantSpec(index=2, structure="lowrank", rank_ratio=0.25)
    assert s.schedule == "wsd" and s.budgets.tokens == (6400, 12800)
    assert g.parsed is s and g.runs() == g.runs() and g.runs() is not g.runs()  # cached, copied out
    assert g.spec["name"] == "tiny" and g.data_config() == s.data


@pytest.mark.parametrize(
    "raw, needle",
    [
        ({"model": {"widths": [16], "depth": 2}}, "unknown key(s) depth in [model]"),
        ({"variants": [{"structure": "sparse"}]}, "unknown variant structure 'sparse'"),
        ({"variants": [{"structure": "lowrank", "guide": 3}]}, "guide must be true/false or a table"),
        ({"budgets": {"tokens": [1], "tokens_per_param": [2]}}, "exactly one of tokens"),
        ({"budgets": {"tokens": [1]}, "optimizer": {"lr": 1e-3, "lr_law": {}}}, "give one of lr, lr_table, lr_law"),
        ({"budgets": {"tokens": [1]}, "optimizer": {"lr_law": {"base": 1, "width": 2}}}, "missing 'exponent'"),
    ],
)
def test_shape_free_errors_come_from_the_parse(raw, needle):
    raw = {"budgets": {"tokens": [1]}, **raw}
    with pytest.raises(ScalelabError) as e:
        parse(raw)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_registered_kind_is_a_grid_variant(tmp_path):
    p = write_grid(tmp_path, variants='[[variants]]\nstructure = "blockdense"\nblocks = 2\nrank = 8\n')
    assert {r.variant for r in Grid.load(p).runs()} == {"blockdense-b2r8"}
