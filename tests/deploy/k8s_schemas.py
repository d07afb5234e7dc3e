"""Cluster objects checked offline against the schemas the API server would apply: built-in kinds
with kubernetes-validate (the Kubernetes API's own OpenAPI schemas, strict: unknown fields are
errors), the Trainer's TrainJob with its CRD's openAPIV3Schema (tests/deploy/schemas/)."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

SCHEMAS = Path(__file__).resolve().parent / "schemas"
TRAINJOB_CRD = SCHEMAS / "trainer.kubeflow.org_trainjobs-v2.3.0.yaml"
KUBERNETES_VERSION = "1.33.0"  # a release current clusters run; the schemas ship inside kubernetes-validate


def strict(schema: dict) -> dict:
    """The schema with unknown fields refused, as the API server's strict field validation does
    (kubectl's default since Kubernetes 1.27: an unknown field is an error, not silently pruned),
    except where the CRD preserves unknown fields."""
    if isinstance(schema, dict):
        schema = {k: strict(v) if k != "enum" else v for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(v) for v in schema]
    return schema


@functools.cache
def trainjob_schema(version: str = "v1alpha1") -> dict:
    crd = yaml.safe_load(TRAINJOB_CRD.read_text())
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = strict(served["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"type": "object"}  # ObjectMeta: checked by the API server, not the CRD
    return schema


def trainjob_errors(job: dict) -> list[str]:
    """What the Trainer's CRD schema says is wrong with `job` (empty: valid)."""
    import jsonschema

    validator = jsonschema.Draft7Validator(trainjob_schema(job["apiVersion"].split("/")[1]))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(job)]


def manifest_errors(path: Path) -> list[str]:
    """kubernetes-validate's findings for every object of a manifest file (empty: all valid)."""
    import kubernetes_validate

    errors = []
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{path.name} {doc['kind']}/{doc['metadata'].get('name')}: {e.message} at {list(e.path)}")
    return errors
