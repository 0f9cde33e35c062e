"""`scalelab data ...`: corpus preparation."""
import typer

app = typer.Typer(help="Prepare corpora: tokenize text into uint16 .bin shards (nanoGPT convention).", no_args_is_help=True)
