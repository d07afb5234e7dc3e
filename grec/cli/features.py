"""`grec features`: the Feast feature store (apply, materialize, training sets)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from grec import settings
from grec.cli.common import DataOpt, console


app = typer.Typer(help="The Feast feature store: apply, materialize, build training sets.", no_args_is_help=True)


@app.command("apply")
def features_apply(data: DataOpt = None):
    """Build the feature sources from the raw tables (encoding new texts) and register the repository."""
    from grec.features.store import apply

    with console.status("Building feature sources and applying feature_repo/"):
        result = apply(data or settings.data_dir())
    console.print(f"Applied {', '.join(result['objects'])}")
    console.print(f"Registry: {result['registry']}")


@app.command("materialize")
def features_materialize(
    end: Annotated[str, typer.Option(help="Load values stamped up to this time (ISO, UTC) [default: now]")] = "",
    start: Annotated[str, typer.Option(help="...and from this time [default: all history]")] = "",
):
    """Load the latest feature values up to END into the online store."""
    import pandas as pd

    from grec.features.store import materialize

    result = materialize(end or pd.Timestamp.now(tz="UTC"), start or None)
    console.print(f"Online store {result['online_store']} holds values up to {result['end']}")


@app.command("training-set")
def features_training_set(
    data: DataOpt = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder [default: $GREC_HOME/training_sets/<data name>]")] = None,
    test_days: Annotated[int, typer.Option(help="Held-out days at the end")] = 7,
    valid_days: Annotated[int, typer.Option(help="Validation days before them")] = 7,
    max_lost_share: Annotated[float, typer.Option(
        help="Impressions with no feature value within a view's TTL: left out (and named) up to this share, refused past it",
        min=0.0, max=1.0)] = 0.001,
):
    """Point-in-time train/valid/test parquet files for the impressions in --data."""
    from grec.features.training_set import build_training_set, left_out_lines

    data_dir = data or settings.data_dir()
    out = out or settings.training_sets_dir() / data_dir.name
    with console.status("Joining point-in-time features onto every impression"):
        manifest = build_training_set(data_dir, out, test_days=test_days, valid_days=valid_days,
                                      max_lost_share=max_lost_share)
    rows = ", ".join(f"{k} {v:,}" for k, v in manifest.rows.items())
    console.print(f"Training set {out} ({manifest.feature_service}): {rows} rows")
    for line in left_out_lines(manifest.left_out):
        console.print(f"[yellow]Left out[/yellow] {line}", highlight=False)
