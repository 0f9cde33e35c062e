"""Plan -> grid: the IsoFLOP neighbourhood of a planned optimum, as a grid file `scalelab run` trains.

For every planned variant the grid trains the planner's shape at the budget and sizes around it, all at
the same training FLOPs ([budgets] flops = [C]: each model trains C / its own FLOPs per token), so that
the runs trace each variant's IsoFLOP curve and bracket the predicted optimum (Hoffmann et al. 2022,
approach 2; Marin's and OLMo-core's ladders do the same). Widths are the union over variants; data,
optimizer, schedule and evaluation are those of the fitted runs, read from their run-store configs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from scalelab import store
from scalelab.config import ModelConfig
from scalelab.errors import ScalelabError
from scalelab.fileio import atomic_write_bytes
from scalelab.fit.results import FitResults

# [model] keys copied from the fitted runs' template (shape keys come per width)
_MODEL_KEYS = ("seq_len", "bias", "activation", "rope_base", "init_std", "vocab_multiple", "dense_first_ffn")


@dataclass
class EmittedGrid:
    """What `emit_grid` wrote: the file, the planned optimum per variant and the runs' shapes."""

    path: Path
    flops: float
    widths: list[int]
    optimum: dict  # variant -> {"d_model", "n_layers", "N_opt"}
    notes: list[str] = field(default_factory=list)


def _run_settings(fit: FitResults) -> dict:
    """The fitted runs' config (data, train, model template), from the run files the fit names."""
    paths = [i["path"] for i in fit.meta.get("inputs") or [] if str(i.get("path", "")).endswith(".parquet")]
    found = [p for p in paths if Path(p).is_file()]
    if not found:
        raise ScalelabError(
            f"fit {fit.path}: its run files ({', '.join(paths[:2]) or 'none recorded'}) are not here: "
            "--emit-grid needs the fitted runs' settings; run it where `scalelab fit` ran, or fit runs/*.parquet"
        )
    df = store.read_runs(found, columns=("run_id", "config"))
    configs = [json.loads(c) for c in df.drop_duplicates("run_id")["config"]]
    if not configs:
        raise ScalelabError(f"fit {fit.path}: its run files hold no runs: refit from runs/*.parquet")
    for key in ("data", "train"):  # one setting per grid: refuse a fit pooling different ones
        # (but a grid's [sweep] varies its swept hyperparameters on purpose: those are left out here)
        seen = {
            json.dumps(
                {k: v for k, v in c[key].items() if k not in ("budgets", "sweep", *c[key].get("sweep", ()))},
                sort_keys=True,
            )
            for c in configs
        }
        if len(seen) > 1:
            raise ScalelabError(
                f"fit {fit.path}: its runs differ in their [{key}] settings: emit a grid from a fit of one grid"
            )
    return configs[0]


def _neighbourhood(n_opt: float, sizes: int, spread: float) -> list[float]:
    """`sizes` parameter counts log-evenly spaced over [N_opt / spread, N_opt x spread]."""
    if sizes == 1:
        return [n_opt]
    return [n_opt * spread ** (2 * i / (sizes - 1) - 1) for i in range(sizes)]


def _thin(ds: list[int], keep: list[int], n: int) -> list[int]:
    """At most n widths of ds, log-evenly spread over its range, always keeping the planned ones (`keep`):
    the variants share one set of widths, so a union of their neighbourhoods would train too many."""
    if len(ds) <= n:
        return ds
    out = set(keep)
    lo, hi = math.log(ds[0]), math.log(ds[-1])
    m = max(2, n - len(out) + 1)  # targets, ends included (one of them may land on a kept width)
    for i in range(m):
        target = lo + (hi - lo) * i / (m - 1)
        out.add(min(ds, key=lambda d: abs(math.log(d) - target)))
    return sorted(out)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else "nan"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return str(v)


def emit_grid(planner, plan, path, *, sizes: int = 5, spread: float = 4.0, name: str | None = None) -> EmittedGrid:
    """Write the IsoFLOP grid for `plan` (the scalelab.plan.PlanResult that `planner` made at a FLOPs
    budget, with shapes) to `path`.

    sizes: models per variant (3-7); spread: the largest over the planned N (and planned N over the
    smallest). The variants' shapes come from the planner's shape family, so the grid builds the planned
    models; the file is checked by loading it before it is returned.
    """
    if plan.C is None:
        raise ScalelabError("--emit-grid needs a FLOPs budget: plan with --flops C")
    flops = float(plan.C)
    if not 3 <= sizes <= 7:
        raise ScalelabError(f"--emit-sizes {sizes}: give 3 to 7 sizes per variant to bracket the optimum")
    if not spread > 1:
        raise ScalelabError(f"--emit-spread {spread} must be > 1 (e.g. 4: N_opt / 4 .. 4 N_opt)")
    fit = planner.fit
    settings = _run_settings(fit)
    widths: dict[int, int] = {}  # d_model -> n_layers
    optimum, notes, variants, centres, lr_laws = {}, [], [], [], []
    template: ModelConfig | None = None
    for vp in plan.plans:
        g = fit.groups[vp.group]
        fam = planner.shape_families.get(g.name)
        if fam is None or vp.shape is None or not math.isfinite(vp.N_opt):
            notes.append(f"{vp.variant}: no shape to plan from ({g.form} fit without model configs); left out")
            continue
        v = fam.rule.template
        if v.attn != "mha" or v.guide is not None:
            raise ScalelabError(
                f"{vp.variant}: --emit-grid writes FFN-structure variants (dense, lowrank, ...); for attention or "
                "self-guided variants plan with --variants to leave it out and write its grid by hand"
            )
        optimum[vp.variant] = {
            "d_model": vp.shape.config.d_model,
            "n_layers": vp.shape.config.n_layers,
            "N_opt": vp.N_opt,
        }
        template = template or fam.rule.template
        chosen = {vp.shape.config.d_model: vp.shape.config.n_layers}
        for n in _neighbourhood(vp.N_opt, sizes, spread):
            c = min(fam.candidates_near(n), key=lambda c: abs(math.log(c.N / n)))
            chosen.setdefault(c.cfg.d_model, c.cfg.n_layers)
        centres.append(vp.shape.config.d_model)
        for d, L in chosen.items():
            if widths.setdefault(d, L) != L:
                raise ScalelabError(
                    f"{vp.variant}: width {d} is planned with {L} layers for one variant and {widths[d]} for "
                    "another: plan with --depth to fix the depth, or emit one variant at a time (--variant)"
                )
        variants.append(fam.rule.template)
        law = (g.extra.get("hyper") or {}).get("lr")
        lr_laws.append((vp.variant, fam, law))
    if not variants:
        raise ScalelabError("no variant of this plan has a shape family: fit scalelab runs (run-store Parquet)")
    ds = _thin(sorted(widths), centres, sizes + len(set(centres)) - 1)
    name = name or Path(path).stem
    lines = [
        f"# Emitted by `scalelab plan --flops {flops:.3g} --emit-grid`: every variant at each width, all at",
        f"# {flops:.3g} training FLOPs (an IsoFLOP set bracketing the planned optimum). Planned optimum:",
    ]
    lines += [
        f"#   {v}: d_model {o['d_model']} x {o['n_layers']} layers, N_opt {o['N_opt']:.3g}" for v, o in optimum.items()
    ]
    lines += [f'name = "{name}"', f'description = "IsoFLOP set at {flops:.3g} FLOPs around the planned optimum"']
    lines += [f"seeds = [{int(settings.get('seed', 0))}]", "", "[data]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in settings["data"].items() if v is not None and k != "format"]
    t = template
    lines += ["", "[model]", f"widths = {_toml_value(ds)}", f"depths = {_toml_value([widths[d] for d in ds])}"]
    lines += [f"head_dim = {t.head_dim}", f"d_ff_ratio = {t.ffn_width / t.d_model!r}"]
    lines += [f"{k} = {_toml_value(getattr(t, k))}" for k in _MODEL_KEYS]
    for v in variants:
        lines += ["", "[[variants]]", f'structure = "{v.ffn.kind}"']
        if getattr(v, "param", "sp") != "sp":  # the fitted parametrisation (an lr law holds under it only)
            lines.append(f'model = {{ param = "{v.param}", mup_base_width = {v.mup_base_width} }}')
        if v.ffn.kind != "dense":
            if v.ffn.fraction is not None:
                lines.append(f"fraction = {v.ffn.fraction!r}")
            else:
                lines += [f"{k} = {getattr(v.ffn, k)}" for k in ("rank", "blocks") if getattr(v.ffn, k) is not None]
    tr = settings["train"]
    lines += ["", "[budgets]", f"flops = [{flops!r}]", "", "[schedule]", f'kind = "{tr["schedule"]}"']
    lines += [f"{k} = {tr[k]!r}" for k in ("warmup", "cooldown", "min_lr_ratio")]
    lines += ["", "[optimizer]", _lr_line(ds, widths, lr_laws, tr, notes), f"batch_size = {tr['batch_size']}"]
    lines += [f"weight_decay = {tr['weight_decay']!r}", f"betas = [{tr['beta1']!r}, {tr['beta2']!r}]"]
    lines += [f"grad_clip = {tr['grad_clip']!r}"]
    lines += ["", "[eval]", f"points = {tr['eval_points']}", f"val_tokens = {tr['val_tokens']}", ""]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, "\n".join(lines).encode())
    return EmittedGrid(path=path, flops=flops, widths=ds, optimum=optimum, notes=notes)


def _lr_line(ds: list[int], depths: dict, lr_laws: list, tr: dict, notes: list) -> str:
    """[optimizer]'s learning rate: with an lr law in the fit (fit/hyper.py), a per-width lr_table from the law
    at each width's N (the geometric mean over variants when several share a width, noted when they differ by
    more than 10%); else the fitted runs' lr."""
    from scalelab.fit import hyper
    from scalelab.plan.families import _candidate

    if not lr_laws or any(law is None for _, _, law in lr_laws):
        if tr.get("sweep"):
            notes.append(f"the fitted runs swept {', '.join(tr['sweep'])} but the fit has no lr law: lr = {tr['lr']:g}")
        return f"lr = {tr['lr']!r}"
    table = {}
    for d in ds:
        lrs = []
        for _, fam, law in lr_laws:
            N = _candidate(fam.rule.make(d, depths[d]), fam.n_key, fam.convention).N
            lrs.append(hyper.predict_lr(law, N)["lr"])
        table[d] = float(math.exp(sum(math.log(x) for x in lrs) / len(lrs)))
        if max(lrs) / min(lrs) > 1.1:
            notes.append(
                f"width {d}: the variants' lr laws give {min(lrs):.3g} to {max(lrs):.3g}; the grid has one lr per "
                f"width ({table[d]:.3g}, their geometric mean): emit one variant at a time (--variant) for each its own"
            )
    body = ", ".join(f'"{d}" = {v:.4g}' for d, v in table.items())
    return f"lr_table = {{{body}}}  # from the fit's lr law lr_opt = c N^k at each width's N"


def check_emitted(emitted: EmittedGrid, tolerance: float = 0.05) -> list[dict]:
    """Load the emitted grid as `scalelab run` would and return its runs with their training FLOPs;
    ScalelabError if a run misses the budget by more than `tolerance` (the file would mislead)."""
    from scalelab.flops import budget_flops, param_counts
    from scalelab.grid import Grid

    rows = []
    for run in Grid.load(str(emitted.path)).runs():
        tokens = max(run.train.budgets)
        c = budget_flops(run.model, tokens)
        rows.append(
            {
                "variant": run.model.variant,
                "d_model": run.model.d_model,
                "n_layers": run.model.n_layers,
                "params": param_counts(run.model).params,
                "tokens": tokens,
                "flops": c,
            }
        )
        if abs(c / emitted.flops - 1) > tolerance:
            raise ScalelabError(
                f"emitted grid {emitted.path}: {run.model.variant} d_model {run.model.d_model} would train "
                f"{c:.3g} FLOPs, {c / emitted.flops - 1:+.1%} off the {emitted.flops:.3g} budget: report this"
            )
    return rows
