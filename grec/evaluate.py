"""Per-task metrics (AUC, average precision, log-loss, and the oracle's AUC on simulated data) and
FLOPs per example counted by torch's FLOP counter, with the mixing (routing + experts) part apart,
as the paper's Table 1 reports routing FLOPs."""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from grec.data.dataset import Dataset
from grec.data.task_rows import TaskRows
from grec.data.schema import TELECOM_TASKS
from grec.model.checkpoint import device_of


@torch.no_grad()
def predict(model: nn.Module, data: Dataset, rows: TaskRows, batch_size: int = 8192, device=None) -> np.ndarray:
    """(R,) probabilities, in the order of `rows`."""
    device = device or device_of(model)
    model.eval()
    out = torch.empty(len(rows))
    for batch, _, position in data.batches(rows, batch_size):
        out[position] = torch.sigmoid(model(batch.to(device)).logits.float()).cpu()
    return out.numpy()


def binary_metrics(label: np.ndarray, prob: np.ndarray, oracle: np.ndarray | None = None) -> dict:
    """AUC, AP and log-loss of `prob`; the same AUC and AP for the true probability when known."""
    positives = int(label.sum())
    m = {"rows": int(len(label)), "positives": positives, "rate": positives / max(len(label), 1)}
    both = 0 < positives < len(label)
    m["auc"] = float(roc_auc_score(label, prob)) if both else math.nan
    m["ap"] = float(average_precision_score(label, prob)) if both else math.nan
    m["logloss"] = float(log_loss(label, np.clip(prob, 1e-7, 1 - 1e-7), labels=[0, 1])) if len(label) else math.nan
    if oracle is not None:
        m["oracle_auc"] = float(roc_auc_score(label, oracle)) if both else math.nan
        m["oracle_ap"] = float(average_precision_score(label, oracle)) if both else math.nan
    return m


def mean_auc_by_use_case(rows: TaskRows, prob: np.ndarray, use_cases: tuple[str, ...] = TELECOM_TASKS.use_cases) -> dict:
    """AUC per use case pooled over flows, and their mean: the early-stopping criterion."""
    label, use_case = rows.label.numpy(), rows.use_case.numpy()
    out = {}
    for u, name in enumerate(use_cases):
        sel = use_case == u
        if 0 < label[sel].sum() < sel.sum():
            out[name] = float(roc_auc_score(label[sel], prob[sel]))
    out["mean"] = float(np.mean(list(out.values()))) if out else math.nan
    return out


def task_masks(data: Dataset, rows: TaskRows) -> dict[str, np.ndarray]:
    """{task name: (R,) bool} for every task (flow + use case) that has rows, in task-id order."""
    tasks = data.spec.tasks
    task = rows.task(len(tasks.use_cases)).numpy()
    return {tasks.task_name(t): task == t for t in range(tasks.n_tasks) if (task == t).any()}


def evaluate_predictions(data: Dataset, rows: TaskRows, prob: np.ndarray) -> dict:
    """Metrics per task (flow + use case), per use case (pooled over flows), and their means."""
    label, use_case = rows.label.numpy(), rows.use_case.numpy()
    oracle = None if rows.oracle is None else rows.oracle.numpy()

    def metrics(sel):
        return binary_metrics(label[sel], prob[sel], None if oracle is None else oracle[sel])

    by_task = {name: metrics(sel) for name, sel in task_masks(data, rows).items()}
    by_use_case = {name: metrics(use_case == u) for u, name in enumerate(data.spec.tasks.use_cases) if (use_case == u).any()}
    mean = {k: float(np.nanmean([m[k] for m in by_use_case.values()])) for k in ("auc", "ap", "logloss")}
    return {"by_task": by_task, "by_use_case": by_use_case, "mean": mean}


def evaluate(model: nn.Module, data: Dataset, split: str = "test") -> dict:
    rows = data.rows[split]
    return evaluate_predictions(data, rows, predict(model, data, rows))


@torch.no_grad()
def flops_per_example(model: nn.Module, data: Dataset, split: str = "test", n_rows: int = 4096) -> dict:
    """FLOPs per (example, task) row, total and for the mixing layer (router + experts) alone.

    Counted by torch.utils.flop_counter (matrix products and attention) on a real batch of rows
    with their natural task mix; `mixing` is the paper's "routing FLOPs". The per-task trees
    multiply nothing: for them `comparisons` is the node comparisons a row makes."""
    if hasattr(model, "comparisons_per_row"):
        return {"total": 0.0, "mixing": 0.0, "comparisons": model.comparisons_per_row()}
    device = device_of(model)
    batch = next(data.batches(data.rows[split], n_rows))[0].to(device)  # the first rows in impression order
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(batch)
    per_module = counter.get_flop_counts()
    # "GRec.mixing", or "SingleTask.members.3.mixing" for each single-task member
    mixing = sum(sum(ops.values()) for name, ops in per_module.items() if name.endswith(".mixing"))
    return {"total": counter.get_total_flops() / len(batch), "mixing": mixing / len(batch)}


@torch.no_grad()
def routing_shares(model: nn.Module, data: Dataset, rows: TaskRows, batch_size: int = 8192) -> np.ndarray | None:
    """(T, E): for each task, the share of its expert weight (gate x kept, over tokens and top-k)
    that lands on each expert; rows sum to 1 for tasks with rows (with task or task-sentence
    routing, for every task: its routing is the router's, read without the rows). None for models
    without sparse routing (the dense baselines)."""
    if not hasattr(model, "mixing") or not hasattr(model.mixing, "router"):
        return None
    model.eval()
    totals = torch.zeros(data.spec.tasks.n_tasks, model.config.n_experts, dtype=torch.float64)
    if model.mixing.routing in ("task", "task_sentence"):  # fixed per task: read off the router, no pass over rows
        r = model.task_routing()
        weight = (r.gates * r.kept).float().cpu()  # (T, S, K)
        totals.scatter_add_(1, r.expert_index.cpu().flatten(1), weight.flatten(1).double())
        return (totals / totals.sum(1, keepdim=True).clamp_min(1e-12)).numpy()
    return routing_over_rows(model, data, rows, batch_size)


@torch.no_grad()
def routing_over_rows(model: nn.Module, data: Dataset, rows: TaskRows, batch_size: int = 8192) -> np.ndarray:
    """routing_shares measured on `rows`: what a token-routed model needs (its routing depends on
    the example)."""
    n_experts = model.config.n_experts
    model.eval()
    totals = torch.zeros(data.spec.tasks.n_tasks, n_experts, dtype=torch.float64)
    device = device_of(model)
    for batch, _, _ in data.batches(rows, batch_size):
        batch = batch.to(device)
        r = model(batch).routing
        weight = (r.gates * r.kept).float().cpu()  # (B, S, K)
        task = batch.task(len(data.spec.tasks.use_cases)).cpu()
        expert_task = task[:, None, None].expand_as(weight) * n_experts + r.expert_index.cpu()
        totals.view(-1).index_add_(0, expert_task.reshape(-1), weight.reshape(-1).double())
    sums = totals.sum(1, keepdim=True)
    return (totals / sums.clamp_min(1e-12)).numpy()
