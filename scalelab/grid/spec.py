"""A grid file's TOML, parsed once into typed tables. Torch-free.

`parse(raw)` checks every key and value that needs no model shape (unknown keys, one of tokens /
tokens_per_param, one LR rule, guide tables, structure kinds) and returns a `GridSpec`; errors are
one-line ScalelabErrors naming the table. Shape-dependent checks (a rank too large for a width, an LR
table without the width) happen in scalelab.grid.expand, which only reads these dataclasses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional, Union

from scalelab import structures
from scalelab.config import DataConfig, GuideConfig, ModelConfig
from scalelab.errors import ScalelabError

GRID_KEYS = {
    "name",
    "description",
    "seeds",
    "data",
    "model",
    "variants",
    "budgets",
    "schedule",
    "optimizer",
    "eval",
    "sweep",
    "slurm",
}  # [slurm] is read by scalelab.run.slurm
SHAPE_KEYS = {"widths", "depths", "n_layers", "aspect", "heads", "head_dim", "d_ff_ratio"}  # scalelab.shapes
MODEL_KEYS = SHAPE_KEYS | {f.name for f in dataclasses.fields(ModelConfig)} - {"d_model", "ffn", "guide"}
VARIANT_MODEL_KEYS = MODEL_KEYS - {"widths", "depths", "aspect", "heads", "head_dim", "d_ff_ratio"}
VARIANT_KEYS = {
    "structure",
    "rank",
    "rank_ratio",
    "blocks",
    "fraction",
    "attn",
    "attn_rank",
    "attn_rank_ratio",
    "kv_heads",
    "guide",
    "dense_first_ffn",
    "model",
}
BUDGET_KEYS = {"tokens", "tokens_per_param", "flops", "param_count"}
SCHEDULE_KEYS = {"kind", "warmup", "cooldown", "min_lr_ratio"}
OPT_KEYS = {
    "lr",
    "lr_table",
    "lr_law",
    "weight_decay",
    "decay",
    "betas",
    "grad_clip",
    "batch_size",
    "micro_batch",
    "compile",
    "dtype",
    "diverge_factor",
}
EVAL_KEYS = {"points", "val_tokens"}
# [sweep]: hyperparameters every (variant, width) is trained at, each value (Cartesian product); lr required.
# key -> (TrainConfig field, cast, the table that otherwise sets it, a valid example)
SWEEP_KEYS = {
    "lr": ("lr", float, "optimizer", "lr = [1e-3, 3e-3, 1e-2]"),
    "batch_size": ("batch_size", int, "optimizer", "batch_size = [4, 8]"),
    "warmup": ("warmup", float, "schedule", "warmup = [0.02, 0.1]"),
    "weight_decay": ("weight_decay", float, "optimizer", "weight_decay = [0.0, 0.1]"),
}


def check_keys(table: Any, allowed: set, where: str) -> dict:
    if not isinstance(table, dict):
        raise ScalelabError(f"grid: [{where}] must be a table")
    unknown = set(table) - allowed
    if unknown:
        raise ScalelabError(
            f"grid: unknown key(s) {', '.join(sorted(unknown))} in [{where}]: "
            f"valid keys are {', '.join(sorted(allowed))}"
        )
    return table


def as_list(x: Any) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


@dataclass(frozen=True)
class ModelTable:
    """[model]: widths and the shape rule (scalelab.shapes); `fields` are ModelConfig fields as given."""

    widths: tuple
    depths: Optional[tuple] = None  # one n_layers per width
    aspect: Optional[float] = None  # n_layers = d_model / aspect
    n_layers: int = 2
    heads: Union[None, int, tuple] = None  # one number, or one per width
    head_dim: Optional[int] = None
    d_ff_ratio: Optional[float] = None
    fields: dict = dataclasses.field(default_factory=dict)

    def heads_at(self, i: int) -> Optional[int]:
        return self.heads[i] if isinstance(self.heads, tuple) else self.heads


@dataclass(frozen=True)
class VariantSpec:
    """One [[variants]] table: an FFN structure (by kept fraction, rank / rank_ratio, blocks), attention
    (attn, LPA rank or its ratio to d_model, kv heads), self-guidance and ModelConfig overrides."""

    index: int  # 1-based, for messages
    structure: str = "dense"
    rank: Optional[int] = None
    rank_ratio: Optional[float] = None
    blocks: Optional[int] = None
    fraction: Optional[float] = None
    attn: Optional[str] = None
    attn_rank: Optional[int] = None
    attn_rank_ratio: Optional[float] = None
    kv_heads: Optional[int] = None
    guide: Optional[GuideConfig] = None
    dense_first_ffn: Optional[bool] = None
    model: dict = dataclasses.field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"variants #{self.index}"


@dataclass(frozen=True)
class BudgetsTable:
    tokens: Union[None, tuple, dict] = None  # token counts, or {width: counts}
    tokens_per_param: Optional[tuple] = None
    flops: Optional[tuple] = None  # IsoFLOP budgets: each model trains for C / its FLOPs per token
    param_count: str = "params_nonembed"


@dataclass(frozen=True)
class LrRule:
    """[optimizer] lr (fixed), lr_table {width: lr} or lr_law base (width / law_width)^exponent."""

    lr: float = 3e-3
    table: Optional[dict] = None
    law: Optional[tuple] = None  # (base, width, exponent)

    def at(self, width: int) -> float:
        if self.table is not None:
            if width not in self.table:
                raise ScalelabError(f'grid: [optimizer] lr_table has no entry for width {width}: add "{width}" = LR')
            return self.table[width]
        if self.law is not None:
            base, w0, exponent = self.law
            try:
                lr = base * (width / w0) ** exponent
            except OverflowError:
                lr = math.inf
            if not (lr > 0 and math.isfinite(lr)):
                raise ScalelabError(
                    f"grid: [optimizer] lr_law gives lr = {lr!r} at width {width}: choose a base, width and exponent "
                    "that give a positive finite learning rate at every width"
                )
            return lr
        return self.lr


@dataclass(frozen=True)
class TrainTable:
    """[schedule], [optimizer] and [eval] as TrainConfig keywords (all but budgets and lr)."""

    kw: dict
    lr: LrRule
    sweep: tuple = ()  # ((TrainConfig field, (values...)), ...) from [sweep]; () without one


@dataclass(frozen=True)
class GridSpec:
    name: Optional[str]
    description: str
    seeds: tuple
    data: DataConfig
    model: ModelTable
    variants: tuple  # of VariantSpec
    budgets: BudgetsTable
    schedule: str
    train: TrainTable


class BadNumber(ValueError):
    """A number of the right type but an impossible value (nan, inf, 0 where a positive one goes, 16.5 where a
    whole number goes): `table` names it without the wrong-type advice."""


def num(cast, x):
    """cast(x) for a finite TOML number; a string or boolean where a number goes is an error ("8" is not 8), and
    so are nan and inf (TOML has both) and a fraction where a whole number goes (16.5 is not 16)."""
    if isinstance(x, (str, bool)):
        raise TypeError(f"{x!r} where a number goes")
    if isinstance(x, float) and not math.isfinite(x):
        raise BadNumber(f"has {x!r}: every number must be finite")
    if cast is int and isinstance(x, float) and x != int(x):
        raise BadNumber(f"has {x!r} where a whole number goes")
    return cast(x)


def positive(cast, x):
    """num(cast, x), which must also be > 0 (token and FLOP budgets, learning rates, widths, ratios)."""
    v = num(cast, x)
    if not v > 0:
        raise BadNumber(f"has {x!r} where a positive number goes")
    return v


@contextlib.contextmanager
def table(where: str):
    """Turn a wrong value type met while reading table `where` (float("many"), a string compared with a
    number, ...) into one line naming the table, rather than a traceback."""
    try:
        yield
    except ScalelabError:
        raise
    except BadNumber as e:
        raise ScalelabError(f"grid: [{where}] {e}: give finite numbers in range (docs/running.md#grid-files)") from None
    except OverflowError:
        raise ScalelabError(f"grid: [{where}] has a number too large to use: give finite numbers in range") from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ScalelabError(
            f"grid: [{where}] has a value of the wrong type ({why}): write numbers unquoted (lr = 3e-3), "
            "lists as [...] and tables as {...}"
        ) from None


def parse(raw: dict) -> GridSpec:
    """Every key and shape-free value of a grid file, checked in the order the file reads."""
    with table("top level"):
        return _parse(raw)


def _parse(raw: dict) -> GridSpec:
    check_keys(raw, GRID_KEYS, "top level")
    with table("data"):
        data = parse_data(raw.get("data", {}))
    with table("model"):
        model = _parse_model(raw.get("model", {}))
    variants = raw.get("variants", [{"structure": "dense"}])
    if not isinstance(variants, list) or not variants:
        raise ScalelabError("grid: [[variants]] must be a non-empty array of tables")
    with table("budgets"):
        budgets = _parse_budgets(raw.get("budgets", {}))
    sched = check_keys(raw.get("schedule", {}), SCHEDULE_KEYS, "schedule")
    opt = check_keys(raw.get("optimizer", {}), OPT_KEYS, "optimizer")
    ev = check_keys(raw.get("eval", {}), EVAL_KEYS, "eval")
    sweep = parse_sweep(raw["sweep"], sched, opt) if "sweep" in raw else ()
    with table("top level: seeds"):
        seeds = tuple(num(int, x) for x in as_list(raw.get("seeds", [0])))
    kind = sched.get("kind", "cosine")
    with table("optimizer"):
        lr = _parse_lr(opt)
    betas = opt.get("betas", [0.9, 0.95])
    with table("schedule], [optimizer] or [eval"):
        kw = _train_kw(kind, sched, opt, ev, betas)
    with table("variants"):
        vs = tuple(_parse_variant(v, i + 1) for i, v in enumerate(variants))
    return GridSpec(
        name=raw.get("name"),
        description=str(raw.get("description", "")),
        seeds=seeds,
        data=data,
        model=model,
        variants=vs,
        budgets=budgets,
        schedule=kind,
        train=TrainTable(kw=kw, lr=lr, sweep=sweep),
    )


def parse_sweep(sw: Any, sched: dict, opt: dict) -> tuple:
    """[sweep]: lr = [...] (required) and optionally batch_size, warmup, weight_decay lists, each value
    positive (warmup and weight_decay may be 0), no repeats; a swept key may not also be set in the table
    that otherwise holds it. Returns ((field, values), ...) in SWEEP_KEYS order."""
    sw = check_keys(sw, set(SWEEP_KEYS), "sweep")
    if "lr" not in sw:
        raise ScalelabError("grid: [sweep] needs lr = [...] (the learning rates to train at, e.g. lr = [1e-3, 3e-3])")
    out = []
    for key, (fld, cast, home, example) in SWEEP_KEYS.items():
        if key not in sw:
            continue
        given = {"optimizer": opt, "schedule": sched}[home]
        clash = [k for k in ((key, "lr_table", "lr_law") if key == "lr" else (key,)) if k in given]
        if clash:
            raise ScalelabError(
                f"grid: {key} is swept in [sweep] and also set by {clash[0]} in [{home}]: remove it from [{home}]"
            )
        vals = sw[key]
        if not isinstance(vals, list) or not vals:
            raise ScalelabError(f"grid: [sweep] {key} must be a non-empty list of numbers, e.g. {example}")
        out_vals = []
        for x in vals:
            if isinstance(x, (str, bool)) or not isinstance(x, (int, float)):
                raise ScalelabError(f"grid: [sweep] {key} has {x!r} where a number goes: write e.g. {example}")
            if cast is int and x != int(x):
                raise ScalelabError(f"grid: [sweep] {key} has {x!r}: give whole numbers, e.g. {example}")
            v = cast(x)
            zero_ok = key in ("warmup", "weight_decay")
            if not (v >= 0 if zero_ok else v > 0) or v != v or v in (float("inf"),):
                need = "non-negative" if zero_ok else "positive"
                raise ScalelabError(f"grid: [sweep] {key} has {x!r}: every value must be {need}, e.g. {example}")
            out_vals.append(v)
        if len(set(out_vals)) != len(out_vals):
            raise ScalelabError(f"grid: [sweep] {key} lists a value twice: give each value once")
        out.append((fld, tuple(out_vals)))
    return tuple(out)


def _train_kw(kind, sched: dict, opt: dict, ev: dict, betas) -> dict:
    kw = dict(
        schedule=kind,
        min_lr_ratio=num(float, sched.get("min_lr_ratio", 0.1)),
        warmup=num(float, sched.get("warmup", 0.05)),
        cooldown=num(float, sched.get("cooldown", 0.2)),
        batch_size=num(int, opt.get("batch_size", 8)),
        micro_batch=opt.get("micro_batch"),
        weight_decay=num(float, opt.get("weight_decay", 0.1)),
        decay=str(opt.get("decay", "matrices")),
        beta1=num(float, betas[0]),
        beta2=num(float, betas[1]),
        grad_clip=num(float, opt.get("grad_clip", 1.0)),
        eval_points=num(int, ev.get("points", 8)),
        val_tokens=num(int, ev.get("val_tokens", 32_768)),
        diverge_factor=num(float, opt.get("diverge_factor", 2.0)),
        compile=bool(opt.get("compile", False)),
        dtype=str(opt.get("dtype", "auto")),
    )
    # a wrong type that survives the casts (micro_batch = "2", a quoted number in a config field)
    from scalelab.config import TrainConfig

    TrainConfig(budgets=(1,), lr=1.0, **kw)
    return kw


def parse_data(d: Any) -> DataConfig:
    check_keys(d, {f.name for f in dataclasses.fields(DataConfig)}, "data")
    try:
        return DataConfig(**d).validate()
    except TypeError as e:
        raise ScalelabError(f"grid: bad [data] table: {e}") from None


def _parse_model(m: Any) -> ModelTable:
    m = dict(check_keys(m, MODEL_KEYS, "model"))
    widths = tuple(positive(int, w) for w in as_list(m.pop("widths", [128])))
    depths, aspect, n_layers = m.pop("depths", None), m.pop("aspect", None), m.pop("n_layers", None)
    heads, head_dim, d_ff_ratio = m.pop("heads", None), m.pop("head_dim", None), m.pop("d_ff_ratio", None)
    if depths is not None and len(as_list(depths)) != len(widths):
        raise ScalelabError(
            f"grid: [model] depths has {len(as_list(depths))} entries for {len(widths)} widths: "
            "give one depth per width, or n_layers, or aspect"
        )
    if heads is not None and head_dim is not None:
        raise ScalelabError("grid: [model] give heads or head_dim, not both")
    if isinstance(heads, list) and len(heads) != len(widths):
        raise ScalelabError(
            f"grid: [model] heads has {len(heads)} entries for {len(widths)} widths: give one per width, or one number"
        )
    if len(set(widths)) != len(widths):
        raise ScalelabError("grid: [model] widths lists a width twice: give each width once")
    return ModelTable(
        widths=widths,
        depths=tuple(positive(int, x) for x in as_list(depths)) if depths is not None else None,
        aspect=positive(float, aspect) if aspect is not None else None,
        n_layers=positive(int, n_layers) if n_layers is not None else 2,
        heads=tuple(positive(int, h) for h in heads)
        if isinstance(heads, list)
        else (positive(int, heads) if heads is not None else None),
        head_dim=positive(int, head_dim) if head_dim is not None else None,
        d_ff_ratio=positive(float, d_ff_ratio) if d_ff_ratio is not None else None,
        fields={k: _finite(v) for k, v in m.items()},
    )


def _finite(x):
    """A [model] field as given, but a nan or inf number refused (rope_base = inf, init_std = nan)."""
    if isinstance(x, float) and not math.isfinite(x):
        raise BadNumber(f"has {x!r}: every number must be finite")
    return x


def _parse_variant(v: Any, index: int) -> VariantSpec:
    where = f"variants #{index}"
    v = check_keys(v, VARIANT_KEYS, where)
    kind = v.get("structure", "dense")
    if kind not in structures.names():
        raise ScalelabError(
            f"grid: unknown variant structure {kind!r} in [[variants]] #{index}: "
            f"use one of {', '.join(structures.names())}"
        )
    model = dict(check_keys(v.get("model", {}), VARIANT_MODEL_KEYS, f"{where}.model"))
    g = v.get("guide")
    if g is True:
        guide = GuideConfig()
    elif isinstance(g, dict):
        check_keys(g, {f.name for f in dataclasses.fields(GuideConfig)}, f"{where}.guide")
        guide = GuideConfig(**g)
    elif g in (None, False):
        guide = None
    else:
        raise ScalelabError(f"grid: {where}: guide must be true/false or a table")
    return VariantSpec(
        index=index,
        structure=kind,
        rank=_opt(int, v.get("rank")),
        rank_ratio=_opt(float, v.get("rank_ratio"), pos=True),
        blocks=_opt(int, v.get("blocks")),
        fraction=_opt(float, v.get("fraction"), pos=True),
        attn=v.get("attn"),
        attn_rank=_opt(int, v.get("attn_rank")),
        attn_rank_ratio=_opt(float, v.get("attn_rank_ratio"), pos=True),
        kv_heads=_opt(int, v.get("kv_heads")),
        guide=guide,
        dense_first_ffn=_opt(bool, v.get("dense_first_ffn")),
        model={k: _finite(x) for k, x in model.items()},
    )


def _opt(cast, x, pos: bool = False):
    if x is None:
        return None
    if cast is bool:
        if not isinstance(x, bool):
            raise TypeError(f"{x!r} where true or false goes")
        return x
    return positive(cast, x) if pos else num(cast, x)


def _parse_budgets(b: Any) -> BudgetsTable:
    b = check_keys(b, BUDGET_KEYS, "budgets")
    if sum(k in b for k in ("tokens", "tokens_per_param", "flops")) != 1:
        raise ScalelabError(
            "grid: [budgets] needs exactly one of tokens = [...], tokens_per_param = [...] or flops = [...]"
        )
    basis = b.get("param_count", "params_nonembed")
    if basis not in ("params", "params_nonembed"):
        raise ScalelabError(f"grid: [budgets] param_count must be params or params_nonembed, got {basis!r}")
    tokens = b.get("tokens")
    if isinstance(tokens, dict):  # per-width table: {"768" = 2.2e9, ...}
        tokens = {int(k): _budget_list(x, "tokens") for k, x in tokens.items()}
    elif tokens is not None:
        tokens = _budget_list(tokens, "tokens")
    tpp = _budget_list(b["tokens_per_param"], "tokens_per_param") if "tokens_per_param" in b else None
    flops = tuple(as_list(b["flops"])) if "flops" in b else None
    for x in flops or ():
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not x > 0 or not math.isfinite(x):
            raise ScalelabError(f"grid: [budgets] flops must be positive numbers of FLOPs (e.g. 1e13), got {x!r}")
    return BudgetsTable(tokens=tokens, tokens_per_param=tpp, flops=flops, param_count=basis)


def _budget_list(x: Any, key: str) -> tuple:
    """A list of positive finite budgets (a string is left for `table` to name as the wrong type)."""
    vals = tuple(as_list(x))
    for v in vals:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not (v > 0 and math.isfinite(v)):
            raise BadNumber(f"{key} has {v!r}: every budget must be a positive finite number")
    return vals


def _parse_lr(opt: dict) -> LrRule:
    given = [k for k in ("lr", "lr_table", "lr_law") if k in opt]
    if len(given) > 1:
        raise ScalelabError(f"grid: [optimizer] give one of lr, lr_table, lr_law, not {', '.join(given)}")
    if "lr_table" in opt:
        return LrRule(table={int(k): positive(float, v) for k, v in opt["lr_table"].items()})
    if "lr_law" in opt:
        law = check_keys(opt["lr_law"], {"base", "width", "exponent"}, "optimizer.lr_law")
        try:
            return LrRule(
                law=(positive(float, law["base"]), positive(float, law["width"]), num(float, law["exponent"]))
            )
        except KeyError as e:
            raise ScalelabError(f"grid: [optimizer] lr_law needs base, width and exponent (missing {e})") from None
    return LrRule(lr=positive(float, opt.get("lr", 3e-3)))
