"""The same code against a real MLflow tracking server (started here from the venv's `mlflow`):
only MLFLOW_TRACKING_URI changes."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from grec.features.training_set import open_source
from grec.lifecycle.gate import GatePolicy
from grec.lifecycle.pyfunc import request_frame, score_frame
from grec.lifecycle.registry import CHALLENGER, CHAMPION, Registry
from grec.lifecycle.tracking import train_and_log
from grec.model.checkpoint import load_model
from grec.model.grec import GRecConfig
from grec.model.inputs import InputConfig
from grec.train import TrainConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"mlflow server did not start: {proc.stdout.read()[-3000:]}")
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_tracking_and_promotion_work_unchanged_against_a_server(mlflow_server, small_data, texts, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    source = open_source(small_data)
    data = source.dataset(texts=texts)
    config = GRecConfig(**InputConfig.sizes_from(data.spec), d_model=8, expert_hidden=16, tower_hidden=16)
    run = train_and_log(config, source, data, TrainConfig(epochs=1, seed=0, progress=False), tmp_path / "model",
                        "grec-server", register_as="grec")
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nfloors: {default: 0.0}\nbootstrap: {samples: 50}\n")
    registry = Registry("grec")
    assert registry.tracking_uri == mlflow_server and registry.aliases() == {CHALLENGER: run.version}
    promotion = registry.promote(policy=GatePolicy.load(policy), decided_by="server-test")
    assert promotion.changed and Registry("grec").aliases()[CHAMPION] == run.version
    # the artifacts live behind the server, not in the local state folder
    assert not (Path(os.environ["GREC_HOME"]) / "mlflow" / "artifacts").exists()
    model, spec = registry.load(run.version)
    frame = source.frame.tail(16)
    request = request_frame(frame, "CTR", spec.input_columns())
    local_model, local_spec = load_model(run.model_dir)
    np.testing.assert_allclose(score_frame(model, spec, request), score_frame(local_model, local_spec, request), atol=1e-6)
