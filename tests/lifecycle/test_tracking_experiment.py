"""The project's MLflow experiment is a model-training one: created with MLflow's experiment-kind
tag set to custom model development (what the UI's kind selector writes for "Machine learning"), an
existing experiment without the tag gets it, one with a kind keeps it; the UI link opens the
training view."""

import mlflow
import pytest

from grec.lifecycle.store import EXPERIMENT, EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, configure, experiment_id, experiment_url


@pytest.fixture
def store(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return configure()  # the fresh GREC_HOME's SQLite store


def test_the_experiment_is_created_as_a_model_training_experiment(store):
    assert mlflow.get_experiment_by_name(EXPERIMENT) is None
    eid = experiment_id()
    assert EXPERIMENT_KIND_TAG == "mlflow.experimentKind" and EXPERIMENT_KIND == "custom_model_development"
    assert mlflow.get_experiment(eid).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert experiment_id() == eid  # found, not created again


def test_an_existing_experiment_without_a_kind_gets_it_and_one_with_a_kind_keeps_it(store):
    old = mlflow.create_experiment(EXPERIMENT)  # as earlier versions of the platform created it
    assert EXPERIMENT_KIND_TAG not in mlflow.get_experiment(old).tags
    assert experiment_id() == old
    assert mlflow.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    other = mlflow.create_experiment("other", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    assert experiment_id("other") == other
    assert mlflow.get_experiment(other).tags[EXPERIMENT_KIND_TAG] == "genai_development"


def test_the_ui_link_asks_for_the_training_view():
    assert experiment_url("3") == "http://127.0.0.1:5000/#/experiments/3?workflowType=machine_learning"
    assert experiment_url("3", "https://mlflow.example/") == "https://mlflow.example/#/experiments/3?workflowType=machine_learning"


def test_grec_ui_serves_the_state_folders_store_and_prints_the_training_view_link(store, fresh_state):
    """`grec ui` starts the MLflow UI on loopback over this state folder's store and prints the
    link that opens the experiment in its model-training view (the bare UI opens in GenAI view:
    MLflow 3.17's UI picks the view from `workflowType`, not from the experiment's tag). SIGTERM
    to `grec ui` alone (not its process group) stops the UI's server with it: the port closes."""
    import contextlib
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx
    import psutil

    eid = experiment_id()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GREC_HOME": str(fresh_state)}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("grec")), "ui", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        first = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/#/experiments/{eid}?workflowType=machine_learning" in first
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get",
                                   params={"experiment_id": eid}, timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert answer is not None and answer.status_code == 200
        tags = {t["key"]: t["value"] for t in answer.json()["experiment"]["tags"]}
        assert tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
        # no job runner (MLflow's GenAI jobs: 8 processes polling while the UI idles)
        started = []
        for child in psutil.Process(proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):  # one that ended since the listing
                started.append(" ".join(child.cmdline()))
        assert started and not [c for c in started if "mlflow.server.jobs" in c or "huey" in c], started
        proc.send_signal(signal.SIGTERM)  # what a service manager or `kill` sends to the command
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM, 128 + signal.SIGTERM)
        with pytest.raises(httpx.ConnectError):  # nothing left serving the port
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
