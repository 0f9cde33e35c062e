"""A run's run-store rows (store.RunRow), from what stays fixed over the run and what one evaluation measured.
Torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from scalelab import structures
from scalelab.config import RunConfig
from scalelab.flops import ParamCounts
from scalelab.store import RunRow

LOSS_WINDOW = 10  # train_loss in a row = mean of the last LOSS_WINDOW optimizer steps


@dataclass
class RowMaker:
    run: RunConfig
    tokens_per_step: int
    flops_per_token: float
    counts: ParamCounts
    train_tokens: int  # unique training tokens of the corpus (epochs = seen / these)
    peak: float  # FLOP/s MFU divides by (NaN: unknown, and so is MFU)
    provenance: dict  # corpus, corpus_sha, tokenizer, device, torch_version, scalelab_version, git_sha, config

    def row(
        self,
        *,
        step: int,
        val_loss: float,
        lr: float,
        final: bool,
        budget: int,
        window: list,
        wall_s: float,
        train_s: float,
        guide_flops: float,
        status: str = "ok",
    ) -> dict:
        """The row after optimizer step `step`: window holds the last steps' train losses, train_s the seconds
        spent in optimizer steps so far (tokens/s and MFU), guide_flops the dense guide path's FLOPs so far."""
        m, t = self.run.model, self.run.train
        tokens = step * self.tokens_per_step
        fl = self.flops_per_token * tokens + guide_flops
        return RunRow(
            run_id=self.run.run_id,
            grid=self.run.grid,
            variant=m.variant,
            structure=m.structure,
            d_model=m.d_model,
            n_layers=m.n_layers,
            n_heads=m.n_heads,
            n_kv_heads=m.kv_heads,
            d_ff=m.ffn_width,
            rank=self._rank(),
            blocks=m.ffn.blocks if "blocks" in structures.get(m.ffn.kind).fields else None,
            params=self.counts.params,
            params_nonembed=self.counts.params_nonembed,
            seq_len=m.seq_len,
            batch_tokens=self.tokens_per_step,
            step=step,
            tokens=tokens,
            flops=fl,
            flops_6nd=6.0 * self.counts.params_nonembed * tokens,
            train_loss=float(np.mean(window[-LOSS_WINDOW:])) if window else float("nan"),
            val_loss=val_loss,
            lr=lr,
            final=final,
            wall_s=wall_s,
            tokens_per_s=tokens / train_s if train_s > 0 else float("nan"),
            mfu=(fl / train_s / self.peak) if train_s > 0 and self.peak == self.peak else float("nan"),
            status=status,
            seed=self.run.seed,
            **self.provenance,
            budget=int(budget),
            schedule=t.schedule,
            guide_flops=guide_flops,
            epochs=tokens / self.train_tokens,  # seen / unique training tokens (> 1: data repeated)
            peak_lr=t.lr,  # the swept value; `lr` is the schedule's rate at this step
            warmup=t.warmup,
            weight_decay=t.weight_decay,
            sweep=",".join(t.sweep),  # what a grid's [sweep] varied ("" outside a sweep)
        ).as_dict()

    def _rank(self) -> Optional[int]:
        """The FFN's rank where its structure has one (from the registry), else the LPA attention rank."""
        m = self.run.model
        if "rank" in structures.get(m.ffn.kind).fields:
            return m.ffn.rank
        return m.attn_rank if m.attn == "lpa" else None
