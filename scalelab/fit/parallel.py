"""Fitting the groups of one call side by side, one worker process per core.

The groups of a multi-group fit are independent (their bootstrap counts are drawn before any is fitted), so
each can be fitted in a forked worker with the same inputs and the same result as in this process. Worth it
only when there is enough work to hide the fork: several groups, each with bootstrap resamples, and more
than one core. Porian et al.'s 10 groups x 1000 resamples take about 8.9 CPU seconds fitted one after
another in one thread, and the busier of 2 workers about 4.8 of them (per-group times on the loaded 2-core
machine, where both ways got about one core: the idle-machine wall time is still to be measured), where the
polish's threads (solver.THREADS) had given 12.5 s wall for 17.4 s CPU on the idle machine. The workers split
the cores between them instead, the polish's own threads off.
Where fork is unavailable (macOS's default spawn would re-import everything per worker) the groups are
fitted one after another.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Any, Callable, Sequence

# bootstrap resamples summed over the groups below which the fork is not worth it: forking and sending back Porian
# et al.'s 10 groups cost about 0.1 CPU s (measured with 20 resamples each)
MIN_RESAMPLES = 2000
ENV = "SCALELAB_FIT_WORKERS"  # at most this many worker processes (0 or 1: every group in this process)
_in_worker = False  # a worker fits its group here: no pool inside a pool


def workers(n_groups: int, n_boot: int) -> int:
    """Worker processes for `n_groups` groups of `n_boot` resamples each: 0 (fit here) or up to the cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cap = os.environ.get(ENV, "").strip()
    if cap.isdigit():
        cores = min(cores, int(cap))
    if _in_worker or n_groups < 2 or cores < 2 or n_groups * n_boot < MIN_RESAMPLES:
        return 0
    if mp.current_process().daemon:  # a daemonic process (a multiprocessing.Pool's worker) may not fork children
        return 0
    if "fork" not in mp.get_all_start_methods():
        return 0
    return min(cores, n_groups)


def _init_worker() -> None:
    global _in_worker
    from scalelab.fit import solver

    _in_worker = True
    solver.THREADS = 1  # the processes share the cores; threads inside each would only contend


def map_groups(fn: Callable[..., Any], items: Sequence[tuple], n_workers: int, progress=None) -> list:
    """[fn(*item) for item in items], in order, in `n_workers` forked processes (0: here); progress(i) after
    item i is done. fn and its results must pickle (module-level function, plain data)."""
    if n_workers <= 1:
        out = []
        for i, it in enumerate(items):
            out.append(fn(*it))
            if progress:
                progress(i)
        return out
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(n_workers, mp_context=mp.get_context("fork"), initializer=_init_worker) as ex:
        futures = [ex.submit(fn, *it) for it in items]
        out = []
        for i, fut in enumerate(futures):
            out.append(fut.result())
            if progress:
                progress(i)
    return out
