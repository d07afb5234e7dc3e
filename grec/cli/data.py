"""Data onto the platform: simulate the storefront, load a public dataset, draft a contract for your
own logs (`grec data ...`), and validate tables against their contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from grec import settings
from grec.cli.common import DataOpt, console


def simulate(
    out: Annotated[Optional[Path], typer.Option(help="Output folder [default: $GREC_HOME/data/default]")] = None,
    impressions: Annotated[int, typer.Option(help="Impressions over the whole window")] = 200_000,
    items: Annotated[Optional[int], typer.Option(help="Catalogue size [default: 300 products; 2,400 jobs]")] = None,
    train_weeks: Annotated[Optional[int], typer.Option(help="Weeks of training data [default: 13; jobs 5]")] = None,
    test_weeks: Annotated[int, typer.Option(help="Weeks of test data after them")] = 1,
    start: Annotated[Optional[str], typer.Option(help="First day, UTC [default: 2026-06-01; jobs 2026-03-02]")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    monitor_weeks: Annotated[int, typer.Option(help="Production weeks after the test week (what monitoring watches)")] = 0,
    drift: Annotated[Optional[str], typer.Option(help="Drift scenarios in the last monitor week(s), comma-separated: flow_shift, price_change, device_launch, concept")] = None,
    drift_weeks: Annotated[int, typer.Option(help="Monitor weeks, counted from the end, that carry the drift")] = 1,
    pages: Annotated[bool, typer.Option("--pages", help="Storefront: tasks per surface too (flow x surface x use "
                                                       "case, 72 tasks), each surface converting at its own rate")] = False,
    checkout_pages: Annotated[bool, typer.Option("--checkout-pages", help="With --pages: the checkout's accessory "
                                                                         "interstitial and cart page too (96 tasks)")] = False,
    world: Annotated[str, typer.Option(help="storefront (the telecom storefront, the platform's own contract) or "
                                            "jobs (a job board's logs: contract drafted by `grec data init`)")] = "storefront",
):
    """Simulate a world with true probabilities: the telecom storefront, or a job board written as a
    team's own logs (then `grec data init` drafts its contract, as for any logs)."""
    from rich.markup import escape

    from grec.data.simulate import SimulationConfig, simulate_to
    from grec.data.simulate_jobs import JobsConfig, init_command, simulate_jobs_to

    out = out or settings.data_dir()
    if world not in ("storefront", "jobs"):
        raise typer.BadParameter(f"--world: {world!r} is not one of storefront, jobs")
    if world == "jobs" and (pages or checkout_pages):
        raise typer.BadParameter("--pages adds surfaces to the storefront's tasks; the job board has its own (leave it out)")
    if world == "jobs" and (monitor_weeks or drift):
        raise typer.BadParameter("--monitor-weeks and --drift simulate the storefront's production weeks; the job "
                                 "board has none (leave them out with --world jobs)")
    given = {k: v for k, v in (("train_weeks", train_weeks), ("start", start)) if v is not None}
    try:
        if world == "jobs":
            config = JobsConfig(n_impressions=impressions, test_weeks=test_weeks, seed=seed, **given,
                                **({"n_jobs": items} if items is not None else {}))
        else:
            config = SimulationConfig(
                n_impressions=impressions, test_weeks=test_weeks, seed=seed, monitor_weeks=monitor_weeks,
                drift=tuple(d.strip() for d in (drift or "").split(",") if d.strip()), drift_weeks=drift_weeks,
                pages=pages, checkout_pages=checkout_pages, **given, **({"n_items": items} if items is not None else {}))
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    with console.status(f"Simulating {impressions:,} impressions"):
        paths = (simulate_jobs_to if world == "jobs" else simulate_to)(out, config)
    summary = json.loads((Path(out) / "simulation.json").read_text())
    console.print(f"Wrote {', '.join(str(p) for p in paths.values())}", soft_wrap=True, highlight=False)
    measured = summary.get("summary", summary)
    if rows := measured.get("rows"):
        console.print("Rows: " + ", ".join(f"{table} {n:,}" for table, n in rows.items()), highlight=False)
    if overall := measured.get("rates", {}).get("all"):
        console.print("Rates: " + ", ".join(f"{k} {v:.4g}" for k, v in overall.items() if k != "rows"), highlight=False)
    console.print(f"Everything the simulator measured: {Path(out) / 'simulation.json'}",
                  soft_wrap=True, highlight=False)
    if world == "jobs":
        console.print(escape(f"Next: {init_command(out)}"), soft_wrap=True, highlight=False)


app = typer.Typer(help="Logs onto the platform's tables: a contract for your own (init), a later batch (append); Census-Income, "
                       "Open Bandit, AliExpress (load).",
                       no_args_is_help=True)
SOURCES = ("census", "open-bandit", "aliexpress")


def load_source(name: str, source: Path, out: Path, seed: int = 0, rows: int | None = None) -> dict[str, Path]:
    """Read a real dataset in its published layout and write its tables and contract.json to `out`."""
    from grec.data.real import aliexpress, census, open_bandit

    if name not in SOURCES:
        raise typer.BadParameter(f"{name!r} is not one of {', '.join(SOURCES)}")
    if not Path(source).is_dir():
        raise typer.BadParameter(f"--source: {source} is not a folder")
    if name == "census":
        return census.load(source, out, seed=seed)
    if name == "open-bandit":
        return open_bandit.load(source, out)
    return aliexpress.load(source, out, rows=rows)


@app.command("load")
def data_load(
    name: Annotated[str, typer.Argument(help="census | open-bandit | aliexpress")],
    source: Annotated[Path, typer.Option(help="The dataset's folder, in its published layout")],
    out: Annotated[Optional[Path], typer.Option(help="Output folder [default: $GREC_HOME/data/<name>]")] = None,
    seed: Annotated[int, typer.Option(help="Census: the seed of the stratified 60/20/20 split")] = 0,
    rows: Annotated[Optional[int], typer.Option(help="AliExpress: at most this many rows of each file, from its start")] = None,
):
    """Map a real dataset onto the platform's tables (customers, items, impressions) with its
    contract.json; then `grec validate`, `grec train` and `grec evaluate` take it with --data."""
    import pyarrow.parquet as pq

    from grec.data.contract import read_contract

    out = out or settings.data_dir(name)
    with console.status(f"Loading {name} from {source}"):
        paths = load_source(name, source, out, seed, rows)
    contract = read_contract(out)
    impressions = pq.ParquetFile(paths["impressions"]).metadata.num_rows
    console.print(f"Wrote {out}: {', '.join(p.name for p in paths.values())}")
    console.print(f"Source: {contract.source}", highlight=False)
    console.print(f"{impressions:,} impressions; tasks {', '.join(contract.tasks.task_name(t) for t in range(contract.tasks.n_tasks))}")
    console.print(f"Next: grec train --data {out}", soft_wrap=True)


@app.command("append")
def data_append(
    data: Annotated[Path, typer.Argument(help="The data folder (its contract.json names the tables)")],
    batch: Annotated[Path, typer.Argument(help="A folder with any of the tables' later rows, in the same layout")],
):
    """Add a later batch of logs and snapshots to a data folder: each table checked against the
    contract and the folder (no impression twice), then written whole or not at all."""
    from grec.data.append import append_batch, describe

    for line in describe(append_batch(data, batch)):
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"Next: grec validate --data {data} --start ISO --end ISO (the new window), then the pipelines "
                  f"with --param data={data}", highlight=False, soft_wrap=True)


@app.command("init")
def data_init(
    folder: Annotated[Path, typer.Argument(help="Folder with a customers, an items and an impressions table (parquet)")],
    name: Annotated[Optional[str], typer.Option(help="The dataset's name (default: the folder's name)")] = None,
    label: Annotated[Optional[list[str]], typer.Option(
        "--label", help="An impressions label column, 0/1 (repeatable) (default: every int8/bool 0/1 column)")] = None,
    use_case: Annotated[Optional[list[str]], typer.Option(
        "--use-case", help="NAME=LABEL: a use case predicting LABEL (repeatable) (default: one per label, upper-cased)")] = None,
    population: Annotated[Optional[list[str]], typer.Option(
        "--population", help="NAME=LABEL: use case NAME is defined over rows where LABEL is 1, as CVR over clicks (repeatable)")] = None,
    funnel: Annotated[Optional[list[str]], typer.Option(
        "--funnel", help="A,B: label B is 1 only where label A is (repeatable)")] = None,
    split: Annotated[Optional[str], typer.Option(
        help="Impressions column of train/valid/test (default: a 'split' column of those values, else by time)")] = None,
    cast: Annotated[bool, typer.Option("--cast", help="Rewrite the tables so columns a type cast fixes (int32, "
                                       "float64, bool labels, times without a zone) fit the contract")] = False,
    oracle: Annotated[Optional[list[str]], typer.Option(
        "--oracle", help="USE_CASE=COLUMN: where the logs are simulated, the column of that use case's true "
                         "probability (for every use case; the benchmarks' oracle, never a feature)")] = None,
    file: Annotated[Optional[list[str]], typer.Option(
        "--file", help="TABLE=FILE: the table's file, where it is not TABLE.parquet (repeatable)")] = None,
    column: Annotated[Optional[list[str]], typer.Option(
        "--column", help="[TABLE.]PART=COLUMN: your column playing a core part (customer_id, item_id, impression_id, "
                         "event_timestamp, updated_at, flow, search_query, viewed_item_ids, visited_page_ids, description, "
                         "image_embedding) where it is not recognised (repeatable)")] = None,
    task_token: Annotated[Optional[list[str]], typer.Option(
        "--task-token", help="An impressions text column that names tasks beside the flow (a page, a surface; "
                             "repeatable): each task is flow + its values + use case, over the combinations the "
                             "logs hold")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing contract.json")] = False,
):
    """Draft contract.json for your own tables: which columns are categorical and numerical
    features, the labels, flows and use cases (the tasks), the funnel and the split. Prints what it
    inferred and every column it left out with the fix; then `grec validate` and `grec train` read it."""
    from rich.markup import escape

    from grec.data.scaffold import draft_contract, refuse_existing, write_draft

    refuse_existing(folder, force)
    with console.status(f"Reading {folder}"):
        draft = draft_contract(folder, name, label, use_case, population, funnel, split, cast, oracle, file, column,
                               task_token)
        path = write_draft(draft, force)
    contract = draft.contract
    table = Table(title=escape(f"Contract '{contract.name}' for {folder}"))
    for col in ("table", "rows", "categorical", "numerical"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for t in contract.tables:
        table.add_row(t, f"{draft.rows[t]:,}", escape(", ".join(contract.features(t, "categorical")) or "-"),
                      escape(", ".join(contract.features(t, "numerical")) or "-"))
    console.print(table)
    tasks = contract.tasks
    labels = ", ".join(f"{u} = {tasks.labels[u]}" + (f" over rows where {tasks.populations[u]} = 1" if tasks.populations.get(u) else "")
                       for u in tasks.use_cases)
    names = contract.names
    renamed = [f"{contract.tables[t].file}: " + ", ".join(f"{c} = {p}" for p, c in names["columns"].get(t, {}).items())
               for t in contract.tables if names["columns"].get(t)]
    for key, value in (("Your names", "; ".join(renamed) or "the platform's own (customer_id, item_id, ...)"),
                       ("Labels", ", ".join(tasks.label_columns)), (("Flows" if len(tasks.tokens) == 1 else "Routes (" + "+".join(tasks.tokens) + ")"),
                        ", ".join(tasks.flows)), ("Use cases", labels),
                       ("Tasks", f"{tasks.n_tasks}: " + ", ".join(tasks.task_name(t) for t in range(tasks.n_tasks))),
                       ("Funnel", ", ".join(f"{a} -> {b}" for a, b in contract.funnel) or "none"),
                       ("Split", f"column '{contract.split}'" if contract.split else "by time"),
                       *([("True probabilities", ", ".join(f"{u} = {c}" for u, c in tasks.oracles.items()))]
                         if tasks.oracles else []),
                       ("Inputs", ", ".join(contract.inputs) or "none (no search text, histories or item vectors: "
                                                                  "readers fill them constant)")):
        console.print(f"[bold]{key}:[/bold] {escape(value)}", highlight=False, soft_wrap=True)
    for cast_ in draft.casts:
        console.print(f"[cyan]cast[/cyan] {escape(cast_.line())}", highlight=False, soft_wrap=True)
    if draft.unused:
        console.print(f"[yellow]Left out ({len(draft.unused)} column{'' if len(draft.unused) == 1 else 's'}):[/yellow]")
        for unused in draft.unused:
            console.print(f"  - {escape(unused.line())}", highlight=False, soft_wrap=True)
    for note in draft.notes:
        console.print(f"[dim]note:[/dim] {escape(note)}", highlight=False, soft_wrap=True)
    console.print(escape(f"Wrote {path} (a draft: edit it to change what feeds what)"), soft_wrap=True, highlight=False)
    console.print(escape(f"Next:\n  grec validate --data {folder}\n  grec train --data {folder}\n"
                         f"  grec pipeline run training --local --param data={folder.resolve()}"), soft_wrap=True,
                  highlight=False)


def validate(
    data: DataOpt = None,
    start: Annotated[str, typer.Option(help="Impressions must be stamped from this time (ISO, UTC)")] = "",
    end: Annotated[str, typer.Option(help="...and before this one; also the freshness reference")] = "",
    n_pages: Annotated[int, typer.Option(help="Page ids are 0..N-1")] = 24,
    min_task_positives: Annotated[int, typer.Option(help="Positives each task needs to be trainable")] = 3,
    out: Annotated[Optional[Path], typer.Option(help="Report folder [default: $GREC_HOME/validation/<data name>]")] = None,
    strict_columns: Annotated[bool, typer.Option(help="A column the contract does not name fails (default: a warning)")] = False,
):
    """Check the raw tables with Great Expectations; exit 1 if any expectation fails."""
    import pandas as pd

    from grec.validation.run import validate as run_validation
    from grec.validation.suites import ValidationPolicy

    policy = ValidationPolicy(start=pd.Timestamp(start, tz="UTC") if start else None,
                              end=pd.Timestamp(end, tz="UTC") if end else None, n_pages=n_pages,
                              min_positives_per_task=min_task_positives, strict_columns=strict_columns)
    with console.status("Validating tables"):
        report = run_validation(data or settings.data_dir(), policy, out)
    for line in report.warnings:
        console.print(f"[yellow]warning[/yellow] {line}", highlight=False)
    for name, t in report.tables.items():
        mark = "[green]ok[/green]" if t["success"] else "[red]FAILED[/red]"
        console.print(f"{name:12s} {t['rows']:>10,} rows  {t['expectations']:>3} expectations  {mark}")
    for failure in report.failures:
        console.print(f"[red]x[/red] {failure.line()}", highlight=False)
        for row in failure.examples:
            console.print(f"    {row}", highlight=False, overflow="ellipsis", no_wrap=True)
    console.print(f"Report: {report.json}\nData Docs: {report.html}")
    if not report.success:
        raise typer.Exit(1)
