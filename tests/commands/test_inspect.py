"""`scalelab inspect`: JSON numbers equal scalelab.flops; bad input is one line and exit 2."""

import json

import pytest
from typer.testing import CliRunner

from scalelab import flops
from scalelab.cli import app
from scalelab.config import GuideConfig, StructureConfig
from scalelab.presets import get_preset

runner = CliRunner()


def _json(*args):
    res = runner.invoke(app, ["inspect", *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_issue_example_json():
    out = _json("--preset", "seed-xl", "--ffn", "lowrank", "--rank", "1024", "--tokens", "25.5e9")
    cfg = get_preset("seed-xl").replace(ffn=StructureConfig("lowrank", rank=1024))
    pc = flops.param_counts(cfg)
    assert out["params"] == pc.params and out["params_nonembed"] == pc.params_nonembed
    assert out["ffn_params"] == pc.ffn_params
    assert out["flops_per_token"] == flops.flops_per_token(cfg)
    assert out["flops_6n_per_token"] == 6 * pc.params_nonembed
    assert out["train_flops"] == pytest.approx(flops.flops_per_token(cfg) * 25.5e9)
    # independent arithmetic: 24 blocks; block 0 FFN dense, 23 LowRank(1024) pairs; d 2048, V 32000
    d, L, f, r, V = 2048, 24, 8192, 1024, 32000
    attn = 4 * d * d + 4 * d
    ffn_dense, ffn_lr = 2 * d * f + f + d, 2 * r * (d + f) + f + d
    assert out["params"] == V * d + L * (attn + 4 * d) + ffn_dense + (L - 1) * ffn_lr + 2 * d
    fwd = 2 * (L * 4 * d * d + 2 * d * f + (L - 1) * 2 * r * (d + f) + d * V) + L * 4 * 1024 * d
    assert out["flops_per_token"] == 3 * fwd


def test_fraction_attention_and_guide_options():
    out = _json(
        "--preset",
        "seed-m",
        "--ffn",
        "blockdense",
        "--ffn-fraction",
        "63",
        "--attn",
        "gqa",
        "--kv-heads",
        "4",
        "--d-attn",
        "512",
        "--guided",
        "--tokens",
        "1B",
    )
    cfg = get_preset("seed-m").replace(
        ffn=StructureConfig("blockdense", rank=768, blocks=4, fraction=0.63),
        attn="gqa",
        n_kv_heads=4,
        d_attn=512,
        guide=GuideConfig(),
    )
    assert out["params"] == flops.param_counts(cfg).params
    assert out["flops_per_token"] == flops.flops_per_token(cfg)
    assert out["train_flops"] == pytest.approx(flops.train_flops(cfg, 1e9))
    assert out["guide_flops_per_token"] == flops.guide_flops_per_token(cfg) > 0
    lpa = _json("--preset", "small", "--attn", "lpa", "--attn-rank", "32")
    assert lpa["params"] == flops.param_counts(get_preset("small").replace(attn="lpa", attn_rank=32)).params


def test_seq_len_and_vocab_multiple():
    out = _json("--preset", "tiny", "--seq-len", "64", "--vocab-multiple", "100")
    cfg = get_preset("tiny").replace(seq_len=64, vocab_multiple=100)
    assert out["params"] == flops.param_counts(cfg).params == flops.param_counts(get_preset("tiny")).params + 44 * 64
    assert out["flops_per_token"] == flops.flops_per_token(cfg)


def test_table_output():
    res = runner.invoke(app, ["inspect", "--preset", "tiny", "--ffn", "blockshuffle", "--blocks", "2"])
    assert res.exit_code == 0
    assert "flops_per_token" in res.stdout and "params_nonembed" in res.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--preset", "nope"],
        ["--preset", "tiny", "--ffn", "lowrank", "--rank", "1000"],
        ["--preset", "tiny", "--ffn", "blockshuffle", "--blocks", "3"],
        ["--preset", "tiny", "--ffn", "lowrank"],
        ["--preset", "tiny", "--ffn", "dense", "--rank", "4"],
        ["--preset", "tiny", "--ffn", "lowrank", "--rank", "8", "--ffn-fraction", "63"],
        ["--preset", "tiny", "--attn", "lpa"],
        ["--preset", "tiny", "--attn", "mha", "--kv-heads", "1"],
        ["--preset", "tiny", "--attn", "gqa", "--kv-heads", "3"],
        ["--preset", "tiny", "--tokens", "lots"],
        ["--preset", "tiny", "--tokens", "-5"],
        ["--preset", "tiny", "--ffn", "conv", "--rank", "4"],
        ["--preset", "tiny", "--vocab-multiple", "0"],
        ["--preset", "tiny", "--seq-len", "0"],
    ],
)
def test_bad_input_one_line_exit_2(args):
    res = runner.invoke(app, ["inspect", *args, "--json"])
    assert res.exit_code == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert res.stdout == ""


def test_param_mup_table_json_and_text():
    """--param mup: every group's multipliers from the spectral formulas, worked out here for the
    small preset (d 128, d_ff 512) with lowrank rank 64 and base width 32."""
    out = _json("--param", "mup", "--mup-base-width", "32", "--ffn", "lowrank", "--rank", "64")
    assert out["model"]["param"] == "mup" and out["model"]["mup_groups"] == out["mup_groups"]
    assert out["mup_logit_mult"] == pytest.approx(32 / 128)
    assert out["mup_attn_scale"] == pytest.approx(1 / (32 * (128 / 32)) ** 0.5)  # head_dim 32, width_mult 4
    g = {r["pattern"]: r for r in out["mup_groups"]}
    b, std = 32, 0.02

    def spectral(fi, fo):
        return std * (b / fi) ** 0.5 * min(1.0, (fo / fi) ** 0.5), b / fi

    want = {
        "wte.weight": (0.02, 1.0),
        "blocks.*.attn.qkv.weight": spectral(128, 384),
        "blocks.0.ffn.down.weight": spectral(512, 128),
        "blocks.*.ffn.up.V": spectral(128, 64),  # V: d -> R
        "blocks.*.ffn.up.U": spectral(64, 512),  # U: R -> d_ff
        "blocks.*.ffn.down.V": spectral(512, 64),
        "blocks.*.ffn.down.U": spectral(64, 128),
    }
    for pat, (s, lr) in want.items():
        assert g[pat]["init_std"] == pytest.approx(s) and g[pat]["lr_mult"] == pytest.approx(lr), pat
    assert g["*"]["role"] == "vector" and g["*"]["lr_mult"] == 1.0
    sp = _json()
    assert "mup_groups" not in sp and "param" not in sp["model"]
    res = runner.invoke(app, ["inspect", "--param", "mup", "--ffn", "blockshuffle", "--blocks", "4"])
    assert res.exit_code == 0 and "muP, base width 64" in res.output and "blocks.*.ffn.up.W1" in res.output


@pytest.mark.parametrize(
    "args, msg",
    [(["--param", "ntk"], "--param 'ntk' is unknown: use one of sp, mup"), (["--mup-base-width", "32"], "--param mup")],
)
def test_bad_param_one_line_exit_2(args, msg):
    res = runner.invoke(app, ["inspect", *args])
    assert res.exit_code == 2 and msg in res.output and len(res.output.strip().splitlines()) == 1
