"""The `grec` command line: one Typer app, one module per command group (grec.cli.data,
.features, .model, .lifecycle, .serving, .pipeline, .experiment, .benchmark); grec.cli.common holds what they share."""

from __future__ import annotations

import typer

from grec.cli import benchmark, data, experiment, features, lifecycle, model, pipeline, serving
from grec.cli.common import console


app = typer.Typer(help="GRec: one multi-task recommender, trained, checked and served.", no_args_is_help=True)
# in the order `grec --help` lists them: data, models, registry, serving, pipelines
app.command()(data.simulate)
app.add_typer(data.app, name="data")
app.add_typer(benchmark.app, name="benchmark")
app.command()(model.train)
app.command()(model.evaluate)
app.command()(data.validate)
app.add_typer(features.app, name="features")
app.add_typer(lifecycle.app, name="registry")
app.command()(serving.package)
app.command()(serving.serve)
app.command()(lifecycle.ui)
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(experiment.app, name="experiment")


def main() -> None:
    """The `grec` entry point: bad input (a table, column or file that breaks the contract) and
    impossible registry requests (no such version, nothing to roll back to) end with their
    message, not a traceback."""
    from rich.markup import escape

    from grec.errors import UserError

    try:
        app()
    except UserError as e:
        console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
        raise SystemExit(1) from None

