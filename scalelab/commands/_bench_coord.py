"""`scalelab bench coord-check`: the muP coordinate check (implementation in scalelab/bench/coord.py)."""

from __future__ import annotations

from typing import Optional

import typer

from scalelab.commands import _bench_options as O
from scalelab.commands._bench_common import int_list, show
from scalelab.commands._common import stdout_console, user_errors


@user_errors
def coord_check(
    widths: str = O.COORD_WIDTHS,
    kinds: Optional[str] = O.COORD_KINDS,
    steps: int = O.COORD_STEPS,
    lr: float = O.COORD_LR,
    seed: int = O.COORD_SEED,
    name: str = O.COORD_NAME,
    out: str = O.OUT,
    as_json: bool = O.COORD_JSON,
) -> None:
    """muP coordinate check: RMS change of each layer type's output after a few Adam steps vs width, SP and muP
    (flat under muP, growing under SP); slopes of log change vs log width, and a figure."""
    import json as _json
    import os

    from scalelab import structures
    from scalelab.bench import coord as C
    from scalelab.bench import throughput as B
    from scalelab.errors import ScalelabError

    B.check_name(name)
    w = int_list(widths, "--widths")
    if len(w) < 2 or any(x < 8 or x % 8 for x in w):
        raise ScalelabError(f"--widths {widths!r}: give at least two multiples of 8 (4 heads, even head_dim)")
    ks = [k.strip() for k in kinds.split(",") if k.strip()] if kinds else list(structures.names())
    bad = [k for k in ks if k not in structures.names()]
    if bad or not ks:
        raise ScalelabError(f"--kinds {kinds!r}: use some of {', '.join(structures.names())}")
    if steps < 1 or not lr > 0:
        raise ScalelabError("--steps and --lr must be positive")
    log = lambda k, p, x: typer.echo(f"{k} {p} d={x}", err=True)
    res = C.coord_check(widths=w, kinds=ks, steps=steps, lr=lr, seed=seed, progress=log)
    delta = {(r["kind"], r["param"], r["stat"], r["width"]): r["delta"] for r in res["rows"]}
    rows = [
        dict(s, **{f"d{x}": delta[s["kind"], s["param"], s["stat"], x] for x in w}) for s in res["slopes"]
    ]  # one row per (kind, param, stat): slope and the RMS change at each width
    columns = ["kind", "param", "stat", "slope"] + [f"d{x}" for x in w]
    meta = {k: v for k, v in res.items() if k not in ("slopes", "rows")}
    meta["points"] = res["rows"]  # per (kind, param, width, stat): act and delta
    os.makedirs(out, exist_ok=True)
    paths = B.write_results(out, name, "coord-check", rows, columns, meta)
    png = os.path.join(out, f"{name}.png")
    C.figure(res, png)
    if as_json:
        typer.echo(_json.dumps({"meta": {k: v for k, v in meta.items() if k != "points"}, "rows": rows}))
    else:
        show(rows, columns, f"coordinate check: RMS change after {steps} Adam steps, lr {lr:g}", paths)
        stdout_console().print(f"figure: {png}")
