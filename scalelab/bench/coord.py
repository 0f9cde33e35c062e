"""Coordinate check (Yang et al. 2022, Tensor Programs V, section 6 and figure 5): train GPTs of growing
width for a few Adam steps on one fixed batch and measure, per layer type, the RMS of the activations
and of their change since init. Under muP the change of every layer's output coordinates after t steps
is Theta(1) in width (the definition of maximal updates), so log(change) vs log(width) is flat; under SP
with one learning rate an Adam step moves every weight entry by ~lr, which moves a hidden output by ~lr
x fan_in: the change grows ~ width (slope -> 1 until it saturates) and the logits blow up.

The statistics: the token embedding's output ("embed"), the last block's attention output ("attn") and
FFN output ("ffn"), and the logits ("logits"); for each, `act` = RMS(h_t), `delta` = RMS(h_t - h_0) on the
fixed batch, and per (variant, param, stat) the least-squares slope of log delta vs log width.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch

from scalelab import structures, variant
from scalelab.config import ModelConfig
from scalelab.model.gpt import GPT, Block

STATS = ("embed", "attn", "ffn", "logits")
KINDS = structures.names()  # dense and every registered structure


def model_config(kind: str, width: int, param: str, n_layers: int = 2, seq_len: int = 32) -> ModelConfig:
    """A small GPT of this width: 4 heads (head_dim grows with width, as muP's 1 / d_head assumes), every
    FFN of the structure (kept share 32%, sizes growing with width)."""
    ffn = structures.for_fraction(kind, width, 4 * width, 0.32)
    return ModelConfig(
        d_model=width, n_layers=n_layers, n_heads=4, vocab_size=256, seq_len=seq_len, ffn=ffn,
        dense_first_ffn=False, param=param,
    )  # fmt: skip


def _hooks(model: GPT, out: dict) -> list:
    last = model.blocks[-1]
    assert isinstance(last, Block)  # GPT.blocks holds Blocks (ModuleList indexing is typed as Module)
    named = {"embed": model.wte, "attn": last.attn, "ffn": last.ffn}
    return [m.register_forward_hook(lambda mod, inp, y, k=k: out.__setitem__(k, y.detach())) for k, m in named.items()]


def _acts(model: GPT, idx: torch.Tensor) -> dict:
    acts: dict = {}
    handles = _hooks(model, acts)
    with torch.no_grad():
        logits, _ = model(idx)
    for h in handles:
        h.remove()
    acts["logits"] = logits.detach()
    return acts


def _rms(x: torch.Tensor) -> float:
    return float(x.float().pow(2).mean().sqrt())


def run_one(cfg: ModelConfig, steps: int, lr: float, batch: int, seed: int) -> dict:
    """{stat: (act, delta)} after `steps` Adam steps (lr x each group's lr_mult) on one fixed batch."""
    torch.manual_seed(seed)
    model = GPT(cfg)
    g = torch.Generator().manual_seed(seed + 1)  # the same batch at every width
    idx = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len + 1), generator=g)
    x, y = idx[:, :-1], idx[:, 1:]
    before = _acts(model, x)
    groups = model.param_groups(0.0)
    for grp in groups:
        grp["lr"] = lr * grp.get("lr_mult", 1.0)
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    model.train()
    for _ in range(steps):
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    after = _acts(model, x)
    return {k: (_rms(after[k]), _rms(after[k] - before[k])) for k in STATS}


def slope(widths, values) -> float:
    """Least-squares slope of log(value) vs log(width)."""
    lx = [math.log(w) for w in widths]
    ly = [math.log(max(v, 1e-30)) for v in values]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def coord_check(
    widths=(32, 64, 128, 256, 512),
    kinds=KINDS,
    params=("sp", "mup"),
    steps: int = 4,
    lr: float = 1e-2,
    batch: int = 4,
    seed: int = 0,
    n_layers: int = 2,
    seq_len: int = 32,
    progress: Optional[Callable[[str, str, int], Any]] = None,
) -> dict:
    """{"rows": one per (kind, param, width, stat), "slopes": one per (kind, param, stat), settings}."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: one thread is as fast and leaves the other cores alone
    try:
        rows, slopes = _check(widths, kinds, params, steps, lr, batch, seed, n_layers, seq_len, progress)
    finally:
        torch.set_num_threads(threads)
    return dict(
        widths=list(widths), steps=steps, lr=lr, batch=batch, seq_len=seq_len, n_layers=n_layers, seed=seed,
        rows=rows, slopes=slopes,
    )  # fmt: skip


def _check(widths, kinds, params, steps, lr, batch, seed, n_layers, seq_len, progress):
    rows, slopes = [], []
    for kind in kinds:
        for param in params:
            per: dict[str, list[float]] = {k: [] for k in STATS}
            for w in widths:
                cfg = model_config(kind, w, param, n_layers, seq_len)
                res = run_one(cfg, steps, lr, batch, seed)
                name = variant.of_model(cfg).replace(mup=False).name  # one name for SP and muP
                for k, (act, delta) in res.items():
                    per[k].append(delta)
                    rows.append(
                        dict(variant=name, kind=kind, param=param, width=w, stat=k, act=act, delta=delta)
                    )  # fmt: skip
                if progress:
                    progress(kind, param, w)
            for k in STATS:
                slopes.append(dict(kind=kind, param=param, stat=k, slope=slope(widths, per[k])))
    return rows, slopes


def figure(result: dict, path: str) -> None:
    """One panel per kind: RMS change of each stat vs width (log-log), muP solid, SP dashed, with the
    slopes of the FFN output and the logits written in the panel; one shared legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    kinds = list(dict.fromkeys(r["kind"] for r in result["rows"]))
    ncol = 3
    nrow = (len(kinds) + 1 + ncol - 1) // ncol  # + one cell for the legend
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow), sharey=True, squeeze=False)
    axes = axes.ravel()
    colors = dict(zip(STATS, ("tab:gray", "tab:blue", "tab:green", "tab:red")))
    styles = {"sp": "--", "mup": "-"}
    sl = {(s["kind"], s["param"], s["stat"]): s["slope"] for s in result["slopes"]}
    for ax, kind in zip(axes, kinds):
        for param, ls in styles.items():
            for k in STATS:
                pts = [
                    (r["width"], r["delta"])
                    for r in result["rows"]
                    if (r["kind"], r["param"], r["stat"]) == (kind, param, k)
                ]
                if pts:
                    w, d = zip(*pts)
                    ax.plot(w, d, ls, marker="o", ms=3, color=colors[k])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(kind, fontsize=10)
        ax.set_xlabel("width d_model", fontsize=8)
        txt = "slopes     SP    muP\n" + "\n".join(
            f"{k:<7}{sl.get((kind, 'sp', k), float('nan')):+6.2f} {sl.get((kind, 'mup', k), float('nan')):+6.2f}"
            for k in ("ffn", "logits")
        )
        ax.text(0.03, 0.97, txt, transform=ax.transAxes, va="top", fontsize=7, family="monospace",
                bbox=dict(facecolor="white", alpha=0.8, lw=0))  # fmt: skip
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[::ncol]:
        ax.set_ylabel(f"RMS change after {result['steps']} Adam steps", fontsize=8)
    for ax in axes[len(kinds) :]:
        ax.axis("off")
    handles = [Line2D([], [], color=colors[k], lw=2, label=k) for k in STATS]
    handles += [Line2D([], [], color="k", ls=ls, label="SP" if p == "sp" else "muP") for p, ls in styles.items()]
    axes[len(kinds)].legend(handles=handles, loc="center", fontsize=9, title="stat / parametrisation")
    fig.suptitle(
        f"coordinate check (lr {result['lr']:g}): muP (solid) flat in width, SP (dashed) grows; "
        "slope = d log(RMS change) / d log(width)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
