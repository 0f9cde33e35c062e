"""Training throughput as a function of shape, from `scalelab bench train` tables (bench/NAME.json).

A bench row is one shape (width d, FFN structure kind keeping share f of the dense FFN) timed on one device.
The model interpolates the achieved FLOP/s (tokens/s x the bench's FLOPs per token, scalelab.flops) rather
than tokens/s: FLOP/s varies slowly with shape and hardly with depth, so a candidate of another depth is
served by the same table; its tokens/s is that FLOP/s over its own FLOPs per token (same convention).

Interpolation, per FFN kind (dense rows are share 1 of every kind): log FLOP/s linear in share at each
measured width, then linear in log width between the two measured widths around d. Outside the measured
widths or shares the nearest measured value is held, and the answer says so (`Rate.beyond`), never silently.
One device per model: tables from several devices are refused (throughput differs by device, not by shape).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from scalelab import flops as F
from scalelab import structures, variant
from scalelab.config import ModelConfig
from scalelab.errors import ScalelabError

FORMAT = "scalelab-bench-train/"
TOL = 1e-6  # relative: a share or width this close to a measured one is measured
MEASURE = "scalelab bench train --preset P --variants dense,KIND-63,KIND-32 --name NAME"  # one width per preset


@dataclass(frozen=True)
class BenchPoint:
    """One timed shape: FFN kind, width, share kept, tokens/s and achieved FLOP/s (bench's FLOPs/token)."""

    kind: str
    width: int
    share: float
    tokens_per_s: float
    flop_per_s: float


@dataclass(frozen=True)
class Rate:
    """A shape's predicted throughput; beyond: why the shape lies outside the measured ones (None: inside)."""

    tokens_per_s: float
    flop_per_s: float
    beyond: Optional[str] = None


@dataclass
class ThroughputModel:
    """Throughput over (width, share) per FFN kind on one device, from bench train tables."""

    device: str
    points: list[BenchPoint]
    sources: list[str] = field(default_factory=list)  # per file: "PATH (created, commit X)"
    commits: list[str] = field(default_factory=list)

    @property
    def basis(self) -> str:
        """The basis in words: device, commit(s), files."""
        commit = ", ".join(sorted(set(self.commits))) or "not recorded"  # "not recorded" kept beside others
        return f"bench train on {self.device}, commit {commit} ({'; '.join(self.sources)})"

    def kinds(self) -> set[str]:
        return {p.kind for p in self.points}

    def widths(self, kind: str) -> list[int]:
        return sorted({p.width for p in self._of(kind)})

    def require(self, kind: str, what: str = "a time budget") -> None:
        """Refuse a kind with no timed shape (dense needs a dense row; a structure one of its own rows)."""
        if not any(p.kind == kind for p in self.points):
            have = ", ".join(sorted(self.kinds())) or "none"
            raise ScalelabError(
                f"{what} needs {kind} throughput on {self.device}, but the bench tables time only {have} "
                f"({'; '.join(self.sources)}): measure it with `{measure(kind)}` and pass it "
                "with --throughput"
            )

    def flop_rate(self, kind: str, width: float, share: float) -> tuple[float, Optional[str]]:
        """Achieved FLOP/s of a (kind, width, share) shape and why it is beyond the measured ones (or None)."""
        self.require("dense", "throughput by shape")  # share 1 of every kind
        if share < 1:
            self.require(kind, "throughput by shape")  # a structure's own rows, never dense's alone
        pts = self._of(kind if share < 1 else "dense")
        ws = np.array(sorted({p.width for p in pts}), float)
        beyond = []
        lw = math.log(width)
        j = int(np.searchsorted(np.log(ws), lw))
        near = [j - 1, j] if 0 < j < len(ws) else [min(j, len(ws) - 1)]
        if len(near) == 1 and not any(abs(width - w) <= TOL * w for w in ws):
            beyond.append(f"width {width:g} outside the measured {ws[0]:g}-{ws[-1]:g}")
        vals = []
        for i in near:
            at = sorted((p.share, math.log(p.flop_per_s)) for p in pts if p.width == ws[i])
            fs, lr = np.array([a for a, _ in at]), np.array([b for _, b in at])
            if share < fs[0] * (1 - TOL) or share > fs[-1] * (1 + TOL):
                beyond.append(f"share {share:.3g} outside the measured {fs[0]:.3g}-{fs[-1]:.3g} at width {ws[i]:g}")
            vals.append(float(np.interp(share, fs, lr)))
        if len(near) == 2:
            x0, x1 = math.log(ws[near[0]]), math.log(ws[near[1]])
            t = (lw - x0) / (x1 - x0)
            v = (1 - t) * vals[0] + t * vals[1]
        else:
            v = vals[0]
        why = f"{kind} {'; '.join(beyond)}: the nearest measured throughput held" if beyond else None
        return math.exp(v), why

    def rate(self, cfg: ModelConfig) -> Rate:
        """A model shape's tokens/s: the interpolated FLOP/s over its FLOPs per token (scalelab.flops)."""
        share = shape_share(cfg)
        kind = cfg.ffn.kind
        R, why = self.flop_rate(kind, float(cfg.d_model), share)
        return Rate(R / F.flops_per_token(cfg), R, why)

    def _of(self, kind: str) -> list[BenchPoint]:
        """The points of a kind: its own rows and the dense ones (share 1 of every kind)."""
        return [p for p in self.points if p.kind in (kind, "dense")]


def measure(kind: str) -> str:
    """The command that times a kind beside dense."""
    return MEASURE.replace("dense,KIND-63,KIND-32", "dense" if kind == "dense" else f"dense,{kind}-63,{kind}-32")


def shape_share(cfg: ModelConfig) -> float:
    """The share of the dense FFN's weights a shape keeps (1 for dense)."""
    if cfg.ffn.kind == "dense":
        return 1.0
    return float(structures.ffn_fraction(cfg.ffn, cfg.d_model, cfg.ffn_width))


def points_of(doc: dict, where: str) -> list[BenchPoint]:
    """The plain-FFN rows of one bench train document as BenchPoints (attention / guide / muP variants left
    out: they are not a point of the (width, share) surface). Rows written before the bench recorded each
    row's shape get it from the table's model and the variant name."""
    base = ModelConfig.from_dict(doc["model"]) if isinstance(doc.get("model"), dict) else None
    out = []
    for r in doc.get("rows") or []:
        tps, fpt = _pos(r.get("tokens_per_s")), _pos(r.get("flops_per_token"))
        if tps is None or fpt is None:
            continue
        try:
            v = variant.parse(str(r.get("variant", "")))
        except ScalelabError:
            continue
        if v.attn_rank is not None or v.kv_heads is not None or v.guide or v.mup:
            continue
        if "d_model" in r and "share" in r and "ffn_kind" in r:
            kind, width, share = str(r["ffn_kind"]), int(r["d_model"]), float(r["share"])
        elif base is not None:
            cfg = base.replace(ffn=v.structure(base.d_model, base.ffn_width))
            kind, width, share = cfg.ffn.kind, base.d_model, shape_share(cfg)
        else:
            raise ScalelabError(f"{where}: its rows record no shape and it has no model: rerun scalelab bench train")
        out.append(BenchPoint(kind, width, 1.0 if kind == "dense" else share, tps, tps * fpt))
    return out


def load(paths: Sequence[str | Path]) -> ThroughputModel:
    """A ThroughputModel from one or more bench train JSON files, all from one device."""
    if not paths:
        raise ScalelabError(f"no bench train table given: measure throughput with `{measure('lowrank')}`")
    devices: dict[str, str] = {}
    points: list[BenchPoint] = []
    sources, commits = [], []
    for p in paths:
        p = Path(p)
        try:
            doc = json.loads(p.read_text())
        except FileNotFoundError:
            raise ScalelabError(
                f"--throughput {p}: no such file: measure throughput with `{measure('lowrank')}`"
            ) from None
        except (OSError, ValueError) as e:
            raise ScalelabError(f"--throughput {p}: not readable JSON ({e}): give a bench/NAME.json of bench train")
        if not isinstance(doc, dict) or not str(doc.get("format", "")).startswith(FORMAT):
            raise ScalelabError(f"--throughput {p}: not a `scalelab bench train` table (format {FORMAT}1 expected)")
        devices[str(p)] = str(doc.get("device") or "")
        points += points_of(doc, str(p))
        commit = str(doc["commit"])[:12] if doc.get("commit") else "not recorded"
        commits.append(commit)
        sources.append(f"{p} ({doc.get('created', 'undated')}, commit {commit})")
    devs = set(devices.values())
    if "" in devs:
        raise ScalelabError(f"--throughput: {', '.join(k for k, v in devices.items() if not v)} record no device")
    if len(devs) > 1:
        raise ScalelabError(
            f"--throughput: the tables were timed on different devices ({', '.join(sorted(devs))}): give tables "
            "from the one device the time is for"
        )
    if not points:
        raise ScalelabError(
            f"--throughput {', '.join(map(str, paths))}: no timed plain-FFN rows: `{measure('lowrank')}`"
        )
    return ThroughputModel(devs.pop(), _merge(points), sources, commits)


def _merge(points: list[BenchPoint]) -> list[BenchPoint]:
    """One point per (kind, width, share): repeated timings of a shape averaged in log throughput."""
    by: dict[tuple, list[BenchPoint]] = {}
    for p in points:
        by.setdefault((p.kind, p.width, round(p.share, 6)), []).append(p)
    out = []
    for (kind, width, share), ps in sorted(by.items()):
        g = lambda xs: float(np.exp(np.mean(np.log(xs))))  # noqa: E731
        out.append(BenchPoint(kind, width, share, g([p.tokens_per_s for p in ps]), g([p.flop_per_s for p in ps])))
    return out


def _pos(v) -> Optional[float]:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None
