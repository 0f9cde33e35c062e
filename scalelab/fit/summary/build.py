"""The summary of a fit (what `scalelab fit` prints): the table of laws with intervals, why each form, the
warnings, the optimiser's diagnostics, compute-optimal allocations, rollout and holdout checks, the lr and
batch laws, the comparisons' verdicts and the compute-multiplier table. Read from the typed records only."""

from __future__ import annotations

from scalelab import numfmt
from scalelab.fit import identify
from scalelab.fit.summary.document import Note, Section, Summary

COLUMNS = ["group", "form", "E", "A|K", "alpha|gamma", "B", "beta", "a", "pts", "runs"]


def _g(v) -> str:
    return numfmt.sig(v, 3, missing="nan")


def fit_summary(fit) -> Summary:
    sections = [Section(notes=[Note(fit.info.sweep.text)])] if fit.info.sweep is not None else []
    notes = [*_identification(fit), *_warnings(fit), *_checks(fit), *_laws(fit)]
    notes += [Note(f"{c.b} vs {c.a}: {c.verdict}") for c in fit.comparisons]
    sections.append(Section(_title(fit), list(COLUMNS), [_row(g) for g in fit], notes, fold=True))
    multiplier = _multiplier(fit)
    return Summary(sections + ([multiplier] if multiplier else []))


def _title(fit) -> str:
    lvl = int(round(fit.level * 100))
    if fit.info.intervals == "ols":
        kind = f"{lvl}% OLS intervals of the approach {fit.info.approach} power laws, no bootstrap"
    else:
        kind = f"{lvl}% bootstrap intervals, {fit.bootstrap.n} resamples of {fit.bootstrap.unit or 'run'}s"
    return f"scaling-law fits ({kind})"


def _ci(g, p: str, derived: bool = False) -> str:
    v = (g.derived if derived else g.params).get(p)
    if v is None:
        return "-"
    c = (g.derived_conf_int if derived else g.conf_int).get(p)
    return f"{_g(v)}\n[{_g(c[0])}, {_g(c[1])}]" if c else _g(v)


def _e_cell(g) -> str:
    """E with its interval, or "not identified" over the interval where the runs do not identify it (the fit's
    warning says why; the fit file keeps the estimate, which the law's predictions use)."""
    c = g.conf_int.get("E")
    if "E" in g.params and identify.e_gap(g.params["E"], c):
        return "not identified" + (f"\n[{_g(c[0])}, {_g(c[1])}]" if c else "")
    return _ci(g, "E")


def _row(g) -> list[str]:
    p = g.params
    return [
        g.name,
        g.form,
        _e_cell(g),
        _g(p.get("A", p.get("K"))) if ("A" in p or "K" in p) else "-",
        _ci(g, "alpha") if "alpha" in p else _ci(g, "gamma"),
        _g(p["B"]) if "B" in p else "-",
        _ci(g, "beta"),
        _ci(g, "a", derived=True),
        str(g.n_points),
        str(g.n_runs),
    ]


def _identification(fit) -> list[Note]:
    """Why this form: from the design, before fitting (fit/identify.py)."""
    out = []
    for g in fit:
        if g.identification is not None:
            held = f" (held fixed: {', '.join(f'{k}={v:.3g}' for k, v in g.fixed.items())})" if g.fixed else ""
            out.append(Note(f"{g.name}: {g.identification.why}{held}"))
    return out


def _warnings(fit) -> list[Note]:
    return [Note(f"{g.name}: {w}", "warning") for g in fit for w in g.warnings]


def _checks(fit) -> list[Note]:
    """Per group: the optimiser's diagnostics (the joint fit's once), the compute-optimal allocation, the
    rollout and holdout checks."""
    out, joint_shown = [], False
    for g in fit:
        d = g.diagnostics
        if d.get("joint") and not joint_shown:  # --share-exponents: one joint fit, reported once
            joint_shown = True
            out.append(Note(_joint(fit, d)))
        if "objective" in d and not d.get("joint"):
            out.append(Note(_objective(g.name, d)))
        out += _compute_optimal(g)
        if g.rollout is not None:
            out += _rollout(g)
        if g.holdout is not None and g.holdout.mean_rel_error is not None:
            h = g.holdout
            out.append(
                Note(
                    f"{g.name}: holdout ({h.rule} = {numfmt.sig(h.value, 3, 'nan')}, {h.n_points} points): "
                    f"mean |relative error| {h.mean_rel_error:.4f}, max {_f4(h.max_rel_error)}"
                )
            )
    return out


def _f4(v) -> str:
    return "nan" if v is None else f"{v:.4f}"


def _objective(name: str, d: dict) -> str:
    b = d.get("bootstrap")
    boot = ""
    if b:
        raised = f" ({b['n_raised']} raised to {b['n_starts_raised']} starts: {b['frac_agreed']:.0%} agreed)"
        boot = (
            f"; bootstrap: {b['n_starts']} starts per resample, >= 2 of them reached the best value in "
            f"{b.get('frac_agreed_first', 1 - b['frac_one_start_at_best']):.0%} of resamples"
            + (raised if b.get("n_raised") else "")
            + f", {b['frac_at_bound']:.0%} at a bound"
        )
    return (
        f"{name}: objective {d['objective']:.6g}, |grad| {d['grad_norm']:.1e}, "
        f"{d['n_starts_at_best']}/{d['n_starts']} starts at the best value, "
        f"at bound: {', '.join(d['at_bound']) or 'none'}{boot}"
    )


def _joint(fit, d: dict) -> str:
    """The diagnostics of a --share-exponents joint fit (fit/shared.py), beside the separate fits' objectives."""
    j = d["joint"]
    part = ", ".join(f"{n} {fit[n].diagnostics.get('objective_group', float('nan')):.3g}" for n in j["groups"])
    sep: list = [fit[n].separate_fit.objective if fit[n].separate_fit else None for n in j["groups"]]
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
        f"{n}: {', '.join(fit[n].diagnostics['at_bound'])}" for n in j["groups"] if fit[n].diagnostics.get("at_bound")
    ]
    return (
        f"joint fit of {', '.join(j['groups'])} ({', '.join(j['shared'])} shared): objective {d['objective']:.6g} "
        f"({part}){sep_txt}, |grad| {d['grad_norm']:.1e}, {d['n_starts_at_best']}/{d['n_starts']} starts at the best "
        f"value, at bound: {'; '.join(bound) or 'none'}{boot}"
    )


def _compute_optimal(g) -> list[Note]:
    if "tokens_per_param" in g.derived:
        c = g.derived_conf_int.get("tokens_per_param")
        extra = f" [{c[0]:.3g}, {c[1]:.3g}]" if c else ""
        return [
            Note(
                f"{g.name}: compute-optimal at C = {g.c_ref:.3g} FLOPs: N = {g.derived['N_opt']:.3g}, "
                f"D = {g.derived['D_opt']:.3g}, {g.derived['tokens_per_param']:.3g}{extra} tokens/param"
            )
        ]
    if g.compute_optimal is not None and g.compute_optimal.identified is False:
        return [Note(f"{g.name}: compute-optimal N, D not identified (see the warning above)")]
    return []


def _rollout(g) -> list[Note]:
    ro = g.rollout
    out = [Note(f"{g.name}: rollout ({ro.rule}): relative error of the predicted loss")]
    if ro.note:
        out.append(Note(f"  {ro.note}"))
    for r in ro.rows:
        head = f"  k={r.k}: fit {ro.key} <= {r.fit_up_to:.3g} ({r.n_fit} pts) -> {ro.key} = {r.predict:.3g}"
        if r.mean_rel_error is not None:
            out.append(
                Note(
                    f"{head} ({r.n_predicted} pts): mean |err| {r.mean_rel_error:.3g}, max {r.max_rel_error:.3g}, "
                    f"signed {r.mean_signed_rel_error:+.3g}"
                )
            )
        else:
            out.append(Note(f"{head}: not fitted ({r.note})"))
    return out


def _laws(fit) -> list[Note]:
    """The lr and batch laws (fit/hyper.py words them)."""
    from scalelab.fit.hyper import law_lines

    out = [Note(line) for g in fit for line in law_lines(g.name, g.lr_law, g.batch_law)]
    out += [Note(s) for g in fit if g.repetition_law for s in g.repetition_law.lines(g.name, g.params, g.conf_int)]
    return out + [Note(line) for g in fit if g.share_law for line in g.share_law.lines(g.params, g.conf_int)]


def _multiplier(fit) -> Section | None:
    """The comparisons' verdict in compute (fit/multiplier.py): B's compute for A's loss, per budget."""
    rows = []
    timed = any(c.time_basis for c in fit.comparisons)
    for c in fit.comparisons:
        for i, m in enumerate(c.multiplier):
            ci = "" if m.lo != m.lo else f" [{numfmt.multiplier(m.lo)}, {numfmt.multiplier(m.hi)}]"
            rows.append(
                [
                    f"{c.b} vs {c.a}" if i == 0 else "",
                    f"{m.C:.3g}" + (" (extrapolated)" if m.extrapolated else ""),
                    numfmt.multiplier(m.est) + ci,  # never: b never reaches a's loss
                    (c.crossover.text if c.crossover else "") if i == 0 else "",
                ]
                + ([_time_cell(c, m)] if timed else [])
            )
    if not rows:
        return None
    lvl = int(round(fit.level * 100))
    title = f"compute multiplier: C_b(L_a*(C)) / C, {lvl}% intervals (< 1: b needs less compute)"
    columns = ["b vs a", "budget C", "multiplier", "frontiers cross at"] + (["time multiplier"] if timed else [])
    notes = [Note(f"time, {c.b} vs {c.a}: {c.time_basis}") for c in fit.comparisons if c.time_basis]
    notes += [Note(f"{c.b} vs {c.a}: no time verdict: {w}") for c in fit.comparisons if (w := c.time_verdict_missing)]
    return Section(title, columns, rows, notes, fold=True)


def _time_cell(c, m) -> str:
    """B's wall-clock time for A's loss over A's (fit/timing.py) with its interval, or why there is none."""
    if not c.time_basis:
        return "no time verdict"
    nan = float("nan")
    est, lo, hi = (nan if v is None else v for v in (m.time_est, m.time_lo, m.time_hi))
    ci = "" if lo != lo else f" [{numfmt.multiplier(lo)}, {numfmt.multiplier(hi)}]"
    return numfmt.multiplier(est) + ci
