"""`scalelab plan`: compute-optimal width, depth, rank and tokens per variant from a fit, with intervals."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List, Optional

import typer

from scalelab.commands._common import user_errors


def _number(text: Optional[str], option: str) -> Optional[float]:
    from scalelab.errors import ScalelabError

    if text is None:
        return None
    try:
        x = float(text.replace("_", ""))
    except ValueError:
        raise ScalelabError(f"{option} {text!r} is not a number: write e.g. 1e21 or 3.2e20") from None
    if not (x > 0 and math.isfinite(x)):
        raise ScalelabError(f"{option} {text} must be a positive finite number, e.g. 1e21")
    return x


def _si(x: Optional[float], digits: int = 3) -> str:
    """1.23e9 -> 1.23B; NaN/None -> '-'."""
    if x is None or not math.isfinite(x):
        return "inf" if x is not None and x == math.inf else "-"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.{digits}g}{unit}"
    return f"{x:.{digits}g}"


def _g(x: float) -> str:
    """3 significant digits; '-' for NaN."""
    return f"{x:.3g}" if x is not None and math.isfinite(x) else "-"


def _bracket(lo: float, hi: float, fmt) -> str:
    """An interval as '[lo, hi]', or '(no interval)' where the plan withheld it (its notes say why)."""
    return f"[{fmt(lo)}, {fmt(hi)}]" if math.isfinite(lo) and not math.isnan(hi) else "(no interval)"


def _console():
    from scalelab.commands._common import stdout_console

    return stdout_console()


@user_errors
def plan(
    flops: Optional[str] = typer.Option(
        None, "--flops", "-C", help="Training budget in FLOPs (the fit's convention), e.g. 1e21 or 3.2e20."
    ),
    fit: Optional[Path] = typer.Option(
        None,
        "--fit",
        help="Fit file (fits/NAME.json with NAME.samples.parquet beside it). Default: the newest fits/*.json.",
    ),
    variant: Optional[List[str]] = typer.Option(
        None, "--variant", "-v", help="Plan only these variants (repeat the option). Default: every group in the fit."
    ),
    gpu_hours: Optional[float] = typer.Option(
        None,
        "--gpu-hours",
        help="Plan for wall clock instead: each variant gets the FLOPs that H GPU-hours buy at its measured "
        "throughput.",
    ),
    gpu: str = typer.Option(
        "h100",
        "--gpu",
        help="Accelerator for the GPU-hours column and --gpu-hours: h100, h200, a100 (peak bf16 FLOP/s) or cpu "
        "(measured rates as they are).",
    ),
    mfu: Optional[float] = typer.Option(
        None, "--mfu", help="Assume this model-FLOPs utilisation (0-1) instead of the runs' measured throughput."
    ),
    inference_tokens: Optional[str] = typer.Option(
        None,
        "--inference-tokens",
        help="Also serve T generated tokens: minimise training plus inference FLOPs (2 N per token) within the budget.",
    ),
    target_loss: Optional[float] = typer.Option(
        None,
        "--target-loss",
        help="Inverse: the compute each variant needs for its optimal loss to reach L (nats), with interval.",
    ),
    multiple: Optional[int] = typer.Option(
        None,
        "--multiple",
        help="d_model of the chosen shape is a multiple of this (default 64, or the fitted runs' common width "
        "divisor when smaller).",
    ),
    depth: Optional[int] = typer.Option(
        None, "--depth", help="Fix n_layers of the chosen shape (default: the aspect rule of the fit's runs)."
    ),
    unique_tokens: Optional[str] = typer.Option(
        None, "--unique-tokens", help="Unique tokens in the training corpus: warn when D_opt would repeat data."
    ),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="Table over log-spaced budgets instead, e.g. 1e19:1e23."),
    sweep_points: int = typer.Option(9, "--sweep-points", help="Number of budgets in --sweep."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON (for machines) instead of a table."),
    emit_grid: Optional[Path] = typer.Option(
        None,
        "--emit-grid",
        help="Also write a grid TOML that trains, per variant, the planned shape and sizes around it, all at the "
        "--flops budget (an IsoFLOP set bracketing the optimum), with the fitted runs' data and training settings.",
    ),
    emit_sizes: int = typer.Option(5, "--emit-sizes", help="Sizes per variant in --emit-grid (3 to 7)."),
    emit_spread: float = typer.Option(
        4.0, "--emit-spread", help="--emit-grid sizes span N_opt / SPREAD .. N_opt x SPREAD (log-evenly)."
    ),
    suggest_k: Optional[int] = typer.Option(
        None,
        "--suggest",
        help="Instead of a plan: the K new runs (shape, tokens) that most narrow the interval of --suggest-for "
        "per FLOP, found by refitting the fit's points (with its bootstrap) with each candidate's predicted loss. "
        "Where N_opt is not identified: the K cheapest runs that make the design identify it.",
    ),
    suggest_flops: Optional[str] = typer.Option(
        None, "--suggest-flops", help="Most FLOPs one suggested run may cost (default: 4x the largest fitted run)."
    ),
    suggest_for: str = typer.Option(
        "n_opt",
        "--suggest-for",
        help="n_opt (a variant's compute-optimal N at --at), multiplier (its compute multiplier vs --versus) or a "
        "parameter of its law (E, A, B, alpha, beta).",
    ),
    suggest_variant: Optional[str] = typer.Option(None, "--suggest-variant", help="Variant whose quantity to narrow."),
    versus: str = typer.Option("dense", "--versus", help="Reference variant of --suggest-for multiplier."),
    at: Optional[str] = typer.Option(
        None, "--at", help="Budget (FLOPs) of the quantity --suggest narrows (default: 10x the largest fitted run)."
    ),
    suggest_boot: int = typer.Option(200, "--suggest-bootstrap", help="Resamples per refit in --suggest."),
) -> None:
    """Compute-optimal N, D, shape and predicted loss per variant at a FLOPs budget, with bootstrap intervals.

    Every bootstrap sample is pushed through the optimisation: intervals are percentiles of the optimum, not
    the plug-in point. Fits of scalelab runs use each variant's real FLOPs per token (attention, logits,
    structure, self-guided overhead); plain (N, D) fits use C = 6 N D.

    Examples: scalelab plan --flops 1e21 | scalelab plan --gpu-hours 1000 --gpu h100 |
    scalelab plan --sweep 1e19:1e23 --json
    """
    from scalelab import plan as P
    from scalelab.errors import ScalelabError

    fit_path = fit if fit is not None else P.newest_fit("fits")
    T = _number(inference_tokens, "--inference-tokens") or 0.0
    if suggest_k is not None:
        _suggest(fit_path, suggest_k, suggest_flops, suggest_for, suggest_variant, versus, at, suggest_boot, as_json)
        return
    from scalelab.fit.results import load_fit
    from scalelab.plan.planner import has_loss_law, sweep_recommendations

    fitted = load_fit(fit_path)
    sweeps = sweep_recommendations(fitted, variant or None)  # groups with an lr law but no loss law
    if sweeps and not has_loss_law(fitted, variant or None):  # the sweep's lr per size, without a plan
        if emit_grid is not None:
            raise ScalelabError(
                f"--emit-grid needs a loss law: {_refusals(sweeps)}; plan without it for the lr per size"
            )
        _print_sweeps(sweeps, fit_path, as_json)
        return
    if sweep is not None:
        try:
            lo, hi = (float(x) for x in sweep.split(":"))
        except ValueError:
            raise ScalelabError(f"--sweep {sweep!r} must be C_MIN:C_MAX, e.g. 1e19:1e23") from None
        if not 1 <= sweep_points <= 1000:  # each budget is a planner solve: a million would take hours
            raise ScalelabError(f"--sweep-points {sweep_points} must be between 1 and 1000, e.g. 9")
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise ScalelabError(f"--sweep {sweep}: give finite budgets 0 < C_MIN <= C_MAX, e.g. 1e19:1e23")
        df = P.sweep(fit_path, lo, hi, sweep_points, variants=variant or None, inference_tokens=T)
        if as_json:
            typer.echo(json.dumps({"fit": str(fit_path), "rows": P._jsonable(df.to_dict(orient="records"))}, indent=1))
        else:
            _print_sweep(df, fit_path)
        return
    C = _number(flops, "--flops")
    if C is None and gpu_hours is None and target_loss is None:
        raise ScalelabError("give a budget: --flops 1e21, --gpu-hours H, --target-loss L or --sweep 1e19:1e23")
    if mfu is not None and not 0 < mfu <= 1:
        raise ScalelabError(f"--mfu {mfu} must be in (0, 1], e.g. 0.4")
    if emit_grid is not None and C is None:
        raise ScalelabError("--emit-grid needs a FLOPs budget: plan with --flops C")
    if emit_grid is not None:
        from scalelab.commands._common import check_out_file

        check_out_file(emit_grid, "--emit-grid")
    planner = P.Planner(fit_path, variant or None, multiple, depth)
    result = P.plan_budget(
        planner,
        C,
        gpu_hours=gpu_hours,
        gpu=gpu,
        mfu=mfu,
        inference_tokens=T,
        target_loss=target_loss,
        multiple=multiple,
        depth=depth,
        unique_tokens=_number(unique_tokens, "--unique-tokens"),
    )
    if as_json:
        typer.echo(json.dumps({**result.to_dict(), **({"sweeps": P._jsonable(sweeps)} if sweeps else {})}, indent=1))
    else:
        _print_plan(result, fit_path)
        if sweeps:
            _print_sweeps(sweeps, fit_path, False)
    if emit_grid is not None:
        _emit(planner, result, emit_grid, emit_sizes, emit_spread)


def _suggest(fit_path, k, flops, quantity, variant, versus, at, n_boot, as_json) -> None:
    """`plan --suggest K`: rank candidate runs by interval reduction per FLOP (scalelab.loop.suggest)."""
    from rich.progress import Progress

    from scalelab.fit.results import load_fit
    from scalelab.loop.suggest import design_runs, not_identified, suggest

    fit = load_fit(fit_path)
    budget = _number(flops, "--suggest-flops") or 4 * max(g.c_range[1] for g in fit)
    if quantity == "n_opt" and not_identified(fit, [variant] if variant else None):
        _suggest_design(fit_path, design_runs(fit, k, budget, variants=[variant] if variant else None), budget, as_json)
        return
    fit.require_samples()
    with Progress(transient=True, disable=as_json) as bar:
        task = bar.add_task("refitting with each candidate", total=None)
        s = suggest(
            fit,
            k,
            budget,
            quantity=quantity,
            variant=variant,
            versus=versus,
            at=_number(at, "--at"),
            n_boot=n_boot,
            progress=lambda i, n: bar.update(task, completed=i, total=n),
        )
    if as_json:
        rows = [c.__dict__ for c in s.ranked]
        typer.echo(
            json.dumps(
                {
                    "fit": str(fit_path),
                    "quantity": s.quantity,
                    "at": s.at,
                    "baseline_log_width": s.baseline,
                    "interval": list(s.interval),
                    "suggested": rows,
                    "notes": s.notes,
                },
                indent=1,
            )
        )
        return
    from rich.markup import escape
    from rich.table import Table

    what = {"n_opt": "compute-optimal N", "multiplier": f"compute multiplier vs {versus}"}.get(quantity, quantity)
    t = Table(
        title=f"Next runs: narrowing {what} at {s.at:.3g} FLOPs (now [{s.interval[0]:.3g}, {s.interval[1]:.3g}], "
        f"width {s.baseline:.3f} in log units) - fit {fit_path}"
    )
    for c in (
        "#",
        "variant",
        "d_model x layers",
        "params",
        "tokens",
        "tokens/param",
        "FLOPs",
        "width after",
        "narrower",
    ):
        t.add_column(c, justify="left" if c == "variant" else "right")
    for i, c in enumerate(s.ranked, 1):
        t.add_row(
            str(i),
            escape(c.variant),
            c.shape or "-",
            f"{c.N:.3g}",
            f"{c.D:.3g}",
            f"{c.D / c.N:.3g}",
            f"{c.flops:.3g}",
            f"{c.width:.3f}",
            f"{c.reduction / s.baseline:.1%}",
        )
    con = _console()
    con.print(t)
    con.print(
        f"{len(s.tried)} candidates (shapes over the fitted sizes x 5-80 tokens/param, each <= {budget:.3g} "
        "FLOPs), ranked by narrowing per FLOP; each refit assumes the run lands on the fit's prediction"
    )
    for n in s.notes:
        con.print(f"note: {escape(n)}", highlight=False)
    for g in fit:  # E or an exponent the runs do not pin down: the interval to narrow may be that one
        for w in g.warnings:
            if quantity == "n_opt" and ("E is not identified" in w or "weakly identified" in w):
                con.print(
                    f"note: {escape(g.variant)}: {escape(w.split(' (')[0])}: `--suggest-for {w.split()[0]}` ranks "
                    "the runs that narrow it",
                    highlight=False,
                )


def _suggest_design(fit_path, s, budget: float, as_json: bool) -> None:
    """`plan --suggest K` where N_opt is not identified: the cheapest runs that make the design identify it."""
    if as_json:
        typer.echo(json.dumps({"fit": str(fit_path), **s.to_dict()}, indent=1))
        return
    from rich.markup import escape
    from rich.table import Table

    con = _console()
    for v, why in s.gaps.items():
        con.print(f"N_opt of {escape(v)} is not identified: {escape(why)}", highlight=False)
    t = Table(
        title=f"Next runs: the cheapest that make the design identify N_opt (each <= {budget:.3g} FLOPs, "
        f"{sum(r.flops for r in s.runs):.3g} in all) - fit {escape(str(fit_path))}"
    )
    for c in ("#", "variant", "d_model x layers", "params", "tokens", "tokens/param", "FLOPs", "rule it satisfies"):
        t.add_column(c, justify="left" if c in ("variant", "rule it satisfies") else "right")
    for i, r in enumerate(s.runs, 1):
        t.add_row(
            str(i),
            escape(r.variant),
            r.shape or "-",
            f"{r.N:.3g}",
            f"{r.D:.3g}",
            f"{r.D / r.N:.3g}",
            f"{r.flops:.3g}",
            escape("\n".join(w for _, w in r.rules)),
        )
    con.print(t)
    for v, d in s.after.items():
        b = s.before[v]
        con.print(
            f"{escape(v)}: {b.n_sizes} -> {d.n_sizes} sizes, tokens/param {b.separation:.3g}x -> {d.separation:.3g}x "
            f"apart at a given size, {b.n_points} -> {d.n_points} points (rules: scalelab/fit/identify.py)",
            highlight=False,
        )
    for n in s.notes:
        con.print(f"note: {escape(n)}", highlight=False)


def _emit(planner, result, path: Path, sizes: int, spread: float) -> None:
    """Write the IsoFLOP grid (scalelab.loop.emit), check it loads and spends the budget, say so on stderr."""
    from scalelab.loop.emit import check_emitted, emit_grid

    e = emit_grid(planner, result, path, sizes=sizes, spread=spread)
    try:
        rows = check_emitted(e)
    except Exception:
        path.unlink(missing_ok=True)  # never leave a grid that would mislead
        raise
    worst = max(abs(r["flops"] / e.flops - 1) for r in rows)
    typer.echo(
        f"wrote {path}: {len(rows)} runs at widths {', '.join(map(str, e.widths))}, each within {worst:.1%} of "
        f"{e.flops:.3g} FLOPs; train with `scalelab run --grid {path}`",
        err=True,
    )
    for n in e.notes:
        typer.echo(f"note: {n}", err=True)


def _print_plan(r, fit_path) -> None:
    from rich.table import Table

    con = _console()
    budget = (
        f"{r.C:.3g} FLOPs"
        if r.C
        else f"{r.gpu_hours:g} {r.gpu} GPU-hours"
        if r.gpu_hours
        else f"target loss {r.target_loss:g}"
    )
    t = Table(
        title=f"Compute-optimal plan at {budget} ({r.convention} convention; {r.level:.0%} intervals) - fit {fit_path}"
    )
    hours = any(p.gpu_hours for p in r.plans)  # only with a measured or stated throughput basis
    lrs = any(p.lr for p in r.plans)  # the fit has an lr law (its runs swept the learning rate)
    batches = any(getattr(p, "batch", None) for p in r.plans)  # and a batch law (batch size swept too)
    for col in (
        "#",
        "variant",
        "d_model x layers",
        "rank/blocks",
        "params [N_opt int.]",
        "tokens [D_opt int.]",
        "tokens/param",
        "loss [interval]",
        "one-run interval",
        "FLOPs",
        *(["lr [interval]"] if lrs else []),
        *(["batch tokens [interval]"] if batches else []),
        *([f"{(r.gpu or 'GPU')}-hours"] if hours else []),
    ):
        t.add_column(col, justify="left" if col in ("variant", "loss [interval]") else "right")
    for i, p in enumerate(r.plans, 1):
        sh = p.shape
        if sh is not None:
            c = sh.config
            shape = f"{c.d_model} x {c.n_layers}"
            s = c.ffn
            rb = "/".join(x for x in (f"R={s.rank}" if s.rank else "", f"B={s.blocks}" if s.blocks else "") if x) or "-"
            if c.attn == "lpa":
                rb += f" r_attn={c.attn_rank}"
            params, tokens, loss, lint = sh.params, sh.tokens, sh.loss, sh.loss_int
            flops = sh.flops_per_token * sh.tokens + sh.flops_per_token / 3 * r.inference_tokens
        else:
            shape, rb = "-", "-"
            params, tokens, loss, lint, flops = p.N_opt, p.D_opt, p.L_opt, p.L_int, p.C
        tpp = tokens / params if params and math.isfinite(params) else float("nan")
        if not p.identified and p.form == "chinchilla":  # outside the plausible range: no numbers shown
            params = tokens = tpp = float("nan")
        t.add_row(
            str(i),
            p.variant,
            shape,
            rb,
            _si(params) + ("\n" + _bracket(*p.N_int, _si) if p.identified else "\n(not identified)"),
            _si(tokens) + ("\n" + _bracket(*p.D_int, _si) if p.identified else ""),
            _g(tpp) + ("\n" + _bracket(*p.tpp_int, _g) if p.identified else ""),
            f"{loss:.3f} " + _bracket(*lint, lambda x: f"{x:.3f}") if math.isfinite(loss) else "- (no loss law)",
            f"[{p.L_pred_int[0]:.3f}, {p.L_pred_int[1]:.3f}]" if math.isfinite(p.L_pred_int[0]) else "-",
            f"{flops:.3g}",
            *([_lr_cell(p.lr)] if lrs else []),
            *([_batch_cell(p.batch)] if batches else []),
            *([f"{p.gpu_hours:.3g}" if p.gpu_hours else "-"] if hours else []),
        )
    con.print(t)
    if sh_any := [p for p in r.plans if p.shape is not None]:
        con.print("Shapes spend the budget exactly (tokens adjusted); loss is the shape's. Ideal N_opt, D_opt, L_opt:")
        for p in sh_any:
            s = p.shape
            con.print(
                f"  {p.variant}: N_opt {_si(p.N_opt)}, D_opt {_si(p.D_opt)}, L_opt {p.L_opt:.3f}; shape params "
                f"{s.n_rel:+.1%}, tokens {s.d_rel:+.1%}, FLOPs at D_opt {s.flops_at_D_opt_rel:+.1%}"
                + (f", FFN kept {s.ffn_fraction:.0%}" if s.ffn_fraction else "")
            )
    if len(r.plans) > 1 and r.p_beats is not None:
        con.print(
            f"P({r.plans[0].variant} beats {r.plans[1].variant}) = {r.p_beats:.3g} over bootstrap samples "
            f"({r.pairing or ('paired samples' if r.paired else 'independent fits')})"
        )
    if not hours and r.gpu and not r.gpu_hours:
        why = next((p.throughput_source for p in r.plans if p.throughput_source), "")
        con.print(f"GPU-hours not shown: {why or 'no throughput basis'}", highlight=False)
    for p in r.plans:
        rg = r.fitted_range.get(p.variant) or {}
        fr = ", ".join(
            f"{k} {_si(v[0])}..{_si(v[1])}" if k != "C" else f"C {v[0]:.3g}..{v[1]:.3g}" for k, v in rg.items() if v
        )
        if fr:
            con.print(f"fitted range {p.variant}: {fr}")
        if p.throughput_source and p.gpu_hours:
            con.print(f"  throughput {p.variant}: {p.throughput:.3g} FLOP/s ({p.throughput_source})")
        if p.target:
            tg = p.target
            con.print(
                f"  to reach loss {tg['target_loss']:g}: C = {tg['C']:.3g} [{tg['C_int'][0]:.3g}, {tg['C_int'][1]:.3g}]"
                + (f" ({tg['p_unreachable']:.0%} of samples never reach it)" if tg["p_unreachable"] else "")
                + (f", {tg['gpu_hours']:.3g} {r.gpu}-hours" if tg.get("gpu_hours") else "")
            )
        if p.inference:
            inf = p.inference
            con.print(
                f"  with {inf['inference_tokens']:.3g} inference tokens: N is {inf['N_over_compute_optimal']:.3g}x the "
                f"compute-optimal N, trained at {inf['tokens_per_param_over_compute_optimal']:.3g}x its tokens/param "
                f"({inf['compute_optimal_tokens_per_param']:.3g}); loss with the compute-optimal N would be "
                f"{inf['loss_if_compute_optimal_N']:.3f}"
            )
        for n in p.notes:
            con.print(f"  note {p.variant}: {n}")
    from rich.text import Text

    for w in r.warnings:
        con.print(Text.assemble(("warning:", "yellow"), f" {w}"))  # names from the fit print as given


def _lr_cell(lr) -> str:
    """The recommended peak learning rate from the fit's lr law, its interval, and (ext.) outside the swept sizes."""
    if not lr:
        return "-"
    ci = f"\n[{lr['lo']:.3g}, {lr['hi']:.3g}]" if lr["lo"] == lr["lo"] else ""
    return f"{lr['lr']:.3g}{ci}" + (" (ext.)" if lr["extrapolated"] else "")


def _print_sweep(df, fit_path) -> None:
    from rich.table import Table

    con = _console()
    t = Table(title=f"Compute-optimal allocation over budgets - fit {fit_path}")
    for col in (
        "variant",
        "C",
        "N_opt [interval]",
        "D_opt [interval]",
        "tokens/param",
        "L_opt [interval]",
        "extrapolated",
    ):
        t.add_column(col, justify="left" if col == "variant" else "right")
    for row in df.itertuples():
        ok = bool(getattr(row, "identified", True))
        t.add_row(
            row.variant,
            f"{row.C:.3g}",
            f"{_si(row.N_opt)} [{_si(row.N_lo)}, {_si(row.N_hi)}]" if ok else "(not identified)",
            f"{_si(row.D_opt)} [{_si(row.D_lo)}, {_si(row.D_hi)}]" if ok else "-",
            _g(row.D_opt / row.N_opt) if ok else "-",
            f"{row.L_opt:.3f} [{row.L_lo:.3f}, {row.L_hi:.3f}]",
            "yes" if row.extrapolated else "",
        )
    con.print(t)


def _refusals(sweeps) -> str:
    return "; ".join(f"{s['variant']}: loss law not fitted: {s['why']}" for s in sweeps)


def _print_sweeps(sweeps, fit_path, as_json: bool) -> None:
    """Groups whose loss law the fit refused but whose sweep gives an lr (and batch) law: the plan a loss law
    would give is refused with its reason; the recommended lr (and batch size) per swept size is printed."""
    if as_json:
        typer.echo(json.dumps({"fit": str(fit_path), "plans": [], "sweeps": _jsonable_rows(sweeps)}, indent=1))
        return
    from rich.markup import escape
    from rich.table import Table

    con = _console()
    for s in sweeps:
        con.print(
            f"no loss-based plan for {escape(s['variant'])}: loss law not fitted: {escape(s['why'])}", highlight=False
        )
    batch = any(r["batch"] for s in sweeps for r in s["rows"])
    t = Table(title=f"Recommended learning rate per swept size, from the sweep's own law - fit {escape(str(fit_path))}")
    cols = ["variant", "d_model", "params", "tokens", "sweep optimum", "lr (law) [interval]"]
    for c in cols + (["batch tokens (law) [interval]"] if batch else []):
        t.add_column(c, justify="left" if c == "variant" else "right")
    for s in sweeps:
        for r in s["rows"]:
            lr, bs = r["lr"], r["batch"]
            t.add_row(
                escape(s["variant"]),
                str(r["d_model"]) if r["d_model"] else "-",
                _si(r["N"]),
                _si(r["D"]),
                (_g(r["lr_measured"]) + (" (edge)" if r["at_edge"] else "")) if r["lr_measured"] else "-",
                _lr_cell(lr),
                *([_batch_cell(bs)] if batch else []),
            )
    con.print(t)
    for s in sweeps:
        for line in s["lines"]:
            con.print(escape(line), highlight=False)


def _jsonable_rows(sweeps):
    from scalelab.plan import _jsonable

    return _jsonable(sweeps)


def _batch_cell(bs) -> str:
    """The recommended batch size (tokens per step) from the fit's batch law, its interval, (ext.) outside it."""
    if not bs:
        return "-"
    ci = f"\n[{_si(bs['lo'])}, {_si(bs['hi'])}]" if bs["lo"] == bs["lo"] else ""
    return f"{_si(bs['batch'])}{ci}" + (" (ext.)" if bs["extrapolated"] else "")
