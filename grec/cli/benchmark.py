"""`grec benchmark`: GRec against the baselines on a real dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from grec import settings
from grec.io import write_json, write_text
from grec.cli.common import console
from grec.cli.data import load_source


app = typer.Typer(help="GRec against the baselines on a real dataset.", no_args_is_help=True)


@app.command("aliexpress")
def benchmark_aliexpress(
    data: Annotated[Path, typer.Option("--data", help="Folder of AliExpress_<CC>/{train,test}.csv (the published layout)")],
    out: Annotated[Optional[Path], typer.Option(help="Results folder [default: $GREC_HOME/benchmarks/aliexpress]")] = None,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds")] = "0",
    epochs: Annotated[int, typer.Option(help="At most this many epochs (early stopping on the validation rows)")] = 4,
    batch_size: Annotated[int, typer.Option(help="(example, task) rows per step")] = 2048,
    rows: Annotated[Optional[int], typer.Option(help="At most this many rows of each file, from its start")] = None,
    models: Annotated[str, typer.Option(help="Comma-separated, from grec.benchmark.MODELS [default: all six]")] = "",
):
    """Train GRec (task-sentence and token routing), MMoE, shared-bottom and single-task on every
    country at once (countries as flows, CTR and CTCVR as use cases), early-stopped on the last
    10% of each training file; test AUC per country in the published table's layout, beside the
    published per-country figures. Writes results.json and results.md."""
    from grec.benchmark import MODELS, compare, detail_table, flow_table
    from grec.data.real import aliexpress
    from grec.features.training_set import open_source
    from grec.train import TrainConfig

    chosen = {m.strip(): MODELS.get(m.strip()) for m in models.split(",") if m.strip()} or MODELS
    unknown = [m for m, v in chosen.items() if v is None]
    if unknown:
        raise typer.BadParameter(f"--models: {unknown} not among {list(MODELS)}")
    out = out or settings.state_dir() / "benchmarks" / "aliexpress"
    tables = settings.data_dir("aliexpress")
    with console.status(f"Loading {data}"):
        load_source("aliexpress", data, tables, rows=rows)
    dataset = open_source(tables).dataset()
    console.print(f"Training {len(chosen)} models on {', '.join(f'{k} {len(v):,}' for k, v in dataset.rows.items())} task rows")
    seed_list = [int(s) for s in seeds.split(",")]
    result = compare(dataset, seed_list, TrainConfig(epochs=epochs, batch_size=batch_size), chosen, log=console.print)
    flows, use_cases = list(dataset.spec.tasks.flows), list(dataset.spec.tasks.use_cases)
    result.update(data=str(data), rows_per_file=rows, seeds=seed_list, countries=flows)
    lines = ["# AliExpress: test AUC, CTR / CTCVR", "", aliexpress.SOURCE, "",
             f"Reproduce: `grec benchmark aliexpress --data {data} --seeds {seeds} --epochs {epochs} --batch-size {batch_size}"
             + (f" --rows {rows}" if rows else "") + "`", "",
             "Ours: one model over every country (countries as flows), mean over seeds, early stopping on the last 10% "
             "of each training file. Published rows (*): one model per country, MTReclib's README, mean of 5 runs, "
             "early-stopped on the test AUC (optimistic).", "",
             *flow_table(result, flows, use_cases, aliexpress.PUBLISHED, " (*)"), "",
             "Per task: AUC mean ± sd over seeds [95% bootstrap interval of the mean]; training time and rows/s.", "",
             *detail_table(result), ""]
    write_json(out / "results.json", result)
    write_text(out / "results.md", "\n".join(lines))
    console.print("\n".join(flow_table(result, flows, use_cases)), highlight=False)
    console.print(f"Wrote {out / 'results.json'} and {out / 'results.md'}")
