import math

import numpy as np
import pytest
import torch

from grec.evaluate import binary_metrics, evaluate_predictions, flops_per_example, routing_over_rows, routing_shares
from grec.model.checkpoint import build_model
from grec.model.grec import GRecConfig
from grec.model.inputs import InputConfig


def test_binary_metrics_against_known_values():
    label = np.array([0, 0, 1, 1])
    m = binary_metrics(label, np.array([0.1, 0.4, 0.35, 0.8]), oracle=np.array([0.1, 0.2, 0.3, 0.4]))
    assert m["auc"] == pytest.approx(0.75)
    assert m["oracle_auc"] == pytest.approx(1.0)
    assert m["rows"] == 4 and m["positives"] == 2
    assert m["logloss"] == pytest.approx(-np.mean(np.log([0.9, 0.6, 0.35, 0.8])))


def test_single_class_gives_nan_not_an_error():
    m = binary_metrics(np.zeros(5), np.full(5, 0.1))
    assert math.isnan(m["auc"]) and math.isnan(m["ap"])


def test_oracle_scores_reach_the_oracle_auc(small_dataset):
    rows = small_dataset.rows["test"]
    report = evaluate_predictions(small_dataset, rows, rows.oracle.numpy())
    for name, m in report["by_use_case"].items():
        assert m["auc"] == pytest.approx(m["oracle_auc"]), name
    assert set(report["by_task"]) <= {f"{f}+{u}" for f in ("AAL", "EUP", "NSE") for u in ("CTR", "ATC", "CVR", "CTCVR")}


def test_task_sentence_routing_costs_at_most_six_tenths_of_token_routing(small_dataset):
    sizes = InputConfig.sizes_from(small_dataset.spec)
    # Untrained token routing crowds a few experts, whose capacity then drops tokens: its cost, and
    # so the ratio (0.54 to 0.60 over init seeds 0-4), depends on the init. Fix it.
    torch.manual_seed(0)
    flops = {r: flops_per_example(build_model(GRecConfig(**sizes, routing=r)), small_dataset) for r in ("token", "task_sentence")}
    assert flops["task_sentence"]["mixing"] <= 0.6 * flops["token"]["mixing"]
    assert 0 < flops["token"]["mixing"] < flops["token"]["total"]


def test_a_task_routed_models_shares_are_read_off_its_router_as_the_rows_show_them(small_dataset):
    torch.manual_seed(0)
    model = build_model(GRecConfig(**InputConfig.sizes_from(small_dataset.spec), routing="task_sentence"))
    rows = small_dataset.rows["test"]
    measured = routing_over_rows(model, small_dataset, rows)
    read = routing_shares(model, small_dataset, rows)
    with_rows = measured.sum(1) > 0
    np.testing.assert_allclose(read[with_rows], measured[with_rows], atol=1e-6)
    np.testing.assert_allclose(read.sum(1), 1.0, atol=1e-6)  # every task, rows or not
