"""What the command groups share: the console, the common options, and parsing of option values."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from grec import settings


console = Console()
if console.width < 110:  # pipes and CI report 80 columns; the metrics table needs more
    console = Console(width=110)

DataOpt = Annotated[Optional[Path], typer.Option("--data", help="Folder of parquet tables [default: $GREC_HOME/data/default]")]
TrackingOpt = Annotated[Optional[str], typer.Option(
    "--tracking-uri", help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI, else SQLite in $GREC_HOME/mlflow]")]
TrainingSetOpt = Annotated[Optional[Path], typer.Option(
    "--training-set", help="A feature-store training set (`grec features training-set`), instead of --data")]
NameOpt = Annotated[str, typer.Option("--name", help="Registered model name")]



def open_data(data: Path | None, training_set: Path | None, splits=("train", "valid", "test")):
    """A training set when one is given, else the raw tables (default: the simulated data)."""
    from grec.features.training_set import open_source as open_data_source

    if training_set is not None and data is not None:
        raise typer.BadParameter("give --data or --training-set, not both")
    return open_data_source(training_set or data or settings.data_dir(), splits)


def parse_upsample(text: str | None) -> dict[str, int] | None:
    """'CVR=4,AAL+CTCVR=2' -> {'CVR': 4, 'AAL+CTCVR': 2}."""
    if not text:
        return None
    out = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if not value.strip().isdigit() or int(value) < 1:
            raise typer.BadParameter(f"--upsample: {part!r} is not NAME=positive-integer")
        out[key.strip()] = int(value)
    return out


def parse_tags(pairs: list[str] | None) -> dict[str, str]:
    """['kfp.run_id=abc'] -> {'kfp.run_id': 'abc'}."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"--tag: {pair!r} is not KEY=VALUE")
        out[key.strip()] = value
    return out

