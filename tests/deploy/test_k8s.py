"""deploy/k8s/*.yaml pass the Kubernetes API's schemas (strict), and the checks can fail: a field a
Deployment does not have, and a TrainJob with a malformed trainer, are named."""

import copy
from pathlib import Path

import pytest
import yaml

from tests.deploy.k8s_schemas import manifest_errors, trainjob_errors

MANIFESTS = sorted((Path(__file__).resolve().parents[2] / "deploy" / "k8s").glob("*.yaml"))


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_manifest_passes_the_kubernetes_schemas(path):
    assert manifest_errors(path) == []


def test_a_field_the_api_does_not_know_is_named(tmp_path):
    docs = list(yaml.safe_load_all((MANIFESTS[0].parent / "ranker.yaml").read_text()))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["replica"] = 2  # a typo of replicas
    bad = tmp_path / "ranker.yaml"
    bad.write_text(yaml.safe_dump(deployment))
    (error,) = manifest_errors(bad)
    assert "Deployment/grec-ranker" in error and "replica" in error


TRAINJOB = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "grec-1a2b3c4d"},
            "spec": {"runtimeRef": {"name": "torch-distributed", "kind": "ClusterTrainingRuntime"},
                     "trainer": {"image": "ghcr.io/grec-platform/grec:0.1.0", "numNodes": 2,
                                 "command": ["torchrun", "-m", "grec.cli", "train"]}}}


def test_the_trainjob_schema_takes_a_valid_job_and_names_a_bad_field():
    assert trainjob_errors(TRAINJOB) == []
    bad = copy.deepcopy(TRAINJOB)
    bad["spec"]["trainer"]["numNodes"] = "two"
    bad["spec"]["trainer"]["imagePullPolicy"] = "Always"  # not a trainer field
    errors = trainjob_errors(bad)
    assert any(e.startswith("spec/trainer/numNodes") for e in errors), errors
    assert any("imagePullPolicy" in e for e in errors), errors
