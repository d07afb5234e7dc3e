"""Training and evaluating one model from the command line (`grec train`, `grec evaluate`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from grec import settings
from grec.io import write_json
from grec.cli.common import DataOpt, TrackingOpt, TrainingSetOpt, console, open_data, parse_tags, parse_upsample


def train(
    data: DataOpt = None,
    training_set: TrainingSetOpt = None,
    model: Annotated[str, typer.Option(help="grec | mmoe | ple | shared_bottom | single_task | lightgbm (one booster per task)")] = "grec",
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
    console.print(f"Mean of the use cases (each pooled over flows): AUC {mean['auc']:.4f}, AP {mean['ap']:.4f}, log-loss {mean['logloss']:.4f}")


def evaluate(
    model_dir: Annotated[Optional[Path], typer.Option("--model", help="A model folder (`grec train --no-register`'s) "
                                                      "[default: the registered version --version names]")] = None,
    version: Annotated[str, typer.Option(help="A registered version, NAME@ALIAS or NAME/VERSION, when --model is not "
                                              "given")] = "grec@champion",
    data: DataOpt = None,
    training_set: TrainingSetOpt = None,
    split: Annotated[str, typer.Option(help="test | valid")] = "test",
    tracking_uri: TrackingOpt = None,
):
    """Per-task AUC, AP and log-loss (and oracle AUC on simulated data), plus FLOPs per example, of
    the registry's champion (default) or another registered version, or of a model folder."""
    from grec.evaluate import evaluate as run_evaluation
    from grec.evaluate import flops_per_example

    net, spec, title, report_path = open_model(model_dir, version, split, tracking_uri)
    dataset = open_data(data, training_set, splits=(split,)).dataset(spec=spec)
    report = run_evaluation(net, dataset, split)
    report["flops_per_example"] = flops_per_example(net, dataset, split)
    write_json(report_path, report, default=str)
    print_metrics(report, f"{title} on the {split} window ({dataset.source})")
    fl = report["flops_per_example"]
    console.print(f"FLOPs per example: {fl['total'] / 1e6:.2f}M total, {fl['mixing'] / 1e6:.2f}M in the mixing layer")
    console.print(f"Report: {report_path}")


def open_model(model_dir: Path | None, version: str, split: str, tracking_uri: str | None):
    """(model, spec, what it is, where its report goes): a model folder, or a registered version
    (NAME@ALIAS or NAME/VERSION) through its pyfunc, as serving loads it."""
    import re

    if model_dir is not None:
        from grec.model.checkpoint import load_model

        if not (model_dir / "config.json").exists():
            raise typer.BadParameter(f"--model: {model_dir} holds no trained model (no config.json); run `grec train`")
        net, spec = load_model(model_dir)
        return net, spec, model_dir.name, model_dir / f"eval-{split}.json"
    from grec.lifecycle.registry import Registry

    found = re.fullmatch(r"([\w.-]+)(?:@([\w-]+)|/(\d+))", version)
    if not found:
        raise typer.BadParameter(f"--version: {version!r} is not NAME@ALIAS or NAME/VERSION (e.g. grec@champion, grec/3)")
    name, alias, number = found.groups()
    registry = Registry(name, tracking_uri)
    if alias:
        number = registry.aliases().get(alias)
        if number is None:
            raise typer.BadParameter(f"--version: {name} has no version with the alias {alias!r} in {registry.tracking_uri} "
                                     "(run the training pipeline, or pass --model with a model folder)")
    elif number not in {str(v.version) for v in registry.versions()}:
        raise typer.BadParameter(f"--version: {name} has no version {number} in {registry.tracking_uri}")
    net, spec = registry.load(number)
    label = f"{name} v{number}" + (f" ({alias})" if alias else "")
    return net, spec, label, settings.reports_dir() / "evaluate" / f"{name}-v{number}-{split}.json"
