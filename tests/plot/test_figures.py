"""Figures from a small synthetic run store and fit built from known law parameters (tests/plot/helpers.py).

The fixtures follow the documented formats (docs/DESIGN.md "Run store", docs/interfaces.md "Fit file"),
not the store or fit modules, so that these tests hold the plotting code to the contract.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pandas as pd
import pytest

from .helpers import ALL, K_FLOPS, LAWS, NEEDS_MORE, RATIOS, WIDTHS, law, run_rows, write_fit, write_runs


def closed_form(p, C, k=6.0):
    """REFERENCE.md section 3, written out independently of scalelab.fit.laws and scalelab.plan."""
    al, be, A, B, E = p["alpha"], p["beta"], p["A"], p["B"], p["E"]
    G = (al * A / (be * B)) ** (1 / (al + be))
    x = C / k
    N = G * x ** (be / (al + be))
    D = x ** (al / (al + be)) / G
    return N, D, E + A * N**-al + B * D**-be


@pytest.fixture
def synth(tmp_path):
    runs = write_runs(str(tmp_path / "runs"))
    fit = write_fit(str(tmp_path / "fits"))
    return runs, fit, tmp_path


# ------------------------------------------------------------------------------------------- tests


def pdf_font_report(data: bytes) -> dict:
    return {
        "FontFile2": data.count(b"/FontFile2"),
        "FontFile3": data.count(b"/FontFile3"),
        "FontFile": len(re.findall(rb"/FontFile(?![23])", data)),  # an embedded Type 1 program
        "Type1": len(re.findall(rb"/Subtype\s*/Type1\b", data)),
        "Type3": len(re.findall(rb"/Subtype\s*/Type3\b", data)),
    }


def test_every_figure_every_format_with_type42_fonts_and_300dpi(synth):
    from PIL import Image

    from scalelab import plot as plots

    runs, fit, tmp = synth
    inputs = plots.load_inputs(runs, fit_path=fit)
    # every format at double width; PNG only at single width (the pixel-width check), to keep CI fast
    for width, inches, formats in (("double", 7.0, ("pdf", "png", "svg")), ("single", 3.5, ("png",))):
        out = str(tmp / f"fig-{width}")
        drawn = plots.make_figures(inputs, out_dir=out, formats=formats, width=width)
        assert [d.name for d in drawn if d.files] == ALL, [(d.name, d.skipped) for d in drawn]
        for name in ALL:
            for ext in formats:
                assert os.path.getsize(os.path.join(out, f"{name}.{ext}")) > 1000
            if "pdf" in formats:
                with open(os.path.join(out, f"{name}.pdf"), "rb") as f:
                    rep = pdf_font_report(f.read())
                assert (
                    rep["FontFile2"] >= 1
                    and rep["FontFile3"] == rep["FontFile"] == 0
                    and rep["Type1"] == 0
                    and rep["Type3"] == 0
                ), (name, rep)
            with Image.open(os.path.join(out, f"{name}.png")) as im:
                assert im.size[0] == round(inches * 300), (name, im.size)
                dpi = im.info.get("dpi")
                assert dpi is None or round(dpi[0]) == 300
        assert not [f for f in os.listdir(out) if f.startswith(".tmp")]
        index = open(os.path.join(out, "index.md")).read()
        for name in ALL:
            assert f"### {name}" in index
        assert os.path.basename(fit) in index and "dense-32-10.parquet" in index


def test_every_axes_has_labels_and_colours_match_across_figures(synth):
    import matplotlib.pyplot as plt

    from scalelab import plot as plots

    runs, fit, _ = synth
    inputs = plots.load_inputs(runs, fit_path=fit)
    colors = plots.variant_colors(["lowrank-25", "dense"])
    markers = plots.variant_markers(["dense", "lowrank-25"])
    seen = 0
    for name, _, fig, skip, _ in plots.build(inputs, width="single"):
        if name in NEEDS_MORE:  # no lr sweep, shares, curve or repetition law here (their own tests draw them)
            assert fig is None and skip
            continue
        assert fig is not None, (name, skip)
        assert_text_inside_and_apart(name, fig)  # draws the figure
        for ax in fig.axes:
            if ax.axison:  # a spare panel may hold only the legend
                assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), (name, ax)
                # every log axis shows at least two labelled ticks inside its range
                for axis, lim in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
                    if axis.get_scale() == "log":
                        lo, hi = sorted(lim)
                        shown = [
                            t
                            for t in axis.get_major_ticks()
                            if t.label1.get_visible() and t.label1.get_text() and lo <= t.get_loc() <= hi
                        ]
                        assert len(shown) >= 2, (name, [t.label1.get_text() for t in axis.get_major_ticks()])
        # legend entries for variants carry the variant's colour and marker
        legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        assert len(legends) == 1, name
        leg = legends[0]
        by_label = {t.get_text(): h for t, h in zip(leg.get_texts(), leg.legend_handles)}
        for v in ("dense", "lowrank-25"):
            if v in by_label:
                assert by_label[v].get_color() == colors[v] and by_label[v].get_marker() == markers[v], name
                seen += 1
        # every artist tagged with a variant is drawn in that variant's colour
        from matplotlib.colors import to_hex

        for ax in fig.axes:
            for art in ax.get_children():
                gid = art.get_gid() or ""
                if gid.startswith("variant:") and hasattr(art, "get_color"):
                    c = art.get_color()
                    c = c[0] if isinstance(c, np.ndarray) and c.ndim == 2 else c
                    assert to_hex(c) == colors[gid.split(":", 1)[1]], (name, gid)
        plt.close(fig)
    assert seen == 2 * len(ALL)


def test_palette_is_deterministic_colour_blind_safe_and_dense_fixed():
    from scalelab.plot import style

    a = style.variant_colors(["lowrank-25", "dense", "blockshuffle-50"])
    b = style.variant_colors(["blockshuffle-50", "lowrank-25", "dense"])
    assert a == b
    assert a["dense"] == "#000000" == style.variant_colors(["dense", "zz"])["dense"]
    assert len(set(a.values())) == 3 and set(a.values()) <= set(style.OKABE_ITO) | {"#000000"}
    m = style.variant_markers(["lowrank-25", "dense", "blockshuffle-50"])
    assert len(set(m.values())) == 3


def test_closed_form_allocation_matches_reference_and_multiplies_to_budget(tmp_path):
    """The closed-form allocation (scalelab.fit.laws, the planner's for C = 6 N D) equals REFERENCE.md's
    closed form at the published Chinchilla values."""
    from scalelab.fit import laws

    p = dict(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    C = np.array([1e18, 5.88e23, 1e25])
    got = laws.compute_optimal(p, C, 6.0)
    N, D, L = closed_form(p, C)
    np.testing.assert_allclose(got["N_opt"], N, rtol=1e-12)
    np.testing.assert_allclose(got["D_opt"], D, rtol=1e-12)
    np.testing.assert_allclose(got["L_opt"], L, rtol=1e-12)
    np.testing.assert_allclose(6 * got["N_opt"] * got["D_opt"], C, rtol=1e-12)
    # Chinchilla's own headline: at 5.88e23 FLOPs about 70B params (approach 3 gives ~40B; a ~ 0.45).
    assert 2e10 < got["N_opt"][1] < 8e10
    # the optimum is a minimum of L along the budget: nearby N on the same budget are worse
    for f in (0.8, 1.25):
        n2 = N[1] * f
        assert law(p, n2, C[1] / (6 * n2)) > L[1]


def test_frontier_band_contains_point_and_follows_samples(synth):
    """Figure 1's L*(C): point line from the estimate, band = percentiles of the sampled optima."""
    from scalelab import plot as plots
    from scalelab.plot.shape import frontier

    runs, fit, _ = synth
    inputs = plots.load_inputs(runs, fit_path=fit)
    ctx = plots.Context(
        inputs=inputs, colors=plots.variant_colors(inputs.variants()), markers=plots.variant_markers(inputs.variants())
    )
    C = np.logspace(9, 13, 20)
    x, y, lo, hi, _ = frontier.frontier(ctx, "dense", C)
    s = pd.read_parquet(fit.replace(".json", ".samples.parquet"))
    s = s[s["group"] == "dense"]
    k = K_FLOPS  # synthetic runs have C = 7 N D exactly
    if "planner" not in ctx.allocation_source:
        _, _, Lp = closed_form(LAWS["dense"], x, k)
        np.testing.assert_allclose(y, Lp, rtol=1e-9)
        Ls = np.array([closed_form(r, x, k)[2] for r in s.to_dict("records")])
        np.testing.assert_allclose(lo, np.quantile(Ls, 0.025, axis=0), rtol=1e-9)
        np.testing.assert_allclose(hi, np.quantile(Ls, 0.975, axis=0), rtol=1e-9)
    assert np.all(lo <= y) and np.all(y <= hi)


def test_one_variant_and_no_fit_skip_with_notes(tmp_path):
    from scalelab import plot as plots

    runs = write_runs(str(tmp_path / "runs"), variants=("dense",), widths=(32, 48), ratios=(10, 20))
    drawn = plots.make_figures(plots.load_inputs(runs), out_dir=str(tmp_path / "a"), formats=("png",), width="single")
    by = {d.name: d for d in drawn}
    assert by["fig1_loss_vs_flops"].files and by["fig2_loss_vs_params"].files and by["fig6_throughput"].files
    for name in ("fig3_compute_optimal", "fig4_exponents", "fig5_fit_diagnostics"):
        assert not by[name].files and "fit" in by[name].skipped
        assert not os.path.exists(tmp_path / "a" / f"{name}.png")
    index = open(tmp_path / "a" / "index.md").read()
    assert "## Skipped" in index and "fig4_exponents" in index.split("## Skipped")[1]

    fit = write_fit(str(tmp_path / "fits"), variants=("dense",), comparisons=False)
    drawn = plots.make_figures(
        plots.load_inputs(runs, fit), out_dir=str(tmp_path / "b"), formats=("png",), width="single"
    )
    by = {d.name: d for d in drawn}
    assert not by["fig4_exponents"].files and "fewer than two" in by["fig4_exponents"].skipped
    assert by["fig3_compute_optimal"].files and by["fig5_fit_diagnostics"].files


def test_fit_without_runs_and_without_samples(tmp_path):
    """A fit file alone draws what it can; missing samples mean no bands, with a note."""
    from scalelab import plot as plots

    fit = write_fit(str(tmp_path / "fits"))
    os.remove(fit.replace(".json", ".samples.parquet"))
    drawn = plots.make_figures(
        plots.load_inputs([], fit), out_dir=str(tmp_path / "o"), formats=("png",), width="single"
    )
    by = {d.name: d for d in drawn}
    assert not by["fig1_loss_vs_flops"].files  # needs curves
    assert by["fig3_compute_optimal"].files and by["fig5_fit_diagnostics"].files
    assert any("no bootstrap samples" in n for n in by["fig3_compute_optimal"].notes)


def test_planner_refusal_skips_the_allocation_with_its_reason(synth, monkeypatch):
    """The figures take the compute-optimal allocation from the planner only: when it refuses the fit,
    figure 3 is skipped with the planner's reason, and figure 1 keeps its curves without L*(C)."""
    import scalelab.plan
    from scalelab import plot as plots
    from scalelab.errors import ScalelabError

    def refuse(*args, **kwargs):
        raise ScalelabError("no buildable shape: try another --multiple")

    monkeypatch.setattr(scalelab.plan, "Planner", refuse)
    runs, fit, tmp = synth
    drawn = plots.make_figures(plots.load_inputs(runs, fit), out_dir=str(tmp / "o"), formats=("png",), width="single")
    by = {d.name: d for d in drawn}
    assert not by["fig3_compute_optimal"].files
    assert "no buildable shape: try another --multiple" in by["fig3_compute_optimal"].skipped
    assert by["fig1_loss_vs_flops"].files
    assert any("no L*(C) drawn: the planner cannot allocate" in n for n in by["fig1_loss_vs_flops"].notes)


def test_differences_oriented_as_variant_minus_dense(synth):
    from scalelab import plot as plots
    from scalelab.plot.shape import params

    runs, fit, _ = synth
    inputs = plots.load_inputs(runs, fit_path=fit)
    ctx = plots.Context(inputs=inputs)
    d = params.differences(ctx, ctx.groups(("chinchilla",)))
    want = LAWS["lowrank-25"]["alpha"] - LAWS["dense"]["alpha"]
    est, lo, hi = d["lowrank-25"]["alpha"]
    assert est == pytest.approx(want) and lo < est < hi


def test_held_out_points_drawn_at_the_refit_prediction(synth):
    import matplotlib.pyplot as plt

    from scalelab import plot as plots

    runs, fit, _ = synth
    inputs = plots.load_inputs(runs, fit_path=fit)
    for name, _, fig, _, notes in plots.build(inputs, only=["fig5_fit_diagnostics"]):
        # the largest width x 3 ratios per variant were held out by the fit's holdout refit
        assert any(n.startswith("dense: 3 held-out") for n in notes), notes
        ax1 = fig.axes[0]
        hollow = [c for c in ax1.collections if len(c.get_offsets()) and np.allclose(c.get_facecolor()[0][:3], 1.0)]
        assert sum(len(c.get_offsets()) for c in hollow) == 6
        # x of a hollow point = the refit's prediction (A 5% larger), not the main fit's
        p = dict(LAWS["dense"], A=LAWS["dense"]["A"] * 1.05)
        big = [run_rows("dense", max(WIDTHS), r).iloc[-1] for r in RATIOS]
        want = sorted(law(p, b["params"], b["tokens"]) for b in big)
        dense_hollow = [c for c in hollow if c.get_edgecolor()[0][:3].sum() == 0]
        got = sorted(dense_hollow[0].get_offsets()[:, 0])
        np.testing.assert_allclose(got, want, rtol=1e-9)
        plt.close(fig)


def test_wsd_branches_drawn_as_segments_off_the_trunk_not_one_zigzag():
    """WSD runs store a trunk (largest budget) and cooldown branches that keep only their final row."""
    from scalelab.plot.shape import runs as shape_runs

    p = LAWS["dense"]
    N = 20000
    budgets = [80000, 160000, 320000]
    trunk_tokens = np.geomspace(4000, budgets[-1], 8).astype(int)
    rows = [
        dict(
            step=t // 1024,
            tokens=t,
            flops=6.0 * N * t,
            val_loss=law(p, N, t) + 0.05 * (t < budgets[-1]),
            final=t == budgets[-1],
            budget=budgets[-1],
        )
        for t in trunk_tokens
    ]
    rows += [
        dict(step=b // 1024, tokens=b, flops=6.0 * N * b, val_loss=law(p, N, b), final=True, budget=b)
        for b in budgets[:-1]
    ]
    r = pd.DataFrame(rows)
    r["config"] = json.dumps({"train": {"cooldown": 0.2}})
    curves = shape_runs.curves(r, r, "flops")
    assert len(curves) == 3
    trunk_x, trunk_y = curves[0]
    assert np.all(np.diff(trunk_x) > 0) and len(trunk_x) == len(trunk_tokens)
    for (x, y), b in zip(curves[1:], budgets[:-1]):
        assert np.all(np.diff(x) > 0)
        assert x[-1] == pytest.approx(6.0 * N * b) and y[-1] == pytest.approx(law(p, N, b))
        assert x[0] == pytest.approx(0.8 * 6.0 * N * b)  # forked a cooldown (20%) before its end
        # the fork lies on the trunk (log-x interpolation between trunk evaluations)
        assert y[0] == pytest.approx(np.interp(np.log(x[0]), np.log(trunk_x), trunk_y))
    # without a budget column: a single curve in step order
    assert len(shape_runs.curves(r.drop(columns="budget"), r, "flops")) == 1


def test_log_axis_over_less_than_a_decade_still_has_labels():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scalelab.plot import style

    for lo, hi in ((2.6e4, 4.4e4), (3.1e4, 3.4e4), (1e3, 1e6)):
        fig, ax = plt.subplots()
        ax.plot([lo, hi], [lo, hi])
        style.log_axis(ax, "y")
        ax.set_ylim(lo, hi)
        style.ensure_decade_labels(ax, "y")
        fig.canvas.draw()
        shown = [
            t.label1.get_text() for t in ax.yaxis.get_major_ticks() if t.label1.get_text() and lo <= t.get_loc() <= hi
        ]
        assert len(shown) >= 2, (lo, hi, shown)
        plt.close(fig)


def test_budgets_rounded_to_whole_batches_fall_in_one_slice():
    from scalelab.plot.shape import slices

    centres, idx = slices.cluster(np.array([4.0, 3.98, 8.1, 7.9, 8.0, 16.0, 15.7, 4.02]))
    assert len(centres) == 3 and list(idx) == [0, 0, 1, 1, 1, 2, 2, 0]
    np.testing.assert_allclose(centres, [4.0, 8.0, 15.85], rtol=0.01)


def assert_text_inside_and_apart(name, fig):
    """Every drawn label, tick label, title and legend inside the figure; axis labels, titles and
    the legend of different panels do not overlap."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    W, H = fig.bbox.width, fig.bbox.height
    boxes = []
    for ax in fig.axes:
        if not ax.axison:
            continue
        for t in [ax.xaxis.label, ax.yaxis.label, ax.title]:
            if t.get_text():
                b = t.get_window_extent(r)
                assert b.x0 >= -1 and b.y0 >= -1 and b.x1 <= W + 1 and b.y1 <= H + 1, (name, t.get_text())
                boxes.append((t.get_text(), b))
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks():
                t = tick.label1
                if t.get_text() and t.get_visible() and lo <= tick.get_loc() <= hi:  # drawn
                    b = t.get_window_extent(r)
                    assert b.x0 >= -1 and b.x1 <= W + 1 and b.y0 >= -1 and b.y1 <= H + 1, (name, t.get_text())
    for leg in fig.legends:
        b = leg.get_window_extent(r)
        assert b.x0 >= -1 and b.x1 <= W + 1 and b.y1 <= H + 1, name
        boxes.append(("legend", b))
    for i, (ta, a) in enumerate(boxes):
        for tb, b in boxes[i + 1 :]:
            assert not a.overlaps(b), (name, ta, tb)


def test_slides_style_text_fits_a_single_column(synth):
    """The tightest case: large type on a 3.5 in figure (paper style is checked in the labels test)."""
    import matplotlib.pyplot as plt

    from scalelab import plot as plots

    runs, fit, _ = synth
    inputs = plots.load_inputs(runs, fit_path=fit)
    for name, _, fig, _, _ in plots.build(inputs, width="single", style_name="slides"):
        if name in NEEDS_MORE:  # skipped on these runs
            continue
        assert_text_inside_and_apart(name, fig)
        plt.close(fig)


def test_frontier_form_fit_bench_files_and_positional_fit(tmp_path):
    """A fit whose groups are L(C) frontiers (one tokens-per-param ratio): L*(C) is E + K C^-gamma,
    N_opt/D_opt are not identified (figure 3 skipped with a note); bench JSON feeds figure 6."""
    import matplotlib.pyplot as plt

    from scalelab import plot as plots
    from scalelab.plot.shape import frontier

    runs = write_runs(str(tmp_path / "runs"), ratios=(20,))
    path = write_fit(str(tmp_path / "fits"), comparisons=False, hold_out_largest=False)
    d = json.load(open(path))
    fr = {"dense": dict(E=1.0, K=60.0, gamma=0.12), "lowrank-25": dict(E=1.0, K=55.0, gamma=0.115)}
    s = []
    for v, g in d["groups"].items():
        g["form"], g["params"], g["conf_int"] = "frontier", fr[v], {}
        s.append(
            pd.DataFrame(
                {
                    "group": v,
                    "sample": np.arange(50),
                    "E": fr[v]["E"],
                    "A": np.nan,
                    "B": np.nan,
                    "alpha": np.nan,
                    "beta": np.nan,
                    "K": fr[v]["K"] * np.linspace(0.98, 1.02, 50),
                    "gamma": fr[v]["gamma"],
                }
            )
        )
    json.dump(d, open(path, "w"))
    pd.concat(s).to_parquet(path.replace(".json", ".samples.parquet"))
    bench = tmp_path / "bench.json"
    bench.write_text(
        json.dumps(
            {
                "rows": [
                    {"variant": "dense", "d_model": 1024, "tokens_per_s": 4e5, "mfu": 0.41},
                    {"variant": "lowrank-25", "d_model": 1024, "tokens_per_s": 5e5},
                    {"variant": "dense", "d_model": 2048, "tokens_per_s": 1.5e5, "mfu": 0.45},
                ]
            }
        )
    )
    inputs = plots.load_inputs([*runs, path, str(bench)])  # the fit found among the positional inputs
    assert inputs.fit is not None and inputs.bench is not None
    ctx = plots.Context(inputs=inputs)
    C = np.logspace(10, 13, 7)
    x, y, lo, hi, _ = frontier.frontier(ctx, "dense", C)
    np.testing.assert_allclose(y, 1.0 + 60.0 * C**-0.12, rtol=1e-12)
    assert np.all(lo <= y) and np.all(y <= hi)
    by = {}
    for name, _, fig, skip, notes in plots.build(inputs, width="single"):
        by[name] = (fig, skip, notes)
        if fig is not None:
            plt.close(fig)
    assert by["fig1_loss_vs_flops"][0] is not None
    assert (
        by["fig3_compute_optimal"][0] is None and "N_opt and D_opt are not identified" in by["fig3_compute_optimal"][1]
    )
    assert by["fig4_exponents"][0] is None
    assert by["fig6_throughput"][0] is not None and any("bench files" in n for n in by["fig6_throughput"][2])


def test_plotting_never_imports_torch(synth):
    import subprocess
    import sys

    runs, fit, tmp = synth
    code = (
        "import sys; from scalelab import plot as plots; "
        f"inp = plots.load_inputs({runs[:6]!r}, {fit!r}); "
        "[f for f in plots.build(inp, only=['fig1_loss_vs_flops', 'fig3_compute_optimal'])]; "
        "import scalelab.commands.plot; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-3000:]
