"""Plain dataclasses that flow one way: file -> config -> model / trainer.

Never imports torch. Every config validates itself at construction time (`validate()`), so that a
shape that cannot be built is rejected with a one-line ScalelabError, not a reshape crash later.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from scalelab.errors import ScalelabError

STRUCTURES = ("dense", "lowrank", "blockdense", "blockshuffle")
ATTENTIONS = ("mha", "gqa", "lpa")
ACTIVATIONS = ("gelu", "relu", "swiglu")


@dataclass(frozen=True)
class StructureConfig:
    """A linear layer's structure (REFERENCE.md section 1).

    dense; lowrank(rank); blockdense(blocks, rank); blockshuffle(blocks).
    `fraction` is informational: the nominal share of the replaced FFN params (e.g. 0.63, 0.32).
    """

    kind: str = "dense"
    rank: Optional[int] = None
    blocks: Optional[int] = None
    fraction: Optional[float] = None

    def validate(self) -> None:
        if self.kind not in STRUCTURES:
            raise ScalelabError(f"unknown structure {self.kind!r}: use one of {', '.join(STRUCTURES)}")
        needs_rank = self.kind in ("lowrank", "blockdense")
        needs_blocks = self.kind in ("blockdense", "blockshuffle")
        if needs_rank and (self.rank is None or self.rank < 1):
            raise ScalelabError(f"structure {self.kind} needs a positive rank: set rank (e.g. --rank 64)")
        if needs_blocks and (self.blocks is None or self.blocks < 1):
            raise ScalelabError(f"structure {self.kind} needs a positive block count: set blocks (e.g. --blocks 4)")

    def check_shape(self, n_in: int, n_out: int, where: str = "layer") -> None:
        """Reject shapes the structure cannot take (N input, M output features)."""
        self.validate()
        k, r, b = self.kind, self.rank, self.blocks
        if k == "lowrank" and r > min(n_in, n_out):
            raise ScalelabError(f"{where}: lowrank rank {r} exceeds min(in={n_in}, out={n_out}): choose rank <= {min(n_in, n_out)}")
        if k == "blockdense":
            if n_in % b or r % b:
                raise ScalelabError(f"{where}: blockdense needs in={n_in} and rank={r} divisible by blocks={b}: choose a block count that divides both")
            if r > n_out or r // b > n_in // b:
                raise ScalelabError(f"{where}: blockdense rank {r} too large for in={n_in}, out={n_out}: choose rank <= {min(n_in, n_out)}")
        if k == "blockshuffle" and (n_in % b or n_out % b):
            raise ScalelabError(f"{where}: blockshuffle needs in={n_in} and out={n_out} divisible by blocks={b}: choose a block count that divides both")

    @property
    def name(self) -> str:
        if self.kind == "dense":
            return "dense"
        if self.fraction is not None:
            return f"{self.kind}-{round(self.fraction * 100)}"
        if self.kind == "lowrank":
            return f"lowrank-r{self.rank}"
        if self.kind == "blockdense":
            return f"blockdense-b{self.blocks}r{self.rank}"
        return f"blockshuffle-b{self.blocks}"


@dataclass(frozen=True)
class GuideConfig:
    """Self-guided training: a dense W mixed in with weight alpha, cosine from 1 to 0 over `fraction`
    of the optimizer steps. `reduce_flop`: run the dense path only with probability alpha.
    `equal_flops`: the seeds' mode that guides the first r of the token budget and replays it at the end.
    """

    fraction: float = 0.5
    reduce_flop: bool = False
    equal_flops: bool = False

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
        parts = []
        if self.attn == "lpa":
            parts.append(f"lpa-r{self.attn_rank}")
        elif self.kv_heads != self.n_heads:
            parts.append(f"gqa-kv{self.kv_heads}")
        if self.ffn.kind != "dense" or not parts:
            parts.insert(0, self.ffn.name)
        name = "+".join(parts)
        if self.guide is not None:
            name += "+sg"
        return name

    @property
    def structure(self) -> str:
        if self.ffn.kind != "dense":
            return self.ffn.kind
        return "lpa" if self.attn == "lpa" else "dense"

    def validate(self) -> "ModelConfig":
        def bad(msg: str) -> None:
            raise ScalelabError(f"model config: {msg}")

        for name in ("d_model", "n_layers", "n_heads", "vocab_size", "seq_len"):
            if getattr(self, name) < 1:
                bad(f"{name} must be positive, got {getattr(self, name)}")
        if self.activation not in ACTIVATIONS:
            bad(f"unknown activation {self.activation!r}: use one of {', '.join(ACTIVATIONS)}")
        if self.attn not in ATTENTIONS:
            bad(f"unknown attention {self.attn!r}: use one of {', '.join(ATTENTIONS)}")
        if self.attn_width % self.n_heads:
            bad(f"attention width {self.attn_width} is not divisible by n_heads={self.n_heads}: choose heads that divide it")
        if self.head_dim % 2:
            bad(f"head_dim {self.head_dim} is odd; RoPE needs an even head_dim: change d_attn or n_heads")
        if self.n_heads % self.kv_heads:
            bad(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.kv_heads}: choose kv heads that divide the heads")
        if self.attn == "gqa" and self.kv_heads == self.n_heads:
            bad("attn=gqa needs n_kv_heads < n_heads: set n_kv_heads (e.g. --kv-heads 2)")
        if self.attn == "lpa":
            if self.attn_rank is None or self.attn_rank < 1:
                bad("attn=lpa needs attn_rank (e.g. --attn-rank 64)")
            if self.attn_rank > min(self.d_model, self.attn_width):
                bad(f"LPA rank {self.attn_rank} exceeds min(d_model, d_attn)={min(self.d_model, self.attn_width)}")
            if self.attn_rank > self.kv_heads * self.head_dim:
                bad(f"LPA rank {self.attn_rank} exceeds the key/value width {self.kv_heads * self.head_dim}: lower --attn-rank or raise n_kv_heads")
        self.ffn.validate()
        if self.ffn.kind != "dense":
            self.ffn.check_shape(self.d_model, self.ffn_width, "FFN up (d_model -> d_ff)")
            self.ffn.check_shape(self.ffn_width, self.d_model, "FFN down (d_ff -> d_model)")
            if self.n_layers == 1 and self.dense_first_ffn:
                bad("a 1-layer model with dense_first_ffn has no structured FFN: use n_layers >= 2 or dense_first_ffn = false")
        if self.guide is not None:
            self.guide.validate()
            if self.ffn.kind == "dense" and self.attn != "lpa":
                bad("self-guided training needs a structured layer to guide: set an FFN structure or lpa attention")
        return self

    # ---- (de)serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ScalelabError(f"model config: unknown key(s) {', '.join(sorted(unknown))}: valid keys are {', '.join(sorted(known))}")
        if isinstance(d.get("ffn"), dict):
            d["ffn"] = StructureConfig(**d["ffn"])
        if isinstance(d.get("guide"), dict):
            d["guide"] = GuideConfig(**d["guide"])
        return cls(**d)

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)


def stable_hash(obj: Any, n: int = 12) -> str:
    """Hash of a JSON-able object, independent of key order: run ids are stable across sessions."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


# =================================================================================================
# Runner configs: what a grid file describes and what one training run needs.
# (TrainConfig, DataConfig, RunConfig, Grid + TOML loading; torch-free like the rest of this file.)
# =================================================================================================

SCHEDULES = ("cosine", "wsd")
DATA_FORMATS = ("auto", "stdlib", "text", "jsonl", "parquet", "bin")


@dataclass(frozen=True)
class TrainConfig:
    """One run's optimisation. `budgets` are token counts: cosine runs have exactly one; WSD runs
    train one trunk to the largest and fork a (1 - sqrt) cooldown branch for every budget.

    batch_size is in sequences per optimizer step; micro_batch (None = batch_size) is what one
    forward sees, so batch_size / micro_batch micro-steps are accumulated per step.
    warmup and cooldown are fractions of a budget's optimizer steps.
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
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_points: int = 8  # log-spaced validation points along the trunk (finals are extra)
    val_tokens: int = 32_768  # size of the fixed held-out validation set
    diverge_factor: float = 2.0  # loss above this x its first value (or NaN/inf) = diverged
    compile: bool = False  # torch.compile on CUDA
    dtype: str = "auto"  # auto: bf16 autocast on CUDA, float32 on CPU; or float32 / bfloat16

    @property
    def micro(self) -> int:
        return self.micro_batch if self.micro_batch is not None else self.batch_size

    @property
    def accum(self) -> int:
        return self.batch_size // self.micro

    def validate(self) -> "TrainConfig":
        def bad(msg: str) -> None:
            raise ScalelabError(f"train config: {msg}")

        if self.schedule not in SCHEDULES:
            bad(f"unknown schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}")
        if not self.budgets or any(int(b) < 1 for b in self.budgets):
            bad("budgets must be a non-empty list of positive token counts")
        if self.schedule == "cosine" and len(self.budgets) != 1:
            bad("a cosine run has exactly one token budget (the grid makes one run per budget)")
        if not self.lr > 0:
            bad(f"lr must be positive, got {self.lr}")
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
        if self.dtype not in ("auto", "float32", "bfloat16"):
            bad(f"unknown dtype {self.dtype!r}: use auto, float32 or bfloat16")
        return self


@dataclass(frozen=True)
class DataConfig:
    """Where tokens come from. source "stdlib" is the embedded default corpus (this Python's
    standard-library source, byte level); otherwise a text file, folder or glob, a JSONL/Parquet file
    with a `text_column`, or pre-tokenized uint16 .bin files (a folder with train.bin and val.bin).
    tokenizer: "byte" (vocab 256) or a path to a local Hugging Face tokenizer.json.
    """

    source: str = "stdlib"
    format: str = "auto"
    tokenizer: str = "byte"
    text_column: str = "text"
    val_fraction: float = 0.05
    vocab_size: Optional[int] = None  # the model vocab if larger than the tokenizer's; .bin data without meta.json: its vocab

    def validate(self) -> "DataConfig":
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
        return {"model": self.model.to_dict(), "train": t, "data": dataclasses.asdict(self.data),
                "grid": self.grid, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        t = dict(d["train"])
        t["budgets"] = tuple(int(b) for b in t["budgets"])
        return cls(grid=d["grid"], model=ModelConfig.from_dict(d["model"]), train=TrainConfig(**t),
                   data=DataConfig(**d["data"]), seed=int(d["seed"]))

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


# ---- grid files (TOML) ----------------------------------------------------------------------------

_GRID_KEYS = {"name", "description", "seeds", "data", "model", "variants", "budgets", "schedule",
              "optimizer", "eval", "slurm"}  # [slurm] is read by scalelab.run.slurm
_MODEL_KEYS = {"widths", "depths", "n_layers", "aspect", "heads", "head_dim", "d_ff_ratio"} | {
    f.name for f in dataclasses.fields(ModelConfig)} - {"d_model", "ffn", "guide"}
_VARIANT_KEYS = {"structure", "rank", "rank_ratio", "blocks", "fraction", "attn", "attn_rank",
                 "attn_rank_ratio", "kv_heads", "guide", "dense_first_ffn", "model"}
_BUDGET_KEYS = {"tokens", "tokens_per_param", "param_count"}
_SCHEDULE_KEYS = {"kind", "warmup", "cooldown", "min_lr_ratio"}
_OPT_KEYS = {"lr", "lr_table", "lr_law", "weight_decay", "betas", "grad_clip", "batch_size",
             "micro_batch", "compile", "dtype", "diverge_factor"}
_EVAL_KEYS = {"points", "val_tokens"}
VARIANT_STRUCTURES = ("dense", "lowrank", "blockdense", "blockshuffle")


def _check_keys(table: Any, allowed: set, where: str) -> dict:
    if not isinstance(table, dict):
        raise ScalelabError(f"grid: [{where}] must be a table")
    unknown = set(table) - allowed
    if unknown:
        raise ScalelabError(f"grid: unknown key(s) {', '.join(sorted(unknown))} in [{where}]: valid keys are {', '.join(sorted(allowed))}")
    return table


def _as_list(x: Any) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


@dataclass(frozen=True)
class Grid:
    """A parsed grid file: the Cartesian product seeds x widths x variants (x budgets for cosine)
    expands to RunConfigs (`runs()`). WSD makes one run per (size, variant, seed) with every budget
    as a cooldown branch."""

    name: str
    spec: dict
    path: Optional[str] = None
    description: str = ""

    # -- loading --------------------------------------------------------------------------------
    @classmethod
    def from_toml(cls, path: str) -> "Grid":
        import os

        try:
            import tomllib  # Python 3.11+
        except ModuleNotFoundError:  # pragma: no cover
            import tomli as tomllib  # type: ignore
        if not os.path.isfile(path):
            raise ScalelabError(f"grid file {path} not found: give a path to a .toml file or a built-in grid name ({', '.join(builtin_grids())})")
        try:
            with open(path, "rb") as f:
                spec = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ScalelabError(f"grid file {path} is not valid TOML: {e}") from None
        except OSError as e:
            raise ScalelabError(f"cannot read grid file {path}: {e.strerror}") from None
        name = spec.get("name") or os.path.splitext(os.path.basename(path))[0]
        grid = cls(name=str(name), spec=spec, path=os.path.abspath(path), description=str(spec.get("description", "")))
        grid.validate()
        return grid

    @classmethod
    def load(cls, name_or_path: str) -> "Grid":
        """A built-in grid name (scalelab/grids/NAME.toml) or a path to a TOML file."""
        import os

        if os.path.exists(name_or_path) or name_or_path.endswith(".toml"):
            return cls.from_toml(name_or_path)
        builtin = os.path.join(os.path.dirname(__file__), "grids", f"{name_or_path}.toml")
        if os.path.isfile(builtin):
            return cls.from_toml(builtin)
        raise ScalelabError(f"no grid named {name_or_path!r}: use a built-in ({', '.join(builtin_grids())}) or a path to a .toml file")

    # -- validation and expansion ---------------------------------------------------------------
    def validate(self) -> "Grid":
        """Check every key and build (and validate) every run, so a bad grid fails before training."""
        runs = self.runs()
        if not runs:
            raise ScalelabError(f"grid {self.name}: expands to no runs: give at least one width, variant, budget and seed")
        return self

    def data_config(self) -> DataConfig:
        d = self.spec.get("data", {})
        _check_keys(d, {f.name for f in dataclasses.fields(DataConfig)}, "data")
        try:
            cfg = DataConfig(**d)
        except TypeError as e:
            raise ScalelabError(f"grid: bad [data] table: {e}") from None
        return cfg.validate()

    def runs(self) -> list[RunConfig]:
        import os

        s = self.spec
        _check_keys(s, _GRID_KEYS, "top level")
        data = self.data_config()
        from scalelab.data import data_vocab_size  # torch-free; checks the data path exists

        vocab = data_vocab_size(data, base_dir=os.path.dirname(self.path) if self.path else None)
        m = dict(_check_keys(s.get("model", {}), _MODEL_KEYS, "model"))
        widths = [int(w) for w in _as_list(m.pop("widths", [128]))]
        depths = m.pop("depths", None)
        aspect = m.pop("aspect", None)
        n_layers = m.pop("n_layers", None)
        heads = m.pop("heads", None)
        head_dim = m.pop("head_dim", None)
        d_ff_ratio = m.pop("d_ff_ratio", None)
        if depths is not None and len(_as_list(depths)) != len(widths):
            raise ScalelabError(f"grid: [model] depths has {len(_as_list(depths))} entries for {len(widths)} widths: give one depth per width, or n_layers, or aspect")
        if heads is not None and head_dim is not None:
            raise ScalelabError("grid: [model] give heads or head_dim, not both")
        if isinstance(heads, list) and len(heads) != len(widths):
            raise ScalelabError(f"grid: [model] heads has {len(heads)} entries for {len(widths)} widths: give one per width, or one number")
        variants = s.get("variants", [{"structure": "dense"}])
        if not isinstance(variants, list) or not variants:
            raise ScalelabError("grid: [[variants]] must be a non-empty array of tables")
        b = _check_keys(s.get("budgets", {}), _BUDGET_KEYS, "budgets")
        if ("tokens" in b) == ("tokens_per_param" in b):
            raise ScalelabError("grid: [budgets] needs exactly one of tokens = [...] or tokens_per_param = [...]")
        basis = b.get("param_count", "params_nonembed")
        if basis not in ("params", "params_nonembed"):
            raise ScalelabError(f"grid: [budgets] param_count must be params or params_nonembed, got {basis!r}")
        sched = _check_keys(s.get("schedule", {}), _SCHEDULE_KEYS, "schedule")
        opt = _check_keys(s.get("optimizer", {}), _OPT_KEYS, "optimizer")
        ev = _check_keys(s.get("eval", {}), _EVAL_KEYS, "eval")
        seeds = [int(x) for x in _as_list(s.get("seeds", [0]))]
        kind = sched.get("kind", "cosine")

        out: list[RunConfig] = []
        for wi, d in enumerate(widths):
            if depths is not None:
                layers = int(_as_list(depths)[wi])
            elif aspect is not None:
                layers = max(1, round(d / float(aspect)))
            else:
                layers = int(n_layers) if n_layers is not None else 2
            base = dict(m)
            base.update(d_model=d, n_layers=layers, vocab_size=vocab)
            if d_ff_ratio is not None:
                base["d_ff"] = int(round(d * float(d_ff_ratio)))
            h = heads[wi] if isinstance(heads, list) else heads
            for vi, v in enumerate(variants):
                mc = self._variant_model(v, base, h, head_dim, vi)
                if kind == "wsd" and mc.guide is not None and mc.guide.equal_flops:
                    raise ScalelabError(f"grid: variants #{vi + 1}: the equal-FLOPs guide mode replays data at the end of one schedule; use [schedule] kind = \"cosine\"")
                for lr_seed in seeds:
                    tokens = self._budgets(b, basis, mc)
                    if kind == "wsd" and mc.guide is not None and len(set(tokens)) > 1:
                        # the guide fades over a fraction of the trunk (largest budget): a smaller budget's
                        # branch would be guided over another share of its run, or end still guided
                        raise ScalelabError(f"grid: variants #{vi + 1}: a self-guided variant fades its guide over one schedule, so WSD cooldown branches at several budgets would not match it; use [schedule] kind = \"cosine\" (one run per budget) or one budget")
                    for bud in ([tokens] if kind == "wsd" else [[t] for t in tokens]):
                        train = self._train(sched, opt, ev, bud, d)
                        out.append(RunConfig(grid=self.name, model=mc, train=train, data=data, seed=lr_seed))
        return out

    def _variant_model(self, v: Any, base: dict, heads: Any, head_dim: Any, vi: int) -> ModelConfig:
        v = _check_keys(v, _VARIANT_KEYS, f"variants #{vi + 1}")
        kind = v.get("structure", "dense")
        if kind not in VARIANT_STRUCTURES:
            raise ScalelabError(f"grid: unknown variant structure {kind!r} in [[variants]] #{vi + 1}: use one of {', '.join(VARIANT_STRUCTURES)}")
        cfg = dict(base)
        cfg.update(_check_keys(v.get("model", {}), _MODEL_KEYS - {"widths", "depths", "aspect", "heads", "head_dim", "d_ff_ratio"}, f"variants #{vi + 1}.model"))
        d = cfg["d_model"]
        d_attn = cfg.get("d_attn") or d
        if head_dim is not None:
            cfg["n_heads"] = max(1, d_attn // int(head_dim))
        elif heads is not None:
            cfg["n_heads"] = int(heads)
        d_ff = cfg.get("d_ff") or 4 * d
        if kind == "dense":
            ffn = StructureConfig()
        elif "fraction" in v:
            from scalelab.presets import structure_for_fraction

            ffn = structure_for_fraction(kind, d, d_ff, float(v["fraction"]))
        else:
            rank = v.get("rank")
            if rank is None and "rank_ratio" in v:
                rank = max(1, round(d * float(v["rank_ratio"])))
            ffn = StructureConfig(kind=kind, rank=rank, blocks=v.get("blocks"))
            if "rank_ratio" in v and "rank" not in v:
                # name the variant by its kept FFN share, constant across widths (lowrank-31), not by
                # a rank that changes with width; fits group rows by that name
                from scalelab.presets import ffn_fraction

                ffn.check_shape(d, d_ff, f"variants #{vi + 1}")
                ffn = StructureConfig(kind=kind, rank=rank, blocks=v.get("blocks"),
                                      fraction=round(ffn_fraction(ffn, d, d_ff), 2))
        cfg["ffn"] = ffn
        if "dense_first_ffn" in v:
            cfg["dense_first_ffn"] = bool(v["dense_first_ffn"])
        if "attn" in v:
            cfg["attn"] = v["attn"]
        if "attn_rank" in v or "attn_rank_ratio" in v:
            cfg["attn"] = "lpa"
            cfg["attn_rank"] = int(v["attn_rank"]) if "attn_rank" in v else max(1, round(d * float(v["attn_rank_ratio"])))
        if "kv_heads" in v:
            cfg["n_kv_heads"] = int(v["kv_heads"])
            if cfg.get("attn", "mha") == "mha" and cfg["n_kv_heads"] != cfg.get("n_heads", 4):
                cfg["attn"] = "gqa"
        g = v.get("guide")
        if g is True:
            cfg["guide"] = GuideConfig()
        elif isinstance(g, dict):
            _check_keys(g, {f.name for f in dataclasses.fields(GuideConfig)}, f"variants #{vi + 1}.guide")
            cfg["guide"] = GuideConfig(**g)
        elif g not in (None, False):
            raise ScalelabError(f"grid: variants #{vi + 1}: guide must be true/false or a table")
        try:
            mc = ModelConfig.from_dict({k: cfg[k] for k in cfg})
        except TypeError as e:
            raise ScalelabError(f"grid: variants #{vi + 1}: {e}") from None
        return mc.validate()

    def _budgets(self, b: dict, basis: str, mc: ModelConfig) -> list[int]:
        if isinstance(b.get("tokens"), dict):  # per-width table: {"768" = 2.2e9, ...}
            table = {int(k): v for k, v in b["tokens"].items()}
            if mc.d_model not in table:
                raise ScalelabError(f"grid: [budgets] tokens table has no entry for width {mc.d_model}")
            toks = [int(float(t)) for t in _as_list(table[mc.d_model])]
        elif "tokens" in b:
            toks = [int(float(t)) for t in _as_list(b["tokens"])]
        else:
            from scalelab.flops import param_counts

            n = getattr(param_counts(mc), basis)
            toks = [int(round(float(r) * n)) for r in _as_list(b["tokens_per_param"])]
        if any(t < 1 for t in toks):
            raise ScalelabError("grid: [budgets] token budgets must be positive")
        return sorted(set(toks))

    def _train(self, sched: dict, opt: dict, ev: dict, budgets: list[int], width: int) -> TrainConfig:
        lr = self._lr(opt, width)
        betas = opt.get("betas", [0.9, 0.95])
        kw = dict(budgets=tuple(budgets), schedule=sched.get("kind", "cosine"), lr=lr,
                  min_lr_ratio=float(sched.get("min_lr_ratio", 0.1)), warmup=float(sched.get("warmup", 0.05)),
                  cooldown=float(sched.get("cooldown", 0.2)), batch_size=int(opt.get("batch_size", 8)),
                  micro_batch=opt.get("micro_batch"), weight_decay=float(opt.get("weight_decay", 0.1)),
                  beta1=float(betas[0]), beta2=float(betas[1]), grad_clip=float(opt.get("grad_clip", 1.0)),
                  eval_points=int(ev.get("points", 8)), val_tokens=int(ev.get("val_tokens", 32_768)),
                  diverge_factor=float(opt.get("diverge_factor", 2.0)), compile=bool(opt.get("compile", False)),
                  dtype=str(opt.get("dtype", "auto")))
        return TrainConfig(**kw).validate()

    @staticmethod
    def _lr(opt: dict, width: int) -> float:
        given = [k for k in ("lr", "lr_table", "lr_law") if k in opt]
        if len(given) > 1:
            raise ScalelabError(f"grid: [optimizer] give one of lr, lr_table, lr_law, not {', '.join(given)}")
        if "lr_table" in opt:
            table = {int(k): float(v) for k, v in opt["lr_table"].items()}
            if width not in table:
                raise ScalelabError(f"grid: [optimizer] lr_table has no entry for width {width}: add \"{width}\" = LR")
            return table[width]
        if "lr_law" in opt:
            law = _check_keys(opt["lr_law"], {"base", "width", "exponent"}, "optimizer.lr_law")
            try:
                return float(law["base"]) * (width / float(law["width"])) ** float(law["exponent"])
            except KeyError as e:
                raise ScalelabError(f"grid: [optimizer] lr_law needs base, width and exponent (missing {e})") from None
        return float(opt.get("lr", 3e-3))


def builtin_grids() -> list[str]:
    import os

    folder = os.path.join(os.path.dirname(__file__), "grids")
    try:
        return sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".toml"))
    except OSError:
        return []
