"""`scalelab fit`: scaling laws per variant with run-level bootstrap intervals -> fits/NAME.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from scalelab.commands import _curve_options as CO
from scalelab.commands import _fit_options as O
from scalelab.commands._common import check_out_file, user_errors
from scalelab.report.hints import after_fit

MAX_BOOTSTRAP = 100_000
CURVES_BOOTSTRAP = 200  # --curves' default: each resample refits a curve law over every step of every schedule


@user_errors
def fit(
    ctx: typer.Context,
    inputs: List[Path] = O.INPUTS,
    spec: Optional[Path] = O.SPEC,
    by: Optional[str] = O.BY,
    form: str = O.FORM,
    approach: int = O.APPROACH,
    slice_window: str = O.SLICE_WINDOW,
    bootstrap: int = O.BOOTSTRAP,
    seed: int = O.SEED,
    level: float = O.LEVEL,
    loss: str = O.LOSS,
    delta: float = O.DELTA,
    weights: str = O.WEIGHTS,
    overestimate_penalty: float = O.OVERESTIMATE_PENALTY,
    share_e: bool = O.SHARE_E,
    holdout: Optional[str] = O.HOLDOUT,
    compare: Optional[List[str]] = O.COMPARE,
    at_flops: Optional[str] = O.AT_FLOPS,
    share_exponents: bool = O.SHARE_EXPONENTS,
    share_col: Optional[str] = O.SHARE_COL,
    all_checkpoints: bool = O.ALL_CHECKPOINTS,
    drop_top_loss: int = O.DROP_TOP_LOSS,
    n_col: Optional[str] = O.N_COL,
    d_col: Optional[str] = O.D_COL,
    loss_col: Optional[str] = O.LOSS_COL,
    flops_col: Optional[str] = O.FLOPS_COL,
    group_col: Optional[str] = O.GROUP_COL,
    run_col: Optional[str] = O.RUN_COL,
    unique_col: Optional[str] = O.UNIQUE_COL,
    starts: Optional[int] = O.STARTS,
    fix: Optional[List[str]] = O.FIX,
    rollout: bool = O.ROLLOUT,
    out: Optional[Path] = O.OUT,
    no_envelope: bool = O.NO_ENVELOPE,
    throughput: Optional[List[Path]] = O.THROUGHPUT,
    curves: bool = CO.CURVES,
    holdout_branches: bool = CO.HOLDOUT_BRANCHES,
    schedule: Optional[str] = CO.SCHEDULE,
    lr_col: Optional[str] = CO.LR_COL,
    branch_col: Optional[str] = CO.BRANCH_COL,
    step_col: str = CO.STEP_COL,
    derive: bool = CO.DERIVE,
    derive_budgets: int = CO.DERIVE_BUDGETS,
    json_out: bool = O.JSON_OUT,
) -> None:
    """Fit Chinchilla-style scaling laws per group with run-level bootstrap intervals.

    Writes fits/NAME.json (estimates, intervals, checks, runs, provenance) and NAME.samples.parquet
    (bootstrap samples, for `scalelab plan` and `scalelab plot`)."""
    from scalelab.commands._fit_settings import settings

    if out is not None:
        check_out_file(out, "--out")
        _check_fit_out(out)
    s = settings(ctx, locals(), spec)
    if throughput:  # an input file, not a choice: recorded in the spec (throughput_tables), read here
        s["throughput_tables"] = [str(p) for p in throughput]
    if derive and not curves:
        from scalelab.errors import ScalelabError

        raise ScalelabError("--derive fits L(N, D) on a curve law's points: add --curves")
    if (curves or holdout_branches) and s.get("throughput_tables"):
        from scalelab.errors import ScalelabError

        raise ScalelabError("--throughput times the compute multipliers of an L(N, D) fit: drop it with --curves")
    if curves or holdout_branches:
        from scalelab.commands._fit_settings import _given

        if not _given(ctx, "bootstrap"):
            s["bootstrap"] = CURVES_BOOTSTRAP
        csv = dict(schedule=schedule, lr_col=lr_col, branch_col=branch_col, step_col=step_col, group_col=group_col)
        if derive:
            return _fit_derived(inputs, s, out, holdout_branches, csv, derive_budgets)
        return _fit_curves(inputs, s, out, holdout_branches, csv)
    if schedule or lr_col or branch_col:
        from scalelab.errors import ScalelabError

        raise ScalelabError("--schedule, --lr-col and --branch-col describe curves: add --curves")
    res = _fit(inputs, s, group_col, progress=not json_out)
    if out is None:
        name = inputs[0].stem if len(inputs) == 1 else (inputs[0].parent.name or "fit")
        out = Path("fits") / f"{name}.json"
    path = res.to_json(out)
    if json_out:
        import json

        typer.echo(json.dumps(res.to_dict(path.name[:-5] + ".samples.parquet"), indent=2))
        return
    from scalelab.commands._render import print_summary

    print_summary(res.summary())
    if res.spec is not None and res.spec.throughput_tables and not any(c.multiplier for c in res.comparisons):
        typer.echo("--throughput: no comparison has a compute multiplier, so there is no time verdict to give")
    typer.echo(f"wrote {path}")
    typer.echo(after_fit(inputs, path))


def _fit(inputs: List[Path], s: dict, group_col: Optional[str], progress: bool):
    """Read the inputs with the settings' columns, build the FitSpec, fit (a spinner on a terminal)."""
    from scalelab.errors import ScalelabError
    from scalelab.fit import FitSpec, fit_laws, io

    if not 0 <= s["bootstrap"] <= MAX_BOOTSTRAP:  # 1000 resamples take seconds; a million would take hours
        raise ScalelabError(f"--bootstrap {s['bootstrap']} must be between 0 and {MAX_BOOTSTRAP:,}, e.g. 1000")
    model = None
    if s.get("throughput_tables"):  # read before the fit: a bad table is refused before any work
        from scalelab.plan import throughput_model

        model = throughput_model.load(s["throughput_tables"])
    read = {k: s.pop(k) for k in ("n_col", "d_col", "loss_col", "run_col", "by", "all_checkpoints")}
    df, cols = io.load_inputs(inputs, flops_col=s.pop("c_col"), group_col=group_col, **read)
    spec = FitSpec(**{**cols, **s})
    source = str(inputs[0]) if len(inputs) == 1 else f"{inputs[0]} (+{len(inputs) - 1} files)"
    n_groups = df[list(spec.by)].drop_duplicates().shape[0] if spec.by else 1
    with _Spinner(n_groups, enabled=progress and spec.bootstrap * n_groups > 3000) as spin:
        return fit_laws(df, spec, inputs=io.provenance(inputs), source=source, progress=spin.update, throughput=model)


def _fit_curves(inputs: List[Path], s: dict, out: Optional[Path], holdout_branches: bool, csv: dict) -> None:
    """--curves: the curve law per group, its summary, and fits/NAME.curves.json (a file of its own)."""
    from scalelab.errors import ScalelabError
    from scalelab.fit import curves, io

    if not 0 <= s["bootstrap"] <= MAX_BOOTSTRAP:
        raise ScalelabError(f"--bootstrap {s['bootstrap']} must be between 0 and {MAX_BOOTSTRAP:,}, e.g. 200")
    keys = ("bootstrap", "seed", "level", "loss", "delta")
    opts = {k: s[k] for k in keys}
    if any(p.suffix.lower() in (".csv", ".tsv") for p in inputs):
        from scalelab.fit import curves_csv

        fits = curves_csv.fit_csv_options(inputs, s, csv, holdout_branches=holdout_branches, **opts)
        opts.update({k: v for k, v in csv.items() if v is not None})
    elif csv["schedule"] or csv["lr_col"] or csv["branch_col"]:
        raise ScalelabError("--schedule, --lr-col and --branch-col are for CSV curves: run files carry their schedule")
    else:
        fits = curves.fit_curves(inputs, by=s.get("by"), holdout_branches=holdout_branches, **opts)
    if out is None:
        name = inputs[0].stem if len(inputs) == 1 else (inputs[0].parent.name or "fit")
        out = Path("fits") / f"{name}.curves.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    curves.write_json(fits, out, io.provenance(inputs), {**opts, "holdout_branches": holdout_branches})
    for line in curves.summary_lines(fits, s["level"]):
        typer.echo(line)
    typer.echo(f"wrote {out}")


def _fit_derived(
    inputs: List[Path], s: dict, out: Optional[Path], holdout_branches: bool, csv: dict, n_budgets: int
) -> None:
    """--curves --derive: the curve law (fits/NAME.curves.json, as --curves) and the L(N, D) law fitted on the
    points it derives (fits/NAME.derived.json, a fit file for `plan`)."""
    from scalelab.errors import ScalelabError
    from scalelab.fit import curves, derive, io

    if any(p.suffix.lower() in (".csv", ".tsv") for p in inputs) or any(v for v in csv.values() if v != "step"):
        raise ScalelabError(
            "--derive needs run files (runs/*.parquet): a derived point's steps and FLOPs come from its run's config"
        )
    if not 0 <= s["bootstrap"] <= MAX_BOOTSTRAP:
        raise ScalelabError(f"--bootstrap {s['bootstrap']} must be between 0 and {MAX_BOOTSTRAP:,}, e.g. 200")
    keys = ("bootstrap", "seed", "level", "loss", "delta")
    opts = {k: s[k] for k in keys}
    fits, res = derive.derive_fit(
        inputs, s.get("by"), n_budgets, holdout_branches=holdout_branches, at_flops=s.get("at_flops"),
        c_ref=s.get("c_ref"), **opts,
    )  # fmt: skip
    if out is None:
        name = inputs[0].stem if len(inputs) == 1 else (inputs[0].parent.name or "fit")
        out = Path("fits") / f"{name}.derived.json"
    stem = out.name[:-5] if out.name.endswith(".json") else out.name
    curves_out = out.parent / f"{stem.removesuffix('.derived')}.curves.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    curves.write_json(fits, curves_out, io.provenance(inputs), {**opts, "holdout_branches": holdout_branches})
    for line in curves.summary_lines(fits, s["level"]):
        typer.echo(line)
    typer.echo(f"wrote {curves_out}")
    from scalelab.commands._render import print_summary

    path = res.to_json(out)
    print_summary(res.summary())
    used = derive.tokens_trained(inputs, holdout_branches)
    full = derive.tokens_trained(inputs, False)
    for v in used:
        typer.echo(
            f"{v}: the curve law used {used[v]:.4g} trained tokens"
            + (f" (trunks to their cooldown start and the shortest branch per size; all branches: {full[v]:.4g})"
               if holdout_branches else " (every trunk and branch once)")
        )  # fmt: skip
    typer.echo(f"wrote {path} (points derived from the curve law; plan with `scalelab plan budget --fit {path}`)")


def _check_fit_out(out: Path) -> None:
    """A fit file is JSON named *.json, and it replaces only an earlier scalelab fit (or curve law): `--out
    runs.csv` wrote JSON over the table being fitted."""
    import os

    from scalelab.errors import ScalelabError
    from scalelab.fileio import json_format

    if out.suffix.lower() != ".json":
        raise ScalelabError(f"--out {out}: a fit file is JSON: give a path ending in .json (e.g. fits/NAME.json)")
    if out.is_file() and out.stat().st_size and os.access(out, os.R_OK):  # unreadable: the writer names it
        if not (json_format(out) or "").startswith(("scalelab-fit/", "scalelab-curves/")):
            raise ScalelabError(
                f"--out {out} exists and is not a fit scalelab wrote: choose another --out (a fit replaces only an "
                "earlier fit)"
            )


class _Spinner:
    """Progress on stderr for long fits (a terminal only): groups fitted so far."""

    def __init__(self, n_groups: int, enabled: bool):
        import sys

        self.n, self.done = n_groups, 0
        self.status: Any = None  # rich's Status, imported only when shown
        self.enabled = enabled and sys.stderr.isatty()

    def __enter__(self):
        if self.enabled:
            from rich.console import Console

            self.status = Console(stderr=True).status(f"fitting {self.n} group(s) ...")
            self.status.start()
        return self

    def update(self, name) -> None:
        self.done += 1
        if self.status is not None:
            self.status.update(f"fitted {self.done}/{self.n} groups (last: {name}) ...")

    def __exit__(self, *exc):
        if self.status is not None:
            self.status.stop()
