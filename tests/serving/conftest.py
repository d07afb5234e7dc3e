"""One served world for the serving tests: a storefront applied and materialized into a Feast
online store (SQLite; with `served_redis`, Redis as well), and a GRec trained on it, registered in
MLflow and made champion."""

import dataclasses

import pandas as pd
import pytest

from grec.data.tables import load_tables
from grec.data.simulate import SimulationConfig, simulate_to
from grec.features.store import apply, feature_store, materialize, repo_objects
from grec.features.training_set import build_training_set, open_source
from grec.lifecycle.registry import CHAMPION, Registry
from grec.lifecycle.tracking import train_and_log
from grec.model.checkpoint import load_model, model_config
from grec.model.inputs import InputConfig
from grec.train import TrainConfig
from tests.conftest import redis_settings

END = pd.Timestamp("2026-09-07", tz="UTC")


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("serving-state")
    data = tmp_path_factory.mktemp("serving-data") / "shop"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GREC_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        simulate_to(data, SimulationConfig(n_impressions=15_000, seed=5))
        apply(data)
        materialize(END)
        build_training_set(data, home / "set")
        source = open_source(home / "set")
        dataset = source.dataset()
        config = dataclasses.replace(model_config("grec", InputConfig.sizes_from(dataset.spec), d_model=16),
                                     expert_hidden=16, tower_hidden=16)  # as `grec train` builds it, smaller
        run = train_and_log(config, source, dataset, TrainConfig(epochs=1, progress=False), home / "models" / "grec",
                            "grec-serving", register_as="grec")
        registry = Registry("grec")
        registry.client.set_registered_model_alias("grec", CHAMPION, run.version)
        model, spec = load_model(run.model_dir)
        yield {"home": home, "data": data, "model": model, "spec": spec, "tables": load_tables(data),
               "version": run.version, "tracking_uri": registry.tracking_uri}


@pytest.fixture(scope="session")
def served_redis(served, redis_server):
    """The served world's features in Redis too: its repository applied and materialized with the
    Redis configuration (what a user does after switching). Returns the environment that selects it."""
    env = redis_settings(redis_server, db=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GREC_HOME", str(served["home"]))
        for name, value in env.items():
            mp.setenv(name, value)
        feature_store().apply(repo_objects())
        materialize(END)
    return env


@pytest.fixture(params=["sqlite", "redis"])
def online_backend(request, monkeypatch):
    """A test once per online store: the served state folder selected, and Redis when asked."""
    served = request.getfixturevalue("served")
    monkeypatch.setenv("GREC_HOME", str(served["home"]))
    if request.param == "redis":
        for name, value in request.getfixturevalue("served_redis").items():
            monkeypatch.setenv(name, value)
    return request.param
