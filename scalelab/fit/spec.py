"""FitSpec: every choice a fit makes, validated once, recorded in the fit file as "spec".

spec = FitSpec(n_col="params", d_col="tokens", loss_col="val_loss", c_col="flops", run_col="run_id",
               by=("variant",), bootstrap=1000)
fit = scalelab.fit.fit_laws(df, spec)          # or fit_laws(df, n_col=..., ...) with the same names
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from scalelab.errors import ScalelabError
from scalelab.fit.laws import FORMS

SEARCHES = ("tails", "cross", "starts")  # FitSpec.search


@dataclass(frozen=True)
class FitSpec:
    # input columns: N (params), D (tokens; None: D = C/(6N)), the loss, C (FLOPs; None: C = 6ND),
    # the run id (the bootstrap unit; None: rows), the grouping columns (none: one group "all")
    n_col: str = "params"
    d_col: str | None = "tokens"
    loss_col: str = "loss"
    c_col: str | None = None
    run_col: str | None = None
    by: tuple[str, ...] = ()
    # the law and how it is fitted
    form: str = "auto"  # auto | chinchilla | data | size | frontier | power
    approach: int = 3  # 3: parametric; 1: envelope; 2: IsoFLOP parabolas
    slice_window: str = "whole"  # approach 2: parabola on the whole slice | "near-min" (fit/approaches.py)
    loss: str = "huber"  # huber | lsq, on log loss
    delta: float = 1e-3  # Huber delta
    weights: str | None = None  # None | "compute" (sqrt(C), normalised)
    overestimate_penalty: float = 1.0  # factor on residuals the law over-predicts (1: symmetric)
    n_starts: int | None = None  # polished starts per resample (None: solver.auto_starts)
    # how resamples search for their optimum: "tails" re-seeds every resample from the optima in the tails and steps
    # E linearly (solver.tail_seed); "cross" (the earlier default) re-seeds only the tails, from every other optimum
    # (cross_seed); "starts" is the 0.3 search (more starts only). The older two are kept to reproduce their fits
    search: str = "tails"
    share_e: bool = False  # one E across groups (joint L(N, D) fit)
    holdout: str | None = None  # None | "largest"
    c_ref: float | None = None  # FLOPs of the reported compute-optimal N, D (None: largest C)
    at_flops: tuple[float, ...] | None = None  # budgets of the compute multipliers (None: largest C, 10x it)
    share_exponents: bool = False  # one E and one set of exponents across groups (fit/shared.py)
    flop_convention: str | None = None  # what C means (None: "6ND" without c_col, else c_col)
    # uncertainty
    bootstrap: int = 1000  # resamples of runs (0: none)
    seed: int = 0
    level: float = 0.95
    compare: tuple[tuple[str, str], ...] | None = None  # group pairs (None: every group vs dense)
    # input selection, recorded for provenance (applied by the reader / the command)
    drop_top_loss: int = 0
    all_checkpoints: bool = False
    # parameters held at given values ((name, value) pairs, natural units: --fix E=1.69), and the
    # rollout check (fit on the k smallest sizes, predict the next; rollout.py)
    fix: tuple[tuple[str, float], ...] = ()
    rollout: bool = False
    # a hyperparameter sweep in the input (fit/hyper.py): fit the best-tuned point per (group, N, D) (True) or
    # every point (False, --no-envelope); the lr law lr_opt(N) is fitted either way
    envelope: bool = True
    # unique tokens per row (repeated data, fit/repetition.py): a column; None: tokens / `epochs` where present
    unique_col: str | None = None
    # the kept FFN share f of each row (fit/share.py: one law per structure kind across its shares; rows with
    # share 1 are the dense runs that anchor every kind); "config" derives it from a run store's configs
    share_col: str | None = None
    # `scalelab bench train` tables (paths, one device), the time verdict's basis instead of the runs' own timing
    # (fit/timing.py). Recorded for provenance and read by the command (plan/throughput_model.py, a layer above
    # fit; --throughput): fit_laws itself takes the loaded table as throughput=
    throughput_tables: tuple[str, ...] | None = None

    def __post_init__(self):
        # normalise sequences so that specs compare equal and hash (frozen): lists become tuples
        by = (self.by,) if isinstance(self.by, str) else tuple(self.by or ())
        object.__setattr__(self, "by", by)
        if self.at_flops is not None:
            object.__setattr__(self, "at_flops", tuple(float(c) for c in self.at_flops))
            for c in self.at_flops:
                if not (c > 0 and math.isfinite(c)):
                    raise ScalelabError(f"--at-flops {c} must be a positive number of FLOPs, e.g. 1e21")
        if self.compare is not None:
            object.__setattr__(self, "compare", tuple(tuple(p) for p in self.compare))
        object.__setattr__(self, "fix", _fixed(self.fix))
        if self.throughput_tables is not None:
            paths = (self.throughput_tables,) if isinstance(self.throughput_tables, str) else self.throughput_tables
            object.__setattr__(self, "throughput_tables", tuple(str(p) for p in paths) or None)
        if self.throughput_tables and (self.share_col or self.approach in (1, 2)):
            raise ScalelabError(no_time_verdict(self.share_col, self.approach))
        if self.form not in ("auto", *FORMS):
            raise ScalelabError(f"unknown form {self.form!r}: use auto, {', '.join(FORMS)}")
        if (self.form == "share") != bool(self.share_col) and self.form != "auto":
            raise ScalelabError(
                "--form share is the law across FFN shares: give the share column with --share-col (no other --form)"
            )
        if self.approach not in (1, 2, 3):
            raise ScalelabError(f"--approach {self.approach}: use 1, 2 or 3")
        if self.slice_window not in ("whole", "near-min"):
            raise ScalelabError(f"--slice-window {self.slice_window!r}: use whole or near-min")
        if self.loss not in ("huber", "lsq"):
            raise ScalelabError(f"unknown loss {self.loss!r}: use huber or lsq")
        if not 0 < self.level < 1:
            raise ScalelabError(f"level {self.level} must be in (0, 1), e.g. 0.95")
        if self.bootstrap < 0:
            raise ScalelabError("--bootstrap must be >= 0")
        if not 0 <= self.seed < 2**63:  # numpy's seeds are non-negative integers
            raise ScalelabError(f"--seed {self.seed}: give a non-negative integer, e.g. --seed 0")
        if self.weights not in (None, "none", "compute"):
            raise ScalelabError(f"unknown weights {self.weights!r}: use none or compute")
        if self.overestimate_penalty < 1:
            raise ScalelabError("--overestimate-penalty must be >= 1 (1 = symmetric Huber)")
        if not self.delta > 0:
            raise ScalelabError(f"--delta {self.delta} must be positive (e.g. 1e-3)")
        if self.holdout not in (None, "largest"):
            raise ScalelabError(f"--holdout {self.holdout!r}: the only rule is 'largest'")
        if self.search not in SEARCHES:
            raise ScalelabError(f"unknown search {self.search!r}: use {' or '.join(SEARCHES)}")
        if self.n_starts is not None and self.n_starts < 1:
            raise ScalelabError(f"--starts {self.n_starts} must be >= 1")
        if self.c_ref is not None and not (self.c_ref > 0 and math.isfinite(self.c_ref)):
            raise ScalelabError(f"--at-flops {self.c_ref} must be a positive number of FLOPs, e.g. 1e21")
        if self.drop_top_loss < 0:
            raise ScalelabError(f"--drop-top-loss {self.drop_top_loss} must be >= 0")
        if not self.n_col or not self.loss_col:
            raise ScalelabError("name the N and loss columns (--n-col, --loss-col)")
        if not self.d_col and not self.c_col:
            raise ScalelabError("need tokens (--d-col) or FLOPs (--flops-col) to know D")
        for pair in self.compare or ():
            if len(pair) != 2 or not all(pair):
                raise ScalelabError(
                    f"--compare {','.join(pair)!r}: give two group names, e.g. --compare dense,lowrank-32"
                )

    @property
    def convention(self) -> str:
        """What C means in the fit: the given convention, else "6ND" (C computed) or the FLOPs column."""
        return self.flop_convention or ("6ND" if self.c_col is None else self.c_col)

    def replace(self, **changes) -> "FitSpec":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["by"] = list(self.by)
        d["at_flops"] = None if self.at_flops is None else list(self.at_flops)
        d["compare"] = None if self.compare is None else [list(p) for p in self.compare]
        d["fix"] = dict(self.fix)
        d["throughput_tables"] = None if self.throughput_tables is None else list(self.throughput_tables)
        return d

    @property
    def fixed(self) -> dict[str, float]:
        return dict(self.fix)

    @classmethod
    def from_toml(cls, path) -> "FitSpec":
        """A spec from a TOML file of its fields (read_toml); fields not in the file keep their defaults."""
        return cls(**read_toml(path))

    @classmethod
    def from_dict(cls, d: dict) -> "FitSpec":
        """The inverse of to_dict; unknown keys (a newer scalelab's) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


_FIXABLE = ("E", "A", "B", "alpha", "beta", "K", "gamma")


def no_time_verdict(share_col: str | None, approach: int) -> str:
    """Why a fit refuses a bench table (--throughput): it reports no compute multiplier for it to time."""
    what = "the law across FFN shares (--share-col)" if share_col else f"--approach {approach}"
    return (
        f"--throughput times compute multipliers, which {what} does not report: drop --throughput, or fit "
        "with --approach 3 and no --share-col"
    )


def _fixed(fix) -> tuple[tuple[str, float], ...]:
    """--fix values as sorted (name, value) pairs: from a dict, pairs, or "E=1.69" / "E=1.69,beta=0.3" text."""
    if not fix:
        return ()
    items = []
    if isinstance(fix, dict):
        items = list(fix.items())
    else:
        for x in [fix] if isinstance(fix, str) else fix:
            if isinstance(x, str):
                for part in (p.strip() for p in x.split(",")):
                    if not part:
                        continue
                    name, eq, val = part.partition("=")
                    if not eq:
                        raise ScalelabError(f"--fix {part!r}: write NAME=VALUE, e.g. --fix E=1.69")
                    items.append((name.strip(), val.strip()))
            elif isinstance(x, (tuple, list)) and len(x) == 2:
                items.append((str(x[0]), x[1]))
            else:
                raise ScalelabError(
                    f'fix {x!r}: give NAME=VALUE strings or a table, e.g. fix = ["E=1.69"] or fix = {{ E = 1.69 }}'
                )
    out: dict[str, float] = {}
    for name, val in items:
        if name not in _FIXABLE:
            raise ScalelabError(f"--fix {name}: not a law parameter; fix one of {', '.join(_FIXABLE)}")
        try:
            v = float(val)
        except (TypeError, ValueError):
            raise ScalelabError(f"--fix {name}={val}: not a number; write e.g. --fix E=1.69") from None
        if not (math.isfinite(v) and v > 0):
            raise ScalelabError(f"--fix {name}={val}: must be a positive finite number")
        if name in out and out[name] != v:
            raise ScalelabError(f"--fix {name} given twice with different values ({out[name]:g}, {v:g})")
        out[name] = v
    return tuple(sorted(out.items()))


# the TOML types a field takes: FitSpec's annotations are strings (postponed), read as written
_TOML_TYPES = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,)}


def read_toml(path) -> dict:
    """The FitSpec fields of a TOML file (`scalelab fit --spec FILE`), e.g. `n_col = "N"`, `by = ["variant"]`,
    `bootstrap = 1000`, `compare = [["dense", "lowrank-32"]]`, `fix = {E = 1.69}`. Unknown keys and values of
    the wrong type are refused with the key named."""
    import sys
    from pathlib import Path

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ScalelabError(f"--spec {path}: no such file; give a TOML file of FitSpec fields") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ScalelabError(f"--spec {path}: not valid TOML ({e})") from None
    known = {f.name: str(f.type) for f in fields(FitSpec)}  # postponed: already the annotation's text
    for key, value in data.items():
        if key not in known:
            raise ScalelabError(f"--spec {path}: unknown key {key!r}; the keys are {', '.join(known)}")
        _check_type(path, key, value, known[key])
    return data


def _check_type(path, key: str, value, annotation: str) -> None:
    """A value of the type the field's annotation names (bool, int, float, str, or a sequence/table)."""
    base = annotation.split("|")[0].strip()
    if base in _TOML_TYPES:
        ok = isinstance(value, _TOML_TYPES[base]) and (base == "bool" or not isinstance(value, bool))
        want = base
    elif key == "fix":
        ok, want = isinstance(value, (dict, list, str)), "a table such as {E = 1.69}"
    elif key == "compare":
        ok = isinstance(value, list) and all(isinstance(p, list) and all(isinstance(x, str) for x in p) for p in value)
        want = 'a list of pairs such as [["dense", "lowrank-32"]]'
    elif key == "throughput_tables":
        ok = isinstance(value, str) or (isinstance(value, list) and all(isinstance(c, str) for c in value))
        want = 'a list of bench train tables such as ["bench/train.json"]'
    elif key == "at_flops":
        ok = isinstance(value, list) and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in value)
        want = "a list of FLOPs such as [1e21, 1e22]"
    else:  # by: column names (or one)
        ok = isinstance(value, str) or (isinstance(value, list) and all(isinstance(c, str) for c in value))
        want = 'a list of column names such as ["variant"]'
    if not ok:
        raise ScalelabError(f"--spec {path}: {key} = {value!r} should be {want}")
