"""The summaries of a plan (what `scalelab plan` prints): the plan at a budget (PlanResult.summary), the
allocation over budgets (planner.sweep's frame) and the learning rate per swept size of a fit without a loss
law (planner.sweep_recommendations)."""

from __future__ import annotations

import math

from scalelab.fit.summary import Note, Section, Summary
from scalelab.numfmt import finite, si


def _g(x) -> str:
    return finite(x, 3)


def _bracket(interval: tuple[float, float], fmt) -> str:
    """An interval as '[lo, hi]', or '(no interval)' where the plan withheld it (its notes say why)."""
    lo, hi = interval
    return f"[{fmt(lo)}, {fmt(hi)}]" if math.isfinite(lo) and not math.isnan(hi) else "(no interval)"


def lr_cell(lr) -> str:
    """The recommended peak learning rate from the fit's lr law, its interval, and (ext.) outside the swept sizes."""
    if not lr:
        return "-"
    ci = f"\n[{lr['lo']:.3g}, {lr['hi']:.3g}]" if lr["lo"] == lr["lo"] else ""
    return f"{lr['lr']:.3g}{ci}" + (" (ext.)" if lr["extrapolated"] else "")


def batch_cell(bs) -> str:
    """The recommended batch size (tokens per step) from the fit's batch law, its interval, (ext.) outside it."""
    if not bs:
        return "-"
    ci = f"\n[{si(bs['lo'])}, {si(bs['hi'])}]" if bs["lo"] == bs["lo"] else ""
    return f"{si(bs['batch'])}{ci}" + (" (ext.)" if bs["extrapolated"] else "")


# ---- the plan at a budget ---------------------------------------------------------------------------------
def plan_summary(r) -> Summary:
    budget = (
        f"{r.C:.3g} FLOPs"
        if r.C
        else f"{r.gpu_hours:g} {r.gpu} GPU-hours"
        if r.gpu_hours
        else f"target loss {r.target_loss:g}"
    )
    title = f"Compute-optimal plan at {budget} ({r.convention} convention; {r.level:.0%} intervals) - fit {r.fit_path}"
    hours = any(p.gpu_hours for p in r.plans)  # only with a measured or stated throughput basis
    lrs = any(p.lr for p in r.plans)  # the fit has an lr law (its runs swept the learning rate)
    batches = any(p.batch for p in r.plans)  # and a batch law (batch size swept too)
    cols = ["#", "variant", "d_model x layers", "rank/blocks", "params [N_opt int.]", "tokens [D_opt int.]"]
    cols += ["tokens/param", "loss [interval]", "one-run interval", "FLOPs"]
    cols += (["lr [interval]"] if lrs else []) + (["batch tokens [interval]"] if batches else [])
    cols += [f"{(r.gpu or 'GPU')}-hours"] if hours else []
    rows = []
    for i, p in enumerate(r.plans, 1):
        row = [str(i), p.variant, *_plan_cells(p, r.inference_tokens)]
        row += ([lr_cell(p.lr)] if lrs else []) + ([batch_cell(p.batch)] if batches else [])
        rows.append(row + ([f"{p.gpu_hours:.3g}" if p.gpu_hours else "-"] if hours else []))
    align = ["left" if c in ("variant", "loss [interval]") else "right" for c in cols]
    return Summary([Section(title, cols, rows, _plan_notes(r, hours), align)])


def _plan_cells(p, inference_tokens: float) -> list[str]:
    """Shape, rank/blocks, params, tokens, tokens/param, loss, one-run interval and FLOPs of one plan."""
    sh = p.shape
    if sh is not None:
        c = sh.config
        shape = f"{c.d_model} x {c.n_layers}"
        s = c.ffn
        rb = "/".join(x for x in (f"R={s.rank}" if s.rank else "", f"B={s.blocks}" if s.blocks else "") if x) or "-"
        if c.attn == "lpa":
            rb += f" r_attn={c.attn_rank}"
        params, tokens, loss, lint = sh.params, sh.tokens, sh.loss, sh.loss_int
        flops = sh.flops_per_token * sh.tokens + sh.flops_per_token / 3 * inference_tokens
    else:
        shape, rb = "-", "-"
        params, tokens, loss, lint, flops = p.N_opt, p.D_opt, p.L_opt, p.L_int, p.C
    tpp = tokens / params if params and math.isfinite(params) else float("nan")
    if not p.identified and p.form == "chinchilla":  # outside the plausible range: no numbers shown
        params = tokens = tpp = float("nan")
    return [
        shape,
        rb,
        si(params) + ("\n" + _bracket(p.N_int, si) if p.identified else "\n(not identified)"),
        si(tokens) + ("\n" + _bracket(p.D_int, si) if p.identified else ""),
        _g(tpp) + ("\n" + _bracket(p.tpp_int, _g) if p.identified else ""),
        _loss_cell(p, loss, lint),
        f"[{p.L_pred_int[0]:.3f}, {p.L_pred_int[1]:.3f}]" if math.isfinite(p.L_pred_int[0]) else "-",
        f"{flops:.3g}",
    ]


def _loss_cell(p, loss: float, lint) -> str:
    """The loss and its interval; flagged where it rests on an E the fit does not identify (the warnings say
    why); '-' with the reason where there is none."""
    if not math.isfinite(loss):
        return "- (not identified)" if p.form == "chinchilla" else "- (no loss law)"
    return f"{loss:.3f} " + _bracket(lint, lambda x: f"{x:.3f}") + ("" if p.loss_identified else "\n(E not identified)")


def _plan_notes(r, hours: bool) -> list[Note]:
    out = []
    if shaped := [p for p in r.plans if p.shape is not None]:
        out.append(
            Note("Shapes spend the budget exactly (tokens adjusted); loss is the shape's. Ideal N_opt, D_opt, L_opt:")
        )
        for p in shaped:
            s = p.shape
            out.append(
                Note(
                    f"  {p.variant}: N_opt {si(p.N_opt)}, D_opt {si(p.D_opt)}, L_opt {p.L_opt:.3f}; shape params "
                    f"{s.n_rel:+.1%}, tokens {s.d_rel:+.1%}, FLOPs at D_opt {s.flops_at_D_opt_rel:+.1%}"
                    + (f", FFN kept {s.ffn_fraction:.0%}" if s.ffn_fraction else "")
                )
            )
    if len(r.plans) > 1 and r.p_beats is not None:
        out.append(
            Note(
                f"P({r.plans[0].variant} beats {r.plans[1].variant}) = {r.p_beats:.3g} over bootstrap samples "
                f"({r.pairing or ('paired samples' if r.paired else 'independent fits')})"
            )
        )
    if not hours and r.gpu and not r.gpu_hours:
        why = next((p.throughput_source for p in r.plans if p.throughput_source), "")
        out.append(Note(f"GPU-hours not shown: {why or 'no throughput basis'}"))
    for p in r.plans:
        out += _variant_notes(r, p)
    return out + [Note(w, "warning:") for w in r.warnings]


def _variant_notes(r, p) -> list[Note]:
    """The fitted range of one variant, its throughput, the target-loss and inference answers, its notes."""
    out = []
    rg = r.fitted_range.get(p.variant) or {}
    fr = ", ".join(
        f"{k} {si(v[0])}..{si(v[1])}" if k != "C" else f"C {v[0]:.3g}..{v[1]:.3g}" for k, v in rg.items() if v
    )
    if fr:
        out.append(f"fitted range {p.variant}: {fr}")
    if p.throughput_source and p.gpu_hours:
        out.append(f"  throughput {p.variant}: {p.throughput:.3g} FLOP/s ({p.throughput_source})")
    if p.target:
        tg = p.target
        out.append(
            f"  to reach loss {tg['target_loss']:g}: C = {tg['C']:.3g} [{tg['C_int'][0]:.3g}, {tg['C_int'][1]:.3g}]"
            + (f" ({tg['p_unreachable']:.0%} of samples never reach it)" if tg["p_unreachable"] else "")
            + (f", {tg['gpu_hours']:.3g} {r.gpu}-hours" if tg.get("gpu_hours") else "")
        )
    if p.inference:
        inf = p.inference
        out.append(
            f"  with {inf['inference_tokens']:.3g} inference tokens: N is {inf['N_over_compute_optimal']:.3g}x the "
            f"compute-optimal N, trained at {inf['tokens_per_param_over_compute_optimal']:.3g}x its tokens/param "
            f"({inf['compute_optimal_tokens_per_param']:.3g}); loss with the compute-optimal N would be "
            f"{inf['loss_if_compute_optimal_N']:.3f}"
        )
    out += [f"  note {p.variant}: {n}" for n in p.notes]
    return [Note(x) for x in out]


# ---- over budgets, and the lr per swept size --------------------------------------------------------------
def budgets_summary(df, fit_path) -> Summary:
    """planner.sweep's frame: the compute-optimal allocation per variant and budget."""
    cols = ["variant", "C", "N_opt [interval]", "D_opt [interval]", "tokens/param", "L_opt [interval]", "extrapolated"]
    rows = []
    for row in df.itertuples():
        ok = bool(getattr(row, "identified", True))
        rows.append(
            [
                row.variant,
                f"{row.C:.3g}",
                f"{si(row.N_opt)} [{si(row.N_lo)}, {si(row.N_hi)}]" if ok else "(not identified)",
                f"{si(row.D_opt)} [{si(row.D_lo)}, {si(row.D_hi)}]" if ok else "-",
                _g(row.D_opt / row.N_opt) if ok else "-",
                f"{row.L_opt:.3f} [{row.L_lo:.3f}, {row.L_hi:.3f}]" if math.isfinite(row.L_opt) else "-",
                "yes" if row.extrapolated else "",
            ]
        )
    align = ["left"] + ["right"] * (len(cols) - 1)
    return Summary([Section(f"Compute-optimal allocation over budgets - fit {fit_path}", cols, rows, align=align)])


def lr_summary(sweeps, fit_path) -> Summary:
    """Groups whose loss law the fit refused but whose sweep gives an lr (and batch) law: why there is no
    plan, and the recommended lr (and batch size) per swept size with the laws in words."""
    why = [Note(f"no loss-based plan for {s['variant']}: loss law not fitted: {s['why']}") for s in sweeps]
    batch = any(r["batch"] for s in sweeps for r in s["rows"])
    cols = ["variant", "d_model", "params", "tokens", "sweep optimum", "lr (law) [interval]"]
    cols += ["batch tokens (law) [interval]"] if batch else []
    rows = [
        [
            s["variant"],
            str(r["d_model"]) if r["d_model"] else "-",
            si(r["N"]),
            si(r["D"]),
            (_g(r["lr_measured"]) + (" (edge)" if r["at_edge"] else "")) if r["lr_measured"] else "-",
            lr_cell(r["lr"]),
            *([batch_cell(r["batch"])] if batch else []),
        ]
        for s in sweeps
        for r in s["rows"]
    ]
    title = f"Recommended learning rate per swept size, from the sweep's own law - fit {fit_path}"
    align = ["left"] + ["right"] * (len(cols) - 1)
    laws = [Note(line) for s in sweeps for line in s["lines"]]
    return Summary([Section(notes=why), Section(title, cols, rows, laws, align)])
