"""The one shape rule, used by grid files and by the planner."""

from scalelab import shapes


def test_depth_rules():
    assert shapes.n_layers(64, fixed=3, aspect=16) == 3
    assert shapes.n_layers(64, aspect=16) == 4 and shapes.n_layers(8, aspect=16) == 1
    assert shapes.n_layers(1024, coef=1 / 64, exp=1.0) == 16
    assert shapes.n_layers(64) == 2 and shapes.n_layers(64, default=5) == 5


def test_heads_keep_the_head_size_or_the_nearest_even_one_that_divides():
    assert shapes.n_heads(256, 64) == 4
    assert shapes.n_heads(200, 64) == 4  # 50-wide heads
    for w, hd in [(200, 64), (120, 64), (96, 64), (48, 32)]:
        h = shapes.n_heads(w, hd)
        assert w % h == 0 and (w // h) % 2 == 0


def test_widths_and_kv_heads():
    assert shapes.ffn_width(96, 4.0) == 384
    assert shapes.ffn_width(96, 8 / 3, multiple=32) == 256 and shapes.ffn_width(96, 2.5) == 240
    assert shapes.attn_width(512, 0.5, 64) == 256
    assert shapes.kv_heads(8, 4) == 2 and shapes.kv_heads(6, 4) == 1 and shapes.kv_heads(12, 8) == 1
