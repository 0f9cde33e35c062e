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
    paths = [str(i.path) for i in fit.info.inputs if str(i.path).endswith(".parquet")]
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


@dataclass
class _Widths:
    """The planned variants' widths and what the grid needs of them (emit_grid)."""

    widths: dict = field(default_factory=dict)  # d_model -> n_layers
    optimum: dict = field(default_factory=dict)  # variant -> {"d_model", "n_layers", "N_opt"}
    notes: list = field(default_factory=list)
    variants: list = field(default_factory=list)  # the variants' model templates
    centres: list = field(default_factory=list)  # the planned widths
    lr_laws: list = field(default_factory=list)  # (variant, shape family, its lr law or None)
    unidentified: dict = field(default_factory=dict)  # variant -> why its N_opt is not identified
    template: ModelConfig | None = None


def _plan_widths(planner, plan, sizes: int, spread: float) -> _Widths:
    """Per planned variant: its planned shape and the widths around it (_neighbourhood), one depth per width."""
    out = _Widths()
    for vp in plan.plans:
        g = planner.fit.groups[vp.group]
        fam = planner.shape_families.get(g.name)
        why = not_identified(g, vp)
        if why:
            out.unidentified[vp.variant] = why
            out.notes.append(f"N_opt of {vp.variant} is not identified ({why}); left out")
            continue
        if fam is None or vp.shape is None or not math.isfinite(vp.N_opt):
            out.notes.append(f"{vp.variant}: no shape to plan from ({g.form} fit without model configs); left out")
            continue
        v = fam.rule.template
        if v.attn != "mha" or v.guide is not None:
            raise ScalelabError(
                f"{vp.variant}: --emit-grid writes FFN-structure variants (dense, lowrank, ...); for attention or "
                "self-guided variants plan with --variants to leave it out and write its grid by hand"
            )
        cfg = vp.shape.config
        out.optimum[vp.variant] = {"d_model": cfg.d_model, "n_layers": cfg.n_layers, "N_opt": vp.N_opt}
        out.template = out.template or fam.rule.template
        chosen = {cfg.d_model: cfg.n_layers}
        for n in _neighbourhood(vp.N_opt, sizes, spread):
            c = min(fam.candidates_near(n), key=lambda c: abs(math.log(c.N / n)))
            chosen.setdefault(c.cfg.d_model, c.cfg.n_layers)
        out.centres.append(cfg.d_model)
        for d, L in chosen.items():
            if out.widths.setdefault(d, L) != L:
                raise ScalelabError(
                    f"{vp.variant}: width {d} is planned with {L} layers for one variant and {out.widths[d]} for "
                    "another: plan with --depth to fix the depth, or emit one variant at a time (--variant)"
                )
        out.variants.append(fam.rule.template)
        out.lr_laws.append((vp.variant, fam, g.lr_law))
    return out


def _check_request(plan, sizes: int, spread: float) -> float:
    """The plan's FLOPs budget, once the request is checked (a one-line ScalelabError if not)."""
    if plan.C is None:
        raise ScalelabError("--emit-grid needs a FLOPs budget: plan with --flops C")
    if not 3 <= sizes <= 7:
        raise ScalelabError(f"--emit-sizes {sizes}: give 3 to 7 sizes per variant to bracket the optimum")
    if not spread > 1:
        raise ScalelabError(f"--emit-spread {spread} must be > 1 (e.g. 4: N_opt / 4 .. 4 N_opt)")
    return float(plan.C)


def _check_planned(w: _Widths) -> None:
    """A one-line ScalelabError when no planned variant can be emitted, naming why."""
    if not w.variants and w.unidentified:
        (v, why), more = next(iter(w.unidentified.items())), [said(x) for x in w.unidentified][1:]
        also = f" (and of {', '.join(more)})" if more else ""
        raise ScalelabError(
            f"N_opt of {said(v)}{also} is not identified: {said(why)}; run `scalelab plan --suggest K` to see which "
            "runs would identify it"
        )
    if not w.variants:
        raise ScalelabError("no variant of this plan has a shape family: fit scalelab runs (run-store Parquet)")


def _grid_name(name: str | None, path) -> str:
    name = name or Path(path).stem
    why = unsafe_name(name)  # the loader's rule: the grid's name starts its runs' file names
    if why:
        raise ScalelabError(
            f"--emit-grid: the grid's name {name[:60]!r} (its file name) {why}: it starts the runs' file names; "
            "name the file with letters, digits and - _ . + (e.g. grids/next.toml)"
        )
    return name


def emit_grid(planner, plan, path, *, sizes: int = 5, spread: float = 4.0, name: str | None = None) -> EmittedGrid:
    """Write the IsoFLOP grid for `plan` (the scalelab.plan.PlanResult that `planner` made at a FLOPs
    budget, with shapes) to `path`.

    sizes: models per variant (3-7); spread: the largest over the planned N (and planned N over the
    smallest). The variants' shapes come from the planner's shape family, so the grid builds the planned
    models; the file is checked by loading it before it is returned.
    """
    flops = _check_request(plan, sizes, spread)
    settings = _run_settings(planner.fit)
    w = _plan_widths(planner, plan, sizes, spread)
    _check_planned(w)
    assert w.template is not None  # set with the first planned variant; _check_planned raised if none
    ds = _thin(sorted(w.widths), w.centres, sizes + len(set(w.centres)) - 1)
    name = _grid_name(name, path)
    lines = _head_lines(flops, w.optimum, name, settings)
    lines += _model_lines(ds, w.widths, w.template, w.variants)
    lines += _train_lines(
        settings["train"], flops, _lr_line(ds, w.widths, w.lr_laws, settings["train"], w.notes, flops)
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, "\n".join(lines).encode())
    return EmittedGrid(path=path, flops=flops, widths=ds, optimum=w.optimum, notes=w.notes)


# every value taken from data (names, settings) goes through _toml_value / _toml_key: never pasted
def _head_lines(flops: float, optimum: dict, name: str, settings: dict) -> list[str]:
    """The comment naming the planned optima, the grid's name, seeds and [data]."""
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
    return lines


def _model_lines(ds: list[int], widths: dict, t: ModelConfig, variants: list) -> list[str]:
    """[model] (the widths, their depths and the fitted runs' template) and one [[variants]] per variant."""
    lines = ["", "[model]", f"widths = {_toml_value(ds)}", f"depths = {_toml_value([widths[d] for d in ds])}"]
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
    return lines


def _train_lines(tr: dict, flops: float, lr_line: str) -> list[str]:
    """[budgets], [schedule], [optimizer] and [eval]: the fitted runs' settings at the grid's budget."""
    lines = [
        "",
        "[budgets]",
        f"flops = {_toml_value([flops])}",
        "",
        "[schedule]",
        f"kind = {_toml_value(tr['schedule'])}",
    ]
    lines += [f"{k} = {_toml_value(tr[k])}" for k in ("warmup", "cooldown", "min_lr_ratio")]
    lines += ["", "[optimizer]", lr_line, f"batch_size = {_toml_value(tr['batch_size'])}"]
    lines += [f"weight_decay = {_toml_value(tr['weight_decay'])}", f"betas = {_toml_value([tr['beta1'], tr['beta2']])}"]
    lines += [f"grad_clip = {_toml_value(tr['grad_clip'])}"]
    lines += [
        "",
        "[eval]",
        f"points = {_toml_value(tr['eval_points'])}",
        f"val_tokens = {_toml_value(tr['val_tokens'])}",
    ]
    return lines + [""]


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
    law = lr_laws[0][2].formula or "lr_opt = c N^k"
    return f"lr_table = {{{body}}}  # from the fit's lr law {law} at each width's N and tokens"


def said(name: str) -> str:
    """A name taken from data as it may appear in a one-line message: as is when printable, else its repr
    (a newline in a variant name must not split the line)."""
    return name if str(name).isprintable() else repr(name)


def not_identified(g, vp) -> str | None:
    """Why the compute-optimal N of the planned variant `vp` (fit group `g`) is not identified, in words (what
    the fit recorded, scalelab.fit.identify.compute_optimal_gap; else the planner's note); None when it is."""
    from scalelab.fit import identify

    why = identify.compute_optimal_gap(g)
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
