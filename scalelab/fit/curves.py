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
but the shortest per size); intervals come from resampling whole runs (a trunk with its branches). Speed: an
analytic Jacobian, each point's far lr drops merged (merge_terms), and the resamples refitted together
(batch_lm) in worker processes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.fit.bootstrap import unit_counts

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


EXACT_LAGS = 16  # lr drops this close to the point are kept one by one
MERGE_RATIO = 1.05  # farther ones merge into bins of lag [l, 1.05 l): 5% of their distance to the point


def merge_terms(drop, eta, area, lag) -> tuple:
    """One point's annealing terms with the drops far from the point merged: each bin of lags [l, 1.05 l)
    (drops of one sign) becomes one drop, their sum, at their drop-weighted mean eta, area and lag. Both
    laws are smooth in these over a bin (a WSD cooldown has one drop per step: thousands per point), so
    the merged terms move the annealing term by < 1e-4 of its value (tests/fit/test_curves.py measures it
    for lam 0.9-0.9999) while a fit's evaluations get several times cheaper. Only the fits use them:
    predictions (check, plot) sum the exact terms."""
    drop, lag = np.asarray(drop, float), np.asarray(lag, float)
    if drop.size <= EXACT_LAGS:
        return drop, np.asarray(eta, float), np.asarray(area, float), lag
    b = np.where(lag <= EXACT_LAGS, lag, EXACT_LAGS + np.floor(np.log(lag / EXACT_LAGS) / np.log(MERGE_RATIO)) + 1)
    key = 2 * b + (drop < 0)
    _, inv = np.unique(key, return_inverse=True)
    tot = np.bincount(inv, drop)
    tot_safe = np.where(tot == 0, 1.0, tot)

    def mean(x):
        return np.bincount(inv, drop * np.asarray(x, float)) / tot_safe

    return tot, mean(eta), mean(area), mean(lag)


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


def predict_jac(form: str, theta: np.ndarray, specs: list, d: Design) -> tuple[np.ndarray, np.ndarray]:
    """The law at each point and its derivatives in the fitted coordinates theta (log, lin or log10(1 - lam)):
    (pred (P,), jac (P, len(theta))). Analytic: a finite-difference Jacobian costs a law evaluation per
    parameter, and the resamples' refits are most of a curve fit's time."""
    p = to_natural(theta, specs)
    cols: dict[str, np.ndarray] = {"E": np.ones(d.size)}
    l0 = p["E"]
    if "A_N" in p:
        sz = p["A_N"] * d.n ** -p["a_N"]
        l0 = l0 + sz
        cols["A_N"], cols["a_N"] = sz, -sz * np.log(d.n)
    s1 = np.maximum(d.s1, 1e-12)
    fwd = p["A"] * s1 ** -p["alpha"]
    cols["A"], cols["alpha"] = fwd, -fwd * np.log(s1)

    def per_point(x: np.ndarray) -> np.ndarray:
        return np.bincount(d.idx, x, minlength=d.size)

    if form == "annealing-area":
        lam = p["lam"]
        pw = lam**d.lag
        s2 = per_point(d.drop * (1 - pw) / (1 - lam))
        ds2 = per_point(d.drop * ((1 - pw) - d.lag * lam ** (d.lag - 1) * (1 - lam)) / (1 - lam) ** 2)
        pred = l0 + fwd - p["C"] * s2
        cols["C"] = -p["C"] * s2
        cols["lam"] = -p["C"] * ds2 * (-(10.0 ** theta[[s[0] for s in specs].index("lam")]) * np.log(10))
    else:
        eta = np.maximum(d.eta, 1e-12)
        u = p["C"] * eta ** -p["gamma"] * d.area
        w = u + 1
        wb = w ** -p["beta"]
        dg = p["beta"] * wb / w * u  # d g / d log u
        B = p["B"]
        pred = l0 + fwd - B * per_point(d.drop * (1 - wb))
        cols["B"] = -B * per_point(d.drop * (1 - wb))
        cols["C"] = -B * per_point(d.drop * dg)
        cols["beta"] = -B * per_point(d.drop * wb * np.log(w))
        cols["gamma"] = B * per_point(d.drop * dg * np.log(eta))
    # columns of log parameters are d/dlog x = x d/dx already; lam's is taken through log10(1 - lam) above
    return pred, np.column_stack([cols[name] for name, *_ in specs])


def _jac(theta, form, specs, d: Design, logy: np.ndarray, sw: np.ndarray) -> np.ndarray:
    pred, jac = predict_jac(form, theta, specs, d)
    ok = pred > 1e-9  # where the residual clips the log, it is flat in theta
    return (sw * ok / np.maximum(pred, 1e-9))[:, None] * jac


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
                jac=_jac,
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


def _lr(run, plan, steps: dict, budget: int, trunk: int) -> tuple[np.ndarray, int]:
    """lr per optimizer step of the schedule that ends at `budget` (the trunk's, or a WSD branch's own
    cooldown) and its length in steps."""
    from scalelab.schedule import lr_at

    s_b = None if run.train.schedule != "wsd" or budget == trunk else steps[budget]
    length = plan.total if s_b is None else s_b
    return np.array([lr_at(run, plan, s, branch_steps=s_b) for s in range(length)]), length


def run_schedules(run_id: str, config: str, budgets) -> dict[int, tuple[np.ndarray, int]]:
    """Per budget of one run (the largest is its trunk): (lr per optimizer step, warmup steps), rebuilt from
    its recorded config as the fit rebuilds them (for drawing or checking the law along a whole schedule)."""
    run, plan, steps = _schedule(run_id, config)
    bs = sorted(int(b) for b in budgets)
    out = {}
    for b in bs:
        if run.train.schedule == "wsd" and b != bs[-1] and b not in steps:
            raise ScalelabError(f"run {run_id}: budget {b} is not one of its config's budgets {sorted(steps)}")
        out[b] = (_lr(run, plan, steps, b, bs[-1])[0], int(plan.warmup))
    return out


def _run_points(run_id: str, rows: pd.DataFrame) -> tuple[list[dict], list]:
    """The points of one run, each with its lr schedule's features (trunk rows: the trunk's; branch rows:
    their own cooldown)."""
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
        lr, length = _lr(run, plan, steps, int(budget), trunk)
        if t.min() < 1 or t.max() > length:
            raise ScalelabError(f"run {run_id} budget {budget}: steps outside its schedule's 1..{length} steps")
        lr = lr[: int(t.max())]
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
    _compact: list | None = field(default=None, repr=False)

    def design(self, mask: np.ndarray | None = None, compact: bool = False) -> Design:
        """The design of the masked points; `compact`: with their annealing terms merged (merge_terms), as the
        fits use it."""
        m = np.ones(len(self.pts), bool) if mask is None else mask
        u = self.lr_unit
        src = self.terms
        if compact:
            if self._compact is None:
                self._compact = [merge_terms(*t) for t in self.terms]
            src = self._compact
        terms = [(a / u, b / u, c / u, lag) for (a, b, c, lag), keep in zip(src, m) if keep]
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
    return solve(form, g.design(mask, compact=True), g.loss(mask), g.sized, objective, delta)


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
    """Refits on resamples of whole runs (a run's trunk and branches go together), from the estimate, all at
    once (_refit). Many resamples are refitted in worker processes (one per core, up to WORKERS): the
    refits are small problems whose time is largely Python, which threads would not overlap."""
    d, y = g.design(mask, compact=True), g.loss(mask)
    counts = unit_counts(g.pts["run"].to_numpy()[mask], n_boot, np.random.default_rng(seed))
    job = (form, d, y, g.sized, objective, delta, theta)
    workers = min(WORKERS, _cores(), len(counts) // MIN_PER_WORKER)
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        chunks = np.array_split(np.arange(len(counts)), workers)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as ex:
            parts = list(ex.map(_refit, [(job, [counts[i] for i in c]) for c in chunks]))
        thetas = [t for part in parts for t in part]
    else:
        thetas = _refit((job, list(counts)))
    samples: dict[str, list] = {s[0]: [] for s in specs}
    for th in thetas:
        nat = to_natural(th, specs) if th is not None else {}
        for k in samples:
            samples[k].append(nat.get(k, np.nan))
    return {k: np.asarray(v, float) for k, v in samples.items()}


WORKERS = 4  # processes for the resamples' refits (at most one per core)
MIN_PER_WORKER = 50  # fewer resamples per process than this: starting the processes costs more than it saves


def _cores() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _refit(args) -> list:
    """The refits of one chunk of resample weights (theta, or None where a resample left no point): all at
    once by batch_lm, then scipy's solver (solve) from where it stopped for the resamples it left
    unconverged."""
    (form, d, y, sized, objective, delta, theta), weights = args
    out: list = [None] * len(weights)
    live = [i for i, w in enumerate(weights) if np.any(w)]
    if not live:
        return out
    W = np.asarray([weights[i] for i in live], float)
    TH, done = batch_lm(form, d, y, sized, objective, delta, theta, W)
    for j, i in enumerate(live):
        out[i] = TH[j] if done[j] else solve(form, d, y, sized, objective, delta, w=W[j], x0=TH[j])[0]
    return out


# ---- the resamples' refits, all at once ---------------------------------------------------------------

BATCH_ITERS = 100  # batch_lm's iterations; a resample still moving then is finished by scipy's solver


def _batch_pred_jac(form: str, TH: np.ndarray, specs: list, d: Design, M) -> tuple[np.ndarray, np.ndarray]:
    """predict_jac for S parameter vectors at once: pred (S, P points), jac (S, points, parameters); M is the
    (terms x points) 0/1 matrix that sums each point's annealing terms."""
    names = [s[0] for s in specs]
    nat = {}
    for j, (name, kind, _, _) in enumerate(specs):
        x = TH[:, j : j + 1]
        nat[name] = np.exp(x) if kind == "log" else (1 - 10.0**x) if kind == "lam" else x
    cols = {"E": np.ones((TH.shape[0], d.size))}
    l0 = nat["E"] * cols["E"]
    if "A_N" in nat:
        sz = nat["A_N"] * d.n[None] ** -nat["a_N"]
        l0 = l0 + sz
        cols["A_N"], cols["a_N"] = sz, -sz * np.log(d.n)[None]
    s1 = np.maximum(d.s1, 1e-12)[None]
    fwd = nat["A"] * s1 ** -nat["alpha"]
    cols["A"], cols["alpha"] = fwd, -fwd * np.log(s1)

    def per_point(X: np.ndarray) -> np.ndarray:
        return np.asarray(X @ M)

    drop = d.drop[None]
    if form == "annealing-area":
        lam = nat["lam"]
        pw = lam ** d.lag[None]
        s2 = per_point(drop * (1 - pw) / (1 - lam))
        ds2 = per_point(drop * ((1 - pw) - d.lag[None] * pw / lam * (1 - lam)) / (1 - lam) ** 2)
        pred = l0 + fwd - nat["C"] * s2
        cols["C"] = -nat["C"] * s2
        cols["lam"] = nat["C"] * ds2 * 10.0 ** TH[:, [names.index("lam")]] * np.log(10)
    else:
        leta = np.log(np.maximum(d.eta, 1e-12))[None]
        u = nat["C"] * np.exp(-nat["gamma"] * leta) * d.area[None]
        lw = np.log1p(u)
        wb = np.exp(-nat["beta"] * lw)
        dg = nat["beta"] * wb * u / (u + 1)
        an = per_point(drop * (1 - wb))
        pred = l0 + fwd - nat["B"] * an
        cols["B"] = -nat["B"] * an
        cols["C"] = -nat["B"] * per_point(drop * dg)
        cols["beta"] = -nat["B"] * per_point(drop * wb * lw)
        cols["gamma"] = nat["B"] * per_point(drop * dg * leta)
    return pred, np.stack([cols[n] for n in names], axis=-1)


def _robust_cost(r: np.ndarray, objective: str, delta: float) -> np.ndarray:
    """scipy least_squares' cost per row: 0.5 sum r^2, or its Huber loss with scale delta."""
    if objective != "huber":
        return 0.5 * (r * r).sum(-1)
    z = (r / delta) ** 2
    return 0.5 * delta**2 * np.where(z <= 1, z, 2 * np.sqrt(z) - 1).sum(-1)


def batch_lm(form, d: Design, y: np.ndarray, sized: bool, objective: str, delta: float, theta, W: np.ndarray):
    """Refit S resamples (weights W, S x points) from theta at once: Levenberg-Marquardt on log loss with the
    Huber loss as iteratively reweighted least squares, the box bounds by projection (a parameter on a
    bound whose gradient points out is held), and scipy's ftol / xtol stops (1e-8). -> (theta S x P, done:
    converged within BATCH_ITERS). One resample's arrays are too small for numpy to be efficient; a
    thousand together are not, and scipy's per-iteration Python is paid once per batch."""
    from scipy import sparse

    specs = param_specs(form, sized, float(y.min()))
    lb, ub = np.array([s[2] for s in specs], float), np.array([s[3] for s in specs], float)
    S, P = W.shape[0], len(specs)
    M = sparse.csr_matrix((np.ones(d.idx.size), (np.arange(d.idx.size), d.idx)), shape=(d.idx.size, d.size))
    logy, sw = np.log(y)[None], np.sqrt(W)

    def resid(TH, swa):
        with np.errstate(all="ignore"):
            pred, J = _batch_pred_jac(form, TH, specs, d, M)
            safe = np.maximum(pred, 1e-9)
            return swa * (np.log(safe) - logy), (swa * (pred > 1e-9) / safe)[..., None] * J

    TH = np.tile(np.asarray(theta, float), (S, 1))
    r, J = resid(TH, sw)
    cost = _robust_cost(r, objective, delta)
    mu, active = np.full(S, 1e-3), np.isfinite(cost)
    done = np.zeros(S, bool)
    for _ in range(BATCH_ITERS):
        a = np.flatnonzero(active)
        if not a.size:
            break
        ra, Ja, th = r[a], J[a], TH[a]
        om = np.minimum(1.0, delta / np.maximum(np.abs(ra), 1e-300)) if objective == "huber" else np.ones_like(ra)
        A = np.einsum("snp,sn,snq->spq", Ja, om, Ja)
        g = np.einsum("snp,sn,sn->sp", Ja, om, ra)
        free = ~(((th <= lb + 1e-10) & (g > 0)) | ((th >= ub - 1e-10) & (g < 0)))
        damp = mu[a][:, None] * np.maximum(np.einsum("spp->sp", A), 1e-12)
        A = (A + damp[:, :, None] * np.eye(P)) * free[:, :, None] * free[:, None, :] + np.eye(P) * ~free[:, :, None]
        with np.errstate(all="ignore"):
            step = -np.linalg.solve(A, (g * free)[..., None])[..., 0]
        new = np.clip(th + step, lb, ub)
        rn, Jn = resid(new, sw[a])
        cn = _robust_cost(rn, objective, delta)
        better = np.isfinite(cn) & (cn < cost[a])
        small_f = better & (cost[a] - cn < 1e-8 * cost[a])
        small_x = np.linalg.norm(new - th, axis=1) < 1e-8 * (1e-8 + np.linalg.norm(th, axis=1))
        b = a[better]
        TH[b], r[b], J[b], cost[b] = new[better], rn[better], Jn[better], cn[better]
        mu[b] = np.maximum(mu[b] / 3, 1e-12)
        mu[a[~better]] *= 4
        stop = small_f | small_x | ~np.isfinite(step).all(1)
        done[a[stop]] = np.isfinite(step[stop]).all(1)
        active[a[stop | (mu[a] > 1e10)]] = False
    return TH, done


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
    samples: dict = field(default_factory=dict)  # parameter -> its bootstrap resamples (NaN: not fitted)
    runs: list = field(default_factory=list)  # ids of the runs (curves) fitted: `check` skips them
    by: list = field(default_factory=list)  # the run columns that named the group (run-store fits)

    def predict(self, N: float, lr, steps, warmup: int = 0) -> np.ndarray:
        """The law's loss after each of `steps` optimizer steps of the lr schedule `lr` (one value per step)."""
        s1, terms = schedule_features(np.asarray(lr, float) / self.lr_unit, np.asarray(steps, int), warmup)
        d = make_design(np.full(len(terms), N / self.n_ref), s1, terms)
        return predict(self.form, self.params, d)

    def predict_samples(self, N: float, lr, steps, warmup: int = 0) -> np.ndarray:
        """The law at each bootstrap resample (rows; NaN rows where a resample was not fitted) -> (S, len(steps))."""
        s1, terms = schedule_features(np.asarray(lr, float) / self.lr_unit, np.asarray(steps, int), warmup)
        return self.samples_at(make_design(np.full(len(terms), N / self.n_ref), s1, terms))

    def samples_at(self, d: Design) -> np.ndarray:
        """The law at each bootstrap resample at the points of a design in the law's units -> (S, points)."""
        n = min((len(v) for v in self.samples.values()), default=0)
        out = np.full((n, d.size), np.nan)
        for i in range(n):
            p = {k: float(v[i]) for k, v in self.samples.items()}
            if all(np.isfinite(list(p.values()))):
                with np.errstate(all="ignore"):
                    out[i] = predict(self.form, p, d)
        return out

    @classmethod
    def from_dict(cls, name: str, d: dict) -> "CurveFit":
        """A group of a curves file (to_dict's record) back into a CurveFit."""
        keys = ("form", "params", "conf_int", "withheld", "n_points", "n_runs", "n_sizes", "n_ref", "lr_unit")
        missing = [k for k in (*keys, "residual_sd", "selection") if k not in d]
        if missing or d.get("form") not in FORMS:
            raise ScalelabError(
                f"curve law {name}: the record lacks {', '.join(missing) or 'a known form'}: "
                "refit with `scalelab fit --curves`"
            )
        samples = {k: np.array([np.nan if x is None else x for x in v], float) for k, v in d.get("samples", {}).items()}
        return cls(
            name, d["form"], {k: float(v) for k, v in d["params"].items()}, d["conf_int"], d["withheld"],
            int(d["n_points"]), int(d["n_runs"]), int(d["n_sizes"]), float(d["n_ref"]), float(d["lr_unit"]),
            float(d["residual_sd"]), d["selection"], list(d.get("holdout", [])), str(d.get("fitted_on", "all points")),
            samples, [str(r) for r in d.get("runs", [])], list(d.get("by", [])),
        )  # fmt: skip

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("form", "params", "conf_int", "withheld", "n_points", "n_runs")}
        out.update(
            formula=FORMULAS[self.form], size_law="L0(N) = E + A_N*(N/N_ref)^-a_N" if "A_N" in self.params else "L0 = E"
        )
        out.update(
            {
                k: getattr(self, k)
                for k in (
                    "n_sizes",
                    "n_ref",
                    "lr_unit",
                    "residual_sd",
                    "selection",
                    "holdout",
                    "fitted_on",
                    "runs",
                    "by",
                )
            }
        )
        # 7 significant digits: a thousand resamples stay small; NaN (a resample not fitted) as null
        out["samples"] = {
            k: [float(f"{x:.7g}") if np.isfinite(x) else None for x in np.asarray(v, float)]
            for k, v in self.samples.items()
        }
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
    fit.samples = samples if s["bootstrap"] else {}
    fit.runs = sorted(str(r) for r in g.pts["run"][mask].unique())
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
    by = list(by) if by else ["variant"]
    pts, terms = read_curves(paths, by)
    fits = fit_points(pts, terms, **settings)
    for f in fits.values():
        f.by = by
    return fits


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


@dataclass
class CurvesFile:
    """A curves file read back: its curve law per group, the settings it was fitted with, its inputs."""

    path: str
    fits: dict
    settings: dict
    inputs: list


def is_curves_doc(doc) -> bool:
    return isinstance(doc, dict) and str(doc.get("format", "")).startswith("scalelab-curves/")


def is_curves_file(path) -> bool:
    """Whether `path` is a curve law `fit --curves` wrote: named NAME.curves.json, or holding that format
    whatever its name (`fit --curves --out law.json`). Unreadable files are not (their reader says why)."""
    from scalelab.fileio import json_format

    p = str(path)
    if p.endswith(".curves.json"):
        return True
    return p.endswith(".json") and (json_format(p) or "").startswith("scalelab-curves/")


def load_curves(path) -> CurvesFile:
    """Read fits/NAME.curves.json (write_json's file); a missing, unreadable or foreign file is one line."""
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        raise ScalelabError(f"{path}: no such curves file: run `scalelab fit RUNS --curves` first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ScalelabError(f"{path}: cannot read JSON ({type(e).__name__}): re-run `scalelab fit --curves`") from None
    if not is_curves_doc(doc) or not isinstance(doc.get("groups"), dict):
        raise ScalelabError(f"{path}: not a {FORMAT} file (key 'format'): give a file `scalelab fit --curves` wrote")
    fits = {str(k): CurveFit.from_dict(str(k), v) for k, v in doc["groups"].items()}
    return CurvesFile(str(path), fits, dict(doc.get("settings", {})), list(doc.get("inputs", [])))
