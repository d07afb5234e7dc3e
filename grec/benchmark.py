"""GRec against the baselines on one dataset under one budget: every model through the platform's
own path (dataset -> model_config -> train_model -> predict), early-stopped on the validation split
(never the test split). Per task: the test AUC averaged over seeds, its spread over seeds, and a 95%
bootstrap interval of that seed average (Poisson reweightings of the test rows, shared by every
model and seed); training time and rows per second.

Used by `grec benchmark aliexpress` and benchmarks/real_data.py.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable

import numpy as np
import torch

from grec.data.dataset import Dataset
from grec.evaluate import predict, task_masks
from grec.lifecycle.gate import weighted_auc
from grec.model.checkpoint import build_model, model_config
from grec.model.inputs import InputConfig
from grec.train import TrainConfig, train_model

MODELS = {  # name: model_config arguments
    "GRec task-sentence 8/4": {"arch": "grec"},
    "GRec token 8/4": {"arch": "grec", "routing": "token"},
    "MMoE 4": {"arch": "mmoe"},
    "Shared-bottom": {"arch": "shared_bottom"},
    "Single-task": {"arch": "single_task"},
}


def compare(data: Dataset, seeds: list[int], budget: TrainConfig, models: dict = MODELS, samples: int = 1000,
            log: Callable[[str], None] = print) -> dict:
    """Train every model once per seed on `data` and score the test rows (see the module docstring)."""
    test = data.rows["test"]
    label = test.label.numpy()
    masks = task_masks(data, test)
    weights = np.random.default_rng(0).poisson(1.0, (samples, len(label))).astype(np.float64)
    out = {"rows": {k: len(v) for k, v in data.rows.items()},
           "positives": {task: int(label[m].sum()) for task, m in masks.items()},
           "budget": {"epochs": budget.epochs, "batch_size": budget.batch_size, "lr": budget.lr}, "models": {}}
    for name, settings in models.items():
        probs, seconds, speed = [], [], []
        for seed in seeds:
            torch.manual_seed(seed)
            net = build_model(model_config(settings["arch"], InputConfig.sizes_from(data.spec),
                                           **{k: v for k, v in settings.items() if k != "arch"}))
            summary = train_model(net, data, dataclasses.replace(budget, seed=seed, progress=False))
            probs.append(predict(net, data, test))
            seconds.append(summary["seconds"])
            speed.append(summary["rows_per_second"])
        tasks = {}
        for task, m in masks.items():
            aucs = [float(weighted_auc(label[m], p[m], np.ones((1, m.sum())))[0]) for p in probs]
            boot = np.nanmean([weighted_auc(label[m], p[m], weights[:, m]) for p in probs], axis=0)  # (samples,)
            lo, hi = np.nanquantile(boot, [0.025, 0.975])
            tasks[task] = {"auc": statistics.mean(aucs), "sd": statistics.stdev(aucs) if len(aucs) > 1 else 0.0,
                           "ci": [float(lo), float(hi)], "per_seed": aucs}
        out["models"][name] = {"tasks": tasks, "seconds": statistics.mean(seconds), "rows_per_second": statistics.mean(speed)}
        log(f"  {name}: " + ", ".join(f"{t} {v['auc']:.4f}" for t, v in tasks.items()) + f" ({statistics.mean(seconds):.0f} s)")
    return out


def detail_table(result: dict, published: dict[str, float] | None = None, published_name: str = "") -> list[str]:
    """Markdown lines: a row per model, a column per task (AUC ± sd [interval]), time and speed."""
    tasks = list(result["positives"])
    lines = ["| model | " + " | ".join(tasks) + " | train time | rows/s |", "|---|" + "---:|" * (len(tasks) + 2)]
    for model, r in result["models"].items():
        cells = [f"{r['tasks'][t]['auc']:.4f} ± {r['tasks'][t]['sd']:.4f} "
                 f"[{r['tasks'][t]['ci'][0]:.3f}, {r['tasks'][t]['ci'][1]:.3f}]" for t in tasks]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {r['seconds']:.0f} s | {r['rows_per_second']:,.0f} |")
    if published:
        lines.append(f"| {published_name} | " + " | ".join(f"{published[t]:.4f}" if t in published else "" for t in tasks) + " | | |")
    return lines


def flow_table(result: dict, flows: list[str], use_cases: list[str], published: dict[str, dict[str, tuple]] | None = None,
               published_note: str = "") -> list[str]:
    """Markdown lines in the published multi-scenario layout: a row per model, a column per flow,
    each cell the use cases' AUCs 'a / b' (three decimals after the point, as published)."""
    def cell(values) -> str:
        return " / ".join("–" if v is None or np.isnan(v) else f"{v:.4f}".lstrip("0") for v in values)

    lines = ["| Model | " + " | ".join(flows) + " |", "|---|" + "---|" * len(flows)]
    for model, r in result["models"].items():
        lines.append(f"| {model} | " + " | ".join(
            cell(r["tasks"].get(f"{f}+{u}", {}).get("auc") for u in use_cases) for f in flows) + " |")
    for model, by_flow in (published or {}).items():
        lines.append(f"| {model}{published_note} | " + " | ".join(
            cell(by_flow[f]) if f in by_flow else "" for f in flows) + " |")
    return lines
