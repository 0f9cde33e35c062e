"""One run on several processes: process groups from torchrun's environment, DDP / FSDP2 wrapping,
the per-rank slice of the global batch, rank-0-only writes, and a step-boundary stop for preemption.

A run started by `torchrun --nproc-per-node K -m scalelab.run.worker ...` (or by a Slurm task through
submitit, which exports the same variables) finds RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and
MASTER_PORT in its environment. Without them every function here is a no-op and the run is an ordinary
single process, so the trainer calls them unconditionally.

Why a K-process run equals a single-process run of the same config:
- every rank builds the model from the same seed (DDP also broadcasts rank 0's weights at wrap time);
- every rank draws the *same* global batch from the same seeded sampler and keeps its contiguous
  slice of rows (`rank_rows`), so the union of the slices is the single-process batch;
- the loss is a mean over rows; each rank averages its micro-batches (loss / accum_steps) and DDP
  (or FSDP2's reduce-scatter) averages over ranks, so with equal slices the gradient is the
  single-process gradient of the whole global batch, up to float summation order;
- logged train loss and validation loss are all-reduced means; only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import torch
import torch.distributed as dist

from scalelab.errors import ScalelabError


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in its run. world_size == 1 means a plain single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    backend: Optional[str] = None  # "nccl" | "gloo" | None when not distributed

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes Parquet rows, checkpoints and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _ranks_from_environ(environ: Any = None) -> tuple[int, int, int]:
    environ = os.environ if environ is None else environ
    world = int(environ.get("WORLD_SIZE", "1"))
    rank = int(environ.get("RANK", "0"))
    local = int(environ.get("LOCAL_RANK", str(rank)))
    if world < 1 or not 0 <= rank < world:
        raise ScalelabError(f"bad torch.distributed environment: RANK={rank}, WORLD_SIZE={world}: launch with torchrun")
    return rank, world, local


def init(device: Optional[str] = None) -> DistEnv:
    """Join the run's process group if torchrun (or submitit) started us; else describe a single process.

    device: "cpu", "cuda" or None (CUDA when available). Distributed CUDA runs use NCCL with one GPU per
    process (cuda:LOCAL_RANK); CPU runs use gloo.
    """
    rank, world, local = _ranks_from_environ()
    want_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if want_cuda and not torch.cuda.is_available():
        raise ScalelabError(
            "device cuda requested but torch sees no GPU: use --device cpu or check CUDA_VISIBLE_DEVICES"
        )
    if world == 1:
        return DistEnv(device=device or ("cuda" if want_cuda else "cpu"))
    if want_cuda:
        if local >= torch.cuda.device_count():
            raise ScalelabError(
                f"local rank {local} has no GPU ({torch.cuda.device_count()} visible): "
                "use --nproc-per-run no larger than the GPUs per node"
            )
        torch.cuda.set_device(local)
        backend, dev = "nccl", f"cuda:{local}"
    else:
        backend, dev = "gloo", "cpu"
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"backend": backend}
        if backend == "nccl":
            kwargs["device_id"] = torch.device(dev)  # eager NCCL init, no lazy first-collective hang
        dist.init_process_group(**kwargs)
    return DistEnv(rank=rank, world_size=world, local_rank=local, device=dev, backend=backend)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def process_group(device: Optional[str] = None) -> Iterator[DistEnv]:
    """`with process_group() as env:` joins the group (if any) and always leaves it."""
    env = init(device)
    try:
        yield env
        # leave together: a rank that tears gloo down while a peer is still in its last collective can
        # abort the peer ("terminate called without an active exception"). Not on the error path, where
        # a peer may never arrive.
        if dist.is_available() and dist.is_initialized():
            dist.barrier()
    finally:
        shutdown()


# ---- the global batch, split over ranks ------------------------------------------------------------
@dataclass(frozen=True)
class BatchPlan:
    """How one optimizer step's global batch of `global_rows` sequences is processed.

    Each of the world_size ranks takes rows_per_rank = global_rows / world_size of them, in
    accum_steps micro-batches of micro_rows: global_rows = world_size * accum_steps * micro_rows.
    """

    global_rows: int
    world_size: int
    rows_per_rank: int
    micro_rows: int
    accum_steps: int


def plan_batch(global_rows: int, micro_rows: int, world_size: int = 1) -> BatchPlan:
    """Keep the global batch of a single-process run; shrink the accumulation, not the batch.

    micro_rows is the largest micro-batch wanted per process (memory); it is lowered to the largest
    divisor of the per-rank rows so that every micro-batch has the same size (the mean of micro-batch
    means is then the mean over rows, exactly as in one process).
    """
    if global_rows < 1 or micro_rows < 1:
        raise ScalelabError(f"batch sizes must be positive (global {global_rows}, micro {micro_rows} sequences)")
    if global_rows % world_size:
        raise ScalelabError(
            f"a global batch of {global_rows} sequences does not split evenly over {world_size} processes: "
            f"choose batch_tokens / seq_len divisible by {world_size}, or another --nproc-per-run"
        )
    per_rank = global_rows // world_size
    micro = min(micro_rows, per_rank)
    while per_rank % micro:
        micro -= 1
    return BatchPlan(global_rows, world_size, per_rank, micro, per_rank // micro)


def rank_rows(batch: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """This rank's contiguous slice (dim 0) of a global batch every rank drew identically."""
    if not env.distributed:
        return batch
    n = batch.shape[0]
    if n % env.world_size:
        raise ScalelabError(f"batch of {n} rows does not split over {env.world_size} processes")
    k = n // env.world_size
    return batch[env.rank * k : (env.rank + 1) * k]


# ---- wrapping the model -----------------------------------------------------------------------------
def wrap_model(
    model: torch.nn.Module, env: DistEnv, shard: bool = False, find_unused_parameters: bool = False
) -> torch.nn.Module:
    """DDP for a distributed run, FSDP2 (`fully_shard`, each transformer block then the root) under
    `shard`; the model itself otherwise. Call after moving the model to env.device and before building
    the optimizer (FSDP2 replaces parameters by sharded DTensors).

    find_unused_parameters: needed when some parameters may get no gradient in a step (self-guided
    training with reduce_flop skips the dense path at random).
    """
    if shard:
        if not env.distributed:
            raise ScalelabError("--shard needs several processes: use it with --nproc-per-run K (K >= 2)")
        from torch.distributed.fsdp import fully_shard

        blocks = getattr(model, "blocks", None)
        if blocks is None:
            blocks = getattr(getattr(model, "transformer", None), "h", None)
        for block in blocks or []:
            fully_shard(block)
        fully_shard(model)
        return model
    if not env.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    device_ids = [env.local_rank] if env.backend == "nccl" else None
    return DDP(model, device_ids=device_ids, find_unused_parameters=find_unused_parameters)


def clone_model(
    model: torch.nn.Module, env: DistEnv, shard: bool, build: Any, find_unused_parameters: bool = False
) -> torch.nn.Module:
    """An independent copy with the same weights and the same wrapping (e.g. a WSD cooldown branch).

    build(): a fresh unwrapped model on env.device (used under FSDP2, whose sharded modules are not
    deep-copied; the full weights are gathered and loaded into a freshly sharded model)."""
    import copy

    if not env.distributed:
        return copy.deepcopy(model)
    if not shard:
        return wrap_model(copy.deepcopy(unwrap(model)), env, find_unused_parameters=find_unused_parameters)
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, set_model_state_dict

    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))
    new = wrap_model(build(), env, shard=True)
    set_model_state_dict(new, full, options=StateDictOptions(full_state_dict=True))
    return new


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The user's module under a DDP wrapper (FSDP2 modifies the module in place, nothing to unwrap)."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, torch.nn.Module) else model


def grad_sync(model: torch.nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """Skip the gradient all-reduce on all but the last micro-batch of a step:
    `with grad_sync(model, sync=(i == accum_steps - 1)): loss.backward()`."""
    if sync:
        return contextlib.nullcontext()
    no_sync = getattr(model, "no_sync", None)
    if no_sync is not None:  # DDP
        return no_sync()
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        return _fsdp_no_sync(model)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _fsdp_no_sync(model: Any) -> Iterator[None]:
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


# ---- collectives for logging and decisions -----------------------------------------------------------
def mean(value: float | torch.Tensor, env: DistEnv) -> float:
    """The mean of a scalar over ranks (train loss of the step, validation loss of a shard)."""
    if not env.distributed:
        return float(value)
    t = torch.as_tensor(value, dtype=torch.float64, device=env.device).detach().clone().reshape(1)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / env.world_size


def sum_(values: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Element-wise sum over ranks (e.g. [loss_sum, n_tokens] of an evaluation shard)."""
    if env.distributed:
        values = values.detach().clone().to(env.device)
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast(obj: Any, env: DistEnv) -> Any:
    """Rank 0's Python object on every rank (decisions such as 'resume from step k' or 'skip this run')."""
    if not env.distributed:
        return obj
    box = [obj if env.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


# ---- checkpoints ----------------------------------------------------------------------------------
def full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, all_ranks: bool = False) -> tuple[dict, dict]:
    """(model, optimizer) state dicts with full (unsharded) tensors, keyed by the unwrapped model's names.

    Collective under DDP/FSDP2: every rank calls it. By default (for checkpoints) only rank 0 receives
    the dicts, on CPU, and the other ranks get empty dicts: rank 0 saves. all_ranks=True gives every
    rank the full dicts on its device (to copy the training state, e.g. a WSD cooldown branch; under
    FSDP2 that gathers the whole model and optimizer state on every GPU).
    """
    inner = unwrap(model)
    if not (dist.is_available() and dist.is_initialized()):
        return inner.state_dict(), optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    opts = StateDictOptions(full_state_dict=True, cpu_offload=not all_ranks)
    return get_state_dict(inner, optimizer, options=opts)


def load_full_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, model_state: dict, optim_state: dict
) -> None:
    """Inverse of `full_state`: every rank passes the same full state dicts (read from the same file)."""
    inner = unwrap(model)
    if not (dist.is_available() and dist.is_initialized()):
        inner.load_state_dict(model_state)
        optimizer.load_state_dict(optim_state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    set_state_dict(
        inner,
        optimizer,
        model_state_dict=model_state,
        optim_state_dict=optim_state,
        options=StateDictOptions(full_state_dict=True),
    )


# ---- stopping at a step boundary (preemption, timeout) -------------------------------------------------
class Preempted(Exception):
    """Raised by the trainer after it saved a checkpoint because a stop was requested."""


_STOP = threading.Event()


def request_stop(*_: Any) -> None:
    """Ask the trainer to checkpoint and stop at the next step boundary (usable as a signal handler)."""
    _STOP.set()


def clear_stop() -> None:
    _STOP.clear()


def stop_pending() -> bool:
    """This process got a stop request (not yet agreed with the other ranks: see any_rank)."""
    return _STOP.is_set()


def stop_requested(env: DistEnv) -> bool:
    """True on every rank as soon as any rank got a stop request, so all ranks stop at the same step."""
    return any_rank([stop_pending()], env)[0]


def any_rank(flags: list, env: DistEnv) -> list[bool]:
    """Element-wise OR of boolean flags over ranks, in one small all-reduce: decisions that lead to a
    collective (checkpoint now? stop now?) must be the same on every rank, even when they come from
    a local clock or a signal that reached one process."""
    if not env.distributed:
        return [bool(f) for f in flags]
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v > 0) for v in t.tolist()]
