"""A dataset with its own task vocabulary (not the storefront's flows and use cases) trains,
evaluates and scores through the same code path: the vocabulary travels in the FeatureSpec."""

import dataclasses

import numpy as np
import pytest
import torch

from grec.data.contract import TELECOM
from grec.data.dataset import dataset_from_frame
from grec.data.spec import FeatureSpec
from grec.data.split import TimeSplit
from grec.data.tables import join_tables, load_tables
from grec.data.schema import SchemaError, TaskVocabulary
from grec.evaluate import evaluate
from grec.lifecycle.pyfunc import score_frame, score_use_cases
from grec.model.checkpoint import build_model, model_config
from grec.model.inputs import InputConfig
from grec.train import TrainConfig, train_model

# two scenarios and two use cases, one of them defined on clicked rows only
SHOP = TaskVocabulary(flows=("WEB", "APP"), use_cases=("CLICK", "BUY"), labels={"CLICK": "click", "BUY": "purchase"},
                      populations={"CLICK": None, "BUY": "click"})


def test_vocabulary_checks_and_round_trip():
    assert SHOP.label_columns == ("click", "purchase") and SHOP.n_tasks == 4 and SHOP.task_name(3) == "APP+BUY"
    assert TaskVocabulary.from_dict(SHOP.to_dict()) == SHOP
    with pytest.raises(SchemaError, match="names no label column"):
        TaskVocabulary(("A",), ("X",), {}, {})


def test_another_vocabulary_trains_evaluates_and_scores(small_data, texts, tmp_path):
    frame = join_tables(load_tables(small_data))
    frame["flow"] = np.where(frame["flow"] == "AAL", "WEB", "APP")
    split = TimeSplit.from_timestamps(frame["event_timestamp"])
    data = dataset_from_frame(frame, split, texts=texts, contract=dataclasses.replace(TELECOM, tasks=SHOP))
    assert data.spec.tasks == SHOP and data.labels.oracle is None  # no ground truth outside the simulator's tasks
    train = data.rows["train"]
    clicked = data.labels.column("click")[train.impression.numpy()] == 1
    buy = train.use_case.numpy() == 1
    assert buy.sum() == clicked[~buy].sum()  # BUY rows are the clicked impressions

    torch.manual_seed(0)
    config = model_config("grec", InputConfig.sizes_from(data.spec), d_model=16)
    assert (config.n_flows, config.n_use_cases) == (2, 2)
    net = build_model(config)
    train_model(net, data, TrainConfig(epochs=2, batch_size=1024, progress=False))
    report = evaluate(net, data, "test")
    assert set(report["by_task"]) == {"WEB+CLICK", "WEB+BUY", "APP+CLICK", "APP+BUY"}
    assert set(report["by_use_case"]) == {"CLICK", "BUY"}
    assert report["by_use_case"]["CLICK"]["auc"] > 0.6  # it learns, through the generic path

    data.spec.save(tmp_path / "features.json")
    spec = FeatureSpec.load(tmp_path / "features.json")
    assert spec.tasks == SHOP
    rows = frame.tail(5)[spec.input_columns()].assign(use_case="BUY")
    assert score_frame(net, spec, rows).shape == (5,)
    # every use case of a row in one batch (drift's scoring) gives what one use case at a time gives
    many = frame.tail(300)[spec.input_columns()]
    np.testing.assert_allclose(score_use_cases(net, spec, many),
                               np.stack([score_frame(net, spec, many.assign(use_case=u)) for u in ("CLICK", "BUY")], 1),
                               rtol=0, atol=1e-6)
    with pytest.raises(SchemaError, match="unknown use case 'CTR'"):
        score_frame(net, spec, rows.assign(use_case="CTR"))
    with pytest.raises(SchemaError, match="unknown flow 'AAL'"):
        spec.encode(frame.head(3).assign(flow="AAL"), texts)
