"""The study's design from the run store: which grids, variants and widths were trained, on what data, with
what software; one row per run (its final evaluation). Pure: a DataFrame of run-store rows in, HTML out."""

from __future__ import annotations

from scalelab import numfmt
from scalelab.report.page import esc, paragraphs, table

# (column, heading, right-aligned) of the per-run table; columns a store lacks (ingested runs) are left out.
RUN_TABLE = [
    ("run_id", "run", False),
    ("variant", "variant", False),
    ("d_model", "d_model", True),
    ("n_layers", "layers", True),
    ("params", "params N", True),
    ("tokens", "tokens D", True),
    ("tokens_per_param", "D/N", True),
    ("flops", "FLOPs C", True),
    ("val_loss", "final val loss", True),
    ("status", "status", False),
]

# Study-wide facts: (column, what it is); each listed with its distinct values.
FACTS = [
    ("grid", "grid"),
    ("corpus", "data (corpus)"),
    ("corpus_sha", "corpus sha256"),
    ("tokenizer", "tokenizer"),
    ("seq_len", "sequence length"),
    ("batch_tokens", "tokens per batch"),
    ("schedule", "lr schedule"),
    ("seed", "seeds"),
    ("device", "device"),
    ("torch_version", "torch"),
    ("scalelab_version", "scalelab (training)"),
    ("git_sha", "git commit (training)"),
]


def final_rows(runs):
    """One row per run: its row flagged final, else (an unfinished run) its last step."""
    df = runs.assign(_final=runs["final"].fillna(False).astype(bool) if "final" in runs.columns else False)
    order = ["_final", "step" if "step" in df.columns else "tokens"]
    last = df.sort_values(order, kind="stable").groupby("run_id", sort=False).tail(1).drop(columns="_final")
    return last.sort_values([c for c in ("variant", "params", "tokens") if c in last.columns])


def _distinct(df, col: str) -> str:
    vals = [v for v in df[col].dropna().unique().tolist() if str(v) != ""]
    return ", ".join(str(v) for v in sorted(vals, key=str)) if vals else "-"


def _cell(col: str, v) -> str:
    if col in ("params", "tokens", "flops", "val_loss", "tokens_per_param"):
        return numfmt.sig(v, 4, missing="-")
    return numfmt.cell(v)


def design_section(runs) -> str:
    """The design: a summary line, the study-wide facts and the table of runs."""
    if runs is None or len(runs) == 0:
        return paragraphs(["No run files were given: the design is known only through the fit (see Provenance)."])
    last = final_rows(runs).copy()
    if "params" in last.columns and "tokens" in last.columns:
        last["tokens_per_param"] = last["tokens"] / last["params"]
    variants = sorted(last["variant"].astype(str).unique())
    widths = sorted(last["d_model"].dropna().unique().tolist()) if "d_model" in last.columns else []
    head = f"{len(last)} runs of {len(variants)} variant(s): {', '.join(variants)}"
    head += f"; widths {', '.join(str(int(w)) for w in widths)}." if widths else "."
    facts = [(what, _distinct(last, col)) for col, what in FACTS if col in last.columns]
    cols = [c for c in RUN_TABLE if c[0] in last.columns]
    rows = [[_cell(c, r[c]) for c, _, _ in cols] for _, r in last.iterrows()]
    right = [i for i, c in enumerate(cols) if c[2]]
    return "\n".join(
        [
            f"<p>{esc(head)}</p>",
            table(["what", "value"], facts, caption="What was trained, on what data"),
            table([h for _, h, _ in cols], rows, right=right, caption="Runs (final evaluation of each)"),
        ]
    )
