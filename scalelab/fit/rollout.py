"""The rollout check: fit the law on the k smallest sizes, predict the next size, for growing k.

A scaling law is used to extrapolate; a holdout of the largest size tests that once, the rollout tests it at
every step of the design (the check researchers run before trusting an extrapolation). "Size" is the model
size N, or the token count D for L(D) fits at one N. Each step refits the group's form (with the same
--fix values, loss and weights) by the point fit of solver.fit_point, and reports the relative error of
the predicted loss on the next size's points: mean |error|, max |error| and the mean signed error
(positive: the law over-predicts the loss of the larger model).
"""

from __future__ import annotations

import numpy as np

from scalelab.errors import ScalelabError
from scalelab.fit import laws
from scalelab.fit.groups import GroupData, distinct, point_weights
from scalelab.fit.identify import MIN_LEVELS, choose
from scalelab.fit.objective import make_problem
from scalelab.fit.solver import fit_point, fix_parameters


def predict_held_out(g: GroupData, train: np.ndarray, test: np.ndarray, form_name: str, spec) -> dict:
    """Point-fit the group's form on the `train` points (spec's loss, weights and --fix values) and score
    its prediction of the `test` points: {"params", "mean_rel_error", "max_rel_error",
    "mean_signed_rel_error"} (positive: the law over-predicts the held-out loss). Used by the rollout
    and by --holdout largest."""
    form = laws.FORMS[form_name]
    sub = g.subset(train)
    cols = sub.cols()
    prob = make_problem(
        form, cols, sub.L, point_weights(sub, spec.weights), spec.loss, spec.delta, spec.overestimate_penalty
    )
    prob.linear_e = spec.search != "starts"
    fix_parameters(prob, form, {k: v for k, v in spec.fixed.items() if k in form.params})
    pt = fit_point(prob, form, cols, sub.L)
    p = {k: float(v) for k, v in laws.to_natural(form, pt.theta[0]).items()}
    pred = laws.predict(form, p, N=g.N[test], D=g.D[test], C=g.C[test])
    rel = (pred - g.L[test]) / g.L[test]
    return {
        "params": p,
        "mean_rel_error": float(np.mean(np.abs(rel))),
        "max_rel_error": float(np.max(np.abs(rel))),
        "mean_signed_rel_error": float(np.mean(rel)),
    }


def _levels(x: np.ndarray, rtol: float = 1e-6) -> list[float]:
    s = np.sort(np.unique(np.asarray(x, float)))
    out = [float(s[0])]
    for v in s[1:]:
        if v > out[-1] * (1 + rtol):
            out.append(float(v))
    return out


def rollout(g: GroupData, form_name: str, spec) -> dict:
    """The rollout table of one group (module docstring): {"rule", "key", "rows": [...]}. A step whose k
    smallest sizes cannot identify the form (too few sizes or points) is listed with its reason."""
    what = "D" if form_name == "data" else "N"
    key = g.D if what == "D" else g.N
    levels = _levels(key)
    rows = []
    fixed = spec.fixed
    for k in range(MIN_LEVELS, len(levels)):
        train = key <= levels[k - 1] * (1 + 1e-6)
        test = np.abs(key / levels[k] - 1) <= 1e-6
        row: dict = {"k": k, "fit_up_to": levels[k - 1], "predict": levels[k], "n_fit": int(train.sum())}
        row["n_predicted"] = int(test.sum())
        sub = g.subset(train)
        try:
            choose(sub.N, sub.D, sub.C, form_name, tuple(fixed.items()), g.name)
        except ScalelabError as e:
            row["note"] = str(e).split(": ", 1)[-1]
            rows.append(row)
            continue
        scores = predict_held_out(g, train, test, form_name, spec)
        scores.pop("params")
        row.update(scores)
        rows.append(row)
    rule = f"fit on the k smallest {'token counts' if what == 'D' else 'sizes'}, predict the next"
    out = {"rule": rule, "key": what, "n_levels": distinct(key), "rows": rows}
    if not rows:
        out["note"] = f"{distinct(key)} sizes: a rollout needs at least {MIN_LEVELS + 1}"
    return out
