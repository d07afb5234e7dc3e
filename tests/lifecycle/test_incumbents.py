"""The per-task LightGBM incumbents in the registry: trained and logged like any model, registered
as a pyfunc over their boosters, scored in a new process, and judged by the gate against another
incumbent as champion, so a team can gate GRec against the trees it runs today."""

from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from grec.features.training_set import open_source
from grec.lifecycle.gate import GatePolicy
from grec.lifecycle.registry import CHAMPION, Registry
from grec.lifecycle.tracking import train_and_log
from grec.model.trees import TreeConfig
from grec.train import TrainConfig
from tests.lifecycle.conftest import scores_in_new_process, tracking_store

NAME = "incumbents-test"


@pytest.fixture(scope="module")
def store(small_data, texts, tmp_path_factory):
    """v1: one stump per task (a single split); v2: trained properly."""
    root = tmp_path_factory.mktemp("incumbents")
    with tracking_store(root, texts):
        source = open_source(small_data)
        data = source.dataset(texts=texts)
        runs = {}
        for i, config in enumerate([TreeConfig(num_leaves=2, max_rounds=1, early_stopping_rounds=1), TreeConfig()]):
            run = train_and_log(config, source, data, TrainConfig(seed=0, progress=False), root / "models" / f"trees{i}",
                                "lightgbm", register_as=NAME)
            runs[run.version] = run
        (root / "policy.yaml").write_text("version: 1\nfloors: {default: 0.0}\nbootstrap: {samples: 200}\n")
        yield {"runs": runs, "policy": GatePolicy.load(root / "policy.yaml"), "source": source, "root": root}


def test_the_incumbents_log_like_any_model(store):
    run = store["runs"]["2"]
    logged = MlflowClient().get_run(run.run_id)
    assert logged.data.params["model.class"] == "TreeConfig" and logged.data.tags["grec.model"] == "lightgbm"
    assert logged.data.metrics["test/ALL_CTR/auc"] > 0.65 and logged.data.metrics["comparisons_per_row"] > 10
    assert sorted(run.summary["best_epoch"]) == sorted(t for t in run.report["by_task"] if t in run.summary["best_epoch"])
    import mlflow

    requirements = Path(mlflow.pyfunc.get_model_dependencies(run.model_uri)).read_text()
    assert "lightgbm==" in requirements  # what a serving image installs to load the boosters


def test_the_registered_incumbents_score_the_same_in_a_new_process(store, tmp_path):
    expected, got = scores_in_new_process(f"models:/{NAME}/2", store["runs"]["2"].model_dir,
                                          store["source"].frame.tail(64), tmp_path)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert len(set(np.round(expected, 6))) > 10  # real scores, not a base rate


def test_the_gate_passes_better_incumbents_and_refuses_worse_ones(store):
    registry = Registry(NAME)
    registry.client.set_registered_model_alias(NAME, CHAMPION, "1")
    better = registry.promote("2", policy=store["policy"], decided_by="test")
    assert better.changed and registry.aliases()[CHAMPION] == "2", better.report.reasons
    assert better.report.mean["diff"] > 0.03
    worse = registry.promote("1", policy=store["policy"], decided_by="test")
    assert not worse.changed and registry.aliases()[CHAMPION] == "2"
    assert worse.report.decision == "refuse" and worse.report.failed_tasks()
