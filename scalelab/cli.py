"""The scalelab command line. Parses, calls, formats: the work lives in the package modules.

Commands are registered from scalelab/commands/*, each importing its heavy dependencies lazily.
"""

import typer

from scalelab.commands import bench, check, data, fit, ingest, inspect, plan, plot, report, run, status

app = typer.Typer(
    name="scalelab",
    help=(
        "Scaling-law lab for structured transformers.\n\n"
        "Pipeline: run a grid (runs/*.parquet) -> fit scaling laws (fits/*.json) -> plan a compute "
        "budget (and emit its grid) -> check the fit against new runs -> plot figures (figures/)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.command("run")(run.run)
app.command("fit")(fit.fit)
app.add_typer(plan.app, name="plan")
app.command("plot")(plot.plot)
app.command("report")(report.report)
app.command("check")(check.check)
app.command("ingest")(ingest.ingest)
app.command("inspect")(inspect.inspect)
app.command("status")(status.status)
app.add_typer(bench.app, name="bench")
app.add_typer(data.app, name="data")

if __name__ == "__main__":
    app()
