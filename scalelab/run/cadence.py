"""When a run writes its checkpoint: every k optimizer steps, or else once a number of seconds has passed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class CheckpointCadence:
    every: Optional[int]  # optimizer steps between checkpoints; None or 0: by the clock instead
    seconds: float = 60.0  # wall seconds between checkpoints when `every` is unset
    last: float = field(default_factory=time.perf_counter)  # perf_counter of the last checkpoint (or the start)

    def due(self, step: int, now: Optional[float] = None) -> bool:
        """Whether a checkpoint is due after optimizer step `step` (counted from 1)."""
        if self.every:
            return step % self.every == 0
        now = time.perf_counter() if now is None else now
        return now - self.last > self.seconds

    def saved(self, now: Optional[float] = None) -> None:
        self.last = time.perf_counter() if now is None else now
