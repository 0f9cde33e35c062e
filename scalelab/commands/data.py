"""`scalelab data ...`: corpus preparation."""

from __future__ import annotations

import typer

from scalelab.commands._common import check_out_dir, user_errors

app = typer.Typer(
    help="Prepare corpora: tokenize text into uint16 .bin shards (nanoGPT convention).", no_args_is_help=True
)


@app.command("prepare")
@user_errors
def prepare(
    source: str = typer.Argument(
        ...,
        help='"stdlib" (this Python\'s standard library), a text file, folder or glob, or a .jsonl / .parquet file '
        "with a text column.",
    ),
    out: str = typer.Option(
        ..., "--out", "-o", help="Output folder: train.bin, val.bin (uint16 token ids) and meta.json."
    ),
    tokenizer: str = typer.Option(
        "byte", "--tokenizer", help='"byte" (vocab 256) or a path to a Hugging Face tokenizer.json.'
    ),
    text_column: str = typer.Option("text", "--text-column", help="JSONL field / Parquet column holding the text."),
    val_fraction: float = typer.Option(
        0.05, "--val-fraction", help="Share of documents (by hash of their key) held out for validation."
    ),
    fmt: str = typer.Option("auto", "--format", help="auto, stdlib, text, jsonl or parquet."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Tokenize a corpus into OUT/train.bin and OUT/val.bin; use it in a grid as \\[data] source = "OUT"."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from scalelab.config import DataConfig
    from scalelab.data import prepare as do_prepare

    cfg = DataConfig(
        source=source, format=fmt, tokenizer=tokenizer, text_column=text_column, val_fraction=val_fraction
    ).validate()
    check_out_dir(out, "--out")
    console = Console(stderr=True)
    with Progress(
        TextColumn("tokenizing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("docs"),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
    ) as bar:
        task = bar.add_task("tok", total=None)
        meta = do_prepare(cfg, out, progress=lambda i, n: bar.update(task, completed=i, total=n))
    typer.echo(
        f"wrote {out}/train.bin ({meta['n_train']:,} tokens) and {out}/val.bin ({meta['n_val']:,} tokens), "
        f"vocab {meta['vocab_size']}, tokenizer {meta['tokenizer']}, sha256 {meta['sha'][:12]}"
    )
