"""Figures people would rather look at than read: per-task ROC and precision-recall curves, training
curves, and which experts each task routes to. Each function returns a matplotlib Figure; callers
save or log it (mlflow.log_figure)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # headless: pipelines and CI have no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from grec.data.schema import TELECOM_TASKS, TaskVocabulary  # noqa: E402

TaskScores = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]  # task -> (label, prob, oracle)


def _task_panels(scores: TaskScores, title: str, tasks: TaskVocabulary):
    """A panel per task (a row per flow, a column per use case). Returns (fig, axes, panels):
    panels = [(ax, label, prob, oracle)] for the tasks with both classes; the others are marked."""
    flows, use_cases = tasks.flows, tasks.use_cases
    fig, axes = plt.subplots(len(flows), len(use_cases), figsize=(3.2 * len(use_cases), 3.0 * len(flows)),
                             sharex=True, sharey=True, squeeze=False)
    fig.suptitle(title)
    panels = []
    for (flow, use_case), ax in zip(((f, u) for f in flows for u in use_cases), axes.flat):
        name = f"{flow}+{use_case}"
        ax.set_title(name, fontsize=9)
        if name in scores and 0 < scores[name][0].sum() < len(scores[name][0]):
            panels.append((ax, *scores[name]))
        else:
            ax.text(0.5, 0.5, "no positives", ha="center", fontsize=8, transform=ax.transAxes)
    return fig, axes, panels


def _label_axes(fig: Figure, axes: np.ndarray, x: str, y: str) -> Figure:
    """Axis labels on the outer panels; margins fixed in inches (the panels share their axes, so
    only the outer ones carry tick labels): tight_layout took a second a figure of 12 panels."""
    for ax in axes[-1]:
        ax.set_xlabel(x)
    for ax in axes[:, 0]:
        ax.set_ylabel(y)
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=0.75 / width, right=1 - 0.15 / width, bottom=0.55 / height, top=1 - 0.75 / height,
                        wspace=0.08, hspace=0.3)
    return fig


def _has_oracle(scores: TaskScores) -> bool:
    """Whether the data carries true probabilities (the simulators'): only then is there a dashed line."""
    return any(oracle is not None for _, _, oracle in scores.values())


def roc_by_task(scores: TaskScores, title: str | None = None, tasks: TaskVocabulary = TELECOM_TASKS) -> Figure:
    title = title or "ROC by task" + (" (dashed: the true probability)" if _has_oracle(scores) else "")
    fig, axes, panels = _task_panels(scores, title, tasks)
    for ax, label, prob, oracle in panels:
        ax.plot([0, 1], [0, 1], color="0.8", lw=0.8)
        fpr, tpr, _ = roc_curve(label, prob)
        ax.plot(fpr, tpr, lw=1.2, label="model")
        if oracle is not None:
            fpr, tpr, _ = roc_curve(label, oracle)
            ax.plot(fpr, tpr, lw=1.0, ls="--", color="0.4", label="oracle")
    return _label_axes(fig, axes, "false positive rate", "true positive rate")


def _pr_curve(label: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) without sklearn's closing (0, 1) point and without zero precision,
    which a log axis cannot show."""
    precision, recall, _ = precision_recall_curve(label, prob, drop_intermediate=True)
    keep = precision[:-1] > 0
    return recall[:-1][keep], precision[:-1][keep]


def pr_by_task(scores: TaskScores, title: str | None = None, tasks: TaskVocabulary = TELECOM_TASKS) -> Figure:
    title = title or "Precision-recall by task (" + ("dashed: the true probability, " if _has_oracle(scores) else "") \
        + "dotted: base rate)"
    fig, axes, panels = _task_panels(scores, title, tasks)
    for ax, label, prob, oracle in panels:
        ax.plot(*_pr_curve(label, prob), lw=1.2)
        if oracle is not None:
            ax.plot(*_pr_curve(label, oracle), lw=1.0, ls="--", color="0.4")
        ax.axhline(label.mean(), color="0.6", lw=0.8, ls=":")
        ax.set_yscale("log")  # positives are a few percent or less: a linear axis hides the curve
    return _label_axes(fig, axes, "recall", "precision")


def training_curves(history: list[dict], best_epoch: int | None = None) -> Figure:
    """Losses (left) and validation AUC per use case (right) against the epoch."""
    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, auc_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    loss_ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train (incl. aux losses)")
    loss_ax.plot(epochs, [h["valid_loss"] for h in history], marker="o", label="validation")
    loss_ax.set(xlabel="epoch", ylabel="log-loss", title="Loss")
    per_use_case = list(dict.fromkeys(k for h in history for k in h if k.startswith("valid_auc_")))
    for key in per_use_case + ["valid_auc"]:
        values = [h.get(key, math.nan) for h in history]
        style = dict(color="black", lw=2) if key == "valid_auc" else {}
        auc_ax.plot(epochs, values, marker=".", label=key.removeprefix("valid_auc_") if key != "valid_auc" else "mean", **style)
    auc_ax.set(xlabel="epoch", ylabel="AUC", title="Validation AUC by use case")
    for ax in (loss_ax, auc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if best_epoch:
            ax.axvline(best_epoch, color="0.6", ls=":", lw=1)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def routing_heatmap(shares: np.ndarray, title: str = "Expert weight by task", tasks: TaskVocabulary = TELECOM_TASKS) -> Figure:
    """shares (T, E) from grec.evaluate.routing_shares: rows are tasks, columns experts."""
    n_tasks, n_experts = shares.shape
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n_experts, 1.0 + 0.38 * n_tasks))
    image = ax.imshow(shares, cmap="viridis", vmin=0, vmax=max(float(shares.max()), 1e-6), aspect="auto")
    ax.set_xticks(range(n_experts), [str(e) for e in range(n_experts)])
    ax.set_yticks(range(n_tasks), [tasks.task_name(t) for t in range(n_tasks)])
    ax.set(xlabel="expert", title=title)
    for t in range(n_tasks):
        for e in range(n_experts):
            if shares[t, e] >= 0.005:
                ax.text(e, t, f"{shares[t, e]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if shares[t, e] < 0.6 * shares.max() else "black")
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    return fig
