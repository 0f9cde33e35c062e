"""Benchmarks of the structured layers: FFN-only speed-ups and train-step throughput / MFU.

    bench_ffn    FFN block (d -> 4d -> d, GELU) forward and forward+backward time of every structure at
                 the seeds' 63% / 32% settings against dense, at given widths and token counts
                 (the seeds' claim: 63% LowRank/BlockDense 1.4x, BlockShuffle 1.1x; 32% 2.6x / 2.0x at
                 width 5120 and about 30K tokens on a GPU; little gain below width 1536).
    bench_train  optimizer steps of a whole GPT per variant at a fixed shape: tokens/s and MFU
                 (seeds' FLOP convention over a peak: CUDA the bf16 table of scalelab.hardware, CPU a
                 measured float32 matmul peak of this machine).

CUDA: bf16 autocast, fused AdamW, optional torch.compile. CPU: float32. Timings are the best of
several repeats after warm-up; results go to bench/NAME.json and bench/NAME.md (atomic writes).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from typing import Any, Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from scalelab import numfmt, structures, variant
from scalelab.config import ModelConfig, StructureConfig
from scalelab.errors import ScalelabError
from scalelab.fileio import atomic_write_text
from scalelab.run import device as run_device

KINDS = tuple(k for k in structures.names() if structures.get(k).fields)  # every structured kind, beside dense


# ---- helpers -----------------------------------------------------------------------------------------
def pick_device(device: str = "auto") -> torch.device:
    return run_device.pick_device(device, cpu_or_cuda=True)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_fn(fn: Callable[[], object], dev: torch.device, warmup: int = 2, repeats: int = 5) -> float:
    """Best (minimum) wall seconds of fn() over `repeats` calls after warm-up, synchronised on CUDA.
    The minimum, like timeit: on a shared machine the noise only ever adds time."""
    for _ in range(warmup):
        fn()
    _sync(dev)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    return min(times)


def matmul_peak(dev: torch.device, n: Optional[int] = None) -> float:
    """Measured dense matmul FLOP/s: float32 on CPU (n = 1024), bf16 on CUDA (n = 8192)."""
    n = n or (8192 if dev.type == "cuda" else 1024)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    best = min(time_fn(lambda: a @ b, dev, warmup=2, repeats=1) for _ in range(5))
    return 2.0 * n**3 / best


def _git_sha() -> Optional[str]:
    from scalelab.run.train import git_sha

    return git_sha()


def _atomic_write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_text(path, text)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n| " + " | ".join("---" for _ in columns) + " |\n"
    return head + "".join("| " + " | ".join(numfmt.cell(r.get(c)) for c in columns) + " |\n" for r in rows)


def check_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ScalelabError(f"--name {name!r}: give a plain file name such as ffn or train-cpu")


def write_results(
    out_dir: str, name: str, kind: str, rows: list[dict], columns: list[str], meta: dict
) -> tuple[str, str]:
    """bench/NAME.json (everything) and bench/NAME.md (the table): atomic."""
    check_name(name)
    meta = dict(meta)
    if hasattr(os, "getloadavg"):  # a busy shared machine inflates every time: record how busy it was
        meta["load_avg_1m"] = round(os.getloadavg()[0], 2)
        meta["cpu_count"] = os.cpu_count()
    doc = {
        "format": f"scalelab-bench-{kind}/1",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        **meta,
        "rows": rows,
    }
    jpath = os.path.join(out_dir, f"{name}.json")
    mpath = os.path.join(out_dir, f"{name}.md")
    md = (
        f"# bench {kind}: {name}\n\n"
        + "".join(f"- {k}: {v}\n" for k, v in meta.items() if not isinstance(v, (dict, list)))
        + "\n"
    )
    md += markdown_table(rows, columns)
    _atomic_write(jpath, json.dumps(doc, indent=1, default=str) + "\n")
    _atomic_write(mpath, md)
    return jpath, mpath


# ---- FFN-only -----------------------------------------------------------------------------------------
class _FFN(nn.Module):
    def __init__(self, struct: StructureConfig, d: int, f: int, bias: bool = True):
        super().__init__()
        from scalelab.model.linear import make_linear

        self.up = make_linear(struct, d, f, bias=bias)
        self.down = make_linear(struct, f, d, bias=bias)

    def forward(self, x):
        return self.down(F.gelu(self.up(x), approximate="tanh"))


FFN_COLUMNS = ["width", "tokens", "variant", "kept", "fwd_ms", "fwd_speedup", "fwdbwd_ms", "fwdbwd_speedup"]


def bench_ffn(
    widths: list[int],
    tokens: int,
    fractions=(0.63, 0.32),
    kinds=KINDS,
    device: str = "auto",
    repeats: int = 5,
    warmup: int = 2,
    compile: bool = False,
    ffn_mult: int = 4,
    log: Optional[Callable[[str], None]] = None,
) -> tuple[list[dict], dict]:
    """Time the FFN block of every structure at each fraction against dense; rows + meta."""
    from scalelab.flops import structured_params
    from scalelab.presets import ffn_fraction, structure_for_fraction

    dev = pick_device(device)
    cuda = dev.type == "cuda"
    rows = []
    for d in widths:
        f = ffn_mult * d
        variants = [("dense", StructureConfig("dense"))]
        for kind in kinds:
            for fr in fractions:
                try:
                    s = structure_for_fraction(kind, d, f, fr)
                except ScalelabError as e:
                    if log:
                        log(f"skip {kind} at width {d}: {e}")
                    continue
                variants.append((s.name, s))
        base = {}
        for name, s in variants:
            torch.manual_seed(0)
            # Any: both are set to None after timing, to free the device memory
            mod: Any = _FFN(s, d, f).to(dev)
            run: Any = torch.compile(mod) if compile else mod
            x = torch.randn(tokens, d, device=dev)
            xg = x.clone().requires_grad_(True)

            def fwd():
                with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
                    return run(x)

            def fwdbwd():
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
                    y = run(xg)
                y.float().square().mean().backward()
                mod.zero_grad(set_to_none=True)
                xg.grad = None

            t_f = time_fn(fwd, dev, warmup, repeats)
            t_fb = time_fn(fwdbwd, dev, warmup, repeats)
            if name == "dense":
                base = {"f": t_f, "fb": t_fb}
            w = structured_params(s, d, f) + structured_params(s, f, d)
            row = {
                "width": d,
                "tokens": tokens,
                "variant": name,
                "rank": s.rank,
                "blocks": s.blocks,
                "kept": round(ffn_fraction(s, d, f), 4),
                "params": w,
                "fwd_ms": 1e3 * t_f,
                "fwd_speedup": base["f"] / t_f,
                "fwdbwd_ms": 1e3 * t_fb,
                "fwdbwd_speedup": base["fb"] / t_fb,
                "fwd_tflops": 2.0 * w * tokens / t_f / 1e12,
            }
            rows.append(row)
            if log:
                log(
                    f"width {d} {name}: fwd {row['fwd_ms']:.2f} ms ({row['fwd_speedup']:.2f}x), "
                    f"fwd+bwd {row['fwdbwd_ms']:.2f} ms ({row['fwdbwd_speedup']:.2f}x)"
                )
            mod = run = None  # free the device memory before the next variant (a del would unbind the closures)
    meta = {
        "device": run_device.device_name(dev),
        "dtype": "bf16 autocast" if cuda else "float32",
        "compile": compile,
        "repeats": repeats,
        "warmup": warmup,
        "ffn": f"d -> {ffn_mult}d -> d, GELU(tanh), biases",
    }
    return rows, meta


# ---- whole-model train steps ----------------------------------------------------------------------
def parse_variant(base: ModelConfig, name: str) -> ModelConfig:
    """A variant name (scalelab.variant: 'dense', 'lowrank-63', 'blockdense-b2r64', 'lpa-r32',
    'lowrank-32+gqa-kv2', '...+sg') -> base with that variant's FFN and attention; a kept share's sizes
    are picked at base's shape (a name without a structure part has a dense FFN)."""
    from scalelab.config import GuideConfig

    v = variant.parse(name)
    changes: dict = {"ffn": v.structure(base.d_model, base.ffn_width)}
    if v.attn_rank is not None:
        changes.update(attn="lpa", attn_rank=v.attn_rank)
    if v.kv_heads is not None:
        changes.update(attn="lpa" if changes.get("attn", base.attn) == "lpa" else "gqa", n_kv_heads=v.kv_heads)
    if v.guide:
        changes["guide"] = GuideConfig()
    if v.mup:
        changes["param"] = "mup"
    return base.replace(**changes).validate()


TRAIN_COLUMNS = ["variant", "params", "flops_per_token", "step_ms", "tokens_per_s", "speedup", "mfu"]


def bench_train(
    base: ModelConfig,
    variants: list[str],
    batch: int,
    steps: int = 5,
    warmup: int = 2,
    device: str = "auto",
    compile: bool = False,
    log: Optional[Callable[[str], None]] = None,
) -> tuple[list[dict], dict]:
    """AdamW train steps of each variant on a fixed random batch: tokens/s and MFU; rows + meta."""
    from scalelab.flops import flops_per_token, guide_flops_per_token, param_counts
    from scalelab.model.gpt import GPT

    dev = pick_device(device)
    cuda = dev.type == "cuda"
    cfgs = [(v, parse_variant(base, v)) for v in variants]  # validate all before timing any
    peak_measured = matmul_peak(dev)
    peak = peak_measured
    peak_src = "measured float32 matmul (1024^3)"
    if cuda:
        from scalelab.hardware import peak_bf16

        name = torch.cuda.get_device_name(dev)
        nominal = peak_bf16(name)
        if nominal:
            peak, peak_src = nominal, f"nominal bf16 dense peak of {name}"
        else:
            peak_src = "measured bf16 matmul (8192^3)"
    T = base.seq_len
    rows: list[dict] = []  # mixed values: numbers, names, None
    for v, cfg in cfgs:
        torch.manual_seed(0)
        # Any: all three are set to None after timing, to free the device memory
        model: Any = GPT(cfg).to(dev)
        opt: Any = torch.optim.AdamW(model.param_groups(0.1), lr=1e-4, fused=True if cuda else None)
        run: Any = torch.compile(model) if compile else model
        x = torch.randint(0, cfg.vocab_size, (batch, T), device=dev)
        y = torch.randint(0, cfg.vocab_size, (batch, T), device=dev)

        def step():
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
                _, loss = run(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        t = time_fn(step, dev, warmup, steps)
        tps = batch * T / t
        fpt = flops_per_token(cfg) + guide_flops_per_token(cfg)  # guide path at alpha = 1 while timed
        row = {
            "variant": v,
            "name": cfg.variant,
            # the shape, for plan/throughput_model.py: throughput as a function of (width, share) per FFN kind
            "d_model": cfg.d_model,
            "n_layers": cfg.n_layers,
            "ffn_kind": cfg.ffn.kind,
            "share": structures.ffn_fraction(cfg.ffn, cfg.d_model, cfg.ffn_width),
            "params": param_counts(cfg).params,
            "flops_per_token": fpt,
            "step_ms": 1e3 * t,
            "tokens_per_s": tps,
            "speedup": None,
            "mfu": fpt * tps / peak,
        }
        rows.append(row)
        if log:
            log(f"{v}: {row['step_ms']:.1f} ms/step, {tps:,.0f} tokens/s, MFU {row['mfu']:.1%}")
        model = opt = run = None  # free the device memory before the next variant
    dense_tps = next((r["tokens_per_s"] for r in rows if r["name"] == "dense"), None)
    for r in rows:  # tokens/s relative to the dense variant, when one was timed
        r["speedup"] = r["tokens_per_s"] / dense_tps if dense_tps else None
    meta = {
        "device": run_device.device_name(dev),
        "dtype": "bf16 autocast" if cuda else "float32",
        "compile": compile,
        "shape": f"d_model {base.d_model}, layers {base.n_layers}, heads {base.n_heads}, seq {T}, vocab "
        f"{base.vocab_size}",
        "batch": batch,
        "steps": steps,
        "warmup": warmup,
        "peak_flops": peak,
        "peak_source": peak_src,
        "measured_matmul_flops": peak_measured,
        "model": base.to_dict(),
        "commit": _git_sha(),
    }
    return rows, meta
