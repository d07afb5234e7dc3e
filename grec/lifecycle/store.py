"""Where runs and models are kept: the MLflow tracking URI (the caller's, else
`MLFLOW_TRACKING_URI`, else the embedded SQLite store in the state folder), the project's
experiment and registered model names, and the UI's link to them.

Apart from grec.lifecycle.tracking (which trains and logs) so that what only reads or moves
registered models (the registry, promotion, the UI) imports MLflow alone, not torch.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from grec import settings

EXPERIMENT = "grec"
MODEL_NAME = "grec"
# MLflow 3's UI shows an experiment either as a GenAI one (traces, evaluations, prompts) or as a
# model-training one (runs, charts, models): the experiment tag `mlflow.experimentKind` says which
# ("genai_development" or "custom_model_development", what the UI's own kind selector writes).
# GRec's experiment is model training. MLflow 3.17's bundled UI takes the kind from its sidebar
# switch (GenAI / Model training, default GenAI) instead; `experiment_url` links with
# `?workflowType=machine_learning`, which selects the training view there.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def tracking_uri(uri: str | None = None) -> str:
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{settings.mlflow_dir() / 'mlflow.db'}"


def configure(uri: str | None = None) -> str:
    """Point MLflow's tracking and registry at `tracking_uri(uri)` (creating the embedded store's
    folder); returns the URI."""
    uri = tracking_uri(uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per download clutters logs
    if uri.startswith("sqlite:///"):
        create_once(uri, Path(uri.removeprefix("sqlite:///")))
    user_setting = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # MLflow also exports the URI as MLFLOW_TRACKING_URI; undone, so that the next configure() in
    # this process (another GREC_HOME, a test) reads the user's setting, not our last choice.
    if user_setting is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = user_setting
    return uri


_CREATED: set[str] = set()  # SQLite stores this process has seen created


def create_once(uri: str, db: Path) -> None:
    """Create an embedded SQLite store's tables once, under an exclusive lock on a file beside it.

    MLflow creates and migrates its tables on a store's first connection; two processes doing that
    at once on a new state folder (two scheduled pipelines firing together) collide: the second
    failed in alembic (`table _alembic_tmp_latest_metrics already exists`). Here the first creates
    them while the others wait on the lock, then find them made (a marker file says so)."""
    if uri in _CREATED:
        return
    import fcntl

    db.parent.mkdir(parents=True, exist_ok=True)
    marker = db.with_name(db.name + ".created")
    if not marker.exists():
        with open(db.with_name(db.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when a holder dies
            if not marker.exists():
                client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
                client.search_experiments(max_results=1)  # the tracking store's tables
                client.search_registered_models(max_results=1)  # the registry's
                marker.write_text(f"{uri}\n")
    _CREATED.add(uri)


def experiment_id(name: str = EXPERIMENT) -> str:
    """The experiment's id, created on first use, tagged as a model-training experiment
    (EXPERIMENT_KIND_TAG; an existing experiment without the tag gets it, one with a kind keeps
    it). With the embedded SQLite store its artifacts go to the state folder (MLflow's default
    would be ./mlruns under whatever the working folder is)."""
    found = mlflow.get_experiment_by_name(name)
    if found is None:
        location = (settings.mlflow_dir() / "artifacts").as_uri() if mlflow.get_tracking_uri().startswith("sqlite:") else None
        try:
            return mlflow.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except MlflowException:  # another process created it first
            found = mlflow.get_experiment_by_name(name)
    if EXPERIMENT_KIND_TAG not in found.tags:
        try:
            mlflow.MlflowClient().set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        except MlflowException as e:  # a shared server may not let us tag it: only the UI's view depends on it
            warnings.warn(f"could not tag experiment {name!r} as model training: {e}", stacklevel=2)
    return found.experiment_id


def experiment_url(experiment: str, host: str = "http://127.0.0.1:5000") -> str:
    """The MLflow UI's page of experiment id `experiment` on `host`, in the model-training view."""
    return f"{host.rstrip('/')}/#/experiments/{experiment}?workflowType=machine_learning"


def ui_command(uri: str | None = None) -> str:
    """What to run to browse the runs: `grec ui` starts the MLflow UI on the experiment's
    model-training view (the bare MLflow UI opens in its GenAI view)."""
    return "grec ui" + (f" --tracking-uri {uri}" if uri else "")
