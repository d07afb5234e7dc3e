"""The paper's (example, task) rows: per impression its label columns (Labels), and the rows
each use case is trained and judged on (CTR, ATC and CTCVR over every impression, CVR
over clicked ones, as the task vocabulary's populations say).

Dimension letters: N impressions, R task rows, U use cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from grec.data import schema
from grec.data.schema import TELECOM_TASKS, USE_CASES, SchemaError, TaskVocabulary


@dataclass
class TaskRows:
    impression: torch.Tensor  # (R,) long, index into Features
    use_case: torch.Tensor  # (R,) long
    label: torch.Tensor  # (R,) float
    oracle: torch.Tensor | None  # (R,) float, true P(label) where the data is simulated
    flow: torch.Tensor  # (R,) long, the impression's flow: a row's task without its features

    def __len__(self) -> int:
        return len(self.impression)

    def targets(self, target: str = "label") -> torch.Tensor:
        """(R,) what a model is fitted to: the labels, or ("oracle") the true probabilities as soft
        targets, which estimates the best score the observable features allow."""
        if target == "oracle":
            if self.oracle is None:
                raise SchemaError("target 'oracle' needs data with true probabilities (the simulator's)")
            return self.oracle
        return self.label

    def task(self, n_use_cases: int) -> torch.Tensor:  # (R,) long, flow-major task id
        return self.flow * n_use_cases + self.use_case

    def take(self, index: torch.Tensor) -> TaskRows:
        oracle = None if self.oracle is None else self.oracle[index]
        return TaskRows(self.impression[index], self.use_case[index], self.label[index], oracle, self.flow[index])


def oracle_by_use_case(frame: pd.DataFrame, tasks: TaskVocabulary = TELECOM_TASKS) -> np.ndarray | None:
    """(N, U) true probability of each use case's label on simulated data (the storefront's funnel,
    or the columns a contract's `oracles` names), None for data without ground truth."""
    columns = schema.oracle_columns(tasks)
    if not columns or not set(columns) <= set(frame.columns):
        return None
    if tasks == TELECOM_TASKS:
        scores = schema.oracle_scores(frame)
        return np.stack([scores[u] for u in USE_CASES], axis=1).astype(np.float32)
    return np.stack([frame[tasks.oracles[u]].to_numpy(np.float32) for u in tasks.use_cases], axis=1)


@dataclass
class Labels:
    """Per impression: the task vocabulary's label columns and, on simulated data, the true probabilities."""

    labels: np.ndarray  # (N, K) int8 in tasks.label_columns order
    oracle: np.ndarray | None  # (N, U) float32
    columns: tuple[str, ...] = TELECOM_TASKS.label_columns

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, tasks: TaskVocabulary = TELECOM_TASKS) -> Labels:
        columns = tasks.label_columns
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise SchemaError(f"label columns {missing} missing (the task vocabulary reads {list(columns)})")
        return cls(frame[list(columns)].to_numpy(np.int8), oracle_by_use_case(frame, tasks), columns)

    def column(self, name: str) -> np.ndarray:
        return self.labels[:, self.columns.index(name)]


def build_task_rows(
    labels: Labels,
    index: np.ndarray,
    flows: np.ndarray,
    upsample: dict[str, int] | None = None,
    tasks: TaskVocabulary = TELECOM_TASKS,
) -> TaskRows:
    """(example, task) rows for the impressions in `index`.

    `upsample` repeats the rows of a use case ("CVR") or a task ("AAL+CVR") an integer number of
    times, as the paper balances sparse tasks; use it on training rows only.
    """
    parts = []
    for u, use_case in enumerate(tasks.use_cases):
        population = tasks.populations.get(use_case)
        idx = index
        if population is not None:
            idx = index[labels.column(population)[index] == 1]
        if upsample:
            factors = np.full(len(idx), upsample.get(use_case, 1), dtype=np.int64)
            for f, flow in enumerate(tasks.flows):
                factor = upsample.get(f"{flow}+{use_case}")
                if factor is not None:
                    factors[flows[idx] == f] = factor
            idx = np.repeat(idx, factors)
        label = labels.column(tasks.labels[use_case])[idx].astype(np.float32)
        oracle = None if labels.oracle is None else labels.oracle[idx, u]
        parts.append((idx, np.full(len(idx), u), label, oracle))
    impression, use_case, label, oracle = (
        np.concatenate([p[i] for p in parts]) if parts[0][i] is not None else None for i in range(4)
    )
    return TaskRows(
        torch.from_numpy(impression.astype(np.int64)),
        torch.from_numpy(use_case.astype(np.int64)),
        torch.from_numpy(label),
        None if oracle is None else torch.from_numpy(oracle),
        torch.from_numpy(np.asarray(flows, dtype=np.int64)[impression]),
    )

