"""`scalelab bench ...`: benchmarks (fit speed, CPU/GPU training throughput, FFN speed-ups).

Results go to bench/NAME.json plus a markdown table; never timed inside unit tests."""
import typer

app = typer.Typer(help="Benchmarks: fit speed, training throughput and MFU, structured FFN speed-ups. Writes bench/NAME.json and a markdown table.", no_args_is_help=True)
