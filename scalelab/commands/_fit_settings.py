"""The settings of `scalelab fit` as FitSpec fields: the options' defaults, a --spec TOML file over them, and
the options given on the command line over both."""

from __future__ import annotations

from scalelab.errors import ScalelabError

# the options that are FitSpec fields (each sets the fields `_fields` names)
SPEC_OPTIONS = (
    "by",
    "form",
    "approach",
    "slice_window",
    "bootstrap",
    "seed",
    "level",
    "loss",
    "delta",
    "weights",
    "overestimate_penalty",
    "share_e",
    "holdout",
    "compare",
    "at_flops",
    "share_exponents",
    "share_col",
    "all_checkpoints",
    "drop_top_loss",
    "n_col",
    "d_col",
    "loss_col",
    "flops_col",
    "run_col",
    "unique_col",
    "starts",
    "fix",
    "rollout",
    "no_envelope",
)


def budgets(text):
    """--at-flops "1e21,1e22" -> [1e21, 1e22] (None when not given)."""
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()] or None
    except ValueError:
        raise ScalelabError(f"--at-flops {text!r}: give FLOPs as numbers, comma-separated, e.g. 1e21,1e22") from None


def _fields(option: str, v) -> dict:
    """The FitSpec fields an option sets (its value as the field takes it)."""
    if option == "by":
        return {"by": [c.strip() for c in v.split(",") if c.strip()] if v else None}
    if option == "compare":
        return {"compare": [tuple(x.strip() for x in c.split(",")) for c in v] if v else None}
    if option == "at_flops":
        b = budgets(v)
        return {"at_flops": b, "c_ref": b[0] if b else None}
    if option == "fix":
        return {"fix": tuple(v or ())}
    renamed = {"flops_col": "c_col", "starts": "n_starts"}
    if option == "no_envelope":
        return {"envelope": not v}
    return {renamed.get(option, option): v}


def settings(ctx, values: dict, spec_file) -> dict:
    """FitSpec fields: option defaults < the --spec file < options given on the command line. The budget of
    the compute-optimal N, D (c_ref) is the first --at-flops budget unless the file names it."""
    from scalelab.fit.spec import read_toml

    file = read_toml(spec_file) if spec_file is not None else {}
    given = [o for o in SPEC_OPTIONS if _given(ctx, o)]
    out = {}
    for o in SPEC_OPTIONS:
        if o not in given:
            out.update(_fields(o, values[o]))
    out.update(file)
    for o in given:
        out.update(_fields(o, values[o]))
    if isinstance(out.get("by"), str):
        out["by"] = [out["by"]]
    if out.get("c_ref") is None and out.get("at_flops"):
        out["c_ref"] = out["at_flops"][0]
    return out


def _given(ctx, option: str) -> bool:
    """The option was set by the user (command line or environment), not left at its default. By the source's
    name: typer may bring its own copy of click's ParameterSource."""
    source = ctx.get_parameter_source(option)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
