"""The training step as a Kubeflow Trainer TrainJob, submitted through the kubeflow SDK to a
Kubernetes API on loopback (tests/pipeline/loopback_trainer.py: no cluster here) whose "pods" run
the job's command as the Trainer's torch plugin would: two nodes, one torchrun each."""

import os
from pathlib import Path

import mlflow
import pytest
import yaml
from kubeflow.trainer import KubernetesBackendConfig
from kubernetes.client import Configuration

from grec import settings
from grec.lifecycle.store import configure, tracking_uri
from grec.pipeline import steps
from grec.pipeline.launch import Launch, LaunchError
from tests.conftest import simulated_training_set
from tests.deploy.k8s_schemas import trainjob_errors
from tests.pipeline.loopback_trainer import LoopbackTrainer, python_path_first

IMAGE = "registry.example.com/grec:test"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def training_set(tmp_path_factory):
    return simulated_training_set(tmp_path_factory.mktemp("trainjob"), n_impressions=20_000, train_weeks=4, seed=3)


@pytest.fixture
def cluster(fresh_state):
    """The loopback API with the platform's Secret and ConfigMap (deploy/k8s/platform.yaml); the
    pods' own environment lacks MLFLOW_TRACKING_URI and GREC_HOME, so they have them only
    through the job's runtime patch."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GREC_HOME")}
    api = LoopbackTrainer(secrets={"grec-mlflow": {"tracking_uri": tracking_uri()}},
                          config_maps={"grec-config": {"GREC_HOME": str(fresh_state)}}, pod_env=python_path_first(env))
    yield api
    api.close()


def backend(api):
    return KubernetesBackendConfig(namespace="team-recs", client_configuration=Configuration(host=api.url))


def test_the_training_step_trains_as_a_two_node_trainjob_and_collects_its_model(training_set, cluster, fresh_state,
                                                                                 tmp_path):
    # one CPU a pod: the two pods share this machine's two cores
    launch = Launch(on="trainjob", nodes=2, procs_per_node=1, cpu="1", memory="6Gi", image=IMAGE, poll_s=1, timeout_s=600)
    out = tmp_path / "model"
    # three epochs: one on 20k impressions leaves a network at chance (0.45-0.53 test AUC by seed and init)
    run = steps.train(training_set, out, "mmoe", epochs=3, seed=0, tags={"kfp.run_id": "r-1"}, launch=launch,
                      backend=backend(cluster))

    (job,) = cluster.created
    assert job["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and job["kind"] == "TrainJob"
    assert trainjob_errors(job) == []  # what the SDK sent passes the Trainer v2.3.0 CRD's own schema, strictly
    assert job["metadata"]["name"].startswith("mmoe-")
    assert job["metadata"]["labels"]["app.kubernetes.io/part-of"] == "grec"
    spec = job["spec"]
    assert spec["runtimeRef"] == {"name": "torch-distributed", "kind": "ClusterTrainingRuntime"}
    trainer = spec["trainer"]
    assert trainer["image"] == IMAGE and trainer["numNodes"] == 2
    assert trainer["resourcesPerNode"]["limits"] == {"cpu": "1", "memory": "6Gi"}
    assert {"name": "OMP_NUM_THREADS", "value": "1"} in trainer["env"]  # the pod's CPUs, not the node's cores
    command = trainer["command"]
    assert command[:4] == ["torchrun", "--nproc-per-node=1", "-m", "grec.cli"] and "--standalone" not in command
    assert command[4:6] == ["train", "--training-set"] and "/trainjobs/" in command[6]  # staged on the state volume
    assert {"--no-register", "--model", "mmoe", "kfp.run_id=r-1"} <= set(command)
    (patch,) = spec["runtimePatches"]
    (node,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod = node["template"]["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "grec-state", "persistentVolumeClaim": {"claimName": "grec-state"}}]
    (container,) = pod["containers"]
    assert container["name"] == "node" and container["volumeMounts"] == [{"name": "grec-state", "mountPath": "/var/lib/grec"}]
    assert {e["name"]: e["valueFrom"] for e in container["env"]} == {
        "MLFLOW_TRACKING_URI": {"secretKeyRef": {"name": "grec-mlflow", "key": "tracking_uri"}},
        "GREC_HOME": {"configMapKeyRef": {"name": "grec-config", "key": "GREC_HOME"}}}

    logs = cluster.logs[job["metadata"]["name"]]
    assert sum(log.count("Saved ") for log in logs) == 1, logs  # rank 0 (node 0) alone saves and logs
    assert (out / "weights.pt").exists() and run.model_dir == out
    assert cluster.deleted == [job["metadata"]["name"]]
    assert not (settings.state_dir() / "trainjobs" / job["metadata"]["name"]).exists()
    configure()
    logged = mlflow.get_run(run.run_id)
    assert logged.info.status == "FINISHED" and logged.data.tags["kfp.run_id"] == "r-1"
    assert logged.data.tags["grec.model"] == "mmoe" and 1 <= run.summary["best_epoch"] <= 3
    assert steps.headline_metrics(run.report)["test_auc.mean_of_use_cases"] > 0.5
    assert_allowed_by_the_rbac(cluster.requests)


def assert_allowed_by_the_rbac(requests):
    """Every (verb, API group, resource) the SDK asked the API server for is granted by
    deploy/k8s/trainer-rbac.yaml: namespaced ones by a Role of the profile namespace (or of
    kubeflow-system for the Trainer's public ConfigMap), cluster-scoped ones by a ClusterRole."""
    docs = list(yaml.safe_load_all((REPO / "deploy" / "k8s" / "trainer-rbac.yaml").read_text()))
    granted = {(d["kind"], d["metadata"].get("namespace"), verb, group, resource)
               for d in docs if d["kind"] in ("Role", "ClusterRole") for rule in d["rules"]
               for verb in rule["verbs"] for group in rule["apiGroups"] for resource in rule["resources"]}
    assert any(resource == "trainjobs" for _, _, resource, _ in requests)
    for verb, group, resource, namespaced in requests:
        kind, namespace = ("Role", "kubeflow-system" if resource == "configmaps" else "kubeflow-user-example-com") \
            if namespaced else ("ClusterRole", None)
        assert (kind, namespace, verb, group, resource) in granted, (verb, group, resource)


def test_a_failed_trainjob_fails_the_step_by_name_and_leaves_nothing(cluster, fresh_state, tmp_path):
    empty = fresh_state / "not-a-training-set"  # on the state volume already: used in place
    empty.mkdir(parents=True)
    launch = Launch(on="trainjob", nodes=2, cpu="1", image=IMAGE, poll_s=1, timeout_s=300)
    with pytest.raises(LaunchError, match=r"TrainJob team-recs/grec-[0-9a-f]{8} failed .*kubectl -n team-recs logs"):
        steps.train(empty, tmp_path / "model", "grec", epochs=1, launch=launch, backend=backend(cluster))
    (job,) = cluster.created
    assert job["spec"]["trainer"]["command"][6] == str(empty)
    assert cluster.deleted == []  # a failed job is left for its logs
    assert not (tmp_path / "model").exists()
    assert not list((settings.state_dir() / "trainjobs").glob("*"))  # no staging left


def test_launch_settings_are_checked_before_anything_runs(tmp_path):
    with pytest.raises(LaunchError, match="train_on 'slurm'"):
        Launch(on="slurm")
    with pytest.raises(LaunchError, match="more than one node needs train_on=trainjob"):
        Launch(on="torchrun", nodes=2)
    with pytest.raises(LaunchError, match="needs the image"):
        Launch(on="trainjob")
    with pytest.raises(LaunchError, match="train_cpu 'two' is not a CPU quantity"):
        Launch(on="trainjob", image=IMAGE, cpu="two")
    assert Launch(cpu="3500m", procs_per_node=2).threads_per_worker == 1 and Launch(cpu="8", procs_per_node=2).threads_per_worker == 4
    with pytest.raises(LaunchError, match="needs a Kubernetes cluster"):  # no service account, no kube-config
        steps.train(tmp_path, tmp_path / "m", launch=Launch(on="trainjob", image=IMAGE),
                    backend=KubernetesBackendConfig(config_file=str(tmp_path / "missing-kubeconfig")))


def test_torchrun_on_the_steps_machine_fails_the_step_with_what_the_job_said(fresh_state, tmp_path):
    empty = tmp_path / "not-a-training-set"
    empty.mkdir()
    with pytest.raises(LaunchError, match=r"(?s)torchrun of grec train \(2 processes\) failed with exit code 1:.*"
                                          r"not-a-training-set"):
        steps.train(empty, tmp_path / "model", "mmoe", epochs=1, launch=Launch(on="torchrun", procs_per_node=2))
    assert not (tmp_path / "model").exists()
