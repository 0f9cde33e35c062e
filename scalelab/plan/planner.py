"""Compute-optimal plans from a fit: N, D, shape (width, depth, rank) and predicted loss per variant.

Given a fit (a FitResults, or fits/NAME.json + NAME.samples.parquet read by scalelab.fit.load_fit) and a
budget C:

    minimise  L(N, D) = E + A / N^alpha + B / D^beta   subject to   C = F(N) * D

where F(N) is the training FLOPs per token of the model family. For plain (N, D) fits (CSV, "6ND")
F(N) = 6 N and the optimum has a closed form (Hoffmann et al. 2022; REFERENCE.md section 3):

    G = (alpha A / (beta B))^(1/(alpha+beta)),  N_opt = G (C/6)^(beta/(alpha+beta)),
    D_opt = (C/6)^(alpha/(alpha+beta)) / G

(scalelab.fit.laws.compute_optimal; the law's predict and compute_for_loss live beside it). For fits of
scalelab runs F(N) is the variant's real FLOPs per token (attention, logits, structure, self-guided
overhead, from scalelab/flops.py) along a family of shapes inferred from the runs, and the optimum is
found numerically (plan/optimum.py). Every bootstrap sample is pushed through (vectorised over samples), so
intervals are percentiles of the optimum, never the plug-in point with an error bar.

Never imports torch.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, TypeGuard

import numpy as np

from scalelab import hardware, variant
from scalelab.config import ModelConfig
from scalelab.errors import ScalelabError
from scalelab.fit import identify, laws
from scalelab.fit.bootstrap import bootstrap_interval, percentile_interval
from scalelab.fit.results import GroupFit, as_fit, newest_fit  # noqa: F401  (newest_fit: re-exported)

# re-exported: the planner's public names live here (docs/interfaces.md "Plan")
from scalelab.plan.families import Candidate, ShapeFamily, ShapeRule, SixND, ffn_fraction  # noqa: F401
from scalelab.plan.optimum import CHINCHILLA, _n_for_ratio, optimum
from scalelab.plan.results import PlanResult, Shape, VariantPlan, _jsonable  # noqa: F401

# the columns of sweep(): one VariantPlan.row() per (variant, budget)
SWEEP_COLUMNS = [
    "variant",
    "C",
    "N_opt",
    "N_lo",
    "N_hi",
    "D_opt",
    "D_lo",
    "D_hi",
    "L_opt",
    "L_lo",
    "L_hi",
    "extrapolated",
    "identified",
]

FRONTIER = laws.FORMS["frontier"].params  # E, K, gamma
# the forms the planner allocates from (repetition: the data-constrained law, plan/repetition.py)
PLANNED = ("chinchilla", "frontier", "allocation", "repetition")

# No MFU is ever assumed: GPU-hours need a measured throughput (the runs' tokens/s or MFU) or a stated --mfu.
EXTRAPOLATION_FACTOR = 10.0
# N_opt and D_opt grow about as C^0.5: a plan is as far out in N or D as 10x in C when this far past the runs
SIZE_EXTRAPOLATION_FACTOR = math.sqrt(EXTRAPOLATION_FACTOR)
# an N_opt or D_opt interval wider than this factor (three decades) is no reading of the data
SPAN_MAX = 1e3


def _run_models(g: GroupFit) -> list[ModelConfig]:
    out = []
    for r in g.runs:
        m = r.get("model")
        if m:
            try:
                out.append(ModelConfig.from_dict(m))
            except (ScalelabError, TypeError):
                continue
    return out


def _auto_multiple(cfgs: list) -> int:
    """Width granularity when --multiple is not given: 64 (GPU-friendly) unless the fitted runs are
    narrower than that grid allows (the CPU demo's d 32..64), then the runs' own common divisor."""
    g = 0
    for c in cfgs:
        g = math.gcd(g, int(c.d_model))
    return max(2, min(64, g - g % 2))


class Planner:
    """Holds a fit and the per-variant FLOPs families; plan_budget / sweep / target-loss use it.

    fit: a FitResults or what scalelab.fit.as_fit takes (a fit file path, its JSON dict). The bootstrap
    samples are required unless require_samples=False (then intervals are NaN where there are none).
    """

    def __init__(
        self,
        fit: Any,
        variants: Optional[Sequence[str]] = None,
        multiple: Optional[int] = None,
        depth: Optional[int] = None,
        seed: int = 0,
        shape_tol: float = 0.05,
        require_samples: bool = True,
    ):
        self.fit = as_fit(fit)
        if require_samples:
            self.fit.require_samples()
        self.shape_tol = shape_tol
        self.level = self.fit.level
        self.seed = seed
        if multiple is not None and (multiple < 2 or multiple % 2):
            raise ScalelabError(f"--multiple {multiple} must be an even integer >= 2 (e.g. 64)")
        if depth is not None and depth < 1:
            raise ScalelabError(f"--depth {depth} must be a positive number of layers")
        groups = list(self.fit.groups.values())
        if variants:
            known = {g.variant: g for g in groups} | {g.name: g for g in groups}
            unknown = [v for v in variants if v not in known]
            if unknown:
                raise ScalelabError(
                    f"variant {', '.join(unknown)} is not in fit {self.fit.path or ''}: "
                    f"choose from {', '.join(sorted({g.variant for g in groups}))}"
                )
            groups = list({id(known[v]): known[v] for v in variants}.values())
        self.skipped = [
            f"{g.variant}: loss law not fitted: no loss-based plan (the lr its sweep gives per size is listed)"
            if loss_law_refused(g)
            else f"{g.variant}: a {g.form!r} law has no compute allocation; skipped"
            for g in groups
            if g.form not in PLANNED
        ]
        self.groups = [g for g in groups if g.form in PLANNED]
        if not self.groups:
            share = any(g.form == "share" for g in groups)
            raise ScalelabError(
                f"fit {self.fit.path or ''} has no chinchilla or frontier groups to plan from: "
                + ("it is a law across FFN shares: use `scalelab plan share`" if share else
                   "fit with the (N, D) law (default form)")
            )  # fmt: skip
        self.notes: dict[str, list[str]] = {}
        self.constrained: dict[str, Any] = {}  # group -> its data-constrained plan (plan/repetition.py), when asked
        self.families: dict[str, Any] = {}  # FLOPs per token along N, per group
        self.shape_families: dict[str, ShapeFamily] = {}  # where shapes are chosen from
        self.rules: dict[str, Optional[ShapeRule]] = {}
        for g in self.groups:
            cfgs = _run_models(g) if self.fit.convention in ("flops", "flops_6nd") else []
            key = g.n_column
            if cfgs and multiple is None:
                multiple = _auto_multiple(cfgs)
            if cfgs and not (self.fit.convention == "flops_6nd" and key == "params_nonembed"):
                assert multiple is not None  # set just above whenever the group has configs
                rule = ShapeRule.from_runs(cfgs, multiple=multiple, depth=depth)
                self.rules[g.name] = rule
                self.families[g.name] = self.shape_families[g.name] = ShapeFamily(rule, self.fit.convention, key)
            elif cfgs:  # C = 6 N_nonembed D exactly: closed form, shapes still from the runs
                assert multiple is not None  # set just above whenever the group has configs
                rule = ShapeRule.from_runs(cfgs, multiple=multiple, depth=depth)
                self.rules[g.name] = rule
                self.families[g.name] = SixND()
                self.shape_families[g.name] = ShapeFamily(rule, self.fit.convention, key)
            else:
                self.rules[g.name] = None
                self.families[g.name] = SixND(self._flops_per_param_token(g))

    def _flops_per_param_token(self, g: GroupFit) -> float:
        """k in C = k N D: the fit's own (g.k_flops, the median C / (N D) of its points; 6 for 6ND fits), the k
        its derived compute-optimal point and multipliers used (no configs to do better)."""
        if self.fit.convention == "6ND" or g.k_flops is None:
            return 6.0
        k = float(g.k_flops)
        if abs(k / 6 - 1) > 1e-6:
            self.notes.setdefault(g.name, []).append(
                f"no model configs in the fit's runs: C = {k:.3g} N D with k the fitted points' median C/(N D)"
            )
        return k

    # ---- helpers -------------------------------------------------------------------------------
    def fitted_range(self) -> dict[str, dict]:
        return {g.variant: g.range for g in self.groups}

    # ---- one variant ---------------------------------------------------------------------------
    def allocate(
        self,
        g: GroupFit,
        C: float,
        inference_tokens: float = 0.0,
        shape: bool = True,
        check_low: bool = True,
        unique_tokens: Optional[float] = None,
    ) -> VariantPlan:
        """The plan of one group at C. unique_tokens: the corpus's, for a repetition-law group's data-constrained
        optimum (plan/repetition.py); without it that group is planned on its base law (unlimited unique data)."""
        fam = self.families[g.name]
        cmin, cmax = g.c_range
        if check_low and math.isfinite(cmin) and C < cmin:
            raise ScalelabError(
                f"budget {C:.3g} FLOPs is below the smallest fitted run of {g.variant} "
                f"({cmin:.3g} FLOPs): the fit says nothing there; plan for C >= {cmin:.3g}"
            )
        notes: list[str] = list(self.notes.get(g.name, []))
        extrapolated = math.isfinite(cmax) and C > EXTRAPOLATION_FACTOR * cmax
        if g.form == "frontier":
            return self._allocate_frontier(g, C, fam, cmax, extrapolated)
        if g.form == "allocation":
            return self._allocate_power_laws(g, C, extrapolated)
        if g.form == "repetition":
            if unique_tokens is not None:
                return self._allocate_repetition(g, C, unique_tokens, extrapolated, notes, shape)
            notes.append(
                "repetition law planned with unlimited unique data (its base law's optimum): give --unique-tokens "
                "for the data-constrained one"
            )
        point = {k: g.params[k] for k in CHINCHILLA}
        N0, D0, L0, edge0 = optimum({k: np.array([v]) for k, v in point.items()}, fam, C, inference_tokens)
        N0, D0, L0 = float(N0[0]), float(D0[0]), float(L0[0])
        degenerate = _degenerate(g, N0, D0)
        if degenerate or (edge0[0] and isinstance(fam, ShapeFamily) and identify.compute_optimal_gap(g)):
            # no finite allocation (an exponent at 0), or one at the family's edge that the fit already
            # called not identified: refused with the reason, never a budget error or a division by zero
            return self._unidentified(g, C, extrapolated, notes, degenerate or str(identify.compute_optimal_gap(g)))
        # outside the data's plausible tokens/param the allocation is not a reading of the data: marked
        why = identify.allocation_check(D0 / N0, identify.plausible_tpp(*_tpp_range(g)))
        if edge0[0] and isinstance(fam, ShapeFamily):
            if N0 <= math.exp(fam.log_n_bounds[0]) * 1.0001:
                raise ScalelabError(
                    f"budget {C:.3g} FLOPs is below what the smallest {g.variant} model "
                    f"(d_model {fam.candidates[0].cfg.d_model}) can use well: raise --flops or lower --multiple"
                )
            notes.append("optimum at the largest width tried; N_opt may be larger")
        if not D0 > 0:
            raise ScalelabError(
                f"budget {C:.3g} FLOPs cannot cover {inference_tokens:.3g} inference tokens for any "
                f"{g.variant} model: raise --flops or lower --inference-tokens"
            )
        N, D, L, _ = optimum(g.sample_arrays(CHINCHILLA), fam, C, inference_tokens)
        n_all = g.n_resamples
        plan = VariantPlan(
            variant=g.variant,
            group=g.name,
            form=g.form,
            C=C,
            N_opt=N0,
            N_int=self._ci(N, N0, "N_opt", notes, n_all),
            D_opt=D0,
            D_int=self._ci(D, D0, "D_opt", notes, n_all),
            tokens_per_param=D0 / N0,
            tpp_int=self._ci(D / N, D0 / N0, "tokens/param", notes, n_all),
            L_opt=L0,
            L_int=self._ci(L, L0, "L_opt", notes, n_all),
            L_pred_int=self._prediction_interval(g, L),
            extrapolated=extrapolated,
            notes=notes,
            L_samples=L,
            sample_ids=g.sample_ids,
        )
        why = why or self._interval_gap(g, plan)
        if why:
            plan.identified = False
            plan.notes.append(why)
            return plan
        if shape and self.rules.get(g.name) is not None:
            plan.shape = self.choose_shape(g, plan, inference_tokens)
        return plan

    def _unidentified(self, g: GroupFit, C: float, extrapolated: bool, notes: list, why: str) -> VariantPlan:
        """A plan with no allocation and no loss: the law has no finite compute-optimal point (`why`)."""
        nan, nan2 = float("nan"), (float("nan"), float("nan"))
        return VariantPlan(
            variant=g.variant,
            group=g.name,
            form=g.form,
            C=C,
            N_opt=nan,
            N_int=nan2,
            D_opt=nan,
            D_int=nan2,
            tokens_per_param=nan,
            tpp_int=nan2,
            L_opt=nan,
            L_int=nan2,
            L_pred_int=nan2,
            identified=False,
            loss_identified=False,
            extrapolated=extrapolated,
            notes=[*notes, why],
            sample_ids=g.sample_ids,
        )

    def _interval_gap(self, g: GroupFit, plan: VariantPlan) -> Optional[str]:
        """Why the bootstrap does not identify the allocation although its point is plausible: an N_opt, D_opt or
        tokens/param interval reaching 0 or inf, or an N_opt or D_opt interval spanning more than SPAN_MAX
        (three decades); None when it does (or when the interval was withheld: its note says why)."""
        for what, (a, b), span in (
            ("N_opt", plan.N_int, SPAN_MAX),
            ("D_opt", plan.D_int, SPAN_MAX),
            ("tokens/param", plan.tpp_int, math.inf),
        ):
            if math.isnan(a) or math.isnan(b):
                continue
            if not (a > 0 and math.isfinite(b)) or b / a > span:
                reach = "reaches 0 or inf" if not (a > 0 and math.isfinite(b)) else f"spans {b / a:.3g}x"
                return (
                    f"the {self.level:.0%} interval of {what} [{a:.3g}, {b:.3g}] {reach}: the resamples do not pin "
                    "the allocation down, so N_opt and D_opt are not identified"
                )
        return None

    def _allocate_frontier(self, g: GroupFit, C: float, fam, cmax: float, extrapolated: bool) -> VariantPlan:
        Ls = laws.predict("frontier", g.sample_arrays(FRONTIER), C=C)
        L0 = float(laws.predict("frontier", g.params, C=C))
        ratios = [float(r["tokens"]) / float(r["params"]) for r in g.runs if r.get("tokens") and r.get("params")]
        nan2 = (float("nan"), float("nan"))
        notes = ["frontier law L(C) = E + K C^-gamma: N_opt and D_opt are not identified by this fit"]
        N0 = D0 = tpp = float("nan")
        if ratios:
            tpp = float(np.median(ratios))
            N0 = _n_for_ratio(fam, C, tpp)
            D0 = C / math.exp(float(fam.log_flops_per_token(math.log(N0))))
            notes.append(f"N and D shown use the runs' median {tpp:.3g} tokens per param (assumed, not fitted)")
        plan = VariantPlan(
            variant=g.variant,
            group=g.name,
            form=g.form,
            C=C,
            N_opt=N0,
            N_int=nan2,
            D_opt=D0,
            D_int=nan2,
            tokens_per_param=tpp,
            tpp_int=nan2,
            L_opt=float(L0),
            L_int=percentile_interval(Ls, self.level),
            L_pred_int=self._prediction_interval(g, Ls),
            identified=False,
            extrapolated=extrapolated,
            notes=notes,
            L_samples=Ls,
            sample_ids=g.sample_ids,
        )
        return plan

    def _allocate_repetition(
        self, g: GroupFit, C: float, U: float, extrapolated: bool, notes: list, shape: bool
    ) -> VariantPlan:
        """A repetition-law group with U unique tokens: the data-constrained optimum under C = k N D (k the
        fit's), each bootstrap draw's own (plan/repetition.py); its words and the unconstrained one in notes."""
        from scalelab.plan import repetition as PR

        cp = PR.constrained(g, C, U, PR.flops_per_param_token(g, self.fit.convention), self.level)
        self.constrained[g.name] = cp
        plan = VariantPlan(
            variant=g.variant,
            group=g.name,
            form=g.form,
            C=C,
            N_opt=cp.N_opt,
            N_int=cp.N_int,
            D_opt=cp.D_opt,
            D_int=cp.D_int,
            tokens_per_param=cp.D_opt / cp.N_opt,
            tpp_int=cp.tpp_int,
            L_opt=cp.L_opt,
            L_int=cp.L_int,
            L_pred_int=self._prediction_interval(g, cp.L_samples) if cp.L_samples.size else (math.nan, math.nan),
            extrapolated=extrapolated,
            notes=[*notes, *cp.lines()],
            L_samples=cp.L_samples if cp.L_samples.size else None,
            sample_ids=g.sample_ids,
        )
        if shape and self.rules.get(g.name) is not None:
            plan.shape = self.choose_shape(g, plan)
        return plan

    def _allocate_power_laws(self, g: GroupFit, C: float, extrapolated: bool) -> VariantPlan:
        """An approach 1/2 fit (form "allocation"): N_opt = kN C^a, D_opt = kD C^b (laws.allocation) with
        intervals over its run-level bootstrap samples. No loss law: L_opt is NaN, no shape is chosen."""
        pt = laws.allocation(g.params, C)
        s = laws.allocation(g.sample_arrays(laws.ALLOCATION), C)
        nan2 = (float("nan"), float("nan"))
        notes: list[str] = []
        ints = {
            k: self._ci(s[k], float(pt[k]), k, notes, g.n_resamples) for k in ("N_opt", "D_opt", "tokens_per_param")
        }
        return VariantPlan(
            variant=g.variant,
            group=g.name,
            form=g.form,
            C=C,
            N_opt=float(pt["N_opt"]),
            N_int=ints["N_opt"],
            D_opt=float(pt["D_opt"]),
            D_int=ints["D_opt"],
            tokens_per_param=float(pt["tokens_per_param"]),
            tpp_int=ints["tokens_per_param"],
            L_opt=float("nan"),
            L_int=nan2,
            L_pred_int=nan2,
            extrapolated=extrapolated,
            notes=[
                f"approach {self.fit.info.approach} allocation N_opt = kN C^a, D_opt = kD C^b: "
                "no loss law, so no predicted loss and no shape",
                *notes,
            ],
            L_samples=None,
            sample_ids=g.sample_ids,
        )

    def _ci(self, samples: np.ndarray, estimate: float, what: str, notes: list, n_all: int = 0) -> tuple[float, float]:
        """The percentile interval of `samples`, or NaNs and a note when the fit's rule withholds it (it rests
        on fewer than half the resamples or excludes its own estimate: bootstrap.bootstrap_interval). n_all:
        every resample drawn, where `samples` holds only those the fit could use (GroupFit.sample_arrays drops
        the others), so that the rule counts the dropped ones as failed rather than not drawn."""
        s = np.asarray(samples, float)
        if n_all > s.size:
            s = np.concatenate([s, np.full(n_all - s.size, np.nan)])
        if s.size == 0 or not math.isfinite(estimate):
            return (float("nan"), float("nan"))
        ci, why = bootstrap_interval(s, estimate, self.level)  # inf (unreachable) stays in the tail
        if ci is None:
            assert why is not None  # bootstrap_interval says why whenever it withholds the interval
            notes.append(f"no {self.level:.0%} interval for {what}: {why['why']}")
            return (float("nan"), float("nan"))
        return (float(ci[0]), float(ci[1]))

    def _prediction_interval(self, g: GroupFit, L: np.ndarray, draws: int = 16) -> tuple[float, float]:
        """One new run's loss: the mean law's sample times exp(residual noise in log-loss)."""
        return percentile_interval(g.one_run_draws(L, draws, self.seed), self.level)

    # ---- shape ---------------------------------------------------------------------------------
    def choose_shape(self, g: GroupFit, plan: VariantPlan, inference_tokens: float = 0.0) -> Optional[Shape]:
        fam = self.shape_families.get(g.name)
        if fam is None or not math.isfinite(plan.N_opt):
            return None
        point = {k: g.params[k] for k in CHINCHILLA} if g.form == "chinchilla" else None
        scored = []  # (loss at the D that spends C exactly, |FLOPs at D_opt / C - 1|, candidate, D)
        for c in fam.candidates_near(plan.N_opt):
            D = plan.C / c.flops_per_token - inference_tokens / 3.0
            if D <= 0:
                continue
            miss = abs(c.flops_per_token * (plan.D_opt + inference_tokens / 3.0) / plan.C - 1)  # lifetime FLOPs
            loss = float(laws.predict("chinchilla", point, N=c.N, D=D)) if point else abs(math.log(c.N / plan.N_opt))
            scored.append((loss, miss, c, D))
        if not scored:
            raise ScalelabError(
                f"no buildable {g.variant} shape near N = {plan.N_opt:.3g}: try another --multiple or --depth"
            )
        # feasible: trained on the ideal D_opt it would spend C within the tolerance
        feasible = [t for t in scored if t[1] <= self.shape_tol]
        if feasible:
            t = min(feasible, key=lambda t: t[0])
            best = (t[0], t[2], t[3])
        else:
            t = min(scored, key=lambda t: t[1])
            best = (t[0], t[2], t[3])
            plan.notes.append(
                f"no {g.variant} shape within {self.shape_tol:.0%} of the budget at D_opt; "
                f"closest is {t[1]:.1%} off (try --multiple {max(2, fam.rule.multiple // 2)} or --depth)"
            )
        loss, c, D = best
        from scalelab import flops as F

        counts = F.param_counts(c.cfg)
        if point:
            Ls = laws.predict("chinchilla", g.sample_arrays(CHINCHILLA), N=c.N, D=D)
            loss_int = percentile_interval(Ls, self.level)
        else:
            loss, loss_int = plan.L_opt, plan.L_int
        return Shape(
            config=c.cfg,
            params=c.N,
            params_total=float(counts.params),
            flops_per_token=c.flops_per_token,
            tokens=float(D),
            flops_at_D_opt=c.flops_per_token * plan.D_opt,
            n_rel=c.N / plan.N_opt - 1,
            d_rel=D / plan.D_opt - 1,
            flops_at_D_opt_rel=c.flops_per_token * (plan.D_opt + inference_tokens / 3.0) / plan.C - 1,
            loss=float(loss),
            loss_int=loss_int,
            ffn_fraction=ffn_fraction(c.cfg),
        )

    # ---- learning rate -------------------------------------------------------------------------
    def learning_rate(self, g: GroupFit, N: float, D: Optional[float] = None) -> Optional[dict]:
        """The peak learning rate for a model of N params (the fit's N) trained on D tokens from the group's
        lr law (fit/hyper.py: c N^k, or c N^a D^b when the sweep spanned several budgets per size), with the
        interval of its bootstrap samples: {"lr", "lo", "hi", "N", "D", "extrapolated"}; None when the fit has
        no lr law (its runs had no [sweep]) or N (D, for a law in D) is not finite."""
        return learning_rate(g, N, D, self.level)

    def batch_size(self, g: GroupFit, D: float) -> Optional[dict]:
        """The batch size (tokens per step) for D training tokens from the group's batch law batch_opt = c D^g
        (fit/hyper.py), with its interval: {"batch", "lo", "hi", "D", "extrapolated"}; None without one."""
        return batch_size(g, D, self.level)

    # ---- wall clock ----------------------------------------------------------------------------
    def throughput(self, g: GroupFit, gpu: str, mfu: Optional[float] = None) -> tuple[Optional[float], str]:
        """FLOP/s this variant achieves on `gpu`, from its runs' measured tokens/s or MFU."""
        gpu = gpu.lower()
        if gpu not in hardware.NAMES:
            raise ScalelabError(f"unknown --gpu {gpu!r}: use one of {', '.join(hardware.NAMES)}")
        peak = hardware.peak_bf16(gpu)
        if mfu is not None and peak is None:
            raise ScalelabError("--mfu needs an accelerator with a known peak: use --gpu h100|h200|a100")
        rate = self._measured_rate(g)
        runs = sorted((r for r in g.runs if r.get("params")), key=lambda r: -float(r["params"]))[:3]
        devices = {str(r.get("device") or "").lower() for r in runs}
        if rate is not None and any(gpu in d for d in devices):
            return rate, f"measured on {gpu}"
        mfus = [
            float(r["mfu"])
            for r in runs
            if r.get("mfu") is not None
            and math.isfinite(float(r["mfu"]))
            and float(r["mfu"]) > 0
            and not any(x in str(r.get("device") or "").lower() for x in ("cpu",))
        ]
        if peak is None:
            if rate is None:
                return None, "no measured throughput in the fit's runs"
            return rate, "measured (" + ", ".join(sorted(d for d in devices if d)) + ")"
        if mfu is None and mfus:
            return peak * float(np.median(mfus)), f"MFU {np.median(mfus):.3g} measured on {', '.join(sorted(devices))}"
        if mfu is None:
            return None, f"no throughput measured on {gpu} in the fit's runs: state one with --mfu (e.g. 0.4)"
        if rate is None:
            return peak * mfu, f"stated MFU {mfu:.3g}"
        # measured elsewhere (e.g. CPU): the stated MFU for dense, each variant's measured speed relative to dense
        rates = [self._measured_rate(h) for h in self.groups if variant.is_dense(h.variant)]
        ref = [r for r in rates if r]
        base = ref[0] if ref else rate
        return peak * mfu * rate / base, (
            f"stated MFU {mfu:.3g} for dense, scaled by this variant's measured FLOP/s relative to dense "
            f"({rate / base:.3g}x)"
        )

    def _measured_rate(self, g: GroupFit) -> Optional[float]:
        """Achieved training FLOP/s (tokens/s x FLOPs per token) of the largest run that measured it:
        the shape closest to the target, and the longest, steadiest measurement."""
        runs = sorted((r for r in g.runs if r.get("params")), key=lambda r: -float(r["params"]))
        for r in runs:
            tps, fl, tok = r.get("tokens_per_s"), r.get("flops"), r.get("tokens")
            if tps and fl and tok and math.isfinite(float(tps)) and float(tps) > 0:
                return float(tps) * float(fl) / float(tok)
        return None

    # ---- inverse: compute to reach a loss ------------------------------------------------------
    def compute_for_loss(self, g: GroupFit, target: float) -> dict:
        """Smallest C whose optimal loss reaches `target`, point and interval (inf where unreachable)."""
        fam = self.families[g.name]

        def solve(p: dict) -> np.ndarray:
            p = {k: np.atleast_1d(np.asarray(v, float)) for k, v in p.items()}
            if g.form == "frontier" or isinstance(fam, SixND):  # closed forms; NaN (never) -> inf
                C = laws.compute_for_loss(g.form, p, target, k=getattr(fam, "k", 6.0), outer=False)
                return np.where(np.isnan(C), np.inf, C)
            # secant in log C on log(L_opt(C) - E), all samples at once: nearly linear in log C
            # (exactly so for C = k N D), so a handful of steps reach machine precision
            reach = target > p["E"]
            gap = np.log(np.where(reach, target - p["E"], 1.0))
            lo, hi = math.log(1e6), math.log(1e40)

            def y(x):
                L = optimum(p, fam, np.exp(x))[2]
                return np.log(np.maximum(L - p["E"], 1e-300)) - gap

            x0, x1 = np.full(len(gap), math.log(1e15)), np.full(len(gap), math.log(1e21))
            y0, y1 = y(x0), y(x1)
            for _ in range(40):
                dx = x1 - x0
                slope = np.where(np.abs(dx) > 1e-14, (y1 - y0) / np.where(dx == 0, 1, dx), -1.0)
                slope = np.where(slope < 0, slope, -1e-2)  # L_opt falls with C
                x2 = np.clip(x1 - y1 / slope, lo, hi)
                x0, y0, x1 = x1, y1, x2
                y1 = y(x1)
                if np.all(np.abs(y1[reach]) < 1e-12):
                    break
            return np.where(reach, np.exp(x1), np.inf)

        names = CHINCHILLA if g.form == "chinchilla" else FRONTIER
        C0 = float(solve({k: g.params[k] for k in names})[0])
        Cs = solve(g.sample_arrays(names))
        lo, hi = percentile_interval(Cs, self.level)  # an unreachable tail (inf) makes hi inf
        return {
            "target_loss": target,
            "C": C0,
            "C_int": (float(lo), float(hi)),
            "p_unreachable": float(np.mean(~np.isfinite(Cs))),
        }


def _p_beats(a: VariantPlan, b: VariantPlan, paired: bool) -> float:
    """P(L_a < L_b) over bootstrap samples: paired by sample index for joint fits, else all pairs."""
    La, Lb = a.L_samples, b.L_samples
    assert La is not None and Lb is not None  # _finish ranks only plans with loss samples
    if paired:
        assert a.sample_ids is not None and b.sample_ids is not None  # every plan carries its group's ids
        ia = {int(s): i for i, s in enumerate(a.sample_ids)}
        idx = [(ia[int(s)], j) for j, s in enumerate(b.sample_ids) if int(s) in ia]
        if idx:
            i, j = np.array(idx).T
            return float(np.mean(La[i] < Lb[j]))
    Lb_sorted = np.sort(Lb)
    # for each L_a, the share of L_b strictly above it
    return float(np.mean(1.0 - np.searchsorted(Lb_sorted, La, side="right") / len(Lb_sorted)))


def _degenerate(g: GroupFit, N0: float, D0: float) -> Optional[str]:
    """Why the point optimum (N0, D0) is no allocation (N0 not a positive finite size, or D0 not finite), in
    words naming what in the fit makes it so; None when it is one."""
    if N0 > 0 and math.isfinite(N0) and math.isfinite(D0):
        return None
    for x, term, other in (("alpha", "N", "D"), ("beta", "D", "N")):
        if not g.params.get(x, 1.0) > 1e-9:
            return (
                f"{x} = {g.params.get(x, 0.0):.3g} (at the search box's bound): the fitted loss does not fall with "
                f"{term}, so the compute-optimal {term} is 0 and every FLOP goes to {other}; N_opt, D_opt and the "
                f"loss there are not identified (check that the runs' {term} varies, or fit a law without it)"
            )
    return (
        f"the fitted law has no finite compute-optimal point (N {N0:.3g}, D {D0:.3g}): N_opt and D_opt are "
        "not identified"
    )


def _e_unidentified(g: GroupFit) -> Optional[str]:
    """Why the group's runs do not identify E (the fit's own rule, fit/identify.e_gap), or None."""
    if "E" in (g.fixed or {}):
        return None
    return identify.e_gap(g.params.get("E"), g.conf_int.get("E"))


def extrapolation(g: GroupFit, pl: VariantPlan) -> dict[str, dict]:
    """How far the plan lies outside what its group's runs measured: {"C" | "N" | "D": {"value", "fitted",
    "factor"}} for the budget more than EXTRAPOLATION_FACTOR past the largest (or below the smallest) fitted
    run, and an identified N_opt or D_opt more than SIZE_EXTRAPOLATION_FACTOR past the fitted sizes or tokens;
    factor > 1: above the range, < 1: below it. Empty inside."""
    out = {}
    cmin, cmax = g.c_range
    lim = {"C": EXTRAPOLATION_FACTOR, "N": SIZE_EXTRAPOLATION_FACTOR, "D": SIZE_EXTRAPOLATION_FACTOR}
    vals = {"C": pl.C, "N": pl.N_opt, "D": pl.D_opt} if pl.identified else {"C": pl.C}
    rng = {"C": (cmin, cmax), **{k: tuple((g.range or {}).get(k) or (math.nan, math.nan)) for k in ("N", "D")}}
    for k, v in vals.items():
        lo, hi = (float(x) for x in rng[k])
        if not (v is not None and math.isfinite(v) and v > 0):
            continue
        if math.isfinite(hi) and v > lim[k] * hi:
            out[k] = {"value": v, "fitted": [lo, hi], "factor": v / hi}
        elif math.isfinite(lo) and v < lo / (1.0 if k == "C" else lim[k]):
            out[k] = {"value": v, "fitted": [lo, hi], "factor": v / lo}
    return out


_EXTRAPOLATION_WORDS = {
    "N": ("N_opt", "the {} fitted size", "train a size nearer it first"),
    "D": ("D_opt", "the {} tokens of a fitted run", "train a run on tokens nearer it first"),
}


def extrapolation_lines(variant: str, ext: dict) -> list[str]:
    """The warnings for `extrapolation`'s dict, one per quantity."""
    from scalelab.numfmt import si

    out = []
    for k, e in ext.items():
        f, (lo, hi) = e["factor"], e["fitted"]
        if k == "C":
            where = f"{f:.3g}x the largest fitted run ({hi:.3g} FLOPs)" if f > 1 else f"below the smallest ({lo:.3g})"
            out.append(
                f"{variant}: C = {e['value']:.3g} is {where}: extrapolation, trust the interval more than the point"
            )
            continue
        name, ref, fix = _EXTRAPOLATION_WORDS[k]
        where = (
            f"{f:.3g}x {ref.format('largest' if k == 'N' else 'most')} ({si(hi)})"
            if f > 1
            else (f"{1 / f:.3g}x below {ref.format('smallest' if k == 'N' else 'fewest')} ({si(lo)})")
        )
        out.append(f"{variant}: {name} {si(e['value'])} is {where}: an extrapolation; {fix}")
    return out


def _finish(planner: Planner, plans: list[VariantPlan], C: Optional[float], warnings: list[str], **kw) -> PlanResult:
    plans.sort(key=lambda p: (math.isnan(p.L_opt), p.L_opt))  # plans with no loss last
    for pl in plans:
        g = planner.fit.groups[pl.group]
        pl.extrapolation = extrapolation(g, pl)
        e_why = _e_unidentified(g) if g.form in ("chinchilla", "frontier", "repetition") else None
        far = pl.extrapolation.get("C", {}).get("factor", 0.0) > 1
        if e_why and far and pl.loss_identified and math.isfinite(pl.L_opt):
            # far past the runs the loss is E plus little: an E the runs do not pin down is no prediction
            pl.loss_identified = False
            warnings.append(
                f"{pl.variant}: the loss at {pl.C:.3g} FLOPs ({pl.extrapolation['C']['factor']:.3g}x the largest "
                f"fitted run) rests on E, and {e_why}: that loss and its interval are not identified; hold E with "
                "--fix E=VALUE from a larger study"
            )
    ranked = len(plans) > 1 and all(q.L_samples is not None for q in plans[:2])  # allocation fits: no loss
    if ranked and not (plans[0].loss_identified and plans[1].loss_identified):
        ranked = False
        warnings.append(
            f"P({plans[0].variant} beats {plans[1].variant}) not shown: the loss of "
            + " and ".join(q.variant for q in plans[:2] if not q.loss_identified)
            + " at this budget is not identified"
        )
    p = _p_beats(plans[0], plans[1], planner.fit.paired) if ranked else None
    for pl in plans:
        warnings += extrapolation_lines(pl.variant, pl.extrapolation)
        if pl.shape is not None and abs(pl.shape.n_rel) > 0.1:
            pl.notes.append(f"nearest good shape has {pl.shape.n_rel:+.0%} params vs N_opt")
    warnings += planner.skipped
    return PlanResult(
        C=C,
        plans=plans,
        p_beats=p,
        paired=planner.fit.paired,
        pairing=pairing(planner.fit),
        level=planner.level,
        convention=planner.fit.convention,
        fit_path=str(planner.fit.path) if planner.fit.path else None,
        fitted_range=planner.fitted_range(),
        warnings=warnings,
        **kw,
    )


def pairing(fit) -> str:
    """How the winner's P(beats) pairs bootstrap samples, in words: only a joint fit is called one."""
    if fit.info.share_e or fit.info.share_exponents:
        return "paired: joint fit"
    if fit.bootstrap.paired:
        return "paired: the same resamples of shared runs"
    if fit.paired:
        return "paired: identical E samples sample by sample"
    return "independent fits"


def _tpp_range(g: GroupFit) -> tuple[float, float]:
    """The fitted points' tokens per parameter: recorded by the fit (identification), else from its runs,
    else the widest the N and D ranges allow."""
    ident = g.identification
    if ident is not None and ident.tpp_min and ident.tpp_max:
        return float(ident.tpp_min), float(ident.tpp_max)
    r = [float(x["tokens"]) / float(x["params"]) for x in g.runs if x.get("tokens") and x.get("params")]
    if r:
        return min(r), max(r)
    rn, rd = (g.range or {}).get("N"), (g.range or {}).get("D")
    if rn and rd:
        return rd[0] / rn[1], rd[1] / rn[0]
    return 0.0, math.inf


def _unique_tokens(g: GroupFit, given: Optional[float]) -> Optional[float]:
    if given:
        return given
    for r in g.runs:
        for k in ("unique_tokens", "corpus_tokens"):
            if r.get(k):
                return float(r[k])
    return None


def plan_budget(
    fit: Any,
    flops: Optional[float] = None,
    *,
    variants: Optional[Sequence[str]] = None,
    gpu_hours: Optional[float] = None,
    gpu: Optional[str] = None,
    mfu: Optional[float] = None,
    inference_tokens: float = 0.0,
    target_loss: Optional[float] = None,
    multiple: Optional[int] = None,
    depth: Optional[int] = None,
    unique_tokens: Optional[float] = None,
    shape: bool = True,
    seed: int = 0,
) -> PlanResult:
    """Plan every variant of `fit` at `flops` training FLOPs (or `gpu_hours` on `gpu`).

    fit: a FitResults, a fits/NAME.json path or its dict (scalelab.fit.as_fit), or a Planner. Returns a
    PlanResult ranked by predicted loss.
    """
    planner = fit if isinstance(fit, Planner) else Planner(fit, variants, multiple, depth, seed=seed)
    if flops is None and gpu_hours is None and target_loss is None:
        raise ScalelabError("give a budget: --flops C, --gpu-hours H, or --target-loss L")
    if flops is not None and gpu_hours is not None:
        raise ScalelabError(
            "give either --flops or --gpu-hours, not both: the GPU-hours column is reported with --flops"
        )
    if flops is not None and not (flops > 0 and math.isfinite(flops)):
        raise ScalelabError(f"--flops {flops} must be a positive number of FLOPs, e.g. 1e21")
    if gpu_hours is not None and not gpu_hours > 0:
        raise ScalelabError(f"--gpu-hours {gpu_hours} must be positive")
    if inference_tokens < 0:
        raise ScalelabError(f"--inference-tokens {inference_tokens} must be >= 0")
    _check_repetition(planner, unique_tokens, inference_tokens, target_loss)
    if target_loss is not None:
        if not (target_loss > 0 and math.isfinite(target_loss)):
            raise ScalelabError(f"--target-loss {target_loss:g} must be a positive loss in nats, e.g. 2.5")
        alloc = [g.variant for g in planner.groups if g.form == "allocation"]
        if alloc:
            raise ScalelabError(
                f"--target-loss needs a loss law, and {', '.join(alloc)} is an approach 1/2 allocation fit "
                "(N_opt, D_opt only): plan with --flops, or fit with --approach 3"
            )
        below = [g for g in planner.groups if not target_loss > g.params.get("E", 0.0)]
        if below:
            g = max(below, key=lambda h: h.params["E"])
            raise ScalelabError(
                f"--target-loss {target_loss:g} is at or below {g.variant}'s fitted irreducible loss E = "
                f"{g.params['E']:.3g}: no compute reaches it; choose a target above E (or leave {g.variant} out)"
                + (f" (but the fit warns that {e}: hold E with --fix E=VALUE)" if (e := _e_unidentified(g)) else "")
            )
    warnings: list[str] = []
    plans: list[VariantPlan] = []
    for g in planner.groups:
        rate, source = planner.throughput(g, gpu or "h100", mfu) if (gpu_hours is not None or gpu) else (None, "")
        if flops is not None:
            C = flops
        elif gpu_hours is not None:
            if rate is None:
                raise ScalelabError(f"{g.variant}: no throughput to turn GPU-hours into FLOPs: pass --mfu or --flops")
            C = gpu_hours * 3600 * rate
        else:
            C = None
        ut = _unique_tokens(g, unique_tokens)
        U = ut if g.form == "repetition" else None  # the data-constrained optimum (plan/repetition.py)
        if C is None:  # target loss only
            assert target_loss is not None  # a budget was required above
            info = planner.compute_for_loss(g, target_loss)
            _check_target_within(planner, g, target_loss, info["C"])
            C = info["C"] if math.isfinite(info["C"]) else g.c_range[1]
            pl = planner.allocate(g, C, inference_tokens, shape=shape, check_low=False, unique_tokens=U)
        else:
            pl = planner.allocate(g, C, inference_tokens, shape=shape, unique_tokens=U)
        D_pl = pl.shape.tokens if pl.shape is not None else pl.D_opt
        pl.lr = planner.learning_rate(g, pl.shape.params if pl.shape is not None else pl.N_opt, D_pl)
        pl.batch = planner.batch_size(g, D_pl)
        if target_loss is not None:
            pl.target = planner.compute_for_loss(g, target_loss)
            if rate:
                pl.target["gpu_hours"] = pl.target["C"] / rate / 3600
        if not rate and source:  # why no GPU-hours: said once by the table
            pl.throughput_source = source
        if rate:
            pl.throughput, pl.throughput_source = rate, source
            pl.gpu_hours = pl.C / rate / 3600
            peak = hardware.peak_bf16(gpu or "h100")
            if peak and rate > peak:
                warnings.append(
                    f"{g.variant}: throughput {rate:.3g} FLOP/s exceeds the {gpu or 'h100'} peak {peak:.3g} "
                    "(MFU > 100%): check the runs' tokens_per_s and device"
                )
        if inference_tokens and g.form == "chinchilla":
            co = planner.allocate(g, C, 0.0, shape=False, check_low=False)
            fam = planner.families[g.name]
            f_co = math.exp(float(fam.log_flops_per_token(math.log(co.N_opt))))
            D_co = C / f_co - inference_tokens / 3.0  # same lifetime budget with the compute-optimal N
            L_co = float(laws.predict("chinchilla", g.params, N=co.N_opt, D=D_co)) if D_co > 0 else float("inf")
            f_pl = math.exp(float(fam.log_flops_per_token(math.log(pl.N_opt))))
            pl.inference = {
                "inference_tokens": inference_tokens,
                "lifetime_flops": pl.C,
                "train_flops": f_pl * pl.D_opt,
                "inference_flops": f_pl / 3.0 * inference_tokens,
                "compute_optimal_N": co.N_opt,
                "compute_optimal_tokens_per_param": co.tokens_per_param,
                "tokens_per_param_over_compute_optimal": pl.tokens_per_param / co.tokens_per_param,
                "N_over_compute_optimal": pl.N_opt / co.N_opt,
                "loss_if_compute_optimal_N": L_co,
            }
        if U is None and ut and math.isfinite(pl.D_opt) and pl.D_opt > ut:
            warnings.append(
                f"{g.variant}: D_opt = {pl.D_opt:.3g} tokens exceeds the corpus's {ut:.3g} unique "
                f"tokens: data would repeat ({pl.D_opt / ut:.1f} epochs), which the {g.form} law counts as new; a "
                "data-constrained optimum needs the repetition law (fit --form repetition on runs that repeat data)"
            )
        plans.append(pl)
    return _finish(
        planner,
        plans,
        flops,
        warnings,
        gpu=(gpu or "h100") if (gpu_hours or gpu) else None,
        gpu_hours=gpu_hours,
        inference_tokens=inference_tokens,
        target_loss=target_loss,
    )


def _check_target_within(planner: Planner, g: GroupFit, target: float, C: float) -> None:
    """A target loss that the compute-optimal plan reaches below the group's smallest fitted run is above every
    loss the fit covers (any model there reaches it): a one-line ScalelabError saying so."""
    cmin = g.c_range[0]
    if not (math.isfinite(cmin) and math.isfinite(C) and C < cmin):
        return
    L = planner.allocate(g, cmin, shape=False, check_low=False).L_opt if g.form == "chinchilla" else math.nan
    at = f"; the compute-optimal loss there is {L:.3g}" if math.isfinite(L) else ""
    raise ScalelabError(
        f"--target-loss {target:g} is above every loss {g.variant}'s fit covers: it is reached below its smallest "
        f"fitted run ({cmin:.3g} FLOPs{at}), so any model the fit covers reaches it; choose a lower target"
    )


def _check_repetition(planner: Planner, U: Optional[float], inference_tokens: float, target_loss) -> None:
    """--unique-tokens is a positive finite count, and a repetition law is planned at a budget, for training
    only (its optimum is a search per draw, not a closed form): a one-line ScalelabError otherwise."""
    from scalelab.plan.repetition import check_unique

    if U is not None:
        check_unique(U)
    rep = ", ".join(g.variant for g in planner.groups if g.form == "repetition")
    if rep and target_loss is not None:
        raise ScalelabError(f"--target-loss is not available for the repetition law ({rep}): plan with --flops")
    if rep and U is not None and inference_tokens:
        raise ScalelabError(
            f"--inference-tokens with --unique-tokens is not available for the repetition law ({rep}): plan the "
            "data-constrained optimum for training alone"
        )


def sweep(
    fit: Any,
    c_min: float,
    c_max: float,
    n: int = 9,
    *,
    variants: Optional[Sequence[str]] = None,
    inference_tokens: float = 0.0,
    require_samples: bool = True,
):
    """Allocation over log-spaced budgets -> DataFrame (variant, C, N_opt, N_lo, N_hi, D_opt, D_lo, D_hi,
    L_opt, L_lo, L_hi, extrapolated). Shapes are not chosen. Budgets below the fitted range are allowed
    here and flagged as extrapolated, like those more than 10x above it.

    fit: as for plan_budget. require_samples=False: a fit without bootstrap samples gives the point
    allocation with NaN intervals (the figures draw it without bands) instead of an error.
    """
    import pandas as pd

    if not (0 < c_min <= c_max) or n < 1:
        raise ScalelabError(f"sweep needs 0 < c_min <= c_max and n >= 1, got {c_min:g}:{c_max:g} with {n} points")
    planner = fit if isinstance(fit, Planner) else Planner(fit, variants, require_samples=require_samples)
    rows = []
    for C in np.geomspace(c_min, c_max, n):
        for g in planner.groups:
            cmin = g.c_range[0]
            try:
                p = planner.allocate(g, float(C), inference_tokens, shape=False, check_low=False)
            except ScalelabError:  # no buildable model at this budget: a gap in the table, not an error
                rows.append(dict(variant=g.variant, C=float(C), extrapolated=True, identified=False))
                continue
            row = p.row()
            far = p.extrapolated or bool(extrapolation(g, p)) or (math.isfinite(cmin) and C < cmin)
            row.update(C=float(C), extrapolated=bool(far))
            rows.append(row)
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS)


# ---- learning rate and batch size (fit/hyper.py's laws) ---------------------------------------------------------
def _finite(x) -> TypeGuard[float]:
    return x is not None and math.isfinite(x) and x > 0


def learning_rate(g: GroupFit, N: float, D: Optional[float] = None, level: float = 0.95) -> Optional[dict]:
    """Planner.learning_rate for any group, also one without a loss law."""
    from scalelab.fit import hyper

    law = g.lr_law
    if law is None or not _finite(N) or (law.has_D and not _finite(D)):
        return None
    out = hyper.predict_lr(law, N, hyper.law_samples(g, "lr"), level, D=D if law.has_D else None)
    out.update(N=float(N), D=float(D) if _finite(D) else None)
    return out


def batch_size(g: GroupFit, D: float, level: float = 0.95) -> Optional[dict]:
    """Planner.batch_size for any group, also one without a loss law."""
    from scalelab.fit import hyper

    law = g.batch_law
    if law is None or not _finite(D):
        return None
    out = hyper.predict_batch(law, D, hyper.law_samples(g, "batch"), level)
    out["D"] = float(D)
    return out


def loss_law_refused(g: GroupFit) -> Optional[str]:
    """Why the group has no loss law (a sweep whose design the fit refused; fit/procedure.py), else None."""
    if g.loss_law_refused is not None or g.form == "none":
        return g.loss_law_refused or "refused"
    return None


def has_loss_law(fit: Any, variants: Optional[Sequence[str]] = None) -> bool:
    """Whether any group (of `variants`) has a law the planner plans from (PLANNED: chinchilla, frontier,
    allocation, repetition)."""
    return any(g.form in PLANNED for g in as_fit(fit) if not variants or g.variant in variants or g.name in variants)


def sweep_recommendations(fit: Any, variants: Optional[Sequence[str]] = None) -> list[dict]:
    """For each group (of `variants`, default all) whose loss law was refused but that has an lr or batch law:
    {"variant", "group", "why", "lr_law", "batch_law", "lines", "rows"}, rows one per swept cell of its lr
    law (each size at its largest budget, or every (N, D) for a law in D): {"N", "D", "d_model", "lr_measured"
    (the sweep's optimum), "at_edge" (at an end of the sweep), "lr" (the law's {"lr", "lo", "hi", ...}),
    "batch" (the batch law's at D, or None)}. The plan a loss law would give is refused; these are what the
    sweep itself says."""
    from scalelab.fit import hyper

    fit = as_fit(fit)
    out = []
    for g in fit:
        why = loss_law_refused(g)
        if why is None or (variants and g.variant not in variants and g.name not in variants):
            continue
        law, bs = g.lr_law, g.batch_law
        widths = {}  # the fitted runs' widths by N (run-store fits)
        for r in g.runs:
            if r.get("model") and r.get("params"):
                widths[round(math.log(float(r["params"])), 6)] = r["model"].get("d_model")
        rows = []
        cells = law.optima if law is not None else bs.optima if bs is not None else []
        for c in cells:
            rows.append(
                {
                    "N": c["N"],
                    "D": c["D"],
                    "d_model": widths.get(round(math.log(c["N"]), 6)),
                    "lr_measured": c.get("lr_opt"),
                    "at_edge": bool(c.get("at_edge")),
                    "lr": learning_rate(g, c["N"], c["D"], fit.level),
                    "batch": batch_size(g, c["D"], fit.level),
                }
            )
        out.append(
            {
                "variant": g.variant,
                "group": g.name,
                "why": why,
                "lr_law": _law_summary(law, ("formula", "coef", "exp", "exp_D", "conf_int")),
                "batch_law": _law_summary(bs, ("formula", "coef", "exp", "conf_int")),
                "lines": hyper.law_lines(g.variant, law, bs),
                "rows": rows,
            }
        )
    return out


def _law_summary(law, keys) -> Optional[dict]:
    return {k: getattr(law, k) for k in keys} if law is not None else None
