"""A contract whose tasks are sentences of three tokens (the storefront with surfaces: flow,
surface, use case; 72 tasks) through the whole path: Feast features, training, every task's
sub-network equal to the full model, /rank's request naming each token, and the gate."""

import numpy as np
import pytest
import torch

from grec.data.simulate import SURFACES, SimulationConfig
from grec.features.store import OnlineReader, apply, materialize
from grec.lifecycle.gate import POLICY_FILE
from grec.features.training_set import build_training_set, open_source
from grec.lifecycle.tracking import train_and_log
from grec.model.checkpoint import load_model, model_config
from grec.model.inputs import InputConfig
from grec.serving.ranker import RankRequest, Ranker, RequestError
from grec.serving.requests import rank_input_model
from grec.serving.subnet import export_subnetworks
from grec.train import TrainConfig
from tests.conftest import copy_text_caches

CONFIG = SimulationConfig(n_impressions=20_000, n_items=120, seed=11, pages=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The storefront with surfaces, applied and materialized, and a small GRec trained one epoch
    on its training set and registered."""
    from grec.data.simulate import simulate_to

    home = tmp_path_factory.mktemp("task-tokens")
    copy_text_caches(home)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GREC_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        simulate_to(home / "data", CONFIG)
        apply(home / "data")
        materialize(CONFIG.windows.test[1])
        build_training_set(home / "data", home / "set")
        source = open_source(home / "set")
        dataset = source.dataset()
        config = model_config("grec", InputConfig.sizes_from(dataset.spec), d_model=16)
        run = train_and_log(config, source, dataset, TrainConfig(epochs=1, progress=False), home / "models" / "grec",
                            "grec-pages", register_as="grec-pages")
        model, spec = load_model(run.model_dir)
        yield {"home": home, "model": model, "spec": spec, "dataset": dataset, "run": run}


def test_the_model_reads_three_token_sentences_and_every_sub_network_equals_it(served):
    model, spec, data = served["model"], served["spec"], served["dataset"]
    assert spec.tasks.tokens == ("flow", "surface") and model.config.n_tasks == 72
    assert model.config.route_tokens == spec.tasks.route_codes
    rows = data.rows["test"]
    subnets = export_subnetworks(model)
    task = rows.task(model.config.n_use_cases)
    checked = 0
    with torch.no_grad():
        for t in range(model.config.n_tasks):
            of_task = (task == t).nonzero().squeeze(1)[:64]
            if len(of_task) == 0:
                continue
            batch = data.batch(rows.take(of_task))
            torch.testing.assert_close(subnets[t](batch).logits, model(batch).logits, rtol=0, atol=1e-5,
                                       msg=spec.tasks.task_name(t))
            checked += 1
    assert checked > 60  # nearly every one of the 72 tasks has test rows


def test_rank_takes_each_token_by_name_and_scores_the_tasks_route(served, monkeypatch):
    monkeypatch.setenv("GREC_HOME", str(served["home"]))
    spec = served["spec"]
    body = rank_input_model(spec)(customer_id=3, flow="AAL", surface="deals", use_case="CTCVR",
                                  item_ids=list(range(30))).model_dump()
    assert spec.tasks.route_of(body) == "AAL+deals"
    schema = rank_input_model(spec).model_json_schema()["properties"]
    assert schema["surface"]["enum"] == list(SURFACES)
    ranker = Ranker(served["model"], spec, OnlineReader())
    deals = ranker.rank(RankRequest(3, spec.tasks.route_of(body), "CTCVR", list(range(30))))
    detail = ranker.rank(RankRequest(3, "AAL+detail", "CTCVR", list(range(30))))
    assert deals.task == "AAL+deals+CTCVR" and len(deals.scores) == 30
    assert not np.allclose(sorted(deals.scores), sorted(detail.scores))  # another surface, another task
    with pytest.raises(RequestError, match="flow\\+surface: 'AAL\\+lobby' is not one of this model's task token"):
        ranker.rank(RankRequest(3, "AAL+lobby", "CTCVR", [1, 2]))


def test_the_gate_judges_every_task_of_the_sentence(served, monkeypatch, tmp_path):
    from grec.pipeline import steps

    monkeypatch.setenv("GREC_HOME", str(served["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run, tasks = served["run"], served["spec"].tasks
    policy = tmp_path / "gate_policy.yaml"  # the default policy, judging tasks from 3 positives (a small world)
    policy.write_text(POLICY_FILE.read_text().replace("min_positives: 10", "min_positives: 3"))
    report = steps.gate(served["home"] / "set", run.model_dir, run.run_id, model_name="grec-pages", policy=policy)
    names, reported = [tasks.task_name(t) for t in range(72)], [t.task for t in report.tasks]
    assert reported == [n for n in names if n in reported] and len(reported) > 60  # in task order; those with test rows
    judged = [t for t in report.tasks if t.judged]
    assert judged and all(0 < t.challenger_auc < 1 for t in judged)
    assert len(judged) < 72  # the sparse conversion tasks are reported, not judged
