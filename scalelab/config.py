"""Plain dataclasses that flow one way: file -> config -> model / trainer.

Never imports torch, nor any of scalelab but errors and the structure table. Every config here validates
itself on construction (`__post_init__` calls `validate()`), so that a shape that cannot be built is
rejected with a one-line ScalelabError, not a reshape crash later; code that changes a config builds
the changed one in one `replace(**changes)`. StructureConfig (scalelab.structures) is checked where a
ModelConfig or a layer uses it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, NoReturn, Optional

from scalelab.errors import ScalelabError
from scalelab.structures import StructureConfig

ATTENTIONS = ("mha", "gqa", "lpa")
ACTIVATIONS = ("gelu", "relu", "swiglu")
LPA_INITS = ("default", "svd")
PARAMS = ("sp", "mup")  # = scalelab.mup.PARAMS
# Shapes past these are typos (a width of 1e9): refused before anything counts or allocates their parameters.
MAX_DIM = 1 << 24
MAX_LAYERS = 4096


@dataclass(frozen=True)
class GuideConfig:
    """Self-guided training: a dense W mixed in with weight alpha, cosine from 1 to 0 over `fraction`
    of the optimizer steps. `reduce_flop`: run the dense path only with probability alpha (on by
    default: every published seed self-guided command sets it, so `guide = true` is what the seeds ran).
    `equal_flops`: the seeds' mode that guides the first r of the token budget and replays it at the end
    (r from flops.equal_flops_ratio, exact in either reduce_flop mode).
    """

    fraction: float = 0.5
    reduce_flop: bool = True
    equal_flops: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ScalelabError(f"guide fraction {self.fraction} is not in (0, 1]: use e.g. 0.5")


@dataclass(frozen=True)
class ModelConfig:
    """A GPT: pre-norm LayerNorm blocks, RoPE, SDPA attention, tied embeddings.

    d_attn: attention width (n_heads x head_dim); None means d_model.
    n_kv_heads: None means n_heads (MHA); fewer means GQA.
    attn: "mha" | "gqa" | "lpa"; attn_rank is LPA's r (Q, K, V, O each d -> r -> d).
    ffn: structure of both FFN linears; block 0 stays dense when dense_first_ffn.
    """

    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: Optional[int] = None  # None -> 4 d_model
    vocab_size: int = 256
    seq_len: int = 256
    d_attn: Optional[int] = None
    n_kv_heads: Optional[int] = None
    attn: str = "mha"
    attn_rank: Optional[int] = None
    activation: str = "gelu"
    bias: bool = True
    ffn: StructureConfig = field(default_factory=StructureConfig)
    dense_first_ffn: bool = True
    guide: Optional[GuideConfig] = None
    rope_base: float = 10000.0
    init_std: float = 0.02
    vocab_multiple: int = 1  # pad the vocab to a multiple of this (64 on GPU); padded logits are masked
    # LPA projections: "default" = PyTorch's nn.Linear init of each factor (LPA's code), "svd" = the
    # structured-FFN truncated-SVD init of a N(0, init_std^2) draw
    lpa_init: str = "default"
    # parametrisation (scalelab/mup.py): "sp" (standard) or "mup" (per-tensor init and Adam lr multipliers
    # from each factor's fans, logits x b / d_model, attention ~ 1 / d_head), relative to the base width b
    param: str = "sp"
    mup_base_width: int = 64

    # ---- derived shapes -------------------------------------------------------------------------
    @property
    def ffn_width(self) -> int:
        return self.d_ff if self.d_ff is not None else 4 * self.d_model

    @property
    def attn_width(self) -> int:
        return self.d_attn if self.d_attn is not None else self.d_model

    @property
    def head_dim(self) -> int:
        return self.attn_width // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads if self.n_kv_heads is not None else self.n_heads

    @property
    def padded_vocab(self) -> int:
        m = max(1, self.vocab_multiple)
        return ((self.vocab_size + m - 1) // m) * m

    @property
    def variant(self) -> str:
        """The name rows are grouped by: dense, lowrank-32, blockshuffle-b4, lpa-r64, gqa-kv2, ...+sg."""
        from scalelab import variant

        return variant.of_model(self).name

    @property
    def structure(self) -> str:
        if self.ffn.kind != "dense":
            return self.ffn.kind
        return "lpa" if self.attn == "lpa" else "dense"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "ModelConfig":
        def bad(msg: str) -> NoReturn:
            raise ScalelabError(f"model config: {msg}")

        for name in ("d_model", "n_layers", "n_heads", "vocab_size", "seq_len"):
            if getattr(self, name) < 1:
                bad(f"{name} must be positive, got {getattr(self, name)}")
        # the optional widths: None means "derived", anything given must be a real width (0 divides by zero
        # in the FLOP count, a negative one counts negative parameters)
        for name, hint in (("d_ff", "e.g. 4 x d_model"), ("d_attn", "or leave it out for d_model")):
            v = getattr(self, name)
            if v is not None and v < 1:
                bad(f"{name} must be positive, got {v}: use a positive width ({hint})")
        if self.n_kv_heads is not None and self.n_kv_heads < 1:
            bad(
                f"n_kv_heads must be a positive divisor of n_heads={self.n_heads}, got {self.n_kv_heads}: "
                "use e.g. n_kv_heads = 1, or leave it out for MHA"
            )
        for name in ("d_model", "d_ff", "d_attn", "vocab_size", "seq_len", "n_layers"):
            v = getattr(self, name)
            cap = MAX_LAYERS if name == "n_layers" else MAX_DIM
            if v is not None and v > cap:
                bad(f"{name} {v:,} is more than {cap:,}, beyond any model that can be allocated: use a smaller one")
        if self.activation not in ACTIVATIONS:
            bad(f"unknown activation {self.activation!r}: use one of {', '.join(ACTIVATIONS)}")
        if self.attn not in ATTENTIONS:
            bad(f"unknown attention {self.attn!r}: use one of {', '.join(ATTENTIONS)}")
        if self.attn_width % self.n_heads:
            bad(
                f"attention width {self.attn_width} is not divisible by n_heads={self.n_heads}: choose heads that "
                "divide it"
            )
        if self.head_dim % 2:
            bad(f"head_dim {self.head_dim} is odd; RoPE needs an even head_dim: change d_attn or n_heads")
        if self.n_heads % self.kv_heads:
            bad(
                f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.kv_heads}: choose kv heads that "
                "divide the heads"
            )
        if self.attn == "gqa" and self.kv_heads == self.n_heads:
            bad("attn=gqa needs n_kv_heads < n_heads: set n_kv_heads (e.g. --kv-heads 2)")
        if self.param not in PARAMS:
            bad(f'unknown param {self.param!r}: use one of {", ".join(PARAMS)} (e.g. param = "mup")')
        if self.mup_base_width < 1:
            bad(f"mup_base_width must be positive, got {self.mup_base_width}: use e.g. 64")
        for name in ("rope_base", "init_std"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                bad(f"{name} must be a positive finite number, got {v!r}")
        if self.lpa_init not in LPA_INITS:
            bad(f"unknown lpa_init {self.lpa_init!r}: use one of {', '.join(LPA_INITS)}")
        if self.attn == "lpa":
            if self.attn_rank is None or self.attn_rank < 1:
                bad("attn=lpa needs attn_rank (e.g. --attn-rank 64)")
            if self.attn_rank > min(self.d_model, self.attn_width):
                bad(f"LPA rank {self.attn_rank} exceeds min(d_model, d_attn)={min(self.d_model, self.attn_width)}")
            if self.attn_rank > self.kv_heads * self.head_dim:
                bad(
                    f"LPA rank {self.attn_rank} exceeds the key/value width {self.kv_heads * self.head_dim}: lower "
                    "--attn-rank or raise n_kv_heads"
                )
        self.ffn.validate()
        if self.ffn.kind != "dense":
            self.ffn.check_shape(self.d_model, self.ffn_width, "FFN up (d_model -> d_ff)")
            self.ffn.check_shape(self.ffn_width, self.d_model, "FFN down (d_ff -> d_model)")
            if self.n_layers == 1 and self.dense_first_ffn:
                bad(
                    "a 1-layer model with dense_first_ffn has no structured FFN: use n_layers >= 2 or "
                    "dense_first_ffn = false"
                )
        if self.guide is not None:
            self.guide.validate()
            if self.ffn.kind == "dense" and self.attn != "lpa":
                bad("self-guided training needs a structured layer to guide: set an FFN structure or lpa attention")
        return self

    # ---- (de)serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """All fields; the parametrisation fields only under muP (so SP configs, and their run ids, are
        what they were before muP existed), with muP's per-tensor table (recorded in the run store)."""
        d = dataclasses.asdict(self)
        if self.param == "sp":
            for k in _MUP_FIELDS:
                if d[k] == _FIELD_DEFAULTS[k]:
                    del d[k]
        else:
            from scalelab import mup

            d["mup_groups"] = mup.table(self)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        d = dict(d)
        d.pop("mup_groups", None)  # derived from the fields: recomputed
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ScalelabError(
                f"model config: unknown key(s) {', '.join(sorted(unknown))}: valid keys are {', '.join(sorted(known))}"
            )
        if isinstance(d.get("ffn"), dict):
            d["ffn"] = StructureConfig(**d["ffn"])
        if isinstance(d.get("guide"), dict):
            d["guide"] = GuideConfig(**d["guide"])
        return cls(**d)

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)


_MUP_FIELDS = ("param", "mup_base_width")
_FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ModelConfig)}


def stable_hash(obj: Any, n: int = 12) -> str:
    """Hash of a JSON-able object, independent of key order: run ids are stable across sessions."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


# =================================================================================================
# Runner configs: what one training run needs (a grid file expands into these: scalelab.grid).
# =================================================================================================

SCHEDULES = ("cosine", "wsd")
DATA_FORMATS = ("auto", "stdlib", "text", "jsonl", "parquet", "bin")
DATA_ORDERS = ("epoch", "random")
DECAY_SETS = ("matrices", "all")
MAX_EVAL_POINTS = 1000  # each is a full validation pass: more would take longer than the training


@dataclass(frozen=True)
class TrainConfig:
    """One run's optimisation. `budgets` are token counts: cosine runs have exactly one; WSD runs
    train one trunk to the largest and fork a (1 - sqrt) cooldown branch for every budget.

    batch_size is in sequences per optimizer step; micro_batch (None = batch_size) is what one
    forward sees, so batch_size / micro_batch micro-steps are accumulated per step.
    warmup and cooldown are fractions of a budget's optimizer steps.
    decay: which parameters weight decay applies to: "matrices" (nanoGPT: >= 2-D tensors, not biases and
    norm gains) or "all" (the seeds' AdamW over model.parameters()).
    """

    budgets: tuple = (1_000_000,)
    schedule: str = "cosine"
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # cosine ends at min_lr_ratio x peak (the seeds' 0.1)
    warmup: float = 0.05
    cooldown: float = 0.2
    batch_size: int = 8
    micro_batch: Optional[int] = None
    weight_decay: float = 0.1
    decay: str = "matrices"
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_points: int = 8  # log-spaced validation points along the trunk (finals are extra)
    val_tokens: int = 32_768  # size of the fixed held-out validation set
    diverge_factor: float = 2.0  # loss above this x its first value (or NaN/inf) = diverged
    compile: bool = False  # torch.compile (inductor), on any device
    dtype: str = "auto"  # auto: bf16 autocast on CUDA, float32 on CPU; or float32 / bfloat16 (on any device)
    # the hyperparameters a grid's [sweep] varies for this run (e.g. ("lr",)); () = not a sweep. Recorded in
    # the run store's `sweep` column so that `scalelab fit` knows what was swept; left out of run ids when ()
    sweep: tuple = ()

    @property
    def micro(self) -> int:
        return self.micro_batch if self.micro_batch is not None else self.batch_size

    @property
    def accum(self) -> int:
        return self.batch_size // self.micro

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "TrainConfig":
        def bad(msg: str) -> NoReturn:
            raise ScalelabError(f"train config: {msg}")

        if self.schedule not in SCHEDULES:
            bad(f"unknown schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}")
        if not self.budgets or any(int(b) < 1 for b in self.budgets):
            bad("budgets must be a non-empty list of positive token counts")
        if self.schedule == "cosine" and len(self.budgets) != 1:
            bad("a cosine run has exactly one token budget (the grid makes one run per budget)")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            bad(f"lr must be a positive finite number, got {self.lr}")
        for name, lo, hi in (("beta1", 0, 1), ("beta2", 0, 1)):
            if not lo <= getattr(self, name) < hi:
                bad(f"{name} {getattr(self, name)} must be in [{lo}, {hi}): use e.g. betas = [0.9, 0.95]")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            bad(f"weight_decay {self.weight_decay} must be a non-negative finite number, e.g. 0.1")
        if not (self.grad_clip >= 0 and math.isfinite(self.grad_clip)):
            bad(f"grad_clip {self.grad_clip} must be a non-negative finite number (0 = no clipping), e.g. 1.0")
        if not (self.diverge_factor > 1 and math.isfinite(self.diverge_factor)):
            bad(f"diverge_factor {self.diverge_factor} must be a finite number above 1, e.g. 2.0")
        if self.batch_size < 1 or self.micro < 1 or self.batch_size % self.micro:
            bad(f"batch_size={self.batch_size} must be a positive multiple of micro_batch={self.micro}")
        if not 0 <= self.warmup < 1:
            bad(f"warmup {self.warmup} must be a fraction of the steps in [0, 1)")
        if not 0 < self.cooldown <= 1:
            bad(f"cooldown {self.cooldown} must be a fraction of the steps in (0, 1]")
        if not 0 <= self.min_lr_ratio <= 1:
            bad(f"min_lr_ratio {self.min_lr_ratio} must be in [0, 1]")
        if self.eval_points < 1 or self.val_tokens < 1:
            bad("eval_points and val_tokens must be positive")
        if self.eval_points > MAX_EVAL_POINTS:
            bad(f"eval_points {self.eval_points} is more than {MAX_EVAL_POINTS}: evaluate at fewer points, e.g. 8")
        if self.decay not in DECAY_SETS:
            bad(f"unknown decay {self.decay!r}: use one of {', '.join(DECAY_SETS)}")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            bad(f"unknown dtype {self.dtype!r}: use auto, float32 or bfloat16")
        return self


@dataclass(frozen=True)
class DataConfig:
    """Where tokens come from. source "stdlib" is the embedded default corpus (this Python's
    standard-library source, byte level); otherwise a text file, folder or glob, a JSONL/Parquet file
    with a `text_column`, or pre-tokenized uint16 .bin files (a folder with train.bin and val.bin).
    tokenizer: "byte" (vocab 256) or a path to a local Hugging Face tokenizer.json.
    order: training windows "epoch" (each disjoint window once per epoch, a fresh permutation per epoch)
    or "random" (the seeds': window starts drawn uniformly with replacement); both are pure functions of
    (seed, step).
    """

    source: str = "stdlib"
    format: str = "auto"
    tokenizer: str = "byte"
    text_column: str = "text"
    val_fraction: float = 0.05
    vocab_size: Optional[int] = (
        None  # the model vocab if larger than the tokenizer's; .bin data without meta.json: its vocab
    )
    order: str = "epoch"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "DataConfig":
        if self.order not in DATA_ORDERS:
            raise ScalelabError(f"data config: unknown order {self.order!r}: use one of {', '.join(DATA_ORDERS)}")
        if self.format not in DATA_FORMATS:
            raise ScalelabError(f"data config: unknown format {self.format!r}: use one of {', '.join(DATA_FORMATS)}")
        if not 0 < self.val_fraction < 1:
            raise ScalelabError(f"data config: val_fraction {self.val_fraction} must be in (0, 1)")
        return self


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run; run_id hashes all of it."""

    grid: str
    model: ModelConfig
    train: TrainConfig
    data: DataConfig
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        t = dataclasses.asdict(self.train)
        t["budgets"] = [int(b) for b in self.train.budgets]
        if t["sweep"]:
            t["sweep"] = list(t["sweep"])
        else:
            del t["sweep"]  # runs outside a sweep keep the ids they had before sweeps existed
        return {
            "model": self.model.to_dict(),
            "train": t,
            "data": dataclasses.asdict(self.data),
            "grid": self.grid,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        t = dict(d["train"])
        t["budgets"] = tuple(int(b) for b in t["budgets"])
        t["sweep"] = tuple(t.get("sweep", ()))
        return cls(
            grid=d["grid"],
            model=ModelConfig.from_dict(d["model"]),
            train=TrainConfig(**t),
            data=DataConfig(**d["data"]),
            seed=int(d["seed"]),
        )

    @property
    def run_id(self) -> str:
        return stable_hash(self.to_dict())

    @property
    def variant(self) -> str:
        return self.model.variant

    @property
    def file_stem(self) -> str:
        """runs/{grid}__{variant}__d{d_model}__{run_id}.parquet: flat, so runs/*.parquet globs all."""
        return f"{self.grid}__{self.variant}__d{self.model.d_model}__{self.run_id}"
