"""A parsed grid (GridSpec) -> RunConfigs: seeds x widths x variants (x budgets for cosine). Pure and
torch-free: the only input beside the spec is the data's vocab size.

WSD makes one run per (width, variant, seed) with every budget a cooldown branch of it. A [sweep] table
multiplies the runs by its combinations of hyperparameter values (Cartesian product): under WSD each
swept value still makes one trunk with every budget a branch of it.
"""

from __future__ import annotations

import itertools

from scalelab import shapes, variant
from scalelab.config import ModelConfig, RunConfig, TrainConfig
from scalelab.errors import ScalelabError
from scalelab.grid.spec import GridSpec, ModelTable, VariantSpec

# Refused before expanding: more runs than any grid trains in practice (a [sweep] or seeds list written by a
# script gone wrong would otherwise take minutes to expand and years to train).
MAX_RUNS = 10_000
# Refused: token budgets above this (67x the 15T tokens of Llama 3) are a typo, and near 2^63 they overflow
# the run store's int64 token counts.
MAX_TOKENS = 10**15
# Refused: more parameters than any machine holds (16 bytes each with fp32 AdamW: 160 TB)
MAX_PARAMS = 10**13


def count_runs(spec: GridSpec) -> int:
    """Runs the grid expands to (an upper bound: duplicate budgets merge), computed without expanding."""
    n = len(spec.seeds) * len(spec.model.widths) * len(spec.variants)
    for _, vals in spec.train.sweep:
        n *= len(vals)
    if spec.schedule != "wsd":
        b = spec.budgets
        lists = list(b.tokens.values()) if isinstance(b.tokens, dict) else [b.tokens or b.flops or b.tokens_per_param]
        n *= max((len(x) for x in lists if x), default=1)
    return n


def expand(spec: GridSpec, name: str, vocab_size: int) -> list[RunConfig]:
    n = count_runs(spec)
    if n > MAX_RUNS:
        raise ScalelabError(
            f"grid: expands to {n:,} runs, more than {MAX_RUNS:,}: split it into several grids, or list fewer seeds, "
            "widths, variants, budgets or [sweep] values"
        )
    if len(set(spec.seeds)) != len(spec.seeds):
        raise ScalelabError("grid: seeds lists a seed twice: give each seed once (a repeated seed is the same run)")
    out: list[RunConfig] = []
    where: list[str] = []  # the [[variants]] table of each run, for messages
    m = spec.model
    for wi, d in enumerate(m.widths):
        base = dict(m.fields)
        base.update(d_model=d, n_layers=_depth(m, wi, d), vocab_size=vocab_size)
        if m.d_ff_ratio is not None:
            base["d_ff"] = shapes.ffn_width(d, m.d_ff_ratio)
        for v in spec.variants:
            mc = variant_model(v, base, m.heads_at(wi), m.head_dim)
            _check_size(mc, v.where)
            if spec.schedule == "wsd" and mc.guide is not None and mc.guide.equal_flops:
                raise ScalelabError(
                    f"grid: {v.where}: the equal-FLOPs guide mode replays data at the end of one "
                    'schedule; use [schedule] kind = "cosine"'
                )
            for seed in spec.seeds:
                tokens = budgets(spec, mc)
                if spec.schedule == "wsd" and mc.guide is not None and len(set(tokens)) > 1:
                    # the guide fades over a fraction of the trunk (largest budget): a smaller budget's
                    # branch would be guided over another share of its run, or end still guided
                    raise ScalelabError(
                        f"grid: {v.where}: a self-guided variant fades its guide over one schedule, "
                        "so WSD cooldown branches at several budgets would not match it; use "
                        '[schedule] kind = "cosine" (one run per budget) or one budget'
                    )
                for hp in sweep_points(spec):
                    kw = {**spec.train.kw, "lr": spec.train.lr.at(d), **hp}
                    for bud in [tokens] if spec.schedule == "wsd" else [[t] for t in tokens]:
                        train = TrainConfig(budgets=tuple(bud), **kw).validate()
                        out.append(RunConfig(grid=name, model=mc, train=train, data=spec.data, seed=seed))
                        where.append(v.where)
    _check_distinct(out, where)
    return out


def _check_size(mc: ModelConfig, where: str) -> None:
    """Refuse a model with more parameters than any machine holds (its exact count, flops.param_counts), before
    anything allocates it; whether it fits this machine's memory is run.grid.check_memory's question."""
    from scalelab.flops import param_counts

    pc = param_counts(mc)
    n = pc.params + pc.guide_params
    if n > MAX_PARAMS:
        raise ScalelabError(
            f"grid: {where} at width {mc.d_model} x {mc.n_layers} layers has {n:.3g} parameters, more than "
            f"{MAX_PARAMS:.0e} (with AdamW, {16 * n / 1e12:,.0f} TB): use smaller widths or fewer layers"
        )


def _check_distinct(runs: list[RunConfig], where: list[str]) -> None:
    """Two variants that build the same run (one file, trained once, counted once) or that carry the same name
    at one width and seed (a fit groups rows by that name, so their points would mix) are refused."""
    seen: dict = {}
    for r, w in zip(runs, where):
        key: tuple = (r.variant, r.model.d_model, r.seed, r.train.budgets, r.train.lr, r.train.sweep)
        key += (r.train.batch_size, r.train.warmup, r.train.weight_decay)
        if key in seen:
            other = seen[key]
            same = "build the same run" if other[1] == r.run_id else f"are both named {r.variant}"
            raise ScalelabError(
                f"grid: {other[0]} and {w} {same} at width {r.model.d_model}: remove the duplicate variant, or make "
                "them differ in structure, rank or attention"
            )
        seen[key] = (w, r.run_id)


def sweep_points(spec: GridSpec) -> list[dict]:
    """The [sweep] combinations as TrainConfig keywords (Cartesian product, in the file's order), each with
    `sweep` naming the swept fields; [{}] without a [sweep] table (one point: the grid's own settings)."""
    if not spec.train.sweep:
        return [{}]
    names = tuple(f for f, _ in spec.train.sweep)
    return [
        {**dict(zip(names, combo)), "sweep": names}
        for combo in itertools.product(*(vals for _, vals in spec.train.sweep))
    ]


def _depth(m: ModelTable, wi: int, d: int) -> int:
    return shapes.n_layers(d, fixed=m.depths[wi] if m.depths is not None else None, aspect=m.aspect, default=m.n_layers)


def variant_model(v: VariantSpec, base: dict, heads, head_dim) -> ModelConfig:
    """One variant at one width: base (the width's shape and [model] fields) + the variant's changes."""
    cfg = dict(base)
    cfg.update(v.model)
    d = cfg["d_model"]
    if head_dim is not None:
        cfg["n_heads"] = shapes.n_heads(cfg.get("d_attn") or d, head_dim)
    elif heads is not None:
        cfg["n_heads"] = heads
    named = variant.from_table(vars(v), d, cfg.get("d_ff") or 4 * d, v.where)  # sizes at this width
    cfg["ffn"] = named.ffn
    if v.dense_first_ffn is not None:
        cfg["dense_first_ffn"] = v.dense_first_ffn
    if v.attn is not None:
        cfg["attn"] = v.attn
    if named.attn_rank is not None:
        cfg["attn"] = "lpa"
        cfg["attn_rank"] = named.attn_rank
    if v.kv_heads is not None:
        cfg["n_kv_heads"] = v.kv_heads
        if cfg.get("attn", "mha") == "mha" and v.kv_heads != cfg.get("n_heads", 4):
            cfg["attn"] = "gqa"
    if v.guide is not None:
        cfg["guide"] = v.guide
    try:
        mc = ModelConfig.from_dict(cfg)
    except TypeError as e:
        raise ScalelabError(f"grid: {v.where}: {e}") from None
    return mc.validate()


def budgets(spec: GridSpec, mc: ModelConfig) -> list[int]:
    """The token budgets of one model: as given (per width from a table), tokens per param, or the tokens
    that spend each IsoFLOP budget C in the run's own FLOP accounting (flops.budget_flops, guide included)."""
    b = spec.budgets
    if isinstance(b.tokens, dict):
        if mc.d_model not in b.tokens:
            raise ScalelabError(f"grid: [budgets] tokens table has no entry for width {mc.d_model}")
        toks = [int(float(t)) for t in b.tokens[mc.d_model]]
    elif b.tokens is not None:
        toks = [int(float(t)) for t in b.tokens]
    elif b.flops is not None:
        from scalelab.flops import budget_flops

        per_token = budget_flops(mc, 1e12) / 1e12  # linear in the budget
        toks = [int(round(float(c) / per_token)) for c in b.flops]
    else:
        from scalelab.flops import param_counts

        assert b.tokens_per_param is not None  # spec.parse sets exactly one of tokens, flops, tokens_per_param
        n = getattr(param_counts(mc), b.param_count)
        toks = [int(round(float(r) * n)) for r in b.tokens_per_param]
    if any(t < 1 for t in toks):
        raise ScalelabError("grid: [budgets] token budgets must be positive")
    if max(toks) > MAX_TOKENS:
        raise ScalelabError(
            f"grid: [budgets] gives {mc.variant} d{mc.d_model} a budget of {max(toks):.3g} tokens, more than "
            f"{MAX_TOKENS:.0e}: give budgets in tokens (e.g. 2e9) or FLOPs that a run can train"
        )
    return sorted(set(toks))
