"""`scalelab plan suggest K`: the next runs, ranked by how much they narrow a quantity's interval per FLOP
(scalelab.loop.suggest), or, where N_opt is not identified, the cheapest runs that make the design identify it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer

from scalelab.commands._render import print_summary
from scalelab.commands.plan_budget import number
from scalelab.fit.summary import Note, Section, Summary

RUN_COLUMNS = ["#", "variant", "d_model x layers", "params", "tokens", "tokens/param", "FLOPs"]


@dataclass
class Ask:
    """What to narrow: `quantity` of `variant` (vs `versus`) at budget `at`, each run <= `flops`."""

    k: int
    flops: Optional[str] = None
    quantity: str = "n_opt"
    variant: Optional[str] = None
    versus: str = "dense"
    at: Optional[str] = None
    n_boot: int = 200
    k_name: str = "--suggest"  # K as the command spells it


def run_suggest(path: Path, ask: Ask, as_json: bool) -> None:
    from rich.progress import Progress

    from scalelab.errors import ScalelabError

    if ask.k < 1:
        raise ScalelabError(f"{ask.k_name} {ask.k}: ask for at least one run (e.g. 4)")

    from scalelab.fit.results import load_fit
    from scalelab.loop.suggest import design_runs, not_identified, suggest

    fit = load_fit(path)
    budget = number(ask.flops, "--suggest-flops") or 4 * max(g.c_range[1] for g in fit)
    only = [ask.variant] if ask.variant else None
    if ask.quantity == "n_opt" and not_identified(fit, only):
        design = design_runs(fit, ask.k, budget, variants=only)
        if as_json:
            typer.echo(json.dumps({"fit": str(path), **design.to_dict()}, indent=1))
        else:
            print_summary(design_summary(design, path, budget))
        return
    fit.require_samples()
    with Progress(transient=True, disable=as_json) as bar:
        task = bar.add_task("refitting with each candidate", total=None)
        s = suggest(
            fit,
            ask.k,
            budget,
            quantity=ask.quantity,
            variant=ask.variant,
            versus=ask.versus,
            at=number(ask.at, "--at"),
            n_boot=ask.n_boot,
            progress=lambda i, n: bar.update(task, completed=i, total=n),
        )
    if as_json:
        rows = [c.__dict__ for c in s.ranked]
        out = {"fit": str(path), "quantity": s.quantity, "at": s.at, "baseline_log_width": s.baseline}
        out.update(interval=list(s.interval), suggested=rows, notes=s.notes)
        typer.echo(json.dumps(out, indent=1))
    else:
        print_summary(ranked_summary(s, fit, path, budget, ask))


def _run_cells(i: int, r) -> list[str]:
    return [str(i), r.variant, r.shape or "-", f"{r.N:.3g}", f"{r.D:.3g}", f"{r.D / r.N:.3g}", f"{r.flops:.3g}"]


def ranked_summary(s, fit, path: Path, budget: float, ask: Ask) -> Summary:
    what = {"n_opt": "compute-optimal N", "multiplier": f"compute multiplier vs {ask.versus}"}.get(
        ask.quantity, ask.quantity
    )
    title = (
        f"Next runs: narrowing {what} at {s.at:.3g} FLOPs (now [{s.interval[0]:.3g}, {s.interval[1]:.3g}], "
        f"width {s.baseline:.3f} in log units) - fit {path}"
    )
    cols = RUN_COLUMNS + ["width after", "narrower"]
    rows = [_run_cells(i, c) + [f"{c.width:.3f}", f"{c.reduction / s.baseline:.1%}"] for i, c in enumerate(s.ranked, 1)]
    notes = [
        Note(
            f"{len(s.tried)} candidates (shapes over the fitted sizes x 5-80 tokens/param, each <= {budget:.3g} "
            "FLOPs), ranked by narrowing per FLOP; each refit assumes the run lands on the fit's prediction"
        )
    ]
    notes += [Note(f"note: {n}") for n in s.notes]
    for g in fit:  # E or an exponent the runs do not pin down: the interval to narrow may be that one
        for w in g.warnings:
            if ask.quantity == "n_opt" and ("E is not identified" in w or "weakly identified" in w):
                notes.append(
                    Note(
                        f"note: {g.variant}: {w.split(' (')[0]}: `--suggest-for {w.split()[0]}` ranks the runs "
                        "that narrow it"
                    )
                )
    align = ["left" if c == "variant" else "right" for c in cols]
    return Summary([Section(title, cols, rows, notes, align)])


def design_summary(s, path: Path, budget: float) -> Summary:
    gaps = [Note(f"N_opt of {v} is not identified: {why}") for v, why in s.gaps.items()]
    title = (
        f"Next runs: the cheapest that make the design identify N_opt (each <= {budget:.3g} FLOPs, "
        f"{sum(r.flops for r in s.runs):.3g} in all) - fit {path}"
    )
    cols = RUN_COLUMNS + ["rule it satisfies"]
    rows = [_run_cells(i, r) + ["\n".join(w for _, w in r.rules)] for i, r in enumerate(s.runs, 1)]
    notes = []
    for v, d in s.after.items():
        b = s.before[v]
        notes.append(
            Note(
                f"{v}: {b.n_sizes} -> {d.n_sizes} sizes, tokens/param {b.separation:.3g}x -> {d.separation:.3g}x "
                f"apart at a given size, {b.n_points} -> {d.n_points} points (rules: scalelab/fit/identify.py)"
            )
        )
    notes += [Note(f"note: {n}") for n in s.notes]
    align = ["left" if c in ("variant", "rule it satisfies") else "right" for c in cols]
    return Summary([Section(notes=gaps), Section(title, cols, rows, notes, align)])
