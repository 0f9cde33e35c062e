"""Accelerators' peak dense bf16 FLOP/s: the one table MFU and GPU-hour estimates divide by. Torch-free.

Keys are short lower-case names ("h100"); `peak_bf16` also takes a CUDA device name as torch reports it
("NVIDIA H100 80GB HBM3") and gives None for a CPU or an accelerator the table does not know.
"""

from __future__ import annotations

from typing import Optional

# Peak dense bf16 FLOP/s (vendor data sheets, without sparsity).
PEAK_BF16 = {
    "h100": 989e12,
    "h200": 989e12,
    "a100": 312e12,
    "l4": 121e12,
    "a10": 125e12,
    "4090": 165e12,
}
# What `plan --gpu` accepts: an accelerator of the table, or cpu (measured rates as they are, no peak).
NAMES = (*PEAK_BF16, "cpu")


def peak_bf16(name: str) -> Optional[float]:
    """Peak of "h100" or of a device name containing a key ("NVIDIA A100-SXM4-80GB"); None if unknown."""
    name = name.lower()
    if name in PEAK_BF16:
        return PEAK_BF16[name]
    # longest key first: "a100" must win over its prefix "a10"
    for key in sorted(PEAK_BF16, key=len, reverse=True):
        if key in name:
            return PEAK_BF16[key]
    return None
