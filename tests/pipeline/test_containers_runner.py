"""What the docker runner gives each task, checked without an engine (the container tier runs it):
the state folder and the user's inputs mounted at their own paths (inputs read-only), the settings
a cluster's Secret and ConfigMap carry, the feature store's config file read from the image's own
repository; a missing input named before anything starts."""

from pathlib import Path

import pytest

from grec.pipeline.containers import IMAGE_REPO, ContainerRunError, environment, mounts

REPO = Path(__file__).resolve().parents[2]


def test_the_state_folder_and_the_inputs_are_mounted_at_their_own_paths(tmp_path):
    state, data, policy = tmp_path / "state", tmp_path / "logs", tmp_path / "gate.yaml"
    (state / "data" / "default").mkdir(parents=True)
    data.mkdir()
    policy.write_text("version: 1\n")
    found = mounts(state, {"data": str(data), "gate_policy": str(policy), "drift_policy": "", "epochs": 1})
    assert [(m["Source"], m["Target"], m["ReadOnly"]) for m in found] == [
        (str(state), str(state), False), (str(data), str(data), True), (str(policy), str(policy), True)]
    inside = mounts(state, {"data": str(state / "data" / "default")})  # already on the state volume
    assert len(inside) == 1


def test_a_missing_input_is_named(tmp_path):
    with pytest.raises(ContainerRunError, match=r"gate_policy=.*nope.yaml: no such file"):
        mounts(tmp_path, {"gate_policy": str(tmp_path / "nope.yaml")})


def test_the_environment_carries_the_clusters_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("GREC_REDIS", "127.0.0.1:6390,db=2")
    monkeypatch.setenv("FEAST_FS_YAML_FILE_PATH", str(REPO / "feature_repo" / "feature_store.redis.yaml"))
    monkeypatch.setenv("SOME_HOST_ONLY_SETTING", "x")
    env = environment(tmp_path)
    assert env["GREC_HOME"] == str(tmp_path) and env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert env["GREC_REDIS"] == "127.0.0.1:6390,db=2" and "SOME_HOST_ONLY_SETTING" not in env
    assert env["FEAST_FS_YAML_FILE_PATH"] == f"{IMAGE_REPO}/feature_repo/feature_store.redis.yaml"
