"""(N, D) points derived from a curve law, and the L(N, D) law fitted on them (`scalelab fit --curves --derive`).

A curve law (fit/curves.py) predicts the loss at any step of any schedule, so from trunks and one cooldown
branch per size it gives the final loss of the run the schedule family would train to any token budget D.
Here, per size of the fit, K log-spaced budgets between the run's smallest and largest configured budget
(within the fitted range: no extrapolation in D), each the final loss of the fitted runs' schedule ending
there (WSD: warmup, constant, the grid's cooldown fraction and shape; cosine: a cosine over the run). Those
points, marked `derived` in the points file, are fitted with the ordinary approach-3 procedure
(fit/procedure.py). Intervals carry through: each of the curve law's run resamples gives its own derived
points, and the L(N, D) law refitted on each is that resample's sample, so the planner's percentiles over
samples include the curve law's uncertainty (not the L(N, D) fit's residuals, which are a form mismatch on
noise-free points).

The curve law, its resamples and the schedule are recorded in each group's diagnostics["curve_law"], so a
plan can state the schedule its loss assumes and compare others (plan/schedule_advice.py).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.fit import curves

DEFAULT_BUDGETS = 4  # per size: the demo grid's four IsoFLOP budgets are log-spaced, so 4 reproduces them
RUN_EXTRAS = ("params_nonembed", "tokens_per_s", "mfu", "device")  # what the planner reads of a run, if present


@dataclass(frozen=True)
class RunSchedule:
    """A schedule of the family the curve law was fitted on, for a run of any length: `warmup` steps of linear
    warmup to `peak_lr`, then wsd (constant, then a `shape` cooldown to 0 over the last `cooldown` of the run's
    steps), cosine (to min_lr x peak at the last step) or constant. tokens_per_step converts D to steps."""

    decay: str
    warmup: int
    peak_lr: float
    tokens_per_step: float
    cooldown: float = 0.2
    shape: str = "1-sqrt"
    min_lr: float = 0.1

    def lr(self, steps: int) -> np.ndarray:
        """lr of optimizer steps 0..steps-1 of the run ending at `steps` (scalelab/schedule.py's arithmetic)."""
        from scalelab.fit.curves_csv import Schedule

        s = Schedule(
            warmup_steps=self.warmup,
            peak_lr=self.peak_lr,
            decay=self.decay,
            cooldown=self.cooldown,
            shape=self.shape,
            min_lr=self.min_lr,
        )
        return s.lr(int(steps))

    def with_decay(self, decay: str, cooldown: float | None = None, shape: str | None = None) -> "RunSchedule":
        """The same run under another decay (and cooldown fraction or shape, where given)."""
        return dataclasses.replace(
            self,
            decay=decay,
            cooldown=self.cooldown if cooldown is None else cooldown,
            shape=self.shape if shape is None else shape,
        )

    def describe(self) -> str:
        head = f"{self.warmup} warmup steps to lr {self.peak_lr:.3g}, {self.tokens_per_step:g} tokens per step"
        if self.decay == "wsd":
            return f"WSD: {head}, constant, then a {self.shape} cooldown to 0 over the last {self.cooldown:.0%}"
        if self.decay == "cosine":
            return f"cosine: {head}, cosine to {self.min_lr:g} x peak at the last step"
        return f"constant: {head}, no decay"

    @property
    def label(self) -> str:
        """Short name: wsd-0.2-1-sqrt, cosine-0.1, constant."""
        if self.decay == "wsd":
            return f"wsd {self.cooldown:g} {self.shape}"
        return f"cosine to {self.min_lr:g}" if self.decay == "cosine" else "constant"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunSchedule":
        return cls(
            **{k: d[k] for k in ("decay", "warmup", "peak_lr", "tokens_per_step", "cooldown", "shape", "min_lr")}
        )


def run_schedule(config: str, run_id: str) -> tuple[RunSchedule, list[int]]:
    """A run-store run's schedule family (from its `config` column) and its configured token budgets."""
    run, plan, _ = curves._schedule(run_id, config)
    t = run.train
    decay = t.schedule if t.schedule in ("wsd", "cosine") else "constant"
    sched = RunSchedule(decay, int(plan.warmup), float(t.lr), float(plan.tokens_per_step), float(t.cooldown))
    return RunSchedule(**{**sched.to_dict(), "min_lr": float(t.min_lr_ratio)}), sorted(int(b) for b in t.budgets)


# ---- one group's curve law with its resamples ----------------------------------------------------------------


@dataclass
class CurveLaw:
    """One group's curve law as a derived fit records it: estimate, run resamples (NaN: a resample that did not
    fit), the units it was fitted in, and the schedule its derived points assume."""

    form: str
    params: dict
    samples: dict  # name -> [S] natural-scale values
    n_ref: float
    lr_unit: float
    schedule: RunSchedule
    fitted_on: str = "all points"
    steps_range: tuple = (0, 0)  # the fitted runs' shortest and longest schedules, in steps

    def final_loss(self, N: float, steps: int, sched: RunSchedule) -> tuple[float, np.ndarray]:
        """The law's loss at the end of `sched` run for `steps` steps by a model of N params: the estimate and
        one value per resample (NaN where the resample has none)."""
        d = self._design(np.array([N], float), [int(steps)], [sched])
        point = float(curves.predict(self.form, self.params, d)[0])
        return point, self.sample_losses(d)[:, 0]

    def _design(self, N: np.ndarray, steps: list[int], scheds: list[RunSchedule]) -> curves.Design:
        s1s, terms = [], []
        for s, sch in zip(steps, scheds):
            lr = sch.lr(s) / self.lr_unit
            s1, tt = curves.schedule_features(lr, np.array([s]), sch.warmup)
            s1s.append(s1[0])
            terms.extend(tt)
        return curves.make_design(np.asarray(N, float) / self.n_ref, np.array(s1s), terms)

    def sample_losses(self, d: curves.Design) -> np.ndarray:
        """[S, points] the law's loss under each resample."""
        names = list(self.params)
        S = len(next(iter(self.samples.values()))) if self.samples else 0
        out = np.full((S, d.size), np.nan)
        for i in range(S):
            p = {k: float(self.samples[k][i]) for k in names}
            if all(math.isfinite(v) for v in p.values()):
                with np.errstate(all="ignore"):
                    out[i] = curves.predict(self.form, p, d)
        return out

    def to_record(self, source: str) -> dict:
        return {
            "form": self.form,
            "formula": curves.FORMULAS[self.form],
            "params": self.params,
            "samples": {k: [None if not np.isfinite(x) else float(x) for x in v] for k, v in self.samples.items()},
            "n_ref": self.n_ref,
            "lr_unit": self.lr_unit,
            "schedule": self.schedule.to_dict(),
            "fitted_on": self.fitted_on,
            "steps_range": list(self.steps_range),
            "source": source,
        }

    @classmethod
    def from_record(cls, r: dict) -> "CurveLaw":
        samples = {k: np.array([np.nan if x is None else x for x in v], float) for k, v in r["samples"].items()}
        return cls(
            r["form"],
            {k: float(v) for k, v in r["params"].items()},
            samples,
            float(r["n_ref"]),
            float(r["lr_unit"]),
            RunSchedule.from_dict(r["schedule"]),
            r.get("fitted_on", "all points"),
            tuple(r.get("steps_range") or (0, 0)),
        )


def curve_law_of(group) -> CurveLaw | None:
    """The curve law a derived fit's group (GroupFit) records, or None for an ordinary fit."""
    rec = (group.diagnostics or {}).get("curve_law")
    if not isinstance(rec, dict):
        return None
    try:
        return CurveLaw.from_record(rec)
    except (KeyError, TypeError, ValueError) as e:
        raise ScalelabError(
            f"group {group.name!r}: its curve_law record is unreadable ({type(e).__name__}): the fit file was edited "
            "or torn; re-run `scalelab fit RUNS --curves --derive`"
        ) from None


def _to_theta(params: dict, specs: list) -> np.ndarray:
    """curves.to_natural inverted: natural parameters -> the solver's transformed vector."""
    out = []
    for name, kind, _, _ in specs:
        v = params[name]
        out.append(np.log(v) if kind == "log" else np.log10(1 - v) if kind == "lam" else v)
    return np.array(out, float)


def fit_group_with_samples(name: str, g: curves.GroupData, s: dict) -> tuple[curves.CurveFit, dict]:
    """curves.fit_group (form comparison, point fit, held-out rows), then its run-bootstrap kept: the CurveFit
    with intervals, and {param: [S] samples}."""
    from scalelab.fit.bootstrap import intervals

    fit = curves.fit_group(name, g, {**s, "bootstrap": 0})
    held = curves.held_out_branches(g.pts)
    mask = ~held if s["holdout_branches"] and held.any() else np.ones(len(g.pts), bool)
    specs = curves.param_specs(fit.form, g.sized, float(g.loss(mask).min()))
    theta = _to_theta(fit.params, specs)
    samples = curves.bootstrap_params(g, fit.form, theta, specs, mask, s["bootstrap"], s["seed"], s["loss"], s["delta"])
    conf, withheld = intervals(samples, fit.params, s["level"])
    for k, v in samples.items():  # as curves.fit_group: no resample moved it, so no interval
        v = v[np.isfinite(v)]
        if v.size > 1 and np.all(np.abs(v - fit.params[k]) <= 1e-7 * max(abs(fit.params[k]), 1e-12)):
            conf.pop(k, None)
            withheld[k] = {"why": "not identified by these curves: no resample moved it from the estimate"}
    fit.conf_int = {k: [float(x) for x in v] for k, v in conf.items()}
    fit.withheld = withheld
    fit.samples = samples  # in the curves file too, so `check` of its law has intervals
    return fit, samples


# ---- the derived points --------------------------------------------------------------------------------------


def _run_table(paths, by: list[str]) -> pd.DataFrame:
    """One row per run of the run files (its last final row): config, N, FLOPs per param-token, what the planner
    reads of a run, and the group columns."""
    import pyarrow.parquet as pq

    from scalelab.store import expand_paths, read_runs

    files = expand_paths([str(p) for p in paths])
    have = set(pq.read_schema(files[0]).names) if files else set()
    extras = [c for c in (*RUN_EXTRAS, "tokens", "flops") if c in have]
    cols = ["params", "config", "budget", "step", "final", *by, *extras]
    df = read_runs([str(p) for p in paths], columns=list(dict.fromkeys(cols)), ok_only=True)
    df = df[df["final"].astype(bool)]
    rows = []
    for run_id, r in df.groupby("run_id", sort=True):
        r = r.sort_values(["budget", "step"])
        rec = {c: r[c].iloc[-1] for c in ["params", "config", *by, *[c for c in RUN_EXTRAS if c in r]]}
        rec["run_id"] = str(run_id)
        k = np.nan
        if "flops" in r and "tokens" in r:
            with np.errstate(all="ignore"):
                k = float(np.nanmedian(r["flops"].to_numpy(float) / (r["params"].to_numpy(float) * r["tokens"])))
        rec["k_flops"] = k if np.isfinite(k) and k > 0 else np.nan
        rows.append(rec)
    return pd.DataFrame(rows)


@dataclass
class Derived:
    """The derived points of every group (columns: group columns, run_id, params, tokens, flops, loss, steps,
    derived, and the runs' config and planner columns) and their losses under each curve-law resample."""

    points: pd.DataFrame
    samples: dict  # group name -> [S, points of the group] (rows of `points` with that group, in order)
    laws: dict  # group name -> CurveLaw


def derive_points(
    fits: dict, samples: dict, runs: pd.DataFrame, by: list[str], n_budgets: int, first: dict | None = None
) -> Derived:
    """Per group and per run (size) of the fit: n_budgets log-spaced token budgets between the run's smallest
    configured budget (or its first fitted step, `first[run]`, when later: the law has no point in the early
    transient before it) and its largest, each the final loss of the run's schedule ending there."""
    rows: list[dict] = []
    out_samples, laws = {}, {}
    key = runs[by].astype(str).agg(",".join, axis=1).to_numpy() if by else np.full(len(runs), "all")
    for name, fit in fits.items():
        sub = runs[key == name]
        group_rows, scheds, steps, Ns = [], [], [], []
        sched0, n0 = None, -1.0  # the group's schedule as recorded: its largest run's (warmup steps differ by run)
        for r in sub.to_dict("records"):
            sched, budgets = run_schedule(str(r["config"]), str(r["run_id"]))
            if float(r["params"]) > n0:
                sched0, n0 = sched, float(r["params"])
            lo, hi = min(budgets), max(budgets)
            lo = min(hi, max(lo, (first or {}).get(str(r["run_id"]), 0) * sched.tokens_per_step))
            for D in np.unique(np.round(np.geomspace(lo, hi, n_budgets))):
                S = max(1, int(round(D / sched.tokens_per_step)))
                if S <= sched.warmup:
                    continue  # a run that ends in its warmup is not of the family
                rec = {c: v for c, v in r.items() if c != "k_flops"}
                tokens = S * sched.tokens_per_step
                k = r["k_flops"] if np.isfinite(r["k_flops"]) else 6.0
                rec.update(tokens=tokens, flops=k * float(r["params"]) * tokens, steps=S, warmup=sched.warmup)
                rec.update(derived=True, group=name)
                group_rows.append(rec)
                scheds.append(sched)
                steps.append(S)
                Ns.append(float(r["params"]))
        if sched0 is None or not group_rows:
            raise ScalelabError(f"group {name}: no run of the curve fit has a budget past its warmup to derive")
        law = CurveLaw(
            fit.form, dict(fit.params), samples[name], fit.n_ref, fit.lr_unit, sched0, fit.fitted_on,
            (int(min(steps)), int(max(steps))),
        )  # fmt: skip
        d = law._design(np.array(Ns), steps, scheds)
        point = curves.predict(fit.form, fit.params, d)
        for rec, y in zip(group_rows, point):
            rec["loss"] = float(y)
        rows.extend(group_rows)
        out_samples[name] = law.sample_losses(d)
        laws[name] = law
    return Derived(pd.DataFrame(rows), out_samples, laws)


# ---- the L(N, D) law on them -----------------------------------------------------------------------------------


def fit_derived(derived: Derived, by: list[str], s: dict, inputs: list, source: str):
    """Approach 3 on the derived points (the point estimate's), then refitted on each resample's derived points:
    a FitResults whose samples are the refits, its points marked derived, its groups' diagnostics holding the
    curve law."""
    from scalelab.fit import laws
    from scalelab.fit.bootstrap import intervals, withheld_warning
    from scalelab.fit.hyper import group_names
    from scalelab.fit.objective import make_problem
    from scalelab.fit.procedure import fit_laws
    from scalelab.fit.records import Bootstrap
    from scalelab.fit.solver import fit_batch

    df = derived.points.copy()
    spec = dict(
        n_col="params", d_col="tokens", loss_col="loss", c_col="flops", run_col="run_id", by=tuple(by),
        bootstrap=0, seed=s["seed"], level=s["level"], loss=s["loss"], delta=s["delta"],
        at_flops=s.get("at_flops"), c_ref=s.get("c_ref"),
    )  # fmt: skip
    res = fit_laws(df, inputs=inputs, source=source, **spec)
    n_boot = 0
    fit_names = group_names(df, by).to_numpy()
    for gf in res:
        pts = df[fit_names == gf.name]
        name = str(pts["group"].iloc[0])  # the curve law's name of the group ("a,b" where the fit says "a/b")
        law = derived.laws[name]
        if gf.form not in ("chinchilla", "data", "size"):
            raise ScalelabError(
                f"group {name}: the derived points give a {gf.form} law, not L(N, D): derive from 2+ sizes"
            )
        form = laws.FORMS[gf.form]
        N, D, C = (pts[c].to_numpy(float) for c in ("params", "tokens", "flops"))
        cols = {"N": np.log(N), "D": np.log(D), "C": np.log(C)}
        theta = laws.to_theta(form, gf.params)
        Ls = derived.samples[name]
        thetas = np.full((Ls.shape[0], theta.size), np.nan)
        for i, L in enumerate(Ls):
            if not np.all(np.isfinite(L) & (L > 0)):
                continue
            prob = make_problem(form, cols, L, None, s["loss"], s["delta"])
            bf = fit_batch(prob, form, cols, L, np.ones((1, L.size)), n_starts=4, n_screen=16, iters=200,
                           extra_starts=theta[None])  # fmt: skip
            thetas[i] = bf.theta[0]
        nat = laws.to_natural(form, thetas)
        ok = np.isfinite(thetas).all(1)
        if ok.sum() < 2:
            raise ScalelabError(f"group {name}: fewer than 2 curve-law resamples gave derived points to refit")
        k_flops = gf.k_flops or 6.0
        dsamp = laws.derived(gf.form, nat, gf.c_ref, k_flops)
        unidentified = gf.compute_optimal is not None and not gf.compute_optimal.identified
        dsamp = {k: v for k, v in dsamp.items() if not (unidentified and k in ("N_opt", "D_opt", "tokens_per_param"))}
        conf, withheld = intervals(nat, gf.params, s["level"])
        dconf, dwithheld = intervals(dsamp, gf.derived, s["level"])
        withheld.update(dwithheld)
        gf.samples = pd.DataFrame({k: np.asarray(v, float) for k, v in nat.items()})
        for k in ("a", "b"):
            if k in dsamp:
                gf.samples[k] = dsamp[k]
        gf.conf_int, gf.derived_conf_int = conf, dconf
        if withheld:
            gf.warnings.append(withheld_warning(withheld, s["level"]))
        gf.warnings = [w for w in gf.warnings if "runs to resample" not in w]  # the resamples are the curve law's
        gf.diagnostics["curve_law"] = law.to_record(source)
        gf.diagnostics["derived"] = {
            "n_points": int(len(pts)),
            "n_resamples": int(Ls.shape[0]),
            "n_refitted": int(ok.sum()),
            "schedule": law.schedule.describe(),
            "why": "points are the curve law's final losses; samples are L(N, D) refitted on each curve-law "
            "resample's points",
        }
        if gf.points is not None:
            gf.points["derived"] = True
            gf.points["steps"] = pts["steps"].to_numpy(int)
            gf.points["warmup"] = pts["warmup"].to_numpy(int)  # each point's schedule: the recorded one's, this warmup
        n_boot = max(n_boot, int(Ls.shape[0]))
    res.info.bootstrap = Bootstrap(n=n_boot, seed=s["seed"], level=s["level"], unit="curve-law run")
    return res


def derive_fit(paths, by: list[str] | None, n_budgets: int = DEFAULT_BUDGETS, **settings):
    """`fit --curves --derive` on run files: the curve laws (with resamples) and the derived L(N, D) fit.
    Returns (curve fits {group: CurveFit}, FitResults)."""
    from scalelab.fit import io
    from scalelab.fit.io import CHECKPOINT_MIN_FRACTION

    if not 1 <= n_budgets <= 64:
        raise ScalelabError(f"--derive-budgets {n_budgets} must be between 1 and 64, e.g. {DEFAULT_BUDGETS}")
    by = list(by) if by else ["variant"]
    defaults = dict(bootstrap=200, seed=0, level=0.95, loss="huber", delta=1e-3, holdout_branches=False)
    s = {**defaults, "min_fraction": CHECKPOINT_MIN_FRACTION, **settings}
    if s["loss"] not in ("huber", "lsq"):
        raise ScalelabError(f"--loss {s['loss']}: curve laws take huber or lsq")
    if s["bootstrap"] < 2:
        raise ScalelabError(
            f"--derive --bootstrap {s['bootstrap']}: the derived points' intervals come from the curve law's "
            "resamples: give --bootstrap 2 or more (200 by default)"
        )
    pts, terms = curves.read_curves(paths, by)
    keep = (pts["step"] >= s["min_fraction"] * pts.groupby("run")["step"].transform("max")).to_numpy()
    pts, terms = pts[keep], [t for t, k in zip(terms, keep) if k]
    fits, samples = {}, {}
    for name in sorted(pts["group"].unique()):
        m = (pts["group"] == name).to_numpy()
        g = curves.group_data(pts[m], [t for t, k in zip(terms, m) if k])
        fits[name], samples[name] = fit_group_with_samples(name, g, s)
    first = {str(k): int(v) for k, v in pts.groupby("run")["step"].min().items()}
    derived = derive_points(fits, samples, _run_table(paths, by), by, n_budgets, first)
    source = str(paths[0]) if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} files)"
    return fits, fit_derived(derived, by, s, io.provenance(paths), source)


def tokens_trained(paths, holdout_branches: bool) -> dict:
    """Tokens the design behind the fit trains, per variant: every run's trunk and its cooldown branches counted
    once each (schedule.estimate_tokens), or under holdout_branches the cheaper design the curve law used: each
    trunk to its own cooldown start (its stable phase) and the shortest cooldown branch past the early-transient
    cut (a branch ending before 20% of the trunk's steps has no fitted point)."""
    import json

    from scalelab.config import RunConfig
    from scalelab.fit.io import CHECKPOINT_MIN_FRACTION
    from scalelab.schedule import estimate_tokens, make_plan, wsd_branches
    from scalelab.store import read_runs

    df = read_runs([str(p) for p in paths], columns=["config", "variant"], ok_only=True)
    out: dict = {}
    for _, r in df.groupby("run_id", sort=True):
        run = RunConfig.from_dict(json.loads(str(r["config"].iloc[0])))
        plan = make_plan(run)
        if not holdout_branches or run.train.schedule != "wsd":
            n = estimate_tokens(run)
        else:
            br = wsd_branches(run, plan)
            stable = plan.cooldown_start(plan.total, run.train.cooldown)
            short = [s_b for _, s_b in br if s_b >= CHECKPOINT_MIN_FRACTION * plan.total]
            n = (stable + (max(1, round(run.train.cooldown * min(short))) if short else 0)) * plan.tokens_per_step
        v = str(r["variant"].iloc[0])
        out[v] = out.get(v, 0) + int(n)
    return out
