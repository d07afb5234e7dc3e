"""The `grec` command line: one Typer app for every step of the platform."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from grec import settings
from grec.io import write_json, write_text

app = typer.Typer(help="GRec: one multi-task recommender, trained, checked and served.", no_args_is_help=True)
console = Console()
if console.width < 110:  # pipes and CI report 80 columns; the metrics table needs more
    console = Console(width=110)

DataOpt = Annotated[Optional[Path], typer.Option("--data", help="Folder of parquet tables [default: $GREC_HOME/data/default]")]
TrackingOpt = Annotated[Optional[str], typer.Option(
    "--tracking-uri", help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI, else SQLite in $GREC_HOME/mlflow]")]
TrainingSetOpt = Annotated[Optional[Path], typer.Option(
    "--training-set", help="A feature-store training set (`grec features training-set`), instead of --data")]


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


@app.command()
def simulate(
    out: Annotated[Optional[Path], typer.Option(help="Output folder [default: $GREC_HOME/data/default]")] = None,
    impressions: Annotated[int, typer.Option(help="Impressions over the whole window")] = 200_000,
    items: Annotated[Optional[int], typer.Option(help="Catalogue size [default: 300 products; 2,400 jobs]")] = None,
    train_weeks: Annotated[Optional[int], typer.Option(help="Weeks of training data [default: 13; jobs 5]")] = None,
    test_weeks: Annotated[int, typer.Option(help="Weeks of test data after them")] = 1,
    start: Annotated[Optional[str], typer.Option(help="First day, UTC [default: 2026-06-01; jobs 2026-03-02]")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    monitor_weeks: Annotated[int, typer.Option(help="Production weeks after the test week (what monitoring watches)")] = 0,
    drift: Annotated[Optional[str], typer.Option(help="Drift scenarios in the last monitor week(s), comma-separated: flow_shift")] = None,
    drift_weeks: Annotated[int, typer.Option(help="Monitor weeks, counted from the end, that carry the drift")] = 1,
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
                **given, **({"n_items": items} if items is not None else {}))
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    with console.status(f"Simulating {impressions:,} impressions"):
        paths = (simulate_jobs_to if world == "jobs" else simulate_to)(out, config)
    summary = json.loads((Path(out) / "simulation.json").read_text())
    console.print(f"Wrote {', '.join(str(p) for p in paths.values())}")
    console.print_json(data=summary.get("summary", summary))
    if world == "jobs":
        console.print(escape(f"Next: {init_command(out)}"), soft_wrap=True, highlight=False)


data_app = typer.Typer(help="Logs onto the platform's tables: a contract for your own (init); Census-Income, "
                       "Open Bandit, AliExpress (load).",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")
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


@data_app.command("load")
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


@data_app.command("init")
def data_init(
    folder: Annotated[Path, typer.Argument(help="Folder with customers.parquet, items.parquet, impressions.parquet")],
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
    force: Annotated[bool, typer.Option("--force", help="Replace an existing contract.json")] = False,
):
    """Draft contract.json for your own tables: which columns are categorical and numerical
    features, the labels, flows and use cases (the tasks), the funnel and the split. Prints what it
    inferred and every column it left out with the fix; then `grec validate` and `grec train` read it."""
    from rich.markup import escape

    from grec.data.scaffold import draft_contract, refuse_existing, write_draft

    refuse_existing(folder, force)
    with console.status(f"Reading {folder}"):
        draft = draft_contract(folder, name, label, use_case, population, funnel, split, cast, oracle)
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
    for key, value in (("Labels", ", ".join(tasks.label_columns)), ("Flows", ", ".join(tasks.flows)), ("Use cases", labels),
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


benchmark_app = typer.Typer(help="GRec against the baselines on a real dataset.", no_args_is_help=True)
app.add_typer(benchmark_app, name="benchmark")


@benchmark_app.command("aliexpress")
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


@app.command()
def train(
    data: DataOpt = None,
    training_set: TrainingSetOpt = None,
    model: Annotated[str, typer.Option(help="grec | mmoe | shared_bottom | single_task | lightgbm (one booster per task)")] = "grec",
    routing: Annotated[str, typer.Option(help="GRec routing: token | sentence | task | task_sentence")] = "task_sentence",
    experts: Annotated[int, typer.Option(help="Experts (GRec 8, MMoE 4 by default)")] = 0,
    top_k: Annotated[int, typer.Option(help="Experts per token (GRec)")] = 4,
    capacity: Annotated[int, typer.Option(help="Tokens per expert per example, 0 for no limit (GRec)")] = 2,
    d_model: Annotated[int, typer.Option(help="Model width")] = 32,
    epochs: Annotated[int, typer.Option()] = 8,
    batch_size: Annotated[int, typer.Option(help="(example, task) rows per step")] = 2048,
    lr: Annotated[float, typer.Option()] = 1e-3,
    seed: Annotated[int, typer.Option()] = 0,
    resume: Annotated[bool, typer.Option(help="Go on from the checkpoint a stopped run of the same --out left")] = False,
    upsample: Annotated[Optional[str], typer.Option(help="Repeat training rows, e.g. 'CVR=4,AAL+CTCVR=2'")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    out: Annotated[Optional[Path], typer.Option(help="Model folder [default: $GREC_HOME/models/<model>]")] = None,
    register: Annotated[Optional[bool], typer.Option(
        "--register/--no-register", help="Register the model (alias challenger) [default: GRec yes, baselines no]")] = None,
    name: Annotated[str, typer.Option("--name", help="Registered model name")] = "grec",
    tag: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE tag on the MLflow run (repeatable)")] = None,
    tracking_uri: TrackingOpt = None,
):
    """Train GRec, a baseline network or the per-task LightGBM incumbents, early-stopping on the
    validation week; log the run to MLflow and register the model as the challenger."""
    from grec import distributed
    from grec.lifecycle.store import configure, ui_command
    from grec.lifecycle.tracking import train_and_log
    from grec.model.checkpoint import ARCHS, model_config
    from grec.model.inputs import InputConfig
    from grec.train import TrainConfig

    if model not in ARCHS:
        raise typer.BadParameter(f"--model: {model!r} is not one of {', '.join(ARCHS)}")
    upsample_factors = parse_upsample(upsample)
    tags = parse_tags(tag)
    configure(tracking_uri)
    if not distributed.world().is_main:  # under torchrun: rank 0 speaks for the job
        console.quiet = True
    opened = time.perf_counter()
    with console.status("Loading the data and encoding texts"):
        source = open_data(data, training_set)
        dataset = source.dataset(upsample=upsample_factors)
    opened = time.perf_counter() - opened
    config = model_config(model, InputConfig.sizes_from(dataset.spec), d_model, experts, top_k, capacity, routing)
    run_name = model if model != "grec" else f"grec-{routing}"
    out = out or settings.models_dir() / run_name
    console.print(f"Training {run_name} on {', '.join(f'{k} {len(v):,}' for k, v in dataset.rows.items())} rows")
    if hasattr(dataset, "splits"):  # a StreamingDataset
        console.print(f"Streaming the rows from {source.path} block by block: in memory they would take about "
                      f"{source.in_memory_bytes() / 2**30:.1f} GiB, over the budget of {settings.memory_budget() / 2**30:.1f} GiB "
                      f"(${settings.MEMORY_ENV})", soft_wrap=True)
    register = model == "grec" if register is None else register
    record = train_and_log(config, source, dataset,
                           TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device, resume=resume),
                           out, run_name, register_as=name if register else None, tags=tags)
    if record is None:  # a rank of a torchrun job other than 0: rank 0 reports
        return
    summary = record.summary
    summary["phases"] = {"open and encode": opened, **summary["phases"]}
    split = {"column": source.contract.split} if source.contract.split else dataset.split.__dict__
    write_json(out / "train.json", {"data": str(source.path), "run_id": record.run_id, "model_uri": record.model_uri,
                                    "split": split, **summary}, default=str)
    write_json(out / "eval-test.json", record.report, default=str)
    print_metrics(record.report, f"{run_name} on the test split ({source.path})")
    console.print(f"Saved {out} ({summary['seconds']:.0f}s, {summary['rows_per_second']:,.0f} rows/s)")
    console.print("Wall time by phase: " + ", ".join(f"{k} {v:.1f} s" for k, v in summary["phases"].items()), soft_wrap=True)
    if record.version:
        console.print(f"Registered {name} version {record.version} (alias challenger): models:/{name}/{record.version}")
    console.print(f"MLflow run {record.run_id}; browse it with: {ui_command(tracking_uri)}", soft_wrap=True)


def print_metrics(report: dict, title: str) -> None:
    oracle = any("oracle_auc" in m for m in report["by_task"].values())  # simulated data knows the true probabilities
    table = Table(title=title, caption="ALL: each use case pooled over flows")
    columns = ("task", "rows", "pos. rate", "AUC", "oracle AUC", "AP", "oracle AP", "logloss")
    for col in (c for c in columns if oracle or "oracle" not in c):
        table.add_column(col, justify="left" if col == "task" else "right", no_wrap=True)

    def add(name, m, style=None):
        cells = [f"{m['rows']:,}", f"{m['rate']:.4f}", f"{m['auc']:.4f}", f"{m.get('oracle_auc', float('nan')):.4f}",
                 f"{m['ap']:.4f}", f"{m.get('oracle_ap', float('nan')):.4f}", f"{m['logloss']:.4f}"]
        table.add_row(name, *(cells if oracle else [cells[i] for i in (0, 1, 2, 4, 6)]), style=style)

    for name, m in report["by_task"].items():
        add(name, m)
    table.add_section()
    for name, m in report["by_use_case"].items():
        add(f"ALL+{name}", m, style="bold")
    console.print(table)
    mean = report["mean"]
    console.print(f"Mean over use cases: AUC {mean['auc']:.4f}, AP {mean['ap']:.4f}, log-loss {mean['logloss']:.4f}")


@app.command()
def evaluate(
    model_dir: Annotated[Optional[Path], typer.Option("--model", help="Model folder [default: $GREC_HOME/models/grec-task_sentence]")] = None,
    data: DataOpt = None,
    training_set: TrainingSetOpt = None,
    split: Annotated[str, typer.Option(help="test | valid")] = "test",
):
    """Per-task AUC, AP and log-loss (and oracle AUC on simulated data), plus FLOPs per example."""
    from grec.evaluate import evaluate as run_evaluation
    from grec.evaluate import flops_per_example
    from grec.model.checkpoint import load_model

    model_dir = model_dir or settings.models_dir() / "grec-task_sentence"
    if not (model_dir / "config.json").exists():
        raise typer.BadParameter(f"--model: {model_dir} holds no trained model (no config.json); run `grec train`")
    net, spec = load_model(model_dir)
    dataset = open_data(data, training_set, splits=(split,)).dataset(spec=spec)
    report = run_evaluation(net, dataset, split)
    report["flops_per_example"] = flops_per_example(net, dataset, split)
    write_json(model_dir / f"eval-{split}.json", report, default=str)
    print_metrics(report, f"{model_dir.name} on the {split} window ({dataset.source})")
    fl = report["flops_per_example"]
    console.print(f"FLOPs per example: {fl['total'] / 1e6:.2f}M total, {fl['mixing'] / 1e6:.2f}M in the mixing layer")
    console.print(f"Report: {model_dir / f'eval-{split}.json'}")


@app.command()
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


features_app = typer.Typer(help="The Feast feature store: apply, materialize, build training sets.", no_args_is_help=True)
app.add_typer(features_app, name="features")


@features_app.command("apply")
def features_apply(data: DataOpt = None):
    """Build the feature sources from the raw tables (encoding new texts) and register the repository."""
    from grec.features.store import apply

    with console.status("Building feature sources and applying feature_repo/"):
        result = apply(data or settings.data_dir())
    console.print(f"Applied {', '.join(result['objects'])}")
    console.print(f"Registry: {result['registry']}")


@features_app.command("materialize")
def features_materialize(
    end: Annotated[str, typer.Option(help="Load values stamped up to this time (ISO, UTC) [default: now]")] = "",
    start: Annotated[str, typer.Option(help="...and from this time [default: all history]")] = "",
):
    """Load the latest feature values up to END into the online store."""
    import pandas as pd

    from grec.features.store import materialize

    result = materialize(end or pd.Timestamp.now(tz="UTC"), start or None)
    console.print(f"Online store {result['online_store']} holds values up to {result['end']}")


@features_app.command("training-set")
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


registry_app = typer.Typer(help="The model registry: aliases challenger, champion, previous-champion.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")
NameOpt = Annotated[str, typer.Option("--name", help="Registered model name")]
ActorOpt = Annotated[Optional[str], typer.Option("--decided-by", help="Who or what decides, recorded on the version [default: user@host]")]


@registry_app.command("status")
def registry_status(name: NameOpt = "grec", tracking_uri: TrackingOpt = None,
                    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False):
    """Versions, their aliases, test AUC and the gate's decisions."""
    from grec.lifecycle.registry import Registry

    status = Registry(name, tracking_uri).status()
    if as_json:
        print(json.dumps(status, indent=2))
        return
    table = Table(title=f"{name} in {status['tracking_uri']}")
    for col in ("version", "aliases", "created", "test AUC", "gate", "promoted", "rolled back"):
        table.add_column(col, no_wrap=True)
    for v in status["versions"]:
        tags, auc = v["tags"], v["test_mean_auc"]

        def when(key):  # ISO stamp -> "2026-11-23 18:46"
            return tags[key][:16].replace("T", " ") if key in tags else "-"

        table.add_row(v["version"], ", ".join(v["aliases"]), v["created"][:16].replace("T", " "),
                      "-" if auc is None else f"{auc:.4f}", tags.get("grec.gate.decision", "-"),
                      when("grec.promoted_at"), when("grec.rolled_back_at"))
    console.print(table)


@registry_app.command("promote")
def registry_promote(
    version: Annotated[Optional[str], typer.Option(help="Version to gate [default: the challenger]")] = None,
    held_out: Annotated[Optional[Path], typer.Option(
        "--held-out", help="Training set or raw tables whose test week judges [default: the version's training data]")] = None,
    policy: Annotated[Optional[Path], typer.Option(help="Gate policy file [default: grec/lifecycle/gate_policy.yaml]")] = None,
    name: NameOpt = "grec",
    decided_by: ActorOpt = None,
    tracking_uri: TrackingOpt = None,
):
    """Gate a version against the champion on the held-out week; promote it if the gate passes."""
    from grec.lifecycle.gate import GatePolicy
    from grec.lifecycle.registry import Registry
    from grec.lifecycle.store import ui_command

    with console.status("Scoring the held-out week with the challenger and the champion"):
        result = Registry(name, tracking_uri).promote(version, held_out, GatePolicy.load(policy), decided_by)
    if result.report is not None:
        console.print(result.report.markdown(), highlight=False, soft_wrap=True)
        console.print(f"Gate report: {result.report_paths[1]} and {result.report_paths[0].name}")
    mark = "[green]PROMOTED[/green]" if result.changed else ("[red]REFUSED[/red]" if result.report else "[yellow]UNCHANGED[/yellow]")
    console.print(f"{mark} {name} v{result.version}: {result.message}. Champion: v{result.champion_after or '-'}", highlight=False)
    console.print(f"Browse the registry with: {ui_command(tracking_uri)}", soft_wrap=True)


@registry_app.command("rollback")
def registry_rollback(
    reason: Annotated[str, typer.Option(help="Why, recorded on the demoted version")] = "",
    name: NameOpt = "grec",
    decided_by: ActorOpt = None,
    tracking_uri: TrackingOpt = None,
):
    """Make the previous champion the champion again."""
    from grec.lifecycle.registry import Registry

    result = Registry(name, tracking_uri).rollback(decided_by, reason)
    console.print(f"{result.message} (was v{result.champion_before})")


@app.command()
def package(
    name: NameOpt = "grec",
    alias: Annotated[str, typer.Option(help="Registry alias to package")] = "champion",
    tracking_uri: TrackingOpt = None,
):
    """Import the registry's champion into BentoML and `bentoml build` the ranking service; prints the Bento tag."""
    from grec.serving.bento import build, import_champion

    model = import_champion(name, alias, tracking_uri)
    with console.status(f"Building the Bento with {model.tag}"):
        tag = build(str(model.tag))
    console.print(f"Model {model.tag} ({name}@{alias}); Bento [bold]{tag}[/bold]", highlight=False)
    print(tag)


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="HTTP port")] = 3000,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    name: NameOpt = "grec",
    alias: Annotated[str, typer.Option(help="Registry alias to serve")] = "champion",
    tracking_uri: TrackingOpt = None,
):
    """Serve the ranking service locally (BentoML) with the registry's champion and the Feast online
    store; SIGTERM or Ctrl-C stops the server too (its prediction log flushed), then this command."""
    import os
    import sys

    from grec.serving.bento import REPO, import_champion, run_server

    model = import_champion(name, alias, tracking_uri)
    env = os.environ | {"GREC_BENTO_MODEL": str(model.tag), "GREC_HOME": str(settings.state_dir())}
    console.print(f"Serving {model.tag} ({name}@{alias}) on http://{host}:{port}", highlight=False)
    bentoml = Path(sys.executable).with_name("bentoml")
    raise typer.Exit(run_server([str(bentoml), "serve", "grec.serving.service:GRecRanker", "--host", host,
                                 "--port", str(port), "--working-dir", str(REPO)], env))


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="HTTP port (loopback only)")] = 5000,
    tracking_uri: TrackingOpt = None,
):
    """The MLflow UI for this state folder's runs and registry, opened on the project's experiment
    in its model-training view (runs, plots, models); a tracking server's own UI is linked instead."""
    import subprocess
    import sys

    from grec.lifecycle.store import configure, experiment_id, experiment_url

    uri = configure(tracking_uri)
    experiment = experiment_id()
    if uri.startswith(("http://", "https://")):
        console.print(f"The tracking server's UI: {experiment_url(experiment, uri)}", soft_wrap=True)
        return
    console.print(f"MLflow UI: {experiment_url(experiment, f'http://127.0.0.1:{port}')}  (Ctrl-C stops it)", soft_wrap=True)
    mlflow = Path(sys.executable).with_name("mlflow")
    # one worker: a UI on loopback serves one person, and MLflow's default of 4 worker processes
    # takes four times the memory and, on a small machine, several times as long to start
    raise typer.Exit(subprocess.call([str(mlflow), "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
                                      "--port", str(port), "--workers", "1"]))


pipeline_app = typer.Typer(help="Kubeflow pipelines (training, monitoring): run locally, compile, submit, schedule.",
                           no_args_is_help=True)
app.add_typer(pipeline_app, name="pipeline")
PipelineArg = Annotated[str, typer.Argument(help="training | monitoring")]
ParamOpt = Annotated[Optional[list[str]], typer.Option("--param", help="Pipeline parameter NAME=VALUE (repeatable)")]
HostOpt = Annotated[str, typer.Option("--host", help="KFP API server URL, e.g. http://localhost:8080")]


@pipeline_app.command("run")
def pipeline_run(
    name: PipelineArg,
    local: Annotated[bool, typer.Option("--local", help="Run here with kfp's local runner (required: use `submit` for a cluster)")] = False,
    param: ParamOpt = None,
    runner: Annotated[str, typer.Option(help="subprocess: each task a process of this environment; docker: each task "
                                             "a container of the component image, in the engine DOCKER_HOST names")] = "subprocess",
):
    """Run a pipeline locally, task by task, and print its summary."""
    from grec.pipeline.run import parse_params, run_local, task_outputs

    if not local:
        raise typer.BadParameter("only local runs start here: add --local, or use `grec pipeline submit --host URL`")
    params = parse_params(name, param or [])
    where = "in containers" if runner == "docker" else "locally"
    console.print(f"Running the {name} pipeline {where} ({', '.join(f'{k}={v}' for k, v in params.items()) or 'defaults'})")
    run_dir = run_local(name, params, runner=runner)
    outputs = task_outputs(run_dir)
    (print_training_summary if name == "training" else print_monitoring_summary)(outputs)
    console.print(f"Pipeline outputs: {run_dir}", soft_wrap=True)


def _read(outputs: dict, task: str, artifact: str) -> str:
    return Path(outputs[task]["artifacts"][artifact]["path"]).read_text()


def print_training_summary(outputs: dict) -> None:
    from grec.lifecycle.registry import Registry

    console.rule("Data checks")
    console.print(_read(outputs, "validate-data", "report"), highlight=False)
    features = outputs["build-features"]["artifacts"]["training_set"]["metadata"]
    lost = {k.removeprefix("left_out."): v for k, v in features.items() if k.startswith("left_out.")}
    console.print("Training set: " + ", ".join(f"{k} {features[f'rows.{k}']:,}" for k in ("train", "valid", "test"))
                  + " rows" + ("; left out for want of a feature value: " + "; ".join(f"{k}: {v:,} rows" for k, v in lost.items())
                               if lost else ""), highlight=False)
    for task in sorted(t for t in outputs if t.startswith("train-model")):  # one per model the pipeline trains
        model = outputs[task].get("artifacts", {}).get("model", {}).get("metadata", {})
        if "time_spent" in model:
            console.print(f"Trained {model['arch']}: {model['time_spent']}", highlight=False, soft_wrap=True)
    console.rule("GRec against the baseline and the incumbents (held-out rows)")
    console.print(_read(outputs, "evaluate-and-gate", "comparison"), highlight=False)
    console.rule("Gate")
    gate = json.loads(_read(outputs, "evaluate-and-gate", "gate"))
    failed = ", ".join(t["task"] for t in gate["tasks"] if not t["passed"])
    console.print(f"Decision: [bold]{gate['decision'].upper()}[/bold]" + (f" (failed: {failed})" if failed else "")
                  + "; " + ("; ".join(gate["reasons"]) if gate["reasons"] else "every judged task passed"), highlight=False)
    version = outputs["register-model"]["parameters"]["Output"]
    status = Registry(gate["challenger"]["name"]).status()
    console.print(f"Registered {status['name']} v{version}; aliases: "
                  + ", ".join(f"{a}=v{v}" for a, v in sorted(status["aliases"].items())), highlight=False)
    if "package-service" in outputs:
        bento = outputs["package-service"]
        console.print(f"Bento: [bold]{bento['parameters']['Output']}[/bold] ({bento['artifacts']['bento']['path']})", highlight=False)
    else:
        console.print("Bento: not built (the champion did not change)")
    console.rule("Reports")
    for task, artifact in (("validate-data", "data_docs"), ("evaluate-and-gate", "comparison"), ("evaluate-and-gate", "gate_report")):
        console.print(f"{task}/{artifact}: {outputs[task]['artifacts'][artifact]['path']}", soft_wrap=True, highlight=False)


def print_monitoring_summary(outputs: dict) -> None:
    drift = outputs["drift-report"]
    result = json.loads(_read(outputs, "drift-report", "result"))
    console.rule("Drift")
    console.print(f"Window {result['window']['start']} to {result['window']['end']} against {result['reference']['model']} "
                  f"v{result['reference']['version']}: [bold]{result['decision'].upper()}[/bold]", highlight=False)
    for reason in result["reasons"]:
        console.print(f"- {reason}", highlight=False)
    drifted = [f["column"] for f in result["features"] if f["drifted"]]
    console.print(f"Features drifted: {len(drifted)} of {len(result['features'])}; tasks with drifted scores: "
                  f"{sum(t['drifted'] for t in result['tasks'])} of {len(result['tasks'])}; served rows: {result['window']['served_rows']:,}")
    if result["decision"] == "drift":
        console.print(f"Marked {result['reference']['model']} v{result['reference']['version']} for retraining "
                      "(tag grec.retrain_requested=true)")
    console.rule("Reports")
    for artifact in ("report", "summary", "result"):
        console.print(f"drift-report/{artifact}: {drift['artifacts'][artifact]['path']}", soft_wrap=True, highlight=False)


@pipeline_app.command("compile")
def pipeline_compile(
    name: PipelineArg,
    out: Annotated[Optional[Path], typer.Option(help="YAML file [default: $GREC_HOME/pipelines/<name>.yaml]")] = None,
):
    """Compile a pipeline to the YAML a KFP API server runs."""
    from grec.pipeline.run import compile_pipeline

    path = compile_pipeline(name, out or settings.state_dir() / "pipelines" / f"{name}.yaml")
    console.print(f"Wrote {path}", soft_wrap=True)


@pipeline_app.command("submit")
def pipeline_submit(name: PipelineArg, host: HostOpt, param: ParamOpt = None):
    """Start one run on a KFP API server."""
    from grec.pipeline.run import parse_params, submit

    console.print(f"Submitted run {submit(name, host, parse_params(name, param or []))} to {host}")


@pipeline_app.command("schedule")
def pipeline_schedule(
    name: PipelineArg,
    host: HostOpt,
    cron: Annotated[str, typer.Option(help="Six-field cron, seconds first: '0 0 3 * * 1' = Mondays 03:00")],
    param: ParamOpt = None,
):
    """Create a recurring run on a KFP API server (one run at a time)."""
    from grec.pipeline.run import parse_params, schedule

    console.print(f"Recurring run {schedule(name, host, cron, parse_params(name, param or []))} on {host} ({cron})")


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


if __name__ == "__main__":
    main()
