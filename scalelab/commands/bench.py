"""`scalelab bench ...`: benchmarks (fit speed, CPU/GPU training throughput, FFN speed-ups).

Results go to bench/NAME.json plus a markdown table; never timed inside unit tests."""

from __future__ import annotations

from typing import Optional

import typer

from scalelab.commands import _bench_options as O
from scalelab.commands._bench_common import int_list, show
from scalelab.commands._bench_coord import coord_check
from scalelab.commands._common import user_errors

app = typer.Typer(
    help="Benchmarks: fit speed, training throughput and MFU, structured FFN speed-ups. Writes bench/NAME.json and a "
    "markdown table.",
    no_args_is_help=True,
)


# ---- bench ffn / bench train (structured layers; implementation in scalelab/bench/throughput.py) ---------
@app.command("ffn")
@user_errors
def ffn(
    widths: Optional[str] = O.FFN_WIDTHS,
    tokens: Optional[int] = O.FFN_TOKENS,
    fractions: str = O.FFN_FRACTIONS,
    kinds: Optional[str] = O.FFN_KINDS,
    device: str = O.FFN_DEVICE,
    repeats: int = O.FFN_REPEATS,
    compile: bool = O.FFN_COMPILE,
    name: str = O.FFN_NAME,
    out: str = O.OUT,
    as_json: bool = O.JSON,
) -> None:
    """FFN-only forward and forward+backward time of each structure at 63% / 32% vs dense."""
    import json as _json

    from scalelab.bench import throughput as B
    from scalelab.errors import ScalelabError

    B.check_name(name)
    dev = B.pick_device(device)
    cuda = dev.type == "cuda"
    w = int_list(widths, "--widths") if widths else ([1024, 2048, 4096, 5120] if cuda else [256, 512, 1024])
    n_tok = tokens or (30720 if cuda else 2048)
    fr = [v / 100 for v in int_list(fractions, "--fractions")]
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
        show(rows, B.FFN_COLUMNS, f"FFN speed ({meta['device']}, {meta['dtype']})", paths)


@app.command("train")
@user_errors
def train(
    preset: str = O.TRAIN_PRESET,
    variants: str = O.TRAIN_VARIANTS,
    batch: int = O.TRAIN_BATCH,
    seq_len: Optional[int] = O.TRAIN_SEQ_LEN,
    steps: int = O.TRAIN_STEPS,
    warmup: int = O.TRAIN_WARMUP,
    device: str = O.TRAIN_DEVICE,
    compile: bool = O.TRAIN_COMPILE,
    name: str = O.TRAIN_NAME,
    out: str = O.OUT,
    as_json: bool = O.JSON,
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
        show(
            rows,
            B.TRAIN_COLUMNS,
            f"train steps ({meta['device']}, {meta['dtype']}, peak {meta['peak_flops']:.3g} FLOP/s: "
            f"{meta['peak_source']})",
            paths,
        )


# ---- bench coord-check (muP coordinate check; implementation in scalelab/bench/coord.py) -----------------
app.command("coord-check")(coord_check)


# ---- bench fit (scaling-law fit speed; implementation in scalelab/bench/fit.py) --------------------------
FIT_COLUMNS = ("procedure", "wall_s", "cpu_s", "objective", "E", "alpha", "beta")  # the table's; JSON has all


@app.command("fit")
@user_errors
def fit(
    data: Optional[str] = O.FIT_DATA,
    bootstrap: int = O.FIT_BOOTSTRAP,
    repeats: int = O.FIT_REPEATS,
    ref_starts: Optional[int] = O.FIT_REF_STARTS,
    multi: bool = O.FIT_MULTI,
    multi_data: Optional[str] = O.FIT_MULTI_DATA,
    coverage: int = O.FIT_COVERAGE,
    curves: bool = typer.Option(
        True, "--curves/--no-curves", help="Also time `fit --curves` on the demo's curves (bench/fit_curves.py)."
    ),
    curves_data: Optional[str] = typer.Option(
        None, "--curves-data", help="Run files for the curve-law case. Default: bench/data/demo_curves.parquet."
    ),
    name: str = O.FIT_NAME,
    out: str = O.OUT,
    as_json: bool = O.JSON,
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
    if ref_starts is not None and ref_starts < 1:  # grid_starts(0) divides by it, a negative one means "all"
        from scalelab.errors import ScalelabError

        raise ScalelabError(f"--ref-starts {ref_starts}: give a positive number of starts, or leave it out for all")
    if multi:  # a bad multi-group input fails before anything is timed
        BF.load_multi(Path(multi_data) if multi_data else BF.default_multi_data())
    if curves:  # a missing curves input fails before anything is timed
        from scalelab.bench import fit_curves

        fit_curves.check_data(curves_data)
    rows, meta = BF.run(Path(data) if data else None, bootstrap, repeats, ref_starts, log=log)
    if multi:
        mrows, mmeta = BF.run_multi(Path(multi_data) if multi_data else None, bootstrap, repeats, log=log)
        meta["multi"] = dict(
            mmeta,
            rows=mrows,
            ratio_vs_single_wall=mrows[0]["wall_s"] / rows[0]["wall_s"],
            ratio_vs_single_cpu=mrows[0]["cpu_s"] / rows[0]["cpu_s"],
        )
    if coverage > 0:
        meta["synthetic_coverage"] = BF.coverage(coverage)
        log(f"synthetic coverage: {meta['synthetic_coverage']}")
    if curves:  # the curve law's fit: 1000 resamples of the demo's curves within 30 s (issue 24)
        meta["curves"] = fit_curves.run(curves_data, bootstrap, log=log)
    paths = BF.write(out, name, rows, meta)
    if as_json:
        typer.echo(_json.dumps({"meta": meta, "rows": rows}, default=str))
        return
    show(
        [{k: v for k, v in r.items() if k in FIT_COLUMNS} for r in rows],
        list(FIT_COLUMNS),
        f"fit speed: reference/ours {meta['ratio_wall']:.1f}x wall; agree within 0.002: {meta['agree_within_0.002']}",
        paths,
    )
