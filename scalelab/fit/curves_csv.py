"""Curve laws on others' curves: CSV rows (run, step, loss, N) whose lr schedule comes from a description on
the command line (`--schedule "warmup=0.01,peak_lr=3e-3,decay=wsd,cooldown=0.2,shape=linear"`) or from an lr
column (`--lr-col`, linear between rows).

Cooldown branches (`--branch-col`) fork from their run's trunk: a branch ending at step S_b starts its
cooldown at c_b = S_b - round(cooldown x S_b), the trunk's lr until then (scalelab's WSD convention, so
`cooldown` is a fraction of the branch's own steps). Two encodings:
- `COL`: COL names each row's branch; rows with it blank are the trunk, rows sharing a name one branch's
  curve, ending at its last row.
- `COL=TRUNK:BRANCH`: rows with COL == TRUNK are trunk checkpoints, rows with COL == BRANCH cooldown ends,
  one branch each (Gemstones: `group=hot:cool_end`, each cooldown 10% of its fork's tokens, so
  cooldown = 0.1/1.1 of the end); other rows are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalelab.errors import ScalelabError
from scalelab.fit import curves

DECAYS = ("constant", "cosine", "wsd")
SHAPES = ("1-sqrt", "linear")
KEYS = ("warmup", "warmup_steps", "peak_lr", "decay", "cooldown", "shape", "min_lr", "tokens_per_step")
_KEY_HELP = f"accepted keys: {', '.join(KEYS)}"
TRUNK = ""  # the branch name of trunk rows


@dataclass(frozen=True)
class Schedule:
    """A described lr schedule. warmup: fraction of the trunk's last step (or warmup_steps); min_lr: cosine's
    end as a fraction of peak_lr; tokens_per_step: steps from a tokens column when the CSV has no step."""

    warmup: float = 0.0
    warmup_steps: int | None = None
    peak_lr: float = 1.0
    decay: str = "wsd"
    cooldown: float = 0.2
    shape: str = "1-sqrt"
    min_lr: float = 0.0
    tokens_per_step: float | None = None

    def warmup_for(self, total: int) -> int:
        return self.warmup_steps if self.warmup_steps is not None else round(self.warmup * total)

    def cooldown_start(self, s_b: int) -> int:
        return s_b - max(1, round(self.cooldown * s_b))

    def lr(self, total: int, branch_end: int | None = None) -> np.ndarray:
        """lr of optimizer steps 0..n-1 of the trunk (total steps) or of the branch ending at branch_end."""
        n = total if branch_end is None else branch_end
        s = np.arange(n, dtype=float)
        w = self.warmup_for(total)
        out = np.full(n, self.peak_lr)
        if self.decay == "cosine" and branch_end is None:
            prog = np.clip((s - w) / max(1, total - 1 - w), 0.0, 1.0)
            out = self.peak_lr * (self.min_lr + (1 - self.min_lr) * 0.5 * (1 + np.cos(math.pi * prog)))
        elif self.decay == "wsd" or branch_end is not None:
            c = self.cooldown_start(n)
            x = (s[c:] - c) / (n - c)
            out[c:] = self.peak_lr * (1 - (np.sqrt(x) if self.shape == "1-sqrt" else x))
        out[: min(w, n)] = self.peak_lr * (np.arange(min(w, n)) + 1) / max(w, 1)
        return out


def _value(key: str, raw: str, text: str):
    """One key's value, checked; a bad one is one line naming the key and what it takes."""
    choices = {"decay": DECAYS, "shape": SHAPES}
    if key in choices:
        if raw not in choices[key]:
            raise ScalelabError(f"--schedule {text!r}: {key}={raw!r} must be one of {', '.join(choices[key])}")
        return raw
    try:
        v = int(raw) if key == "warmup_steps" else float(raw)
    except ValueError:
        raise ScalelabError(f"--schedule {text!r}: {key}={raw!r} is not a number") from None
    ok = {
        "warmup": 0 <= v < 1,
        "warmup_steps": v >= 0,
        "peak_lr": v > 0,
        "cooldown": 0 < v <= 1,
        "min_lr": 0 <= v <= 1,
        "tokens_per_step": v > 0,
    }[key]
    if not ok or not math.isfinite(v):
        ranges = dict(warmup="in [0, 1)", warmup_steps=">= 0", cooldown="in (0, 1]", min_lr="in [0, 1]")
        raise ScalelabError(f"--schedule {text!r}: {key}={raw} must be {ranges.get(key, '> 0')}")
    return v


def parse_schedule(text: str) -> Schedule:
    """'key=value,...' -> Schedule; unknown, repeated or bad keys are one line naming the key."""
    fields: dict = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, eq, raw = (x.strip() for x in part.partition("="))
        if not eq or not raw:
            raise ScalelabError(f"--schedule {text!r}: {part!r} is not key=value ({_KEY_HELP})")
        if key not in KEYS:
            raise ScalelabError(f"--schedule {text!r}: unknown key {key!r} ({_KEY_HELP})")
        if key in fields:
            raise ScalelabError(f"--schedule {text!r}: key {key!r} given twice")
        fields[key] = _value(key, raw, text)
    if not fields:
        raise ScalelabError(f"--schedule {text!r}: empty description ({_KEY_HELP}), e.g. decay=wsd,cooldown=0.2")
    if "warmup" in fields and "warmup_steps" in fields:
        raise ScalelabError(f"--schedule {text!r}: give warmup (a fraction) or warmup_steps, not both")
    return Schedule(**fields)


def parse_branch_col(spec: str | None) -> tuple[str, tuple[str, str] | None] | None:
    """`COL` or `COL=TRUNK:BRANCH` -> (COL, (TRUNK, BRANCH) or None)."""
    if spec is None:
        return None
    col, eq, values = (x.strip() for x in spec.partition("="))
    trunk, colon, branch = (x.strip() for x in values.partition(":"))
    if not col or (eq and not (colon and trunk and branch and trunk != branch)):
        raise ScalelabError(
            f"--branch-col {spec!r}: give COL (each row's branch name, blank on trunk rows) or COL=TRUNK:BRANCH "
            "(the trunk's and the cooldown ends' values), e.g. group=hot:cool_end"
        )
    return col, ((trunk, branch) if eq else None)


# ---- reading the rows ----------------------------------------------------------------------------------


@dataclass
class Columns:
    """The CSV columns a curve fit reads (from --n-col, --loss-col, --run-col, --step-col, --lr-col, ...)."""

    n: str = "N"
    loss: str = "loss"
    run: str | None = None
    step: str = "step"
    tokens: str = "D"
    lr: str | None = None
    by: tuple = ()


def read_rows(paths, cols: Columns, sched: Schedule | None, branch) -> pd.DataFrame:
    """The CSV rows as (run, step, loss, N, branch, group[, lr]), refused in one line when a column is missing
    or the steps cannot be read."""
    from scalelab.fit.io import _csv_columns, read_csv

    present = _csv_columns(paths[0])
    run = cols.run or next((c for c in ("run", "run_id") if c in present), None)
    if run is None:
        raise ScalelabError(f"{paths[0]}: no run column: name the column of run ids with --run-col (a curve is a run)")
    per_step = None if cols.step in present or sched is None else sched.tokens_per_step
    x_col = cols.step if per_step is None else cols.tokens
    extra = [c for c in (cols.lr, branch[0] if branch else None) if c]
    hint = "choose them with --n-col, --loss-col, --run-col, --step-col (or tokens_per_step= and --d-col), --lr-col"
    df = read_csv(paths, [cols.n, cols.loss, x_col], [run, *cols.by], hint=hint)
    missing = [c for c in extra if c not in df.columns]
    if missing:
        raise ScalelabError(f"{paths[0]}: missing column(s) {', '.join(map(repr, missing))} ({hint})")
    x = df[x_col].to_numpy(float) / (per_step or 1.0)
    out = pd.DataFrame(
        {
            "run": df[run].astype(str).to_numpy(),
            "step": np.round(x).astype(int),
            "loss": df[cols.loss].to_numpy(float),
            "N": df[cols.n].to_numpy(float),
            "group": df[list(cols.by)].astype(str).agg(",".join, axis=1) if cols.by else "all",
        }
    )
    if (out["step"] < 1).any():
        raise ScalelabError(f"{paths[0]}: {x_col} rounds to step 0 in some rows: steps count from 1")
    out["branch"] = _branches(df, branch)
    if cols.lr:
        lr = pd.to_numeric(df[cols.lr], errors="coerce").to_numpy(float)
        if not np.all(np.isfinite(lr) & (lr >= 0)):
            raise ScalelabError(f"{paths[0]}: --lr-col {cols.lr!r} has a missing, negative or non-numeric value")
        out["lr"] = lr
    return out[out["branch"].notna()].reset_index(drop=True)


def _branches(df: pd.DataFrame, branch) -> pd.Series:
    """Each row's branch name: TRUNK for trunk rows, None for rows left out (COL=TRUNK:BRANCH's other values)."""
    if branch is None:
        return pd.Series(TRUNK, index=df.index, dtype=object)
    col, values = branch
    v = df[col].astype(object).where(df[col].notna(), "").astype(str).str.strip()
    if values is None:
        return v.astype(object)
    trunk, end = values
    found = set(v)
    if end not in found:
        raise ScalelabError(f"--branch-col {col}={trunk}:{end}: no row has {col} == {end!r} (values: {sorted(found)})")
    # each cooldown end is its own branch: name it by its row
    return pd.Series(np.where(v == trunk, TRUNK, np.where(v == end, "end@" + v.index.astype(str), None)), index=v.index)


# ---- the points and their schedules --------------------------------------------------------------------


def _check_steps(run: str, name: str, t: np.ndarray) -> None:
    """Rows come in any order (sorted by step first); a repeated step is two curves under one name."""
    if np.any(np.diff(t) <= 0):
        what = "the trunk" if name == TRUNK else f"branch {name}"
        raise ScalelabError(
            f"run {run}, {what}: step {int(t[np.flatnonzero(np.diff(t) <= 0)[0]])} appears twice: give each run's "
            "curve once (check --run-col), or name its cooldown branches with --branch-col"
        )


def _lr_from_rows(t: np.ndarray, lr_rows: np.ndarray) -> tuple[np.ndarray, int]:
    """lr per optimizer step, linear between the rows (a row's lr is that of the step just done), and the
    step where it first peaks (drops before it are warmup, not annealing)."""
    lr = np.interp(np.arange(1, int(t.max()) + 1), t, lr_rows)
    return lr, int(np.argmax(lr))


def _run_points(run: str, rows: pd.DataFrame, sched: Schedule | None) -> tuple[list[dict], list]:
    """One run's points with their schedule features: trunk rows on the trunk's lr, each branch's rows on its
    own cooldown forked from the trunk."""
    trunk = rows[rows["branch"] == TRUNK]
    total = int(trunk["step"].max()) if len(trunk) else int(rows["step"].max())
    pts: list[dict] = []
    terms: list = []
    for name, r in rows.groupby("branch", sort=False):
        t = r["step"].to_numpy(int)
        _check_steps(run, str(name), t)
        if sched is None:
            lr, warm = _lr_from_rows(t, r["lr"].to_numpy(float))
            peak, end = float(lr.max()), total
        else:
            end = total if name == TRUNK else int(t.max())
            if name != TRUNK and sched.decay == "cosine":
                raise ScalelabError("--branch-col: cooldown branches fork from a stable trunk: decay=constant or wsd")
            if name != TRUNK and sched.decay == "wsd" and end > total:
                raise ScalelabError(f"run {run}: branch {name} ends at step {end}, after its wsd trunk's {total}")
            lr, warm, peak = sched.lr(total, None if name == TRUNK else end), sched.warmup_for(total), sched.peak_lr
        s1, tt = curves.schedule_features(lr, t, warm)
        decayed = (t > warm) & (lr[t - 1] < peak * (1 - 1e-9))
        for j, row in enumerate(r.itertuples()):
            pts.append(dict(run=run, step=int(t[j]), budget=end, loss=float(row.loss), final=bool(t[j] == end)))
            pts[-1].update(N=float(row.N), s1=s1[j], decayed=bool(decayed[j]), peak=peak, group=row.group)
        terms.extend(tt)
    return pts, terms


def csv_curves(paths, cols: Columns, sched: Schedule | None, branch=None) -> tuple[pd.DataFrame, list]:
    """Every CSV row as a curve point (the columns fit_points reads) and its annealing terms."""
    if (sched is None) == (cols.lr is None):
        raise ScalelabError(
            "--curves on CSV needs the schedule: --schedule 'warmup=0.01,decay=wsd,cooldown=0.2,shape=linear' "
            "or --lr-col COL (one of them)"
        )
    if cols.lr and branch is not None:
        raise ScalelabError("--lr-col gives each run one curve: drop --branch-col, or describe it with --schedule")
    rows = read_rows(paths, cols, sched, branch)
    rows = rows[np.isfinite(rows["loss"].to_numpy(float))]
    pts: list[dict] = []
    terms: list = []
    for run, r in rows.groupby("run", sort=True):
        if r["N"].nunique() > 1:
            raise ScalelabError(f"run {run}: more than one N in its rows: a run is one model (check --run-col)")
        p, t = _run_points(str(run), r.sort_values("step", kind="stable"), sched)
        pts.extend(p)
        terms.extend(t)
    return pd.DataFrame(pts), terms


def fit_csv(paths, cols: Columns, sched: Schedule | None, branch=None, **settings) -> dict:
    """Curve laws per group of the CSV curves (settings as fit_points takes them)."""
    pts, terms = csv_curves(paths, cols, sched, branch)
    if pts.empty:
        raise ScalelabError(f"{paths[0]}: no rows with a finite loss to fit")
    return curves.fit_points(pts, terms, **settings)


def fit_csv_options(paths, s: dict, csv: dict, **settings) -> dict:
    """fit --curves on CSV files: the columns from the usual fit options (s: the fit settings) and the CSV
    curve options (csv: schedule, lr_col, branch_col, step_col, group_col)."""
    from pathlib import Path

    paths = [Path(p) for p in paths]
    if any(p.suffix.lower() not in (".csv", ".tsv") for p in paths):
        raise ScalelabError("mixed CSV and Parquet inputs: fit them separately")
    by = s.get("by") or ([csv["group_col"]] if csv.get("group_col") else [])
    cols = Columns(
        n=s.get("n_col") or "N",
        loss=s.get("loss_col") or "loss",
        run=s.get("run_col"),
        step=csv.get("step_col") or "step",
        tokens=s.get("d_col") or "D",
        lr=csv.get("lr_col"),
        by=tuple(by),
    )
    sched = parse_schedule(csv["schedule"]) if csv.get("schedule") is not None else None
    return fit_csv(paths, cols, sched, parse_branch_col(csv.get("branch_col")), **settings)
