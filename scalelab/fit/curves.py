"""Curve laws: the loss at every step of a run as a function of its learning-rate schedule and model size.

Two forms, both with L0(N) = E + A_N (N/N_ref)^-a_N (a constant L0 when a group has fewer than 3 sizes):
- annealing-area (Tissue et al. 2024, arXiv 2408.11029): L = L0(N) + A S1^-alpha - C S2, S1 the forward area
  (sum of lr), S2 the annealing area with momentum: m_i = lam m_{i-1} + (eta_{i-1} - eta_i), S2 = sum m_i.
- multi-power (Luo et al. 2025, arXiv 2503.12811): L = L0(N) + A S1^-alpha - LD, LD = B sum_k (eta_{k-1} -
  eta_k) G(eta_k^-gamma S_k), S_k = sum_{tau=k}^{t} eta_tau, G(x) = 1 - (C x + 1)^-beta.
S1 includes warmup (the multi-power law's S_W); lr drops are counted after warmup only. lr is in units of
the group's largest peak lr (`lr_unit`). Each scalelab run's lr per step is rebuilt from its recorded
config (scalelab/schedule.py): WSD trunk rows follow the trunk, branch rows (budget below the trunk's)
their own cooldown. The form is picked by the error predicting held-out cooldown branches (every branch
but the shortest per size); intervals come from resampling whole runs (a trunk with its branches).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError

FORMS = ("annealing-area", "multi-power")
FORMAT = "scalelab-curves/1"
SIZE_PARAMS = ("E", "A_N", "a_N")
# (name, transform, lower, upper) per parameter: "log" fits log(value); "lin" the value; "lam" log10(1 - lam)
_SCHEDULE_PARAMS = {
    "annealing-area": (("A", "log", -20, 20), ("alpha", "lin", 0.01, 3), ("C", "log", -20, 20), ("lam", "lam", -5, -1)),
    "multi-power": (
        ("A", "log", -20, 20),
        ("alpha", "lin", 0.01, 3),
        ("B", "log", -20, 20),
        ("C", "log", -20, 20),
        ("beta", "lin", 0.01, 3),
        ("gamma", "lin", 0.0, 2),
    ),
}
FORMULAS = {
    "annealing-area": "L = L0(N) + A*S1^-alpha - C*S2 (S2: annealing area, momentum lam)",
    "multi-power": "L = L0(N) + A*S1^-alpha - B*sum_k d_eta_k*(1 - (C*eta_k^-gamma*S_k + 1)^-beta)",
}


@dataclass
class Design:
    """The schedule features of the points one law is evaluated at (one row per point, flat annealing terms)."""

    n: np.ndarray  # N / N_ref per point
    s1: np.ndarray  # forward area at the point (warmup included)
    idx: np.ndarray  # flat: the point each lr drop belongs to
    drop: np.ndarray  # flat: eta_{k-1} - eta_k (post-warmup)
    eta: np.ndarray  # flat: eta_k
    area: np.ndarray  # flat: S_k, the lr area from step k to the point
    lag: np.ndarray  # flat: steps from the drop to the point

    @property
    def size(self) -> int:
        return int(self.s1.size)


def schedule_features(lr: np.ndarray, steps: np.ndarray, warmup: int) -> tuple[np.ndarray, list]:
    """S1 at each eval step (steps done, so lr[:t] applied) and the flat annealing terms per point."""
    lr = np.asarray(lr, float)
    cum = np.concatenate([[0.0], np.cumsum(lr)])
    drops = np.zeros_like(lr)
    drops[1:] = lr[:-1] - lr[1:]
    drops[: warmup + 1] = 0.0  # the warmup ramp is not annealing
    nz = np.flatnonzero(drops)
    terms = []
    for t in steps:
        k = nz[nz < t]
        terms.append((drops[k], lr[k], cum[t] - cum[k], t - k))
    return cum[np.asarray(steps)], terms


def make_design(n: np.ndarray, s1: np.ndarray, terms: list) -> Design:
    sizes = [len(t[0]) for t in terms]
    idx = np.repeat(np.arange(len(terms)), sizes)
    cat = [np.concatenate([t[j] for t in terms]) if terms else np.zeros(0) for j in range(4)]
    return Design(np.asarray(n, float), np.asarray(s1, float), idx, *(np.asarray(c, float) for c in cat))


def predict(form: str, p: dict, d: Design) -> np.ndarray:
    """The law's loss at each point of the design; p holds natural-scale parameters."""
    l0 = p["E"] + (p["A_N"] * d.n ** -p["a_N"] if "A_N" in p else 0.0)
    fwd = p["A"] * np.maximum(d.s1, 1e-12) ** -p["alpha"]
    if form == "annealing-area":
        lam = p["lam"]
        per = d.drop * (1 - lam**d.lag) / (1 - lam)
        return l0 + fwd - p["C"] * np.bincount(d.idx, per, minlength=d.size)
    g = 1 - (p["C"] * np.maximum(d.eta, 1e-12) ** -p["gamma"] * d.area + 1) ** -p["beta"]
    return l0 + fwd - p["B"] * np.bincount(d.idx, d.drop * g, minlength=d.size)


def param_specs(form: str, sized: bool, loss_min: float) -> list[tuple]:
    size = [("E", "lin", 0.0, loss_min), ("A_N", "log", -20, 20), ("a_N", "lin", 0.0, 3)]
    return (size if sized else [("E", "lin", 0.0, 2 * loss_min)]) + list(_SCHEDULE_PARAMS[form])


def to_natural(theta: np.ndarray, specs: list) -> dict:
    out = {}
    for x, (name, kind, _, _) in zip(theta, specs):
        out[name] = float(np.exp(x) if kind == "log" else 1 - 10**x if kind == "lam" else x)
    return out


def _starts(form: str, specs: list, d: Design, loss: np.ndarray) -> list[np.ndarray]:
    """A few starting points: exponents (and lam) on a small grid, scales matched to the observed loss range
    and to the size of the annealing terms."""
    lo, span = float(loss.min()), float(np.ptp(loss)) or 0.1 * float(loss.min())
    s1min = max(float(d.s1.min()), 1e-6)
    total_drop = max(float(np.bincount(d.idx, d.drop, minlength=d.size).max(initial=0.0)), 1e-9)
    out = []
    for alpha in (0.2, 0.5):
        for third in (-2.0, -2.5, -3.0) if form == "annealing-area" else (0.5, 1.5):
            lam = 1 - 10 ** min(third, -1.0)  # third is beta for the multi-power law: lam unused there
            s2 = np.bincount(d.idx, d.drop * (1 - lam**d.lag) / (1 - lam), minlength=d.size).max(initial=0.0)
            mid = float(np.median(d.area / np.sqrt(np.maximum(d.eta, 1e-12)))) if d.area.size else 1.0
            base = {
                "E": 0.7 * lo,
                "A_N": np.log(0.2 * lo),
                "a_N": 0.3,
                "A": np.log(span * s1min**alpha),
                "alpha": alpha,
                "C": np.log(0.05 * lo / max(float(s2), 1e-9)) if form == "annealing-area" else -np.log(max(mid, 1e-9)),
                "lam": third,
                "B": np.log(0.1 * lo / total_drop),
                "beta": third,
                "gamma": 0.5,
            }
            theta = np.array([base[s[0]] for s in specs], float)
            out.append(np.clip(theta, [s[2] + 1e-6 for s in specs], [s[3] - 1e-6 for s in specs]))
    return out


def _residuals(theta, form, specs, d: Design, logy: np.ndarray, sw: np.ndarray) -> np.ndarray:
    pred = predict(form, to_natural(theta, specs), d)
    return sw * (np.log(np.maximum(pred, 1e-9)) - logy)


def solve(form: str, d: Design, loss: np.ndarray, sized: bool, objective: str, delta: float, w=None, x0=None):
    """Least squares (or Huber, scale delta) on log loss from each start; the best theta and its specs."""
    from scipy.optimize import least_squares

    specs = param_specs(form, sized, float(loss.min()))
    sw = np.sqrt(np.ones(loss.size) if w is None else np.asarray(w, float))
    lb, ub = [s[2] for s in specs], [s[3] for s in specs]
    best = None
    for th in [x0] if x0 is not None else _starts(form, specs, d, loss):
        with np.errstate(all="ignore"):
            r = least_squares(
                _residuals,
                th,
                bounds=(lb, ub),
                args=(form, specs, d, np.log(loss), sw),
                loss="linear" if objective == "lsq" else "huber",
                f_scale=delta,
                x_scale="jac",
                max_nfev=2000,
            )
        if np.isfinite(r.cost) and (best is None or r.cost < best.cost):
            best = r
    if best is None:
        return None, specs
    return best.x, specs


# ---- curves from the run store -------------------------------------------------------------------------


def _schedule(run_id: str, config: str):
    """A run's RunConfig, StepPlan and budget -> optimizer steps of its schedule, or one line on why not."""
    from scalelab.config import RunConfig
    from scalelab.schedule import make_plan

    try:
        run = RunConfig.from_dict(json.loads(config))
        plan = make_plan(run)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ScalelabError(
            f"run {run_id}: cannot read its schedule from the `config` column ({type(e).__name__}: {e}); "
            "--curves needs run files written by `scalelab run`"
        ) from None
    steps = dict(zip(sorted(int(b) for b in run.train.budgets), plan.budget_steps))
    return run, plan, steps


def _run_points(run_id: str, rows: pd.DataFrame) -> tuple[list[dict], list]:
    """The points of one run, each with its lr schedule's features (trunk rows: the trunk's; branch rows:
    their own cooldown)."""
    from scalelab.schedule import lr_at

    run, plan, steps = _schedule(run_id, str(rows["config"].iloc[0]))
    trunk = int(rows["budget"].max())
    pts, terms = [], []
    for budget, r in rows.groupby("budget", sort=True):
        t = r["step"].to_numpy(int)
        if np.any(np.diff(t) <= 0):
            raise ScalelabError(
                f"run {run_id} budget {budget}: steps {t.tolist()} do not increase row by row: the run file is "
                "out of order or has duplicate rows; rewrite it with `scalelab run`"
            )
        if run.train.schedule == "wsd" and budget != trunk and int(budget) not in steps:
            raise ScalelabError(f"run {run_id}: budget {budget} is not one of its config's budgets {sorted(steps)}")
        s_b = None if run.train.schedule != "wsd" or budget == trunk else steps[int(budget)]
        length = plan.total if s_b is None else s_b
        if t.min() < 1 or t.max() > length:
            raise ScalelabError(f"run {run_id} budget {budget}: steps outside its schedule's 1..{length} steps")
        lr = np.array([lr_at(run, plan, s, branch_steps=s_b) for s in range(int(t.max()))])
        s1, tt = schedule_features(lr, t, plan.warmup)
        peak = float(run.train.lr)
        decayed = (t > plan.warmup) & (lr[t - 1] < peak * (1 - 1e-9))
        for j, row in enumerate(r.itertuples()):
            pts.append(dict(run=run_id, step=int(t[j]), budget=int(budget), loss=float(row.val_loss)))
            pts[-1].update(final=bool(row.final), N=float(row.params), s1=s1[j], decayed=bool(decayed[j]), peak=peak)
        terms.extend(tt)
    return pts, terms


def read_curves(paths, by: list[str]) -> tuple[pd.DataFrame, list]:
    """Every evaluated point of the runs (column `group` from `by`), and each point's annealing terms."""
    from scalelab.store import read_runs

    need = ["step", "budget", "val_loss", "final", "params", "config", *by]
    df = read_runs([str(p) for p in paths], columns=list(dict.fromkeys(need)), ok_only=True)
    df = df[np.isfinite(df["val_loss"].to_numpy(float)) & (df["val_loss"].to_numpy(float) > 0)]
    if df.empty:
        raise ScalelabError("no finite validation losses in the run files: --curves needs evaluated runs")
    pts: list[dict] = []
    terms: list = []
    for run_id, rows in df.groupby("run_id", sort=True):
        p, t = _run_points(str(run_id), rows)
        key = ",".join(str(rows[c].iloc[0]) for c in by) if by else "all"
        pts.extend({**x, "group": key} for x in p)
        terms.extend(t)
    return pd.DataFrame(pts), terms


def held_out_branches(pts: pd.DataFrame) -> np.ndarray:
    """Rows in the cooldown of every branch but the shortest per size (per group): a WSD trunk's stable
    points and the shortest branch stay in; the other branches' decayed points (and a longer cosine run's
    whole decay) are held out."""
    shortest = pts.groupby(["group", "N"])["budget"].transform("min")
    return ((pts["budget"] > shortest) & pts["decayed"]).to_numpy(bool)


# ---- fitting a group -----------------------------------------------------------------------------------


@dataclass
class GroupData:
    """One group's points in the law's units (N / N_ref, lr / lr_unit) with their annealing terms."""

    pts: pd.DataFrame
    terms: list
    n_ref: float
    lr_unit: float
    sized: bool

    def design(self, mask: np.ndarray | None = None) -> Design:
        m = np.ones(len(self.pts), bool) if mask is None else mask
        u = self.lr_unit
        terms = [(a / u, b / u, c / u, lag) for (a, b, c, lag), keep in zip(self.terms, m) if keep]
        return make_design(self.pts["N"].to_numpy(float)[m] / self.n_ref, self.pts["s1"].to_numpy(float)[m] / u, terms)

    def loss(self, mask: np.ndarray | None = None) -> np.ndarray:
        y = self.pts["loss"].to_numpy(float)
        return y if mask is None else y[mask]


def group_data(pts: pd.DataFrame, terms: list) -> GroupData:
    n = pts["N"].to_numpy(float)
    sized = np.unique(n).size >= 3  # E + A_N N^-a_N needs three sizes
    return GroupData(
        pts.reset_index(drop=True), terms, float(np.exp(np.log(n).mean())), float(pts["peak"].max()), sized
    )


def _too_few(name: str, form: str, n: int, sized: bool) -> str | None:
    """Why `n` points cannot fit the form (fewer points than parameters), else None."""
    k = len(param_specs(form, sized, 1.0))
    if n >= k:
        return None
    return (
        f"group {name}: {n} fitted point(s), fewer than the {k} parameters of the {form} law: "
        "evaluate more points per run (train.eval_points) or add runs"
    )


def fit_form(g: GroupData, form: str, mask, objective: str, delta: float):
    """The form fitted on the masked points: (theta, specs), theta None when no start converged."""
    return solve(form, g.design(mask), g.loss(mask), g.sized, objective, delta)


def _rel_errors(g: GroupData, form: str, theta, specs, mask: np.ndarray) -> np.ndarray:
    pred = predict(form, to_natural(theta, specs), g.design(mask))
    obs = g.loss(mask)
    return np.abs(pred - obs) / obs


def compare_forms(name: str, g: GroupData, objective: str, delta: float) -> dict:
    """Both forms fitted without the held-out branches; each one's error on their finals and whole curves,
    and the form picked (the smaller final error; the curve error breaks a tie)."""
    held = held_out_branches(g.pts)
    if not held.any():
        return {
            "rule": "none",
            "forms": {},
            "picked": FORMS[0],
            "why": "no cooldown branch to hold out (one budget per size): the annealing-area law, "
            "the one with fewer parameters",
        }
    finals = held & g.pts["final"].to_numpy(bool)
    out: dict = {"rule": "every cooldown branch but the shortest per size", "forms": {}}
    for form in FORMS:
        few = _too_few(name, form, int((~held).sum()), g.sized)
        theta, specs = (None, []) if few else fit_form(g, form, ~held, objective, delta)
        if theta is None:
            out["forms"][form] = {"error": few or "no start converged"}
            continue
        out["forms"][form] = {
            "final_mre": float(_rel_errors(g, form, theta, specs, finals).mean()) if finals.any() else float("nan"),
            "final_max": float(_rel_errors(g, form, theta, specs, finals).max()) if finals.any() else float("nan"),
            "curve_mre": float(_rel_errors(g, form, theta, specs, held).mean()),
            "n_finals": int(finals.sum()),
            "n_points": int(held.sum()),
            "params": to_natural(theta, specs),
        }
    ok = {f: v for f, v in out["forms"].items() if "final_mre" in v}
    if not ok:
        why = out["forms"][FORMS[0]]["error"]
        raise ScalelabError(why if "fewer than" in why else f"group {name}: no curve law could be fitted ({why})")
    out["picked"] = min(ok, key=lambda f: (round(ok[f]["final_mre"], 4), ok[f]["curve_mre"]))
    out["why"] = "the smaller mean relative error on the held-out branch finals"
    return out


def bootstrap_params(g: GroupData, form, theta, specs, mask, n_boot, seed, objective, delta) -> dict:
    """Refits on resamples of whole runs (a run's trunk and branches go together), from the estimate."""
    from scalelab.fit.bootstrap import unit_counts

    d, y = g.design(mask), g.loss(mask)
    counts = unit_counts(g.pts["run"].to_numpy()[mask], n_boot, np.random.default_rng(seed))
    samples: dict[str, list] = {s[0]: [] for s in specs}
    for w in counts:
        th, _ = solve(form, d, y, g.sized, objective, delta, w=w, x0=theta) if w.any() else (None, specs)
        nat = to_natural(th, specs) if th is not None else {}
        for k in samples:
            samples[k].append(nat.get(k, np.nan))
    return {k: np.asarray(v, float) for k, v in samples.items()}


# ---- the result ----------------------------------------------------------------------------------------


@dataclass
class CurveFit:
    """One group's curve law: the picked form, its estimates and run-bootstrap intervals, and the evidence."""

    name: str
    form: str
    params: dict
    conf_int: dict
    withheld: dict
    n_points: int
    n_runs: int
    n_sizes: int
    n_ref: float
    lr_unit: float
    residual_sd: float
    selection: dict
    holdout: list = field(default_factory=list)  # per held-out branch final under --holdout-branches
    fitted_on: str = "all points"

    def predict(self, N: float, lr, steps, warmup: int = 0) -> np.ndarray:
        """The law's loss after each of `steps` optimizer steps of the lr schedule `lr` (one value per step)."""
        s1, terms = schedule_features(np.asarray(lr, float) / self.lr_unit, np.asarray(steps, int), warmup)
        d = make_design(np.full(len(terms), N / self.n_ref), s1, terms)
        return predict(self.form, self.params, d)

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("form", "params", "conf_int", "withheld", "n_points", "n_runs")}
        out.update(
            formula=FORMULAS[self.form], size_law="L0(N) = E + A_N*(N/N_ref)^-a_N" if "A_N" in self.params else "L0 = E"
        )
        out.update(
            {
                k: getattr(self, k)
                for k in ("n_sizes", "n_ref", "lr_unit", "residual_sd", "selection", "holdout", "fitted_on")
            }
        )
        return out


def fit_group(name: str, g: GroupData, s: dict) -> CurveFit:
    """Compare the forms on held-out branches, then fit the picked one (on all points, or without the held-out
    branches under holdout_branches) with run-bootstrap intervals."""
    from scalelab.fit.bootstrap import intervals

    sel = compare_forms(name, g, s["loss"], s["delta"])
    form = sel["picked"]
    held = held_out_branches(g.pts)
    mask = ~held if s["holdout_branches"] and held.any() else np.ones(len(g.pts), bool)
    few = _too_few(name, form, int(mask.sum()), g.sized)
    if few:
        raise ScalelabError(few)
    theta, specs = fit_form(g, form, mask, s["loss"], s["delta"])
    if theta is None:
        raise ScalelabError(f"group {name}: the {form} law could not be fitted to its curves")
    params = to_natural(theta, specs)
    samples = bootstrap_params(g, form, theta, specs, mask, s["bootstrap"], s["seed"], s["loss"], s["delta"])
    conf, withheld = intervals(samples, params, s["level"]) if s["bootstrap"] else ({}, {})
    for k in _unidentified(samples, params, specs) if s["bootstrap"] else []:
        conf.pop(k, None)
        withheld[k] = {"why": "not identified by these curves: no resample moved it from the estimate"}
    resid = np.log(predict(form, params, g.design(mask))) - np.log(g.loss(mask))
    fit = CurveFit(
        name, form, params, {k: [float(x) for x in v] for k, v in conf.items()}, withheld,
        int(mask.sum()), int(g.pts["run"][mask].nunique()), int(g.pts["N"][mask].nunique()),
        g.n_ref, g.lr_unit, float(np.std(resid)), sel,
    )  # fmt: skip
    if s["holdout_branches"] and held.any():
        fit.fitted_on = "without the held-out branches"
        fit.holdout = _holdout_rows(g, form, params, held & g.pts["final"].to_numpy(bool))
    return fit


def _unidentified(samples: dict, params: dict, specs: list) -> list[str]:
    """Parameters the objective is flat in: every fitted resample returned the estimate unchanged (a zero-width
    percentile interval would claim a precision the curves do not have)."""
    out = []
    for name, *_ in specs:
        v = samples[name][np.isfinite(samples[name])]
        if v.size > 1 and np.all(np.abs(v - params[name]) <= 1e-7 * max(abs(params[name]), 1e-12)):
            out.append(name)
    return out


def _holdout_rows(g: GroupData, form: str, params: dict, finals: np.ndarray) -> list[dict]:
    pred = predict(form, params, g.design(finals))
    rows = g.pts[finals]
    return [
        dict(run=r.run, N=float(r.N), budget=int(r.budget), step=int(r.step), loss=float(r.loss), predicted=float(p))
        for r, p in zip(rows.itertuples(), pred)
    ]


def fit_curves(paths, by: list[str] | None = None, **settings) -> dict[str, CurveFit]:
    """Curve laws per group of the run files. settings: bootstrap, seed, level, loss (huber|lsq), delta,
    holdout_branches, min_fraction (points before this fraction of their run's last step are the early
    transient neither law describes: left out, as --all-checkpoints leaves them out)."""
    pts, terms = read_curves(paths, list(by) if by else ["variant"])
    return fit_points(pts, terms, **settings)


def fit_points(pts: pd.DataFrame, terms: list, **settings) -> dict[str, CurveFit]:
    """Curve laws per group of points (columns run, step, budget, loss, final, N, s1, decayed, peak, group;
    `terms` each point's annealing terms), from the run store or a CSV (fit/curves_csv.py)."""
    from scalelab.fit.io import CHECKPOINT_MIN_FRACTION

    defaults = dict(bootstrap=200, seed=0, level=0.95, loss="huber", delta=1e-3, holdout_branches=False)
    s = {**defaults, "min_fraction": CHECKPOINT_MIN_FRACTION, **settings}
    if s["loss"] not in ("huber", "lsq"):
        raise ScalelabError(f"--loss {s['loss']}: curve laws take huber or lsq")
    keep = (pts["step"] >= s["min_fraction"] * pts.groupby("run")["step"].transform("max")).to_numpy()
    pts, terms = pts[keep], [t for t, k in zip(terms, keep) if k]
    out = {}
    for name in sorted(pts["group"].unique()):
        m = (pts["group"] == name).to_numpy()
        out[name] = fit_group(name, group_data(pts[m], [t for t, k in zip(terms, m) if k]), s)
    return out


# ---- output --------------------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:.2f}%"


def summary_lines(fits: dict[str, CurveFit], level: float = 0.95) -> list[str]:
    """The printed summary: per group the held-out comparison, the form picked, its parameters."""
    out = []
    for name, f in fits.items():
        sel = f.selection
        out.append(
            f"{name}: curve law {f.form} ({f.n_points} points, {f.n_runs} runs, {f.n_sizes} sizes, {f.fitted_on})"
        )
        out.append(f"  {FORMULAS[f.form]}; " + ("L0(N) = E + A_N*(N/N_ref)^-a_N" if "A_N" in f.params else "L0 = E"))
        out.append(
            f"  N_ref = {f.n_ref:.4g}, lr in units of {f.lr_unit:.4g}, residual sd {f.residual_sd:.4f} (log loss)"
        )
        for k, v in f.params.items():
            ci = f.conf_int.get(k)
            out.append(f"  {k:>6} = {v:.4g}" + (f"  [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "  (no interval)"))
        out.append(f"  held out: {sel['rule']}")
        for form, e in sel["forms"].items():
            if "final_mre" in e:
                out.append(
                    f"    {form:>14}: branch finals mean rel. error {_pct(e['final_mre'])} "
                    f"(max {_pct(e['final_max'])}, {e['n_finals']} finals), "
                    f"curves {_pct(e['curve_mre'])} ({e['n_points']} points)"
                )
            else:
                out.append(f"    {form:>14}: {e['error']}")
        out.append(f"  picked {f.form}: {sel['why']}")
        for r in f.holdout:
            err = (r["predicted"] - r["loss"]) / r["loss"]
            out.append(
                f"    held-out {r['run']} N={r['N']:.4g} budget {r['budget']}: {r['loss']:.4f}, "
                f"predicted {r['predicted']:.4f} ({err:+.2%})"
            )
    out.append(f"intervals: {level:.0%} percentile, bootstrap over runs (a trunk and its branches together)")
    return out


def write_json(fits: dict[str, CurveFit], path, inputs: list, settings: dict) -> None:
    """fits/NAME.curves.json, atomically (a reader never sees half a file)."""
    from scalelab.fileio import atomic_write_text

    doc = {
        "format": FORMAT,
        "inputs": inputs,
        "settings": settings,
        "groups": {k: f.to_dict() for k, f in fits.items()},
    }
    atomic_write_text(path, json.dumps(doc, indent=2, default=float) + "\n")
