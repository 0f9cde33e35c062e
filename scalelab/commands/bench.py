"""`scalelab bench ...`: benchmarks (fit speed, CPU/GPU training throughput, FFN speed-ups).

Results go to bench/NAME.json plus a markdown table; never timed inside unit tests."""

import typer

app = typer.Typer(
    help="Benchmarks: fit speed, training throughput and MFU, structured FFN speed-ups. Writes bench/NAME.json and a "
    "markdown table.",
    no_args_is_help=True,
)


# ---- bench ffn / bench train (structured layers; implementation in scalelab/bench.py) ---------------
from typing import Optional as _Optional  # noqa: E402

from scalelab.commands._common import stdout_console  # noqa: E402
from scalelab.commands._common import user_errors as _user_errors  # noqa: E402


def _int_list(text: str, what: str) -> list:
    from scalelab.errors import ScalelabError

    try:
        vals = [int(float(v)) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ScalelabError(f"{what} {text!r}: give comma-separated integers, e.g. 256,512") from None
    if not vals or any(v < 1 for v in vals):
        raise ScalelabError(f"{what} {text!r}: give positive integers, e.g. 256,512")
    return vals


def _show(rows: list, columns: list, title: str, paths: tuple) -> None:
    from rich.table import Table

    from scalelab import numfmt

    t = Table(title=title)
    for c in columns:
        t.add_column(c, justify="left" if c == "variant" else "right")
    for r in rows:
        t.add_row(*[numfmt.cell(r.get(c)) for c in columns])
    con = stdout_console()
    con.print(t)
    con.print(f"wrote {paths[0]} and {paths[1]}")


@app.command("ffn")
@_user_errors
def ffn(
    widths: _Optional[str] = typer.Option(
        None,
        "--widths",
        help="Comma-separated d_model values (FFN d -> 4d -> d). Default: 256,512,1024 on CPU; 1024,2048,4096,5120 "
        "on CUDA.",
    ),
    tokens: _Optional[int] = typer.Option(
        None, "--tokens", help="Tokens per call (rows of x). Default 2048 on CPU, 30720 on CUDA (the seeds' ~30K)."
    ),
    fractions: str = typer.Option(
        "63,32", "--fractions", help="Kept shares of the FFN params in percent (the seeds' 63% and 32% settings)."
    ),
    kinds: _Optional[str] = typer.Option(
        None, "--kinds", help="Structures to time against dense, comma-separated (default: every registered kind)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (CUDA uses bf16 autocast; CPU float32)."),
    repeats: int = typer.Option(5, "--repeats", help="Timed calls per measurement (the best is kept)."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile each FFN first."),
    name: str = typer.Option("ffn", "--name", help="Results go to OUT/NAME.json and OUT/NAME.md."),
    out: str = typer.Option("bench", "--out", help="Output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON instead of a table."),
) -> None:
    """FFN-only forward and forward+backward time of each structure at 63% / 32% vs dense."""
    import json as _json

    from scalelab.bench import throughput as B
    from scalelab.errors import ScalelabError

    B.check_name(name)
    dev = B.pick_device(device)
    cuda = dev.type == "cuda"
    w = _int_list(widths, "--widths") if widths else ([1024, 2048, 4096, 5120] if cuda else [256, 512, 1024])
    n_tok = tokens or (30720 if cuda else 2048)
    fr = [v / 100 for v in _int_list(fractions, "--fractions")]
    if any(not 0 < f < 1 for f in fr):
        raise ScalelabError(f"--fractions {fractions!r}: give percents between 1 and 99")
    ks = [k.strip() for k in kinds.split(",") if k.strip()] if kinds is not None else list(B.KINDS)
    bad = [k for k in ks if k not in B.KINDS]
    if bad or not ks:
        raise ScalelabError(f"--kinds {kinds!r}: use some of {', '.join(B.KINDS)}")
    if repeats < 1 or n_tok < 1:
        raise ScalelabError("--repeats and --tokens must be positive")
    log = lambda m: typer.echo(m, err=True)
    rows, meta = B.bench_ffn(w, n_tok, fr, ks, device=str(dev), repeats=repeats, compile=compile, log=log)
    paths = B.write_results(out, name, "ffn", rows, B.FFN_COLUMNS, meta)
    if as_json:
        typer.echo(_json.dumps({"meta": meta, "rows": rows}, default=str))
    else:
        _show(rows, B.FFN_COLUMNS, f"FFN speed ({meta['device']}, {meta['dtype']})", paths)


@app.command("train")
@_user_errors
def train(
    preset: str = typer.Option("small", "--preset", "-p", help="Model shape (scalelab inspect lists the numbers)."),
    variants: str = typer.Option(
        "dense,lowrank-63,lowrank-32,blockdense-63,blockshuffle-63",
        "--variants",
        help="Comma-separated variants: dense, KIND-63, KIND-32, KIND with its sizes (lowrank-rR, blockdense-bBrR, "
        "blockshuffle-bB, ...: scalelab/structures.py), lpa-rR, gqa-kvK, sg, mup, joined with + (e.g. "
        "lowrank-32+gqa-kv2; scalelab/variant.py).",
    ),
    batch: int = typer.Option(16, "--batch", help="Sequences per step."),
    seq_len: _Optional[int] = typer.Option(None, "--seq-len", help="Sequence length (default: the preset's)."),
    steps: int = typer.Option(5, "--steps", help="Timed optimizer steps (the best is kept)."),
    warmup: int = typer.Option(2, "--warmup", help="Untimed steps first."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (CUDA: bf16 autocast and fused AdamW)."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    name: str = typer.Option("train", "--name", help="Results go to OUT/NAME.json and OUT/NAME.md."),
    out: str = typer.Option("bench", "--out", help="Output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON instead of a table."),
) -> None:
    """Train-step tokens/s and MFU per variant at a fixed shape (MFU over a measured matmul peak on CPU)."""
    import json as _json

    from scalelab.bench import throughput as B
    from scalelab.errors import ScalelabError
    from scalelab.presets import get_preset

    B.check_name(name)
    base = get_preset(preset)
    if seq_len is not None:
        base = base.replace(seq_len=seq_len)
    if batch < 1 or steps < 1 or warmup < 0:
        raise ScalelabError("--batch and --steps must be positive, --warmup not negative")
    vs = [v.strip() for v in variants.split(",") if v.strip()]
    if not vs:
        raise ScalelabError("--variants is empty: e.g. dense,lowrank-63")
    B.pick_device(device)
    for v in vs:  # every variant parses before anything is timed
        B.parse_variant(base, v)
    log = lambda m: typer.echo(m, err=True)
    rows, meta = B.bench_train(base.validate(), vs, batch, steps, warmup, device=device, compile=compile, log=log)
    paths = B.write_results(out, name, "train", rows, B.TRAIN_COLUMNS, meta)
    if as_json:
        typer.echo(_json.dumps({"meta": meta, "rows": rows}, default=str))
    else:
        _show(
            rows,
            B.TRAIN_COLUMNS,
            f"train steps ({meta['device']}, {meta['dtype']}, peak {meta['peak_flops']:.3g} FLOP/s: "
            f"{meta['peak_source']})",
            paths,
        )


# ---- bench coord-check (muP coordinate check; implementation in scalelab/bench/coord.py) -----------------
@app.command("coord-check")
@_user_errors
def coord_check(
    widths: str = typer.Option("32,64,128,256,512", "--widths", help="Comma-separated d_model values."),
    kinds: _Optional[str] = typer.Option(
        None, "--kinds", help="Structures (FFN kept share 32%), comma-separated (default: dense and every kind)."
    ),
    steps: int = typer.Option(4, "--steps", help="Adam steps on the fixed batch."),
    lr: float = typer.Option(1e-2, "--lr", help="Peak lr (muP: of a square layer of the base width 64)."),
    seed: int = typer.Option(0, "--seed", help="Init and batch seed."),
    name: str = typer.Option("coord_check", "--name", help="Results go to OUT/NAME.json, .md and .png."),
    out: str = typer.Option("bench", "--out", help="Output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the slopes as JSON instead of a table."),
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
    w = _int_list(widths, "--widths")
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
        _show(rows, columns, f"coordinate check: RMS change after {steps} Adam steps, lr {lr:g}", paths)
        stdout_console().print(f"figure: {png}")


# ---- bench fit (scaling-law fit speed; implementation in scalelab/benchfit.py) ------------------------
@app.command("fit")
@_user_errors
def fit(
    data: _Optional[str] = typer.Option(
        None, "--data", help="Epoch's chinchilla_epoch.csv (default: ../shared/data/chinchilla_epoch.csv)."
    ),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Resamples in our timed fit."),
    repeats: int = typer.Option(3, "--repeats", help="Timed repeats of our fit (median reported)."),
    ref_starts: _Optional[int] = typer.Option(
        None, "--ref-starts", help="Use about this many of the reference grid's 4,500 starts (default: all)."
    ),
    multi: bool = typer.Option(
        True, "--multi/--no-multi", help="Also time the multi-group case (Porian et al.'s 10 configurations)."
    ),
    multi_data: _Optional[str] = typer.Option(
        None,
        "--multi-data",
        help="CSV of the multi-group case, columns N, D, C, loss, group, run (default: "
        "../shared/data/external/porian.csv).",
    ),
    coverage: int = typer.Option(
        0,
        "--coverage",
        help="Also check interval coverage on this many synthetic data sets from a known law (e.g. 50).",
    ),
    name: str = typer.Option("fit", "--name", help="Results go to OUT/NAME.json and OUT/NAME.md."),
    out: str = typer.Option("bench", "--out", help="Output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON instead of a table."),
) -> None:
    """Time the vectorised fit (point + bootstrap) against the exhaustive 4,500-start scipy L-BFGS-B grid, and the
    multi-group case (10 groups) beside it, intervals checked against converged 8-start references."""
    import json as _json
    from pathlib import Path

    from scalelab.bench import fit as BF

    log = lambda m: typer.echo(m, err=True)
    if bootstrap < 1 or repeats < 1:
        from scalelab.errors import ScalelabError

        raise ScalelabError("--bootstrap and --repeats must be positive")
    if multi:  # a bad multi-group input fails before anything is timed
        BF.load_multi(Path(multi_data) if multi_data else BF.default_multi_data())
    rows, meta = BF.run(data, bootstrap, repeats, ref_starts, log=log)
    if multi:
        mrows, mmeta = BF.run_multi(multi_data, bootstrap, repeats, log=log)
        meta["multi"] = dict(
            mmeta,
            rows=mrows,
            ratio_vs_single_wall=mrows[0]["wall_s"] / rows[0]["wall_s"],
            ratio_vs_single_cpu=mrows[0]["cpu_s"] / rows[0]["cpu_s"],
        )
    if coverage > 0:
        meta["synthetic_coverage"] = BF.coverage(coverage)
        log(f"synthetic coverage: {meta['synthetic_coverage']}")
    paths = BF.write(out, name, rows, meta)
    if as_json:
        typer.echo(_json.dumps({"meta": meta, "rows": rows}, default=str))
        return
    _show(
        [
            {k: v for k, v in r.items() if k in ("procedure", "wall_s", "cpu_s", "objective", "E", "alpha", "beta")}
            for r in rows
        ],
        ["procedure", "wall_s", "cpu_s", "objective", "E", "alpha", "beta"],
        f"fit speed: reference/ours {meta['ratio_wall']:.1f}x wall; agree within 0.002: {meta['agree_within_0.002']}",
        paths,
    )
