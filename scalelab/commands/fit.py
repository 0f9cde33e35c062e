"""`scalelab fit`: scaling laws per variant with run-level bootstrap intervals -> fits/NAME.json."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from scalelab.commands._common import check_out_file, stdout_console, user_errors

MAX_BOOTSTRAP = 100_000


@user_errors
def fit(
    inputs: List[Path] = typer.Argument(
        ..., help="Run-store files (runs/*.parquet) or CSV files of (N, D, loss) points.", show_default=False
    ),
    by: Optional[str] = typer.Option(
        None,
        "--by",
        help="Comma-separated columns to group by. Default: variant for the run store, --group-col (or one group) "
        "for CSV. E.g. --by variant,d_model fits L(D) per width.",
    ),
    form: str = typer.Option(
        "auto",
        "--form",
        help="auto | chinchilla (L(N,D)=E+A/N^alpha+B/D^beta) | data (L(D), fixed N) | size (L(N), fixed D) | "
        "frontier (L(C)=E+K/C^gamma) | power (L(C)=K/C^gamma). auto picks chinchilla when N and D both vary, "
        "frontier when they are confounded (one tokens/param ratio).",
    ),
    approach: int = typer.Option(
        3,
        "--approach",
        help="3: parametric fit (default). 1: envelope of loss vs FLOPs -> N_opt(C), D_opt(C). 2: IsoFLOP parabolas. "
        "1 and 2 use statsmodels OLS and need curves/IsoFLOP slices.",
    ),
    slice_window: str = typer.Option(
        "whole",
        "--slice-window",
        help="Approach 2: whole (default) fits each IsoFLOP parabola on the whole slice, as Hoffmann et al., Llama 3 "
        "and the Open-Athena compendium; near-min on a window about the slice's minimum (less bias on noise-free, "
        "asymmetric slices, more error on noisy ones: README 'Approaches 1 and 2').",
    ),
    bootstrap: int = typer.Option(
        1000,
        "--bootstrap",
        help="Bootstrap resamples of whole runs (rows when there is no run id). 0: no intervals (the planner will "
        "refuse such a fit).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    level: float = typer.Option(0.95, "--level", help="Level of the percentile intervals."),
    loss: str = typer.Option(
        "huber", "--loss", help="huber (Huber on log loss, as Hoffmann et al.) or lsq (least squares on log loss)."
    ),
    delta: float = typer.Option(1e-3, "--delta", help="Huber delta (on log-loss residuals)."),
    weights: str = typer.Option(
        "none", "--weights", help="none, or compute: weight each point by sqrt(C) (normalised)."
    ),
    overestimate_penalty: float = typer.Option(
        1.0,
        "--overestimate-penalty",
        help="Multiply the loss of points the law over-predicts by this (e.g. 10): fits the lower envelope when "
        "small runs were under-tuned. 1 = symmetric.",
    ),
    share_e: bool = typer.Option(
        False,
        "--share-e",
        help="Joint L(N, D) fit across groups sharing one E (same data, same irreducible loss), per-group A, B, "
        "alpha, beta.",
    ),
    holdout: Optional[str] = typer.Option(
        None,
        "--holdout",
        help="largest: refit without the largest-size runs and report the relative error predicting them.",
    ),
    compare: Optional[List[str]] = typer.Option(
        None,
        "--compare",
        help="Two groups 'A,B' to compare (repeatable): bootstrap interval of B - A in alpha, beta, a. Default: "
        "every group against dense when a dense group exists.",
    ),
    at_flops: Optional[str] = typer.Option(
        None,
        "--at-flops",
        help="FLOPs budgets, comma-separated (e.g. 1e21,1e22). The first: where compute-optimal N, D and tokens per "
        "parameter are reported (C = k N D, k the group's median FLOPs per param-token; default the largest C). "
        "All: where each comparison's compute multiplier is reported (default: the largest fitted C and 10x it).",
    ),
    share_exponents: bool = typer.Option(
        False,
        "--share-exponents",
        help="Joint fit across groups with one E and one set of exponents (alpha, beta; gamma for L(C)) and "
        "per-group coefficients (Volkova et al. 2026): each variant's compute multiplier is then one number.",
    ),
    all_checkpoints: bool = typer.Option(
        False,
        "--all-checkpoints",
        help="Run store: also use curve points, dropping checkpoints before 20% of each run's final tokens. Default: "
        "final rows only.",
    ),
    drop_top_loss: int = typer.Option(
        0, "--drop-top-loss", help="Drop the K highest-loss points first (the Chinchilla replication drops 5)."
    ),
    n_col: Optional[str] = typer.Option(
        None, "--n-col", help="Column of parameters N. Default: params (run store), N (CSV)."
    ),
    d_col: Optional[str] = typer.Option(
        None,
        "--d-col",
        help="Column of tokens D. Default: tokens (run store), D (CSV; when absent and --flops-col is given, D = "
        "C/(6N)).",
    ),
    loss_col: Optional[str] = typer.Option(
        None, "--loss-col", help="Column of the loss (nats). Default: val_loss (run store), loss (CSV)."
    ),
    flops_col: Optional[str] = typer.Option(
        None,
        "--flops-col",
        help="Column of training FLOPs C. Default: flops (run store, the seeds' convention); CSV: none (C = 6ND).",
    ),
    group_col: Optional[str] = typer.Option(
        None, "--group-col", help="CSV: column naming each point's group (same as --by)."
    ),
    run_col: Optional[str] = typer.Option(
        None,
        "--run-col",
        help="CSV: column of run ids (the bootstrap unit). Default: run_id (run store); CSV: a column named run "
        "or run_id when there is one, else rows.",
    ),
    starts: Optional[int] = typer.Option(
        None,
        "--starts",
        help="Polished starts per bootstrap resample, the point fit's optimum among them (each resample finds its "
        "own optimum; the point fit uses 64). Default: 480 // points, clipped to 2..8 (2 from 161 points, 8 up to "
        "60). A resample whose starts disagree (fewer than 2 reach its best value) is polished further, then "
        "refitted from 16 starts; the fraction that agreed is reported. Given, each start is polished to "
        "convergence (up to 400 iterations, not 60).",
    ),
    fix: Optional[List[str]] = typer.Option(
        None,
        "--fix",
        help="Hold a law parameter at a value, e.g. --fix E=1.69 (repeatable, or a comma list: --fix E=1.69,beta=0.3). "
        "Any of E, A, B, alpha, beta, K, gamma; recorded in the fit file.",
    ),
    rollout: bool = typer.Option(
        False,
        "--rollout",
        help="Rollout check: fit on the k smallest sizes, predict the next, for growing k; prints the error table "
        "and records it per group in the fit file.",
    ),
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        help="Fit file to write. Default: fits/NAME.json, NAME from the input (its stem, or its folder for several "
        "files).",
    ),
    no_envelope: bool = typer.Option(
        False,
        "--no-envelope",
        help="Inputs with a hyperparameter sweep (a grid's [sweep]): fit every point instead of the best-tuned one "
        "per (group, N, D) (the default: the envelope over the sweep). The lr and batch laws are fitted either way.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the fit file's JSON on stdout instead of the table."),
) -> None:
    """Fit Chinchilla-style scaling laws per group with run-level bootstrap intervals.

    Writes fits/NAME.json (estimates, intervals, checks, runs, provenance) and NAME.samples.parquet
    (bootstrap samples, for `scalelab plan` and `scalelab plot`)."""
    import json
    import sys

    from scalelab.fit import FitSpec, fit_laws, io

    if out is not None:
        check_out_file(out, "--out")
    if not 0 <= bootstrap <= MAX_BOOTSTRAP:  # 1000 resamples take seconds; a million would take hours
        from scalelab.errors import ScalelabError

        raise ScalelabError(f"--bootstrap {bootstrap} must be between 0 and {MAX_BOOTSTRAP:,}, e.g. 1000")
    by_cols = [c.strip() for c in by.split(",") if c.strip()] if by else None
    df, cols = io.load_inputs(
        inputs,
        n_col=n_col,
        d_col=d_col,
        loss_col=loss_col,
        flops_col=flops_col,
        run_col=run_col,
        by=by_cols,
        group_col=group_col,
        all_checkpoints=all_checkpoints,
    )
    pairs = [tuple(x.strip() for x in c.split(",")) for c in compare] if compare else None
    budgets = _budgets(at_flops)
    spec = FitSpec(
        **cols,
        form=form,
        approach=approach,
        slice_window=slice_window,
        bootstrap=bootstrap,
        seed=seed,
        level=level,
        loss=loss,
        delta=delta,
        weights=weights,
        overestimate_penalty=overestimate_penalty,
        share_e=share_e,
        holdout=holdout,
        compare=pairs,
        c_ref=budgets[0] if budgets else None,
        at_flops=budgets,
        share_exponents=share_exponents,
        n_starts=starts,
        drop_top_loss=drop_top_loss,
        fix=tuple(fix or ()),
        rollout=rollout,
        envelope=not no_envelope,
    )
    source = str(inputs[0]) if len(inputs) == 1 else f"{inputs[0]} (+{len(inputs) - 1} files)"

    progress = None
    n_groups = df[list(spec.by)].drop_duplicates().shape[0] if spec.by else 1
    if bootstrap * n_groups > 3000 and sys.stderr.isatty() and not json_out:
        from rich.console import Console

        console = Console(stderr=True)
        status = console.status(f"fitting {n_groups} group(s), {bootstrap} bootstrap resamples each ...")
        status.start()
        done = [0]

        def progress(name):
            done[0] += 1
            status.update(f"fitted {done[0]}/{n_groups} groups (last: {name}) ...")

    try:
        res = fit_laws(df, spec, inputs=io.provenance(inputs), source=source, progress=progress)
    finally:
        if progress is not None:
            status.stop()
    if out is None:
        name = inputs[0].stem if len(inputs) == 1 else (inputs[0].parent.name or "fit")
        out = Path("fits") / f"{name}.json"
    path = res.to_json(out)
    if json_out:
        typer.echo(json.dumps(res.to_dict(path.name[:-5] + ".samples.parquet"), indent=2))
        return
    _table(res)
    typer.echo(f"wrote {path}")


def _budgets(text):
    """--at-flops "1e21,1e22" -> [1e21, 1e22] (None when not given)."""
    from scalelab.errors import ScalelabError

    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()] or None
    except ValueError:
        raise ScalelabError(f"--at-flops {text!r}: give FLOPs as numbers, comma-separated, e.g. 1e21,1e22") from None


def _rollout(con, g) -> None:
    ro = g.extra["rollout"]
    what = ro["key"]
    con.print(f"{g.name}: rollout ({ro['rule']}): relative error of the predicted loss", highlight=False)
    if ro.get("note"):
        con.print(f"  {ro['note']}")
    for r in ro["rows"]:
        head = f"  k={r['k']}: fit {what} <= {r['fit_up_to']:.3g} ({r['n_fit']} pts) -> {what} = {r['predict']:.3g}"
        if "mean_rel_error" in r:
            con.print(
                f"{head} ({r['n_predicted']} pts): mean |err| {r['mean_rel_error']:.3g}, max {r['max_rel_error']:.3g}, "
                f"signed {r['mean_signed_rel_error']:+.3g}",
                highlight=False,
            )
        else:
            con.print(f"{head}: not fitted ({r['note']})", highlight=False)


def _joint(con, res, d) -> None:
    """The diagnostics of a --share-exponents joint fit (fit/shared.py), beside the separate fits' objectives."""
    j = d["joint"]
    part = ", ".join(f"{n} {res[n].diagnostics.get('objective_group', float('nan')):.3g}" for n in j["groups"])
    sep = [res[n].extra.get("separate_fit", {}).get("objective") for n in j["groups"]]
    sep_txt = f"; separate fits (exponents free): {sum(sep):.6g} in all" if all(v is not None for v in sep) else ""
    b = d.get("bootstrap")
    rugged = " (in the rest the starts disagree: intervals may be wider than shown)"
    boot = (
        f"; bootstrap: {b['n_starts']} starts per resample, >= 2 of them reached the best value in "
        f"{b['frac_agreed']:.0%} of resamples{rugged if b['frac_agreed'] < 0.9 else ''}, "
        f"{b['frac_at_bound']:.0%} at a bound"
        if b
        else ""
    )
    bound = [
        f"{n}: {', '.join(res[n].diagnostics['at_bound'])}" for n in j["groups"] if res[n].diagnostics.get("at_bound")
    ]
    con.print(
        f"joint fit of {', '.join(j['groups'])} ({', '.join(j['shared'])} shared): objective {d['objective']:.6g} "
        f"({part}){sep_txt}, |grad| {d['grad_norm']:.1e}, {d['n_starts_at_best']}/{d['n_starts']} starts at the best "
        f"value, at bound: {'; '.join(bound) or 'none'}{boot}",
        highlight=False,
    )


def _long(v) -> str:
    from scalelab.fit.results import _fmt

    return _fmt(v)


def _table(res) -> None:
    from rich.table import Table

    def _fmt(v):
        return "nan" if v is None or v != v else f"{float(v):.3g}"

    lvl = int(round(res.level * 100))
    n_boot = res.meta.get("bootstrap", {}).get("n", 0)
    if res.meta.get("intervals") == "ols":
        kind = f"{lvl}% OLS intervals of the approach {res.meta.get('approach')} power laws, no bootstrap"
    else:
        kind = (
            f"{lvl}% bootstrap intervals, {n_boot} resamples of {res.meta.get('bootstrap', {}).get('unit') or 'run'}s"
        )
    t = Table(title=f"scaling-law fits ({kind})")
    for c in ("group", "form", "E", "A|K", "alpha|gamma", "B", "beta", "a", "pts", "runs"):
        t.add_column(c, overflow="fold")

    def ci(g, p, src="params"):
        v = (g.params if src == "params" else g.derived).get(p)
        if v is None:
            return "-"
        c = (g.conf_int if src == "params" else g.derived_conf_int).get(p)
        return f"{_fmt(v)}\n[{_fmt(c[0])}, {_fmt(c[1])}]" if c else _fmt(v)

    for g in res:
        p = g.params
        t.add_row(
            g.name,
            g.form,
            ci(g, "E"),
            _fmt(p.get("A", p.get("K"))) if ("A" in p or "K" in p) else "-",
            ci(g, "alpha") if "alpha" in p else ci(g, "gamma"),
            _fmt(p["B"]) if "B" in p else "-",
            ci(g, "beta"),
            ci(g, "a", "derived"),
            str(g.n_points),
            str(g.n_runs),
        )
    con = stdout_console(markup=False)  # group names from data print as given
    if res.meta.get("sweep"):  # a hyperparameter sweep (fit/hyper.py): which points were fitted
        con.print(res.meta["sweep"]["text"], highlight=False)
    con.print(t)
    for g in res:  # why this form: from the design, before fitting (fit/identify.py)
        ident = g.extra.get("identification")
        if ident:
            fixed = g.extra.get("fixed")
            held = f" (held fixed: {', '.join(f'{k}={v:.3g}' for k, v in fixed.items())})" if fixed else ""
            con.print(f"{g.name}: {ident['why']}{held}", highlight=False)
    # warnings below the table, one per line: in a column they fold into an unreadable strip at 80 columns
    from rich.text import Text

    for g in res:
        for w in g.warnings:
            con.print(Text.assemble(("warning", "yellow"), f" {g.name}: {w}"), highlight=False)  # names print as given
    _fmt = _long
    joint_shown = False
    for g in res:
        d = g.diagnostics
        if d.get("joint") and not joint_shown:  # --share-exponents: one joint fit, reported once
            joint_shown = True
            _joint(con, res, d)
        if "objective" in d and not d.get("joint"):
            b = d.get("bootstrap")
            boot = (
                (
                    f"; bootstrap: {b['n_starts']} starts per resample, >= 2 of them reached the best value in "
                    f"{b.get('frac_agreed_first', 1 - b['frac_one_start_at_best']):.0%} of resamples"
                    + (
                        f" ({b['n_raised']} raised to {b['n_starts_raised']} starts: {b['frac_agreed']:.0%} agreed)"
                        if b.get("n_raised")
                        else ""
                    )
                    + f", {b['frac_at_bound']:.0%} at a bound"
                )
                if b
                else ""
            )
            con.print(
                f"{g.name}: objective {d['objective']:.6g}, |grad| {d['grad_norm']:.1e}, "
                f"{d['n_starts_at_best']}/{d['n_starts']} starts at the best value, "
                f"at bound: {', '.join(d['at_bound']) or 'none'}{boot}"
            )
        if "tokens_per_param" in g.derived:
            c = g.derived_conf_int.get("tokens_per_param")
            extra = f" [{c[0]:.3g}, {c[1]:.3g}]" if c else ""
            con.print(
                f"{g.name}: compute-optimal at C = {g.extra['c_ref']:.3g} FLOPs: N = {g.derived['N_opt']:.3g}, "
                f"D = {g.derived['D_opt']:.3g}, {g.derived['tokens_per_param']:.3g}{extra} tokens/param"
            )
        elif (g.extra.get("compute_optimal") or {}).get("identified") is False:
            con.print(f"{g.name}: compute-optimal N, D not identified (see the warning above)")
        if g.extra.get("rollout"):
            _rollout(con, g)
        if "holdout" in g.extra and g.extra["holdout"].get("mean_rel_error") is not None:
            h = g.extra["holdout"]
            con.print(
                f"{g.name}: holdout ({h['rule']} = {h['value']:.3g}, {h['n_points']} points): "
                f"mean |relative error| {h['mean_rel_error']:.4f}, max {h['max_rel_error']:.4f}"
            )
    from scalelab.fit.hyper import law_lines

    for g in res:  # the lr and batch laws (fit/hyper.py)
        for line in law_lines(g.name, g.extra.get("hyper") or {}):
            con.print(line, highlight=False)
    for c in res.comparisons:
        con.print(f"{c['b']} vs {c['a']}: {c['verdict']}")
    rows = [c for c in res.comparisons if c.get("multiplier")]
    if rows:  # the verdict in compute (fit/multiplier.py)
        from scalelab.fit.multiplier import fmt_m

        t = Table(title=f"compute multiplier: C_b(L_a*(C)) / C, {lvl}% intervals (< 1: b needs less compute)")
        for col in ("b vs a", "budget C", "multiplier", "frontiers cross at"):
            t.add_column(col, overflow="fold")
        for c in rows:
            for i, m in enumerate(c["multiplier"]):
                est = "never" if m["est"] is None else fmt_m(m["est"])  # inf: b never reaches a's loss
                ci = "" if m["lo"] is None or m["lo"] != m["lo"] else f" [{fmt_m(m['lo'])}, {fmt_m(m['hi'])}]"
                ext = " (extrapolated)" if m["extrapolated"] else ""
                t.add_row(
                    f"{c['b']} vs {c['a']}" if i == 0 else "",
                    f"{m['C']:.3g}{ext}",
                    est + ci,
                    c["crossover"]["text"] if i == 0 else "",
                )
        con.print(t)
