"""An ingested run's run-store rows (store.RunRow): sizes, params and FLOPs recomputed under scalelab's
convention (scalelab.flops) from its model, its curve's points as rows, and its provenance in `config`.
Torch-free."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

import numpy as np

from scalelab import __version__, structures
from scalelab import flops as flopslib
from scalelab.config import SCHEDULES, ModelConfig
from scalelab.ingest.mapping import Curve
from scalelab.ingest.raw import RawRun
from scalelab.store import RunRow

FLOPS_TOLERANCE = 0.05  # logged and recomputed FLOPs further apart than this: a warning naming the run


@dataclass
class Ingested:
    """One run ready to write: its rows, the file stem it goes to, and its warnings."""

    run_id: str
    stem: str
    rows: list[dict]
    warnings: list[str]


def flops_warning(run_id: str, logged: Optional[float], ours: float) -> Optional[str]:
    """A warning naming the run and both counts when its logged FLOPs differ from scalelab's by > 5%."""
    if logged is None or logged <= 0 or ours <= 0:
        return None
    rel = logged / ours - 1.0
    if abs(rel) <= FLOPS_TOLERANCE:
        return None
    return (
        f"run {run_id}: logged FLOPs {logged:.6g} differ from scalelab's count {ours:.6g} by {rel:+.1%} "
        f"(more than {FLOPS_TOLERANCE:.0%}): check which parameters and attention terms its logger counts; "
        "the run store keeps scalelab's count"
    )


def make_rows(
    raw: RawRun, c: Curve, cfg: ModelConfig, *, run_id: str, grid: str, tokenizer: str, provenance: dict
) -> list[dict]:
    """The run's rows, one per curve point; the last point is the run's final (N, D) point."""
    counts = flopslib.param_counts(cfg)
    batch_tokens = _batch_tokens(c)
    config = json.dumps({"model": cfg.to_dict(), "ingest": provenance}, sort_keys=True, default=str)
    fixed = dict(
        run_id=run_id,
        grid=grid,
        variant=cfg.variant,
        structure=cfg.structure,
        d_model=cfg.d_model,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        n_kv_heads=cfg.kv_heads,
        d_ff=cfg.ffn_width,
        rank=_rank(cfg),
        blocks=cfg.ffn.blocks if "blocks" in structures.get(cfg.ffn.kind).fields else None,
        params=counts.params,
        params_nonembed=counts.params_nonembed,
        seq_len=cfg.seq_len,
        batch_tokens=batch_tokens,
        corpus=raw.config["dataset"] if isinstance(raw.config.get("dataset"), str) else "",
        corpus_sha="",
        tokenizer=tokenizer,
        device="",
        torch_version="",
        scalelab_version=__version__,
        git_sha=None,
        config=config,
        budget=int(c.tokens[-1]),
        schedule=raw.config["schedule"] if raw.config.get("schedule") in SCHEDULES else "",
        seed=_seed(raw.config),
        sweep="",
    )
    # a non-finite loss is a diverged run: every row says so (the run store's rule) and none is a final point
    ok = bool(np.isfinite(c.loss).all())
    return [_row(fixed, c, i, cfg, counts.params_nonembed, ok) for i in range(len(c.step))]


def _row(fixed: dict, c: Curve, i: int, cfg: ModelConfig, nonembed: int, ok: bool) -> dict:
    tokens = int(c.tokens[i])
    return RunRow(
        **fixed,
        step=int(c.step[i]),
        tokens=tokens,
        flops=flopslib.train_flops(cfg, tokens),
        flops_6nd=6.0 * nonembed * tokens,
        train_loss=float(c.train_loss[i]),
        val_loss=float(c.loss[i]),
        lr=float(c.lr[i]),
        final=ok and i == len(c.step) - 1,
        wall_s=float("nan"),
        tokens_per_s=float("nan"),
        mfu=float("nan"),
        status="ok" if ok else "diverged",
        guide_flops=flopslib.guide_train_flops(cfg, tokens),
        epochs=float("nan"),
        peak_lr=float("nan"),
        warmup=float("nan"),
        weight_decay=float("nan"),
    ).as_dict()


def _batch_tokens(c: Curve) -> int:
    """Tokens per optimizer step when every point says the same (tokens = step x it), else 0: unknown."""
    per = {int(t) / int(s) for s, t in zip(c.step, c.tokens) if s > 0}
    if len(per) != 1:
        return 0
    b = per.pop()
    return int(b) if b.is_integer() else 0


def _rank(cfg: ModelConfig) -> Optional[int]:
    if "rank" in structures.get(cfg.ffn.kind).fields:
        return cfg.ffn.rank
    return cfg.attn_rank if cfg.attn == "lpa" else None


def _seed(config: dict) -> int:
    try:
        return int(config.get("seed", 0))
    except (TypeError, ValueError):
        return 0
