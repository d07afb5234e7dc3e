"""The per-task LightGBM incumbents: one booster per task on the raw and match features, the state dict
that carries the boosters, and the soft targets behind the reachable ceiling."""

import dataclasses

import numpy as np
import pytest
import torch

from grec.data.batch import Batch
from grec.data.schema import SchemaError
from grec.evaluate import evaluate, flops_per_example
from grec.model.checkpoint import build_model, load_model, model_config, save_model
from grec.model.inputs import InputConfig
from grec.model.trees import PerTaskTrees, TreeConfig, feature_names, tree_matrix
from grec.train import TrainConfig, train_model


@pytest.fixture(scope="module")
def trees(small_dataset):
    model = build_model(model_config("lightgbm", InputConfig.sizes_from(small_dataset.spec)))
    summary = train_model(model, small_dataset, TrainConfig(seed=0, progress=False))
    return model, summary


def test_one_booster_per_task_learns_its_task(trees, small_dataset):
    model, summary = trees
    assert isinstance(model, PerTaskTrees)
    tasks = small_dataset.spec.tasks
    trained = {tasks.task_name(t) for t in model.boosters}
    assert trained == set(summary["best_epoch"]) and len(trained) >= 9  # NSE's purchases may be too rare
    names, categorical = feature_names(small_dataset.spec, model.config)
    booster = next(iter(model.boosters.values()))
    assert booster.feature_name() == names and "item_id" in categorical
    report = evaluate(model, small_dataset)
    assert report["by_use_case"]["CTR"]["auc"] > 0.65 and report["mean"]["auc"] > 0.6
    assert flops_per_example(model, small_dataset)["comparisons"] > 10


def test_each_row_is_scored_by_its_own_tasks_booster(trees, small_dataset):
    model, _ = trees
    f = small_dataset.features.take(torch.arange(40))
    batch = Batch(f, torch.arange(40).repeat_interleave(2), torch.tensor([0, 2] * 40))
    logits = model(batch).logits
    task = batch.task(4).numpy()
    x = tree_matrix(f, model.config)[batch.example.numpy()]
    for t in np.unique(task):
        sel = task == t
        expected = model.boosters[t].predict(x[sel], raw_score=True) if t in model.boosters else model.fallback_logit[t]
        np.testing.assert_allclose(logits[sel].numpy(), expected, rtol=1e-5)


def test_the_boosters_travel_in_the_model_folder(trees, small_dataset, tmp_path):
    model, _ = trees
    save_model(model, small_dataset.spec, tmp_path / "model")
    loaded, spec = load_model(tmp_path / "model")
    assert isinstance(loaded, PerTaskTrees) and set(loaded.boosters) == set(model.boosters)
    rows = small_dataset.rows["test"].take(torch.arange(500))
    batch = small_dataset.batch(rows)
    torch.testing.assert_close(loaded(batch).logits, model(batch).logits)
    assert spec == small_dataset.spec


def test_fitting_the_true_probabilities_gets_nearer_the_oracle_than_fitting_labels(trees, small_dataset):
    model, _ = trees
    ceiling = PerTaskTrees(TreeConfig(max_rounds=200))  # soft targets keep improving for long: enough to show it
    train_model(ceiling, small_dataset, TrainConfig(seed=0, target="oracle", progress=False))
    by_label, by_oracle = evaluate(model, small_dataset)["by_use_case"], evaluate(ceiling, small_dataset)["by_use_case"]
    assert by_oracle["CTR"]["auc"] > by_label["CTR"]["auc"]
    assert by_oracle["CTR"]["auc"] <= by_oracle["CTR"]["oracle_auc"] + 0.01  # no model sees the hidden terms


def test_soft_targets_need_true_probabilities(small_dataset):
    rows = small_dataset.rows["valid"]
    torch.testing.assert_close(rows.targets("oracle"), rows.oracle)
    with pytest.raises(SchemaError, match="true probabilities"):
        dataclasses.replace(rows, oracle=None).targets("oracle")
