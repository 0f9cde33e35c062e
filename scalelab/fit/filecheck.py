"""The fit file's records checked as `scalelab fit` writes them: a hand-edited or torn value is refused in one
line here, not deep in a reader."""

from __future__ import annotations

import math

from scalelab.errors import ScalelabError
from scalelab.fit import laws


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def edited(where, what: str) -> ScalelabError:
    return ScalelabError(f"{where}: {what}: the fit file was edited or torn; re-run `scalelab fit` to write it again")


def check_group(g: dict, name: str, where) -> None:
    """A group record as `scalelab fit` writes it: every parameter of its law a finite number, numbers (or
    null: NaN) where numbers go. A hand-edited value is refused here, in one line, not deep in a reader."""
    form, params = g["form"], g["params"]
    if not isinstance(form, str):
        raise edited(where, f"group {name!r} has form {form!r}, not a name")
    if not isinstance(params, dict):
        raise edited(where, f"group {name!r}: 'params' is not an object")
    need = laws.FORMS[form].params if form in laws.FORMS else laws.ALLOCATION if form == "allocation" else ()
    missing = [k for k in need if k not in params]
    if missing:
        raise edited(where, f"group {name!r} lacks parameter(s) {', '.join(missing)} of its {form} law")
    for k, v in params.items():
        if not (_is_num(v) and math.isfinite(v)) and not (v is None and k not in need):
            raise edited(where, f"group {name!r}: parameter {k} is {v!r}, not a finite number")
    if not (g.get("residual_sd") is None or _is_num(g["residual_sd"])):
        raise edited(where, f"group {name!r}: residual_sd is {g['residual_sd']!r}, not a number")
    der = g.get("derived") or {}
    if not isinstance(der, dict):
        raise edited(where, f"group {name!r}: 'derived' is not an object")
    for k, v in der.items():
        if not (v is None or _is_num(v)):
            raise edited(where, f"group {name!r}: derived {k} is {v!r}, not a number")
    for key in ("conf_int", "derived_conf_int", "range"):
        val = g.get(key) or {}
        if not isinstance(val, dict):
            raise edited(where, f"group {name!r}: {key!r} is not an object")
        for k, v in val.items():
            if not (isinstance(v, list) and len(v) == 2 and all(x is None or _is_num(x) for x in v)):
                raise edited(where, f"group {name!r}: {key} {k} is {v!r}, not [lower, upper]")
    for key in ("n_points", "n_runs", "n_sizes"):
        if not (g.get(key) is None or _is_num(g[key])):
            raise edited(where, f"group {name!r}: {key} is {g[key]!r}, not a number")
    for key, typ in (("key", dict), ("diagnostics", dict), ("warnings", list), ("runs", list)):
        if g.get(key) is not None and not isinstance(g[key], typ):
            raise edited(where, f"group {name!r}: {key!r} is not a{'n object' if typ is dict else ' list'}")
    if any(not isinstance(r, dict) for r in g.get("runs") or []):
        raise edited(where, f"group {name!r}: an entry of 'runs' is not an object")


def check_top(d: dict, where) -> None:
    """The top-level records readers take numbers from."""
    b = d.get("bootstrap")
    if b is not None and not isinstance(b, dict):
        raise edited(where, "'bootstrap' is not an object")
    b = b or {}
    if not (b.get("level") is None or (_is_num(b["level"]) and 0 < b["level"] < 1)):
        raise edited(where, f"bootstrap level is {b['level']!r}, not a number between 0 and 1")
    if not (b.get("n") is None or _is_num(b["n"])):
        raise edited(where, f"bootstrap n is {b['n']!r}, not a number")
    for key, typ in (("columns", dict), ("comparisons", list), ("by", list), ("spec", dict)):
        if d.get(key) is not None and not isinstance(d[key], typ):
            raise edited(where, f"{key!r} is not a{'n object' if typ is dict else ' list'}")
    if any(not isinstance(c, dict) for c in d.get("comparisons") or []):
        raise edited(where, "an entry of 'comparisons' is not an object")
    for key in ("samples", "points"):
        if d.get(key) is not None and not isinstance(d[key], str):
            raise edited(where, f"{key!r} is {d[key]!r}, not a file name")
        if d.get(f"{key}_sha256") is not None and not isinstance(d[f"{key}_sha256"], str):
            raise edited(where, f"'{key}_sha256' is {d[f'{key}_sha256']!r}, not a hex digest")
