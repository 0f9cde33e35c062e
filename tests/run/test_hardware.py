"""The accelerator table (scalelab.hardware) and the device helpers (run/device.py)."""

import pytest

from scalelab import hardware


@pytest.mark.parametrize(
    "name, peak",
    [
        ("h100", 989e12),
        ("H100", 989e12),
        ("NVIDIA H100 80GB HBM3", 989e12),
        ("NVIDIA A100-SXM4-80GB", 312e12),  # A100, not its prefix A10
        ("NVIDIA A10", 125e12),
        ("NVIDIA GeForce RTX 4090", 165e12),
        ("NVIDIA L4", 121e12),
        ("cpu", None),
        ("cpu:x86_64x8", None),
        ("NVIDIA Tesla T4", None),
    ],
)
def test_peak_by_short_name_or_cuda_device_name(name, peak):
    assert hardware.peak_bf16(name) == peak


def test_every_plan_gpu_name_but_cpu_has_a_peak():
    assert "cpu" in hardware.NAMES
    assert all(hardware.peak_bf16(n) for n in hardware.NAMES if n != "cpu")


def test_pick_device_refuses_what_it_cannot_use():
    torch = pytest.importorskip("torch")
    from scalelab.errors import ScalelabError
    from scalelab.run.device import peak_flops, pick_device

    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ScalelabError, match="use auto, cpu or cuda"):
        pick_device("mps", cpu_or_cuda=True)
    if not torch.cuda.is_available():
        with pytest.raises(ScalelabError, match="no CUDA device: use --device cpu"):
            pick_device("cuda")
        assert pick_device("auto") == torch.device("cpu")
    assert peak_flops(torch.device("cpu")) > 1e6  # a measured matmul rate, FLOP/s
