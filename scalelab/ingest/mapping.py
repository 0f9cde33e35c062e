"""Which logged keys mean loss, step and tokens (Mapping), and a run's curve under that mapping: one point per
logged loss, with its step and tokens. Defaults are the names common trainers log. Torch-free."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.ingest.raw import RawRun

LOSS_KEYS = ("val_loss", "val/loss", "eval/loss", "validation/loss", "loss/val", "loss")
TRAIN_LOSS_KEYS = ("train_loss", "train/loss", "loss/train")
STEP_KEYS = ("step", "_step", "global_step", "trainer/global_step", "iter", "iteration")
TOKENS_KEYS = ("tokens", "tokens_seen", "train/tokens", "num_tokens", "throughput/total_tokens")
FLOPS_KEYS = ("flops", "total_flops", "train/flops", "throughput/total_flops")
LR_KEYS = ("lr", "learning_rate", "train/lr", "optim/lr")


@dataclass(frozen=True)
class Mapping:
    """The options: a key left None is the first of its defaults the run logged. Tokens come from the tokens
    key, else from step x batch_size x the model's seq_len."""

    loss_key: Optional[str] = None
    step_key: Optional[str] = None
    tokens_key: Optional[str] = None
    flops_key: Optional[str] = None
    batch_size: Optional[int] = None  # sequences per optimizer step
    tokenizer: Optional[str] = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Curve:
    """A run's points under a mapping, in step order, and the keys that were used."""

    step: np.ndarray  # int64
    tokens: np.ndarray  # int64
    loss: np.ndarray  # float64, finite except where the run diverged
    train_loss: np.ndarray  # float64 (NaN where not logged)
    lr: np.ndarray  # float64 (NaN where not logged)
    keys: dict  # loss, step, tokens, train_loss, lr: the keys read ("step x batch" for computed tokens)
    logged_flops: Optional[float]  # the run's own FLOP count at its last point, when it logged one
    notes: list = field(default_factory=list)  # for the user: history rows left out for want of a loss


def pick(keys, asked: Optional[str], defaults: tuple, what: str, run: RawRun, option: str) -> Optional[str]:
    """The key to read: the one asked for (which must be logged), else the first default logged, else None."""
    if asked is None:
        return next((k for k in defaults if k in keys), None)
    if asked not in keys:
        raise ScalelabError(
            f"run {run.name} ({run.source}): no {what} key {asked!r}; it logged {_listed(keys)}: pass {option} KEY"
        )
    return asked


def curve(run: RawRun, m: Mapping, seq_len: int) -> Curve:
    """The points of `run` where its loss was logged (ScalelabError naming the run and its keys when a needed
    key is missing)."""
    h = run.history
    cols = [str(c) for c in h.columns]
    loss_key = pick(cols, m.loss_key, LOSS_KEYS, "loss", run, "--loss-key")
    if loss_key is None:
        raise ScalelabError(
            f"run {run.name} ({run.source}): no loss key (looked for {', '.join(LOSS_KEYS)}); it logged "
            f"{_listed(cols)}: pass --loss-key KEY"
        )
    step_key = pick(cols, m.step_key, STEP_KEYS, "step", run, "--step-key")
    tokens_key = pick(cols, m.tokens_key, TOKENS_KEYS, "tokens", run, "--tokens-key")
    has_loss = pd.to_numeric(h[loss_key], errors="coerce").notna()
    if not has_loss.any():  # a key with no value at all is the wrong key, not a curve
        raise ScalelabError(
            f"run {run.name} ({run.source}): none of its {len(h)} history rows has a value for the loss key "
            f"{loss_key!r}: pass --loss-key naming a logged key that has values"
        )
    # W&B logs other metrics at other steps (NaN loss there): right to leave out, but said, once per run
    left_out = int((~has_loss).sum())
    notes = []
    if left_out:
        notes.append(
            f"run {run.name} ({run.source}): {left_out} of {len(h)} history rows have no loss value "
            f"(key {loss_key!r}): left out"
        )
    rows = h[has_loss]
    rows = rows.sort_values(step_key, kind="stable") if step_key else rows
    if step_key:
        rows = rows.drop_duplicates(step_key, keep="last")  # a restarted run logs a step again: the last wins
    step = _ints(rows[step_key]) if step_key else np.arange(1, len(rows) + 1)
    tokens = _tokens(run, rows, step, tokens_key, m.batch_size, seq_len)
    if tokens_key is not None and tokens_key == step_key and m.batch_size:  # a step axis counted in tokens
        step = tokens // (int(m.batch_size) * int(seq_len))
    keys = dict(loss=loss_key, step=step_key, tokens=tokens_key or f"step x {m.batch_size} x {seq_len}")
    keys["train_loss"] = next((k for k in TRAIN_LOSS_KEYS if k in cols and k != loss_key), None)
    keys["lr"] = next((k for k in LR_KEYS if k in cols), None)
    loss = _floats(rows, loss_key)
    _check_losses(run, loss_key, loss, step)
    return Curve(
        step=step,
        tokens=tokens,
        loss=loss,
        train_loss=_floats(rows, keys["train_loss"]),
        lr=_floats(rows, keys["lr"]),
        keys=keys,
        logged_flops=_logged_flops(run, h, m.flops_key),
        notes=notes,
    )


def _check_losses(run: RawRun, key: str, loss: np.ndarray, step: np.ndarray) -> None:
    """A loss is a positive number of nats per token (+inf: the run diverged, kept as the run store keeps it);
    zero or below is not a loss, and would be fitted as one: refused, naming the first such point."""
    bad = np.flatnonzero(loss <= 0)
    if len(bad):
        i = bad[0]
        raise ScalelabError(
            f"run {run.name} ({run.source}): loss {key!r} is {loss[i]:g} at step {int(step[i])} "
            f"({len(bad)} point(s) at or below 0): a loss must be a positive number; pass --loss-key naming the "
            "loss, or remove those rows"
        )


def _tokens(run: RawRun, rows: pd.DataFrame, step: np.ndarray, key: Optional[str], batch: Optional[int], seq: int):
    if key is not None:
        vals = pd.to_numeric(rows[key], errors="coerce")
        if vals.isna().any():
            raise ScalelabError(
                f"run {run.name} ({run.source}): tokens key {key!r} is missing at {int(vals.isna().sum())} of the "
                "loss points: log tokens with the loss, or give --batch-size to count them from the step"
            )
        return vals.to_numpy().astype(np.int64)
    if batch is None:
        raise ScalelabError(
            f"run {run.name} ({run.source}): no tokens key (looked for {', '.join(TOKENS_KEYS)}); it logged "
            f"{_listed(run.history.columns)}: pass --tokens-key KEY, or --batch-size B (tokens = step x B x seq_len)"
        )
    return step.astype(np.int64) * int(batch) * int(seq)


def _logged_flops(run: RawRun, h: pd.DataFrame, key: Optional[str]) -> Optional[float]:
    """The run's own total FLOPs: the last value in its history, else its summary, else its config."""
    keys = (key,) if key else FLOPS_KEYS
    for k in keys:
        if k in h.columns:
            vals = pd.to_numeric(h[k], errors="coerce").dropna()
            if len(vals):
                return float(vals.iloc[-1])
        for d in (run.summary, run.config):
            v = _number(d.get(k))
            if v is not None:
                return v
    if key:
        raise ScalelabError(f"run {run.name} ({run.source}): no FLOPs key {key!r} in its history, summary or config")
    return None


def _number(v: Any) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _ints(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").fillna(0).to_numpy().astype(np.int64)


def _floats(rows: pd.DataFrame, key: Optional[str]) -> np.ndarray:
    if key is None:
        return np.full(len(rows), np.nan)
    return pd.to_numeric(rows[key], errors="coerce").to_numpy(dtype=float)


def _listed(keys) -> str:
    keys = [str(k) for k in keys]
    return ", ".join(keys[:30]) + (f" (and {len(keys) - 30} more)" if len(keys) > 30 else "") if keys else "nothing"
