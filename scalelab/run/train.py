"""One training run: RunConfig in, rows (one per evaluation) out.

nanoGPT-style loop: AdamW with decoupled weight decay on matrices only (GPT.param_groups), gradient
clipping, gradient accumulation up to the grid's batch. dtype "auto" is bf16 autocast and fused AdamW on CUDA,
float32 and the unfused (foreach) AdamW on CPU; dtype "bfloat16" is bf16 autocast on either device and
`compile` is torch.compile (inductor) on either: a CPU run asking for either gets the CUDA path's fused AdamW
too, so the GPU path runs on CPU as it will on a GPU, while the default CPU run keeps the numbers it gave.

The step counts and LR schedule (cosine, or WSD with a cooldown branch forked per budget) are in
run/schedule.py, the checkpoint cadence in run/cadence.py and the row's columns in run/row.py. Self-guided
models get alpha = guide_alpha(step, S, fraction) each step; in the seeds' equal-FLOPs mode the guide fades
over the first r x S steps and the last r S steps replay the data of the first r S.

Data order is a pure function of (seed, step): by default each disjoint window once per epoch
(data.epoch_offsets; DataConfig.order = "random" draws starts with replacement as the seeds do), model
init of the seed, and a checkpoint holds model, optimizer, torch RNG and the rows so far: a run resumed
from a checkpoint gives the rows of an uninterrupted one (bit-identical on CPU). The run's Parquet file
is written only when the run ends, so runs/*.parquet never holds a partial run.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, cast

import numpy as np
import torch

import scalelab
from scalelab import flops as flopslib
from scalelab import store
from scalelab.config import RunConfig
from scalelab.data import Corpus, batch_offsets, epoch_offsets, get_batch, val_windows
from scalelab.fileio import atomic_write
from scalelab.model.gpt import GPT
from scalelab.model.guided import guide_alpha, guided_layers, set_guide_alpha
from scalelab.run import distributed as D
from scalelab.run.cadence import CheckpointCadence
from scalelab.run.device import device_name, peak_flops, pick_device
from scalelab.run.row import LOSS_WINDOW, RowMaker
from scalelab.run.schedule import branch_starts, estimate_tokens, lr_at, make_plan  # noqa: F401  (re-exported)


def git_sha() -> Optional[str]:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(run: RunConfig, corpus: Corpus, dev: torch.device, world: int) -> dict:
    """The run store's provenance columns: what data, code and machine gave a run's rows."""
    return dict(
        corpus=corpus.name,
        corpus_sha=corpus.sha,
        tokenizer=corpus.tokenizer,
        device=(f"{world}x " if world > 1 else "") + device_name(dev),
        torch_version=torch.__version__,
        scalelab_version=scalelab.__version__,
        git_sha=git_sha(),
        config=json.dumps(run.to_dict(), sort_keys=True),
    )


# ---- the run --------------------------------------------------------------------------------------


@dataclass
class RunResult:
    run_id: str
    status: str  # ok | diverged | interrupted (checkpointed on request; no rows written)
    rows: list
    wall_s: float
    resumed_from: int = 0  # step a checkpoint resumed from (0: fresh)


@dataclass
class _State:
    """Everything a checkpoint holds besides model and optimizer."""

    step: int = 0
    rows: list = field(default_factory=list)
    window: list = field(default_factory=list)
    wall_s: float = 0.0
    train_s: float = 0.0
    guide_flops: float = 0.0
    init_loss: Optional[float] = None
    done_branches: list = field(default_factory=list)


class Trainer:
    def __init__(
        self,
        run: RunConfig,
        corpus: Corpus,
        *,
        device: str = "auto",
        ckpt_path: Optional[str] = None,
        checkpoint_every: Optional[int] = None,
        checkpoint_seconds: float = 60.0,
        progress: Optional[Callable[[dict], None]] = None,
        tb_dir: Optional[str] = None,
        should_stop: Optional[Callable[[], bool]] = None,
        dist_env=None,
        shard: bool = False,
    ):
        self.run, self.corpus = run, corpus
        self.should_stop = should_stop  # polled every step: True -> checkpoint and return "interrupted"
        self.cfg, self.t = run.model, run.train
        # dist_env (scalelab.run.distributed.DistEnv, from torchrun/submitit): DDP, or FSDP2 under `shard`;
        # every rank draws the same global batch and keeps its slice, so K processes = 1 process.
        self.env, self.shard = dist_env, shard
        self.dist = dist_env is not None and (dist_env.distributed or shard)
        self.is_main = dist_env is None or dist_env.is_main
        self.dev = torch.device(dist_env.device) if dist_env is not None else pick_device(device)
        world = dist_env.world_size if dist_env is not None else 1
        self.bplan = D.plan_batch(self.t.batch_size, self.t.micro, world)
        self.plan = make_plan(run)
        self.ckpt_path = ckpt_path
        self.checkpoint_every, self.checkpoint_seconds = checkpoint_every, checkpoint_seconds
        self.progress = progress
        self.autocast = self.t.dtype == "bfloat16" or (self.t.dtype == "auto" and self.dev.type == "cuda")
        self.tb = _tensorboard(tb_dir) if tb_dir and self.is_main else None  # rank 0 logs
        self.tb_dir = tb_dir
        vx, vy = val_windows(corpus.val, self.cfg.seq_len, self.t.val_tokens)
        self.val_x, self.val_y = torch.from_numpy(vx), torch.from_numpy(vy)
        self._provenance = provenance(run, corpus, self.dev, world)
        self.row_maker = RowMaker(
            run,
            tokens_per_step=self.plan.tokens_per_step,
            flops_per_token=flopslib.flops_per_token(self.cfg),
            counts=flopslib.param_counts(self.cfg),
            train_tokens=corpus.n_train,
            peak=peak_flops(self.dev) * world,  # MFU of the whole run: K processes, K devices
            provenance=self._provenance,
        )

    # -- model and optimizer ------------------------------------------------------------------
    def _build(self):
        torch.manual_seed(self.run.seed)
        model: torch.nn.Module = GPT(self.cfg).to(self.dev)
        if self.dist:
            model = D.wrap_model(model, self.env, self.shard, find_unused_parameters=self._unused_ok)
        return model, self._new_opt(model)

    @property
    def _unused_ok(self) -> bool:
        # any guided run: once alpha = 0 the dense guide weights get no gradient (and under reduce_flop
        # they skip steps at random), which DDP must be told about (the seeds enable it for every guided run)
        return self.cfg.guide is not None

    @property
    def fused(self) -> bool:
        """Fused AdamW: on CUDA, and on CPU for runs on the GPU path (bf16 or compile) where torch has it. The
        float32 eager CPU run keeps the foreach AdamW (fused rounds differently: about 1 ulp per step)."""
        if self.shard:  # FSDP2's DTensor parameters
            return False
        if self.dev.type == "cuda":
            return True
        return (self.autocast or self.t.compile) and _fused_adamw_on(self.dev.type)

    def _new_opt(self, model):
        fused = self.fused
        if self.t.decay == "all" and self.cfg.param == "sp":  # the seeds: AdamW over model.parameters()
            groups = [
                {"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": self.t.weight_decay}
            ]
        else:  # muP groups carry "lr_mult" (scalelab.model.mup)
            gpt = cast(GPT, D.unwrap(model))  # the GPT that _build made (FSDP2 shards it in place, as a subclass)
            groups = gpt.param_groups(self.t.weight_decay, decay_all=self.t.decay == "all")
        return torch.optim.AdamW(
            groups,
            lr=self.t.lr,
            betas=(self.t.beta1, self.t.beta2),
            fused=fused or None,
        )

    def _fwd(self, model):
        if not self.t.compile:
            return model
        if not hasattr(self, "_compiled"):
            self._compiled: dict[int, Any] = {}
        if id(model) not in self._compiled:  # the trunk's, and each WSD branch's while it trains
            self._compiled[id(model)] = torch.compile(model)
        return self._compiled[id(model)]

    def _data_step(self, step: int) -> int:
        """The step whose data optimizer step `step` sees (equal-FLOPs replays the first r S steps)."""
        s_main = self.plan.total - self.plan.replay
        return step - s_main if step >= s_main else step

    def _alpha(self, step: int) -> float:
        g = self.cfg.guide
        if g is None:
            return 0.0
        if g.equal_flops:
            return guide_alpha(step, self.plan.guide_steps, 1.0)
        return guide_alpha(step, self.plan.total, g.fraction)

    def _train_step(self, model, opt, step: int, lr: float) -> tuple[float, float]:
        """One optimizer step; returns (mean micro-batch loss, guide FLOPs spent)."""
        model.train()
        for g in opt.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)  # muP's per-group multiplier (SP groups have none: x 1.0)
        layers = guided_layers(model)
        if layers:
            set_guide_alpha(model, self._alpha(step))
        calls0 = [m.dense_calls for m in layers]
        fwd = self._fwd(model)
        T = self.cfg.seq_len
        dstep = self._data_step(step)
        # the global batch: the single-process micro-batches' rows, in order; this rank keeps its slice
        if self.run.data.order == "epoch":
            B = self.t.batch_size
            offs = epoch_offsets(self.corpus.n_train, T, self.run.seed, dstep * B, B)
        else:
            offs = np.concatenate(
                [
                    batch_offsets(self.corpus.n_train, T, self.run.seed, dstep, i, self.t.micro)
                    for i in range(self.t.accum)
                ]
            )
        if self.env is not None and self.env.distributed:
            k = self.bplan.rows_per_rank
            offs = offs[self.env.rank * k : (self.env.rank + 1) * k]
        micro, accum = self.bplan.micro_rows, self.bplan.accum_steps
        total = 0.0
        for i in range(accum):
            xb, yb = get_batch(self.corpus.train, offs[i * micro : (i + 1) * micro], T)
            x = torch.from_numpy(xb).to(self.dev, non_blocking=True)
            y = torch.from_numpy(yb).to(self.dev, non_blocking=True)
            with D.grad_sync(model, sync=(i == accum - 1)):
                with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.autocast):
                    _, loss = fwd(x, y)
                (loss / accum).backward()
            total += loss.item() / accum
        if self.dist:
            total = D.mean(total, self.env)
        if self.t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.t.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        # guide FLOPs actually spent: 3 x 2 x (M x N) per token for each forward that ran the dense path
        gf = 0.0
        for m, c0 in zip(layers, calls0):
            gf += 6.0 * m.in_features * m.out_features * (m.dense_calls - c0) * micro * T
        if self.dist and layers:
            gf = float(D.sum_(torch.tensor([gf], dtype=torch.float64), self.env)[0])
        return total, gf

    @torch.no_grad()
    def evaluate(self, model) -> float:
        model.eval()
        fwd = self._fwd(model)
        chunk = max(1, self.t.micro * 4)
        tot, n = 0.0, 0
        for i in range(0, self.val_x.shape[0], chunk):
            x = self.val_x[i : i + chunk].to(self.dev)
            y = self.val_y[i : i + chunk].to(self.dev)
            with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.autocast):
                _, loss = fwd(x, y)
            tot += loss.item() * x.numel()
            n += x.numel()
        model.train()
        return tot / n

    # -- checkpoints --------------------------------------------------------------------------
    def _save(self, model, opt, st: _State) -> None:
        if not self.ckpt_path:
            return
        ms, os_ = D.full_state(model, opt) if self.dist else (model.state_dict(), opt.state_dict())
        if not self.is_main:
            return
        os.makedirs(os.path.dirname(self.ckpt_path), exist_ok=True)
        payload = {
            "run_id": self.run.run_id,
            "config": self._provenance["config"],  # the run id's preimage: a checkpoint names the run it belongs to
            "model": ms,
            "opt": os_,
            "rng": torch.get_rng_state(),
            "state": _plain(st.__dict__),  # plain Python: loadable with weights_only=True
        }
        if self.dev.type == "cuda":
            payload["cuda_rng"] = torch.cuda.get_rng_state(self.dev)
        atomic_write(self.ckpt_path, lambda f: torch.save(payload, f))

    def _load(self, model, opt) -> Optional[_State]:
        """The checkpoint's state, loaded into model and opt; None when there is none. A checkpoint that is torn,
        unreadable, of another run or that does not fit this run's model, optimizer or state raises _NotThisRun
        (model and opt may then be half-loaded: the caller rebuilds them)."""
        if not self.ckpt_path or not os.path.isfile(self.ckpt_path):
            return None
        try:
            # weights_only: tensors and plain containers only, no pickle code from a shared runs/ folder
            payload = torch.load(self.ckpt_path, map_location=self.dev, weights_only=True)
        except Exception as e:
            raise _NotThisRun(f"is unreadable ({type(e).__name__})") from e
        if not isinstance(payload, dict):
            raise _NotThisRun(f"is unreadable (holds a {type(payload).__name__}, not a checkpoint)")
        other = payload.get("run_id")
        if other != self.run.run_id or payload.get("config", self._provenance["config"]) != self._provenance["config"]:
            who = f"run {other}" if isinstance(other, str) and other != self.run.run_id else "another run"
            raise _NotThisRun(f"belongs to {who}, not to run {self.run.run_id}")
        try:
            st = _State(**payload["state"])
            if self.dist:
                D.load_full_state(model, opt, payload["model"], payload["opt"])
            else:
                model.load_state_dict(payload["model"])
                opt.load_state_dict(payload["opt"])
            torch.set_rng_state(payload["rng"].cpu())  # map_location moved it; generators take CPU byte tensors
        except Exception as e:  # same run id, other layout (a scalelab or torch version that changed the model)
            first = (str(e).strip().splitlines() or [""])[0][:120]
            raise _NotThisRun(f"does not fit run {self.run.run_id} ({type(e).__name__}: {first})") from e
        if "cuda_rng" in payload and self.dev.type == "cuda":
            torch.cuda.set_rng_state(payload["cuda_rng"].cpu(), self.dev)
        return st

    # -- main loop ----------------------------------------------------------------------------
    def train(self) -> RunResult:
        model, opt, st = self._resume()
        resumed = st.step
        cadence = CheckpointCadence(self.checkpoint_every, self.checkpoint_seconds)
        forks = branch_starts(self.run, self.plan)
        t_start = time.perf_counter() - st.wall_s
        status = "ok"
        while status == "ok":
            status = self._fork(model, opt, st, forks.get(st.step, []), t_start, cadence)
            if status != "ok" or st.step >= self.plan.total:
                break
            status = self._trunk_step(model, opt, st, t_start)
            if status == "ok":
                status = self._checkpoint_or_stop(model, opt, st, cadence)
        if status == "diverged":
            for r in st.rows:
                r["status"] = "diverged"
        if self.tb is not None:
            self.tb.close()
        rows = sorted(st.rows, key=lambda r: (r["step"], r["final"], r["budget"]))
        return RunResult(self.run.run_id, status, rows, st.wall_s, resumed)

    def _resume(self):
        """Model, optimizer and state: from the run's checkpoint where it has one, else fresh."""
        model, opt = self._build()
        try:
            st = self._load(model, opt)
        except _NotThisRun as e:  # say so in one line, then start over rather than fail
            if self.is_main:
                print(
                    f"checkpoint {self.ckpt_path} {e}: run {self.run.run_id} restarts from step 0",
                    file=sys.stderr,
                    flush=True,
                )
            model, opt = self._build()  # a failed load may have filled part of them
            st = None
        return model, opt, st or _State()

    def _fork(self, model, opt, st: _State, branches, t_start: float, cadence: CheckpointCadence) -> str:
        """Train the WSD cooldown branches that start at this trunk step (each once, checkpointed after)."""
        for b, s_b in branches:
            if b in st.done_branches:
                continue
            status = self._branch(model, opt, st, b, s_b, t_start)
            st.done_branches.append(b)
            st.wall_s = time.perf_counter() - t_start
            if status != "ok":
                return status
            self._save(model, opt, st)
            cadence.saved()
        return "ok"

    def _trunk_step(self, model, opt, st: _State, t_start: float) -> str:
        """One optimizer step of the trunk, with its row when it diverges or is an evaluation point."""
        plan = self.plan
        lr = lr_at(self.run, plan, st.step)
        t0 = time.perf_counter()
        loss, gf = self._train_step(model, opt, st.step, lr)
        st.train_s += time.perf_counter() - t0
        st.step += 1
        st.guide_flops += gf
        st.window = (st.window + [loss])[-LOSS_WINDOW:]
        if st.init_loss is None:
            st.init_loss = loss
        st.wall_s = time.perf_counter() - t_start
        trunk = dict(lr=lr, budget=max(int(b) for b in self.t.budgets), window=st.window)
        if self._diverged(loss, st.init_loss):
            st.rows.append(self._trunk_row(st, val_loss=float("nan"), final=False, status="diverged", **trunk))
            if self.tb is not None:  # non-finite: read back as diverged (TensorBoard's readers drop a NaN)
                self.tb.add_scalar("val_loss", math.inf, st.step * plan.tokens_per_step)
            return "diverged"
        if st.step in plan.eval_steps:
            v = self.evaluate(model)
            st.wall_s = time.perf_counter() - t_start
            st.rows.append(self._trunk_row(st, val_loss=v, final=st.step == plan.total, **trunk))
            if self.tb is not None:
                self.tb.add_scalar("val_loss", v, st.step * plan.tokens_per_step)
        self._report(st, loss)
        return "ok"

    def _trunk_row(self, st: _State, **kw) -> dict:
        return self.row_maker.row(step=st.step, wall_s=st.wall_s, train_s=st.train_s, guide_flops=st.guide_flops, **kw)

    def _report(self, st: _State, loss: float) -> None:
        tokens = st.step * self.plan.tokens_per_step
        if self.progress is not None:
            self.progress(
                dict(
                    step=st.step,
                    total=self.plan.total,
                    tokens=tokens,
                    loss=loss,
                    tokens_per_s=tokens / max(st.train_s, 1e-9),
                )
            )
        if self.tb is not None:
            self.tb.add_scalar("train_loss", loss, tokens)

    def _checkpoint_or_stop(self, model, opt, st: _State, cadence: CheckpointCadence) -> str:
        """Checkpoint when due or asked to stop; "interrupted" on a stop request before the end."""
        due = cadence.due(st.step)
        stop = self.should_stop is not None and self.should_stop()
        if self.env is not None:  # the same decision on every rank (clocks and signals are local)
            due, stop = D.any_rank([due, stop or D.stop_pending()], self.env)
        if (due or stop) and st.step < self.plan.total:
            self._save(model, opt, st)
            cadence.saved()
        if stop and st.step < self.plan.total:
            if self.env is not None:
                raise D.Preempted(f"checkpointed at step {st.step}")
            return "interrupted"
        return "ok"

    def _diverged(self, loss: float, init: float) -> bool:
        return not math.isfinite(loss) or loss > self.t.diverge_factor * init

    def _branch(self, model, opt, st: _State, budget: int, s_b: int, t_start: float) -> str:
        """Cool a copy of the trunk down to budget's end; append its final row. Trunk untouched."""
        bmodel, bopt = self._clone(model, opt)
        # the branch's curve in its own writer, TB_BRANCH under the run's log: TensorBoard overlays it on the
        # trunk's, and scalelab ingest reads it back as this budget's final point (ingest/tb_events.py)
        tb = None
        if self.tb is not None and self.tb_dir:
            tb = _tensorboard(os.path.join(self.tb_dir, TB_BRANCH.format(budget=budget)))
        window = list(st.window)
        train_s, gflops = st.train_s, st.guide_flops
        rng = torch.get_rng_state()
        lr = self.t.lr
        for s in range(st.step, s_b):
            lr = lr_at(self.run, self.plan, s, branch_steps=s_b)
            t0 = time.perf_counter()
            loss, gf = self._train_step(bmodel, bopt, s, lr)
            train_s += time.perf_counter() - t0
            gflops += gf
            window = (window + [loss])[-LOSS_WINDOW:]
            if tb is not None:
                tb.add_scalar("train_loss", loss, (s + 1) * self.plan.tokens_per_step)
            if self._diverged(loss, st.init_loss if st.init_loss is not None else loss):
                st.rows.append(
                    self.row_maker.row(
                        step=s + 1,
                        val_loss=float("nan"),
                        lr=lr,
                        final=False,
                        budget=budget,
                        window=window,
                        wall_s=time.perf_counter() - t_start,
                        train_s=train_s,
                        guide_flops=gflops,
                        status="diverged",
                    )
                )
                self._forget(bmodel)
                if tb is not None:  # non-finite: read back as diverged (TensorBoard's readers drop a NaN)
                    tb.add_scalar("val_loss", math.inf, (s + 1) * self.plan.tokens_per_step)
                    tb.close()
                return "diverged"
        v = self.evaluate(bmodel)
        if tb is not None:
            tb.add_scalar("val_loss", v, s_b * self.plan.tokens_per_step)
            tb.close()
        wall_s = time.perf_counter() - t_start
        st.rows.append(
            self.row_maker.row(
                step=s_b,
                val_loss=v,
                lr=lr,
                final=True,
                budget=budget,
                window=window,
                wall_s=wall_s,
                train_s=train_s,
                guide_flops=gflops,
            )
        )
        torch.set_rng_state(rng)  # the trunk continues as if the branch never ran
        self._forget(bmodel)
        return "ok"

    def _clone(self, model, opt):
        """A copy of the trunk's model and optimizer for a branch; the trunk's stay put."""
        if self.dist:
            bmodel = D.clone_model(
                model,
                self.env,
                self.shard,
                build=lambda: GPT(self.cfg).to(self.dev),
                find_unused_parameters=self._unused_ok,
            )
        else:
            bmodel = copy.deepcopy(model)
        bopt = self._new_opt(bmodel)
        # this rank's optimizer state (a replica under DDP, a shard under FSDP2 with the same layout in
        # the clone), copied: the trunk's moments stay put
        bopt.load_state_dict(copy.deepcopy(opt.state_dict()))
        return bmodel, bopt

    def _forget(self, model) -> None:
        """Drop a finished branch's compiled wrapper, which holds the branch model (a GPU copy per branch)."""
        getattr(self, "_compiled", {}).pop(id(model), None)


class _NotThisRun(Exception):
    """A checkpoint the run cannot resume from; the message completes "checkpoint PATH ..."."""


# a WSD cooldown branch's TensorBoard folder under its run's; budget in tokens (scalelab.ingest.tb_events reads it)
TB_BRANCH = "cooldown-{budget}"


def _tensorboard(tb_dir: str):
    try:
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(tb_dir)
    except Exception:  # tensorboard is optional
        return None


def _fused_adamw_on(device_type: str) -> bool:
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        return device_type in _get_fused_kernels_supported_devices()
    except ImportError:  # a torch without the helper has no fused CPU kernels either
        return False


def _plain(x):
    """numpy scalars and str subclasses -> plain Python, recursively: torch.load(weights_only=True)
    refuses numpy types and torch's TorchVersion."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    if isinstance(x, str):
        return str(x)  # torch.__version__ is a str subclass
    return x.item() if isinstance(x, np.generic) else x


def train_run(run: RunConfig, corpus: Corpus, out_path: Optional[str] = None, **kw) -> RunResult:
    """Train one run (resuming from kw['ckpt_path'] if present) and write its rows to out_path."""
    res = Trainer(run, corpus, **kw).train()
    env = kw.get("dist_env")
    if env is not None and not env.is_main:
        return res  # rank 0 writes
    if out_path and res.status != "interrupted":
        store.write_run(out_path, res.rows)
        ck = kw.get("ckpt_path")
        if ck and os.path.exists(ck):
            os.remove(ck)
    return res
