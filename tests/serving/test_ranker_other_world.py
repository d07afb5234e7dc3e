"""Ranking on a world with other names (the job board: its own surfaces, use cases and columns,
histories of job views and search), served from a real Feast online store: the ranker's scores,
history attributes, engineered features and learned interactions included, are the registered
pyfunc's, for GRec, PLE and the featured per-task trees; the gate judges each."""

import mlflow
import numpy as np
import pandas as pd
import pytest

from grec.data.tables import load_tables
from grec.data.simulate_jobs import JobsConfig
from grec.features.store import OnlineReader, apply, materialize
from grec.features.training_set import build_training_set, open_source
from grec.lifecycle.pyfunc import request_frame
from grec.lifecycle.tracking import train_and_log
from grec.model.checkpoint import load_model, model_config
from grec.model.inputs import InputConfig
from grec.serving.ranker import RankRequest, Ranker
from grec.train import TrainConfig
from tests.conftest import JOBS_TEST, copy_text_caches


@pytest.fixture(scope="module")
def jobs_store(jobs_data, jobs_dataset, tmp_path_factory):
    """The job board applied and materialized into the SQLite online store, and its training set."""
    home = tmp_path_factory.mktemp("jobs-serving")
    copy_text_caches(home)  # the job board's texts, encoded once by `jobs_dataset`
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GREC_HOME", str(home))
        apply(jobs_data)
        materialize(JobsConfig(**JOBS_TEST).end_time)
        build_training_set(jobs_data, home / "set")
    return home


@pytest.fixture(scope="module", params=["grec", "ple", "lightgbm"])
def served_jobs(request, jobs_store, jobs_data):
    """A GRec or a PLE (as `grec train` builds them, smaller, one epoch) or the featured per-task
    trees, trained on the job board and registered."""
    home, arch = jobs_store, request.param
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GREC_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        source = open_source(home / "set")
        dataset = source.dataset()
        config = model_config(arch, InputConfig.sizes_from(dataset.spec), d_model=16)
        assert config.attribute_features and (arch == "lightgbm" or config.learned_interactions)
        run = train_and_log(config, source, dataset, TrainConfig(epochs=1, progress=False), home / "models" / arch,
                            f"{arch}-jobs", register_as=f"{arch}-jobs")
        model, spec = load_model(run.model_dir)
        yield {"home": home, "model": model, "spec": spec, "tables": load_tables(jobs_data), "uri": run.model_uri,
               "run": run, "name": f"{arch}-jobs"}


def test_rank_scores_a_job_boards_request_like_the_registered_pyfunc(served_jobs, monkeypatch):
    monkeypatch.setenv("GREC_HOME", str(served_jobs["home"]))
    imp = served_jobs["tables"]["impressions"]
    searcher = imp[(imp["flow"] == "SEARCH") & (imp["viewed_item_ids"].map(len) >= 5)].iloc[-1]
    ranker = Ranker(served_jobs["model"], served_jobs["spec"], OnlineReader())
    request = RankRequest(int(searcher["customer_id"]), "SEARCH", "APPLY", list(range(0, 120, 3)),
                          search_query=str(searcher["search_query"]))
    result = ranker.rank(request)
    assert result.task == "SEARCH+APPLY" and not result.cold_start_customer and len(result.scores) == 40
    assert len(result.features["viewed_item_ids"].iloc[0]) >= 5  # the customer's history from the online store
    rows = request_frame(result.features, "APPLY", served_jobs["spec"].input_columns())
    pyfunc = mlflow.pyfunc.load_model(served_jobs["uri"])
    expected = dict(zip(result.features["item_id"], pyfunc.predict(rows)["score"]))
    np.testing.assert_allclose(result.scores, [expected[i] for i in result.item_ids], rtol=0, atol=1e-5)
    # the history's attributes reach the served score: the same request with another history differs
    other = result.features.copy()
    other["viewed_item_ids"] = [np.array([7, 8, 9], np.int64)] * len(other)
    other["visited_page_ids"] = [np.zeros(3, np.int64)] * len(other)
    changed = pyfunc.predict(request_frame(other, "APPLY", served_jobs["spec"].input_columns()))["score"]
    assert not np.allclose(changed, pd.Series(expected).loc[other["item_id"]].to_numpy())


def test_a_store_without_items_serves_every_candidate_cold(served_jobs, monkeypatch):
    monkeypatch.setenv("GREC_HOME", str(served_jobs["home"]))
    imp = served_jobs["tables"]["impressions"]
    ranker = Ranker(served_jobs["model"], served_jobs["spec"], OnlineReader())
    store_items = ranker.reader.items  # the store answers for ids it has never held: nothing known
    monkeypatch.setattr(ranker.reader, "items", lambda ids: store_items([10**12 + i for i in range(len(ids))]))
    ranker.catalogue._snapshot = ranker.catalogue._load()
    assert ranker.catalogue.snapshot.size == 0
    result = ranker.rank(RankRequest(int(imp["customer_id"].iloc[-1]), "SEARCH", "APPLY", [0, 3, 6]))
    assert sorted(result.cold_start_items) == [0, 3, 6] and sorted(result.item_ids) == [0, 3, 6]
    assert np.isfinite(result.scores).all()


def test_the_gate_judges_the_model_on_the_job_boards_test_week(served_jobs, monkeypatch):
    """Whatever the architecture, the gate scores the model folder task by task on the test week,
    against the registry's champion of its name (itself: a difference of zero)."""
    from grec.pipeline import steps

    monkeypatch.setenv("GREC_HOME", str(served_jobs["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = served_jobs["run"]
    report = steps.gate(served_jobs["home"] / "set", run.model_dir, run.run_id, model_name=served_jobs["name"])
    spec = served_jobs["spec"]
    assert [t.task for t in report.tasks] == [spec.tasks.task_name(t) for t in range(spec.tasks.n_tasks)]
    judged = [t for t in report.tasks if t.judged]
    assert judged and all(0 < t.challenger_auc < 1 for t in judged)
    if report.champion:  # the registered version is its own champion: the same scores
        assert all(abs(t.diff) < 1e-6 for t in judged) and report.passed
