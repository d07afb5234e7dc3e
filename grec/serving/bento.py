"""From the MLflow registry to a Bento: import the champion into BentoML's model store (under
$GREC_HOME/bentoml), build the Bento described by deploy/bentofile.yaml, serve it locally."""

from __future__ import annotations

from pathlib import Path

from grec import settings

REPO = Path(__file__).resolve().parents[2]
BENTOFILE = REPO / "deploy" / "bentofile.yaml"


def import_champion(name: str = "grec", alias: str = "champion", tracking_uri: str | None = None):
    """The registry's `name@alias` as a BentoML model tagged `name:<version>-<alias>`; returns it."""
    settings.use_bentoml_home()
    import bentoml
    import bentoml.mlflow

    from grec.lifecycle.registry import Registry

    registry = Registry(name, tracking_uri)
    version = registry.aliases().get(alias)
    if version is None:
        from grec.lifecycle.registry import RegistryError

        raise RegistryError(f"model '{name}' has no '{alias}' alias to package; promote a version first")
    tag = f"{name}:v{version}"
    try:
        return bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        return bentoml.mlflow.import_model(
            tag, f"models:/{name}/{version}",
            labels={"registered_model": name, "version": str(version), "alias": alias},
            metadata={"tracking_uri": registry.tracking_uri, "run_id": registry.version(version).run_id})


def build(model_tag: str) -> str:
    """`bentoml build` of deploy/bentofile.yaml with `model_tag` as the packaged model; the Bento tag."""
    import os

    settings.use_bentoml_home()
    import bentoml

    os.environ["GREC_BENTO_MODEL"] = model_tag
    return str(bentoml.bentos.build_bentofile(str(BENTOFILE), build_ctx=str(REPO)).tag)
