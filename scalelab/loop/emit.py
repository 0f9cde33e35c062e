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
from scalelab.fileio import atomic_write_bytes, unsafe_name
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


_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


def _toml_str(s) -> str:
    """A TOML basic string of `s`: quote, backslash and every control character escaped (TOML 1.0), so a name
    taken from data (quotes, newlines, `]`) stays one value and cannot open a table or a key of its own."""
    out = []
    for ch in str(s):
        o = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04X}")
        elif 0xD800 <= o <= 0xDFFF:  # a lone surrogate (undecodable bytes): no TOML text can hold it
            raise ScalelabError(f"--emit-grid: the name {ascii(str(s))} is not valid text: rename it (plain UTF-8)")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(k) -> str:
    """A bare key when it is one (letters, digits, - and _), else a quoted key."""
    k = str(k)
    return k if k and all(c.isascii() and (c.isalnum() or c in "-_") for c in k) else _toml_str(k)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items() if x is not None) + " }"
    if hasattr(v, "item"):  # numpy scalars
        return _toml_value(v.item())
    return _toml_str(v)


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
    unidentified = {}  # variant -> why its N_opt is not identified
    for vp in plan.plans:
        g = fit.groups[vp.group]
        fam = planner.shape_families.get(g.name)
        why = not_identified(g, vp)
        if why:
            unidentified[vp.variant] = why
            notes.append(f"N_opt of {vp.variant} is not identified ({why}); left out")
            continue
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
    if not variants and unidentified:
        (v, why), more = next(iter(unidentified.items())), [said(x) for x in unidentified][1:]
        also = f" (and of {', '.join(more)})" if more else ""
        raise ScalelabError(
            f"N_opt of {said(v)}{also} is not identified: {said(why)}; run `scalelab plan --suggest K` to see which "
            "runs would identify it"
        )
    if not variants:
        raise ScalelabError("no variant of this plan has a shape family: fit scalelab runs (run-store Parquet)")
    ds = _thin(sorted(widths), centres, sizes + len(set(centres)) - 1)
    name = name or Path(path).stem
    why = unsafe_name(name)  # the loader's rule: the grid's name starts its runs' file names
    if why:
        raise ScalelabError(
            f"--emit-grid: the grid's name {name[:60]!r} (its file name) {why}: it starts the runs' file names; "
            "name the file with letters, digits and - _ . + (e.g. grids/next.toml)"
        )
    # every value taken from data (names, settings) goes through _toml_value / _toml_key: never pasted
    lines = [
        f"# Emitted by `scalelab plan --flops {flops:.3g} --emit-grid`: every variant at each width, all at",
        f"# {flops:.3g} training FLOPs (an IsoFLOP set bracketing the planned optimum). Planned optimum:",
    ]
    lines += [
        f"#   {_toml_str(v)}: d_model {o['d_model']} x {o['n_layers']} layers, N_opt {o['N_opt']:.3g}"
        for v, o in optimum.items()
    ]
    lines += [f"name = {_toml_str(name)}"]
    lines += [f"description = {_toml_str(f'IsoFLOP set at {flops:.3g} FLOPs around the planned optimum')}"]
    lines += [f"seeds = [{_toml_value(int(settings.get('seed', 0)))}]", "", "[data]"]
    lines += [
        f"{_toml_key(k)} = {_toml_value(v)}" for k, v in settings["data"].items() if v is not None and k != "format"
    ]
    t = template
    lines += ["", "[model]", f"widths = {_toml_value(ds)}", f"depths = {_toml_value([widths[d] for d in ds])}"]
    lines += [f"head_dim = {_toml_value(t.head_dim)}", f"d_ff_ratio = {_toml_value(t.ffn_width / t.d_model)}"]
    lines += [f"{k} = {_toml_value(getattr(t, k))}" for k in _MODEL_KEYS]
    for v in variants:
        lines += ["", "[[variants]]", f"structure = {_toml_value(v.ffn.kind)}"]
        if getattr(v, "param", "sp") != "sp":  # the fitted parametrisation (an lr law holds under it only)
            lines.append(f"model = {_toml_value({'param': v.param, 'mup_base_width': v.mup_base_width})}")
        if v.ffn.kind != "dense":
            if v.ffn.fraction is not None:
                lines.append(f"fraction = {_toml_value(v.ffn.fraction)}")
            else:
                lines += [
                    f"{k} = {_toml_value(getattr(v.ffn, k))}"
                    for k in ("rank", "blocks")
                    if getattr(v.ffn, k) is not None
                ]
    tr = settings["train"]
    lines += [
        "",
        "[budgets]",
        f"flops = {_toml_value([flops])}",
        "",
        "[schedule]",
        f"kind = {_toml_value(tr['schedule'])}",
    ]
    lines += [f"{k} = {_toml_value(tr[k])}" for k in ("warmup", "cooldown", "min_lr_ratio")]
    lines += [
        "",
        "[optimizer]",
        _lr_line(ds, widths, lr_laws, tr, notes, flops),
        f"batch_size = {_toml_value(tr['batch_size'])}",
    ]
    lines += [f"weight_decay = {_toml_value(tr['weight_decay'])}", f"betas = {_toml_value([tr['beta1'], tr['beta2']])}"]
    lines += [f"grad_clip = {_toml_value(tr['grad_clip'])}"]
    lines += [
        "",
        "[eval]",
        f"points = {_toml_value(tr['eval_points'])}",
        f"val_tokens = {_toml_value(tr['val_tokens'])}",
        "",
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, "\n".join(lines).encode())
    return EmittedGrid(path=path, flops=flops, widths=ds, optimum=optimum, notes=notes)


def _lr_line(ds: list[int], depths: dict, lr_laws: list, tr: dict, notes: list, flops: float) -> str:
    """[optimizer]'s learning rate: with an lr law in the fit (fit/hyper.py), a per-width lr_table from the law
    at each width's N (the geometric mean over variants when several share a width, noted when they differ by
    more than 10%); else the fitted runs' lr."""
    from scalelab.fit import hyper
    from scalelab.plan.families import _candidate

    if not lr_laws or any(law is None for _, _, law in lr_laws):
        if tr.get("sweep"):
            notes.append(f"the fitted runs swept {', '.join(tr['sweep'])} but the fit has no lr law: lr = {tr['lr']:g}")
        return f"lr = {_toml_value(tr['lr'])}"
    table = {}
    for d in ds:
        lrs = []
        for _, fam, law in lr_laws:
            c = _candidate(fam.rule.make(d, depths[d]), fam.n_key, fam.convention)
            lrs.append(hyper.predict_lr(law, c.N, D=flops / c.flops_per_token)["lr"])  # D: the width's tokens
        table[d] = float(math.exp(sum(math.log(x) for x in lrs) / len(lrs)))
        if max(lrs) / min(lrs) > 1.1:
            notes.append(
                f"width {d}: the variants' lr laws give {min(lrs):.3g} to {max(lrs):.3g}; the grid has one lr per "
                f"width ({table[d]:.3g}, their geometric mean): emit one variant at a time (--variant) for each its own"
            )
    body = ", ".join(f'"{d}" = {v:.4g}' for d, v in table.items())
    law = lr_laws[0][2].get("formula", "lr_opt = c N^k")
    return f"lr_table = {{{body}}}  # from the fit's lr law {law} at each width's N and tokens"


def said(name: str) -> str:
    """A name taken from data as it may appear in a one-line message: as is when printable, else its repr
    (a newline in a variant name must not split the line)."""
    return name if str(name).isprintable() else repr(name)


def not_identified(g, vp) -> str | None:
    """Why the compute-optimal N of the planned variant `vp` (fit group `g`) is not identified, in words (what
    the fit recorded, scalelab.fit.identify.compute_optimal_gap; else the planner's note); None when it is."""
    from scalelab.fit import identify

    ex = g.extra
    why = identify.compute_optimal_gap(
        g.form, ex.get("identification"), ex.get("compute_optimal"), ex.get("fixed") or {}, ex.get("loss_law")
    )
    if why is None and not getattr(vp, "identified", True) and g.form != "allocation":
        why = next((n for n in reversed(vp.notes) if "not identified" in n), "the planner marks it not identified")
    return why


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
