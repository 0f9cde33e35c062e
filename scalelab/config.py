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
