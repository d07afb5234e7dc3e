"""Online A/B tests on the simulated storefront: `grec experiment run`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from grec import settings
from grec.cli.common import DataOpt, console

app = typer.Typer(help="Online A/B tests: two registered models split by customer, served to the simulated world.",
                  no_args_is_help=True)


@app.command()
def run(
    control: Annotated[str, typer.Option(help="The control arm: a registered NAME:VERSION or NAME@ALIAS")],
    treatment: Annotated[str, typer.Option(help="The treatment arm: NAME:VERSION or NAME@ALIAS")],
    start: Annotated[str, typer.Option(help="Requests from this time (a day or an ISO time, UTC)")],
    end: Annotated[str, typer.Option(help="... up to this time (exclusive)")],
    name: Annotated[str, typer.Option(help="The experiment's name: it seeds who sees which arm")] = "ab",
    requests: Annotated[int, typer.Option(min=1, help="Requests drawn from the window")] = 20_000,
    share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of the customers in the treatment")] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the requests and outcomes")] = 0,
    data: DataOpt = None,
    out: Annotated[Optional[Path], typer.Option(help="Result folder [default: $GREC_HOME/experiments/NAME]")] = None,
    append: Annotated[bool, typer.Option(help="Append what was shown and happened to the data folder")] = False,
):
    """Split the customers of a window of the simulated world (its data folder's simulation.json)
    between two registered models by a stable hash, rank each request with its arm's model from the
    online store, show the first slots, draw what the customers did, and report per task the
    conversions per 1,000 requests of each arm with intervals and the lift. The store must hold the
    window's customers and items (`grec features materialize`)."""
    from grec.data.append import append_batch, describe
    from grec.experiment import ExperimentConfig, run_experiment

    data_dir = data or settings.data_dir()
    folder = out or settings.state_dir() / "experiments" / name
    config = ExperimentConfig(name, control, treatment, start, end, requests, share, seed)
    result = run_experiment(data_dir, config, folder, log=console.print)
    console.print((folder / "result.md").read_text(), highlight=False)
    console.print(f"Logs and impressions under {folder}", highlight=False)
    if append:
        for line in describe(append_batch(data_dir, folder / "batch")):
            console.print(line, highlight=False)
    return result


@app.command()
def serve(
    start: Annotated[str, typer.Option(help="Requests from this time (a day or an ISO time, UTC)")],
    end: Annotated[str, typer.Option(help="... up to this time (exclusive)")],
    model: Annotated[str, typer.Option(help="The registered NAME@ALIAS or NAME:VERSION that ranks")] = "grec@champion",
    requests: Annotated[int, typer.Option(min=1, help="Requests drawn from the window")] = 5_000,
    seed: Annotated[int, typer.Option(help="Seed of the requests and outcomes")] = 0,
    data: DataOpt = None,
):
    """Serve a window of the simulated world as production: each request ranked by the model through
    the ranking service's path and written to the service's prediction log (with the page's time),
    the first slots shown, and what the customers did appended to the data folder as a later batch:
    the monitoring pipeline then judges what was served against what happened, and the next training
    reads it."""
    from grec.data.append import append_batch, describe
    from grec.experiment import ExperimentConfig, run_experiment

    data_dir = data or settings.data_dir()
    name = f"served-{start}"
    folder = settings.state_dir() / "experiments" / name
    config = ExperimentConfig(name, model, model, start, end, requests, treatment_share=0.0, seed=seed)
    result = run_experiment(data_dir, config, folder, log=console.print, log_dir=settings.predictions_dir())
    rows = result.use_cases
    console.print(f"Served {sum(result.requests.values()):,} requests with {result.models['champion']} "
                  f"({start} to {end}); {result.impressions:,} impressions shown; conversions per 1,000 requests: "
                  + ", ".join(f"{r['use_case']} {r['champion']['per_1000']:.1f}" for r in rows), highlight=False)
    for line in describe(append_batch(data_dir, folder / "batch")):
        console.print(line, highlight=False)
