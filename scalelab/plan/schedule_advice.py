"""Which lr schedule to train a planned run with: WSD cooldown fractions and shapes, and cosine, compared by a
curve law's predicted final loss at the planned N and D (`scalelab plan schedule`).

The curve law is the one a derived fit records (fit/derive.py, `scalelab fit RUNS --curves --derive`). Each
option's loss has a percentile interval over the law's run resamples, and each option is compared with the
best one resample by resample (the options share the resamples, so their difference is far better determined
than either loss): an option whose difference interval contains 0 is not separated from the best. Warmup,
peak lr and tokens per step stay those of the fitted runs. Both laws' schedule terms do not depend on N, so the
ranking is the law's at the planned number of steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from scalelab.errors import ScalelabError
from scalelab.fit.bootstrap import percentile_interval
from scalelab.fit.derive import CurveLaw, RunSchedule, curve_law_of

COOLDOWNS = (0.1, 0.2, 0.3)
SHAPES = ("1-sqrt", "linear")


@dataclass
class Option:
    """One schedule's predicted final loss with its interval, and its difference from the best option."""

    schedule: RunSchedule
    loss: float
    interval: tuple[float, float]
    diff: float = 0.0  # loss - the best option's loss (point estimates)
    diff_interval: tuple[float, float] = (0.0, 0.0)  # over resamples, paired
    fitted: bool = False  # the schedule family the law was fitted on

    @property
    def separated(self) -> bool:
        """Worse than the best in the level's share of resamples: the difference interval lies above 0."""
        return self.diff_interval[0] > 0

    def to_dict(self) -> dict:
        return {
            "schedule": self.schedule.label,
            "decay": self.schedule.decay,
            "cooldown": self.schedule.cooldown if self.schedule.decay == "wsd" else None,
            "shape": self.schedule.shape if self.schedule.decay == "wsd" else None,
            "min_lr": self.schedule.min_lr if self.schedule.decay == "cosine" else None,
            "loss": self.loss,
            "interval": list(self.interval),
            "diff_from_best": self.diff,
            "diff_interval": list(self.diff_interval),
            "fitted_schedule": self.fitted,
        }


@dataclass
class ScheduleAdvice:
    """The options at one variant's planned (N, D), best first, the recommendation and what it rests on."""

    variant: str
    N: float
    D: float
    steps: int
    level: float
    options: list[Option]
    recommendation: str
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> Option:
        return self.options[0]

    def lines(self) -> list[str]:
        out = [
            f"{self.variant}: schedule at N = {self.N:.4g} params, D = {self.D:.4g} tokens ({self.steps} steps), "
            f"by the curve law ({self.level:.0%} intervals over its run resamples)"
        ]
        w = max(len(o.schedule.label) for o in self.options)
        for o in self.options:
            lo, hi = o.interval
            d = (
                "best"
                if o is self.best
                else f"{o.diff:+.4f} [{o.diff_interval[0]:+.4f}, {o.diff_interval[1]:+.4f}]"
                + ("" if o.separated else " (not separated)")
            )
            tag = "  (the fitted runs')" if o.fitted else ""
            out.append(f"  {o.schedule.label:<{w}}  loss {o.loss:.4f} [{lo:.4f}, {hi:.4f}]  vs best {d}{tag}")
        out.append(f"  recommended: {self.recommendation}")
        out += [f"  note: {n}" for n in self.notes]
        return out

    def to_dict(self) -> dict:
        return {
            "variant": self.variant,
            "N": self.N,
            "D": self.D,
            "steps": self.steps,
            "level": self.level,
            "options": [o.to_dict() for o in self.options],
            "recommendation": self.recommendation,
            "notes": list(self.notes),
        }


def candidates(fitted: RunSchedule, cooldowns=COOLDOWNS, shapes=SHAPES, cosine: bool = True) -> list[RunSchedule]:
    """WSD at each cooldown fraction and shape, and cosine to the fitted runs' min lr (warmup, peak lr and batch
    as fitted); the fitted schedule is among them."""
    out = [fitted.with_decay("wsd", c, s) for c in cooldowns for s in shapes]
    if cosine:
        out.append(fitted.with_decay("cosine"))
    if fitted.decay in ("wsd", "cosine") and not any(_same(fitted, o) for o in out):
        out.append(fitted)
    return out


def _same(a: RunSchedule, b: RunSchedule) -> bool:
    if a.decay != b.decay:
        return False
    if a.decay == "wsd":
        return math.isclose(a.cooldown, b.cooldown) and a.shape == b.shape
    return a.decay != "cosine" or math.isclose(a.min_lr, b.min_lr)


def advise(
    law: CurveLaw, variant: str, N: float, D: float, level: float = 0.95, options: list[RunSchedule] | None = None
) -> ScheduleAdvice:
    """The options' predicted final losses at (N, D), best (lowest estimate) first, and the recommendation."""
    scheds = options if options is not None else candidates(law.schedule)
    steps = int(round(D / law.schedule.tokens_per_step))
    if steps <= law.schedule.warmup:
        raise ScalelabError(
            f"{variant}: the planned {D:.3g} tokens are {steps} steps, within the fitted runs' {law.schedule.warmup} "
            "warmup steps: plan a larger budget"
        )
    rows = []
    for s in scheds:
        point, samples = law.final_loss(N, steps, s)
        rows.append((s, point, samples))
    rows.sort(key=lambda r: r[1])
    best_samples = rows[0][2]
    opts = []
    for s, point, samples in rows:
        ok = np.isfinite(samples) & np.isfinite(best_samples)
        if ok.sum() < 2:
            raise ScalelabError(
                f"{variant}: fewer than 2 curve-law resamples predict the {s.label} schedule: refit with "
                "`scalelab fit RUNS --curves --derive --bootstrap 200`"
            )
        with np.errstate(invalid="ignore"):  # a zero difference (the best against itself) is no error
            interval = percentile_interval(samples[ok], level)
            diff = percentile_interval(samples[ok] - best_samples[ok], level)
        lo_hi = (float(interval[0]), float(interval[1]))
        opts.append(
            Option(s, point, lo_hi, point - rows[0][1], (float(diff[0]), float(diff[1])), _same(s, law.schedule))
        )
    opts[0].diff_interval = (0.0, 0.0)
    return ScheduleAdvice(variant, N, D, steps, level, opts, _recommend(opts, level), _notes(law, steps, opts))


def _recommend(opts: list[Option], level: float) -> str:
    best = opts[0]
    tied = [o.schedule.label for o in opts[1:] if not o.separated]
    if not tied:
        return (
            f"{best.schedule.label}: its predicted loss is below every other option's in at least {level:.0%} of "
            "the curve law's resamples"
        )
    return (
        f"{best.schedule.label} (lowest predicted loss), but {', '.join(tied)} "
        f"{'is' if len(tied) == 1 else 'are'} within the intervals: the curve law does not separate them, choose "
        "among them on other grounds (a WSD run can be continued; cosine cannot)"
    )


def _notes(law: CurveLaw, steps: int, opts: list[Option]) -> list[str]:
    out = [f"the curve law ({law.form}) was fitted on {law.schedule.describe()} ({law.fitted_on})"]
    if any(not o.fitted for o in opts):
        out.append("options other than the fitted runs' schedule are the law's prediction for schedules it did not see")
    lo, hi = law.steps_range
    if hi and steps > hi:
        out.append(f"the planned {steps} steps are beyond the fitted runs' longest ({hi}): the law extrapolates")
    return out


# ---- from a fit file ----------------------------------------------------------------------------------------


def law_for(fit, group: str) -> CurveLaw:
    """The curve law a derived fit records for a group, or one line on how to get one."""
    g = fit[group]
    law = curve_law_of(g)
    if law is None:
        where = f"fit {fit.path}" if fit.path else "this fit"
        raise ScalelabError(
            f"{where} has no curve law for group {group!r}: schedule advice needs a fit derived from one, "
            "`scalelab fit runs/*.parquet --curves --derive` (then --fit fits/NAME.derived.json)"
        )
    return law


def schedule_assumed(fit, group: str) -> str:
    """The schedule a plan's predicted loss assumes, in words."""
    law = curve_law_of(fit[group])
    if law is not None:
        return f"{group}: the loss assumes {law.schedule.describe()} (the curve law's derived points)"
    return (
        f"{group}: the loss assumes the schedule of the fitted runs' final points (not recorded in this fit; "
        "`scalelab fit RUNS --curves --derive` records it and `scalelab plan schedule` compares others)"
    )


def parse_list(text: str | None, option: str, default: tuple, allowed: tuple | None = None) -> tuple:
    """--cooldowns 0.1,0.2 / --shapes linear: the values, checked; one line naming the bad one."""
    if text is None:
        return default
    vals = [v.strip() for v in text.split(",") if v.strip()]
    if not vals:
        raise ScalelabError(f"{option} {text!r} is empty: give e.g. {','.join(map(str, default))}")
    if allowed is not None:
        bad = [v for v in vals if v not in allowed]
        if bad:
            raise ScalelabError(f"{option}: {bad[0]!r} is not one of {', '.join(allowed)}")
        return tuple(vals)
    out = []
    for v in vals:
        try:
            x = float(v)
        except ValueError:
            raise ScalelabError(f"{option}: {v!r} is not a number; give fractions like 0.1,0.2,0.3") from None
        if not 0 < x < 1:
            raise ScalelabError(f"{option}: {v} must be a fraction of the run's steps in (0, 1), e.g. 0.2")
        out.append(x)
    return tuple(out)


def advise_plan(path, variants, C: float, cooldowns=COOLDOWNS, shapes=SHAPES, cosine: bool = True) -> list:
    """The plan at C (planner: the chosen shape's params and tokens, else N_opt, D_opt) and per planned variant
    the schedule options at it, from the curve law its derived fit records."""
    from scalelab import plan as P

    planner = P.Planner(path, variants or None)
    fit = planner.fit
    groups = [g.name for g in fit if (not variants or g.variant in variants or g.name in variants)]
    for name in groups:
        law_for(fit, name)  # refuse before planning
    result = P.plan_budget(planner, C)
    out = []
    for p in result.plans:
        law = law_for(fit, p.group)
        if p.shape is not None:
            N, D = float(p.shape.params), float(p.shape.tokens)
        elif p.identified and math.isfinite(p.N_opt) and math.isfinite(p.D_opt):
            N, D = float(p.N_opt), float(p.D_opt)
        else:
            raise ScalelabError(
                f"{p.variant}: the plan at {C:.3g} FLOPs has no identified N and D to compare schedules at "
                "(see `scalelab plan budget`)"
            )
        opts = candidates(law.schedule, cooldowns, shapes, cosine)
        out.append(advise(law, p.variant, N, D, fit.level, opts))
    return out
