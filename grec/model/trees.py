"""The incumbents GRec replaces: one LightGBM model per task, as most teams run them today.

Each task (flow + use case) gets its own booster, trained on that task's rows only (CVR on clicked
impressions, as the task rows already are), early-stopped on the same validation split the
networks use, with the categorical codes of the fitted FeatureSpec as native categorical features.
Beside the raw columns, the match features any team adds to such a model (grec.model.match): how
close the search query is to the item's description, whether, how often and how recently the
candidate item was in the viewed history, and, for each item column of the contract, how much of
the history shares the candidate's value, how recently, and how far its numbers are from the
history's: the same features the networks get, so the incumbent is a team's well-featured one.

The trees read the same `Features` tensors the networks do, so the model folder, the MLflow pyfunc,
the gate, the comparison and serving treat it like any other model: it is an `nn.Module` whose
forward returns one logit per row, and its boosters travel in the state dict as "extra state"
(their LightGBM text form), so `save_model` / `load_model` need nothing of their own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import torch
from torch import nn

from grec.data.batch import Batch, Features
from grec.data.dataset import Dataset
from grec.data.spec import FeatureSpec
from grec.data.task_rows import TaskRows
from grec.model import match
from grec.model.grec import ModelOutput

@dataclass
class TreeConfig:
    """Per-task LightGBM settings, saved as config.json beside the boosters (the state dict)."""

    arch: str = "lightgbm"
    n_flows: int = 3
    n_use_cases: int = 4
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_data_in_leaf: int = 50
    feature_fraction: float = 0.8
    lambda_l2: float = 1.0
    cat_smooth: float = 10.0
    max_rounds: int = 1000  # boosting rounds at most; early stopping usually ends far sooner
    early_stopping_rounds: int = 50
    rounds_without_validation: int = 200  # a task with no validation rows: a fixed number of rounds
    # the history-attribute features (grec.model.match.attribute_features); off in older folders
    attribute_features: bool = False
    item_cardinalities: list[int] = field(default_factory=list)  # each item column's unknown code

    @property
    def n_tasks(self) -> int:
        return self.n_flows * self.n_use_cases


def feature_names(spec: FeatureSpec, config: TreeConfig) -> tuple[list[str], list[str]]:
    """The columns of `tree_matrix` (names from the spec) and which of them are categorical."""
    categorical = [*spec.context_categorical, "item_id", *spec.item_categorical]
    names = [*spec.context_categorical, *spec.context_numerical, "item_id", *spec.item_categorical,
             *spec.item_numerical, *match.NAMES]
    if config.attribute_features:
        names += match.attribute_names(spec.item_categorical, spec.item_numerical)
    return names, categorical


def tree_matrix(f: Features, config: TreeConfig) -> np.ndarray:
    """Features of N examples -> (N, F) float64 in `feature_names` order (codes as floats, NaN where
    a match feature is undefined: no search query, empty history)."""
    columns = [f.context_categorical.numpy(), f.context_numerical.numpy(), f.item.numpy()[:, None], f.item_categorical.numpy(),
               f.item_numerical.numpy(), match.match_features(f).numpy()]
    if config.attribute_features:
        columns.append(match.attribute_features(f, torch.tensor(config.item_cardinalities)).numpy())
    return np.concatenate([c.astype(np.float64) for c in columns], axis=1)


def _task_index(data: Dataset, rows: TaskRows) -> np.ndarray:
    """(R,) flow-major task id of each row."""
    return rows.task(len(data.spec.tasks.use_cases)).numpy()


class PerTaskTrees(nn.Module):
    """One booster per task; a row is scored by its own task's booster. Tasks with no booster (no
    training positives) score the training rate of their use case."""

    def __init__(self, config: TreeConfig):
        super().__init__()
        self.config = config
        self.boosters: dict[int, lgb.Booster] = {}
        self.fallback_logit = np.zeros(config.n_tasks)

    def forward(self, batch: Batch) -> ModelOutput:
        x = tree_matrix(batch.features.to("cpu"), self.config)[batch.example.cpu().numpy()]  # (R, F)
        task = batch.task(self.config.n_use_cases).cpu().numpy()
        logits = self.fallback_logit[task].astype(np.float64)
        for t in np.unique(task):
            if int(t) in self.boosters:
                sel = task == t
                logits[sel] = self.boosters[int(t)].predict(x[sel], raw_score=True)
        return ModelOutput(torch.from_numpy(logits.astype(np.float32)).to(batch.use_case.device))

    def score_request(self, batch: Batch) -> ModelOutput:
        return self(batch)

    def get_extra_state(self) -> dict:
        return {"boosters": {str(t): b.model_to_string() for t, b in self.boosters.items()},
                "fallback_logit": [float(v) for v in self.fallback_logit]}

    def set_extra_state(self, state: dict) -> None:
        self.boosters = {int(t): lgb.Booster(model_str=s) for t, s in state["boosters"].items()}
        self.fallback_logit = np.asarray(state["fallback_logit"], dtype=np.float64)

    def comparisons_per_row(self) -> float:
        """Node comparisons a row's booster makes, averaged over tasks (each tree weighted by how
        its training rows fell into its leaves): the trees' counterpart of FLOPs per example."""
        per_task = []
        for booster in self.boosters.values():
            total = 0.0
            for tree in booster.dump_model()["tree_info"]:
                total += _mean_leaf_depth(tree["tree_structure"])
            per_task.append(total)
        return float(np.mean(per_task)) if per_task else 0.0


def _mean_leaf_depth(node: dict, depth: int = 0) -> float:
    """Depth of the leaf a training row reaches, averaged over rows (leaf counts as weights)."""
    stack, weighted, count = [(node, depth)], 0.0, 0
    while stack:
        n, d = stack.pop()
        if "split_index" not in n:  # a leaf
            weighted += d * n.get("leaf_count", 1)
            count += n.get("leaf_count", 1)
        else:
            stack += [(n["left_child"], d + 1), (n["right_child"], d + 1)]
    return weighted / max(count, 1)


def fit_trees(model: PerTaskTrees, data: Dataset, seed: int = 0, target: str = "label",
              on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train one booster per task on `data`'s training rows, early-stopped on its validation rows.
    `target` "oracle" fits the true probabilities instead of the labels (cross-entropy on soft
    targets: the reachable-ceiling estimate). Returns a summary like grec.train.train_model's
    (rows per second: task rows trained on per second, each booster seeing its rows every round);
    `on_epoch` gets each task's best round as {"epoch", "valid_loss", "task"}."""
    c = model.config
    names, categorical = feature_names(data.spec, c)
    features = tree_matrix(data.features, c)  # (N, F): every impression once
    params = {"objective": "cross_entropy" if target == "oracle" else "binary", "learning_rate": c.learning_rate,
              "num_leaves": c.num_leaves, "min_data_in_leaf": c.min_data_in_leaf, "feature_fraction": c.feature_fraction,
              "lambda_l2": c.lambda_l2, "cat_smooth": c.cat_smooth, "seed": seed, "deterministic": True,
              "num_threads": torch.get_num_threads(), "verbose": -1}
    train, valid = data.rows["train"], data.rows["valid"]
    train_task, valid_task = _task_index(data, train), _task_index(data, valid)
    train_y, valid_y = (r.targets(target).numpy().astype(np.float64) for r in (train, valid))
    start, rows_seen, best, history = time.perf_counter(), 0, {}, {}
    model.boosters, model.fallback_logit = {}, np.zeros(c.n_tasks)
    for t in range(c.n_tasks):
        name, sel, vsel = data.spec.tasks.task_name(t), train_task == t, valid_task == t
        of_use_case = train.use_case.numpy() == t % c.n_use_cases
        rate = float(np.clip(train_y[of_use_case].mean() if of_use_case.any() else 0.5, 1e-6, 1 - 1e-6))
        model.fallback_logit[t] = math.log(rate / (1 - rate))
        if not 0 < train_y[sel].sum() < sel.sum():
            continue  # no rows, or one class only: nothing to learn, the use case's rate stands
        train_set = lgb.Dataset(features[train.impression.numpy()[sel]], train_y[sel], feature_name=names,
                                categorical_feature=categorical)
        valid_sets, callbacks, rounds = [], [], c.rounds_without_validation
        if vsel.any():
            valid_sets = [lgb.Dataset(features[valid.impression.numpy()[vsel]], valid_y[vsel], reference=train_set)]
            callbacks, rounds = [lgb.early_stopping(c.early_stopping_rounds, verbose=False)], c.max_rounds
        booster = lgb.train(params, train_set, num_boost_round=rounds, valid_sets=valid_sets, callbacks=callbacks)
        loss = next(iter(booster.best_score.get("valid_0", {}).values()), math.nan)
        if booster.best_iteration > 0:
            booster = _trimmed(booster)
        model.boosters[t] = booster
        rows_seen += int(sel.sum())
        best[name] = booster.current_iteration()
        history[name] = [{"epoch": best[name], "valid_loss": float(loss)}]
        if on_epoch is not None:
            on_epoch({**history[name][0], "task": name})
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows_per_second": rows_seen / max(seconds, 1e-9), "best_epoch": best, "history": history}


def _trimmed(booster: lgb.Booster) -> lgb.Booster:
    """The booster cut to its best validation round (saved and reloaded that way too)."""
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
