"""Where run state lives: one folder, set by one variable, never inside the source tree's git."""

from __future__ import annotations

import os
from pathlib import Path

STATE_ENV = "GREC_HOME"
DEFAULT_STATE = ".grec"


def state_dir() -> Path:
    """The run-state folder (`$GREC_HOME`, default `./.grec`), created on first use."""
    path = Path(os.environ.get(STATE_ENV, DEFAULT_STATE)).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir(name: str = "default") -> Path:
    return state_dir() / "data" / name


def models_dir() -> Path:
    return state_dir() / "models"


def runs_dir() -> Path:
    return state_dir() / "runs"


def features_dir() -> Path:
    """Feature pipeline state: Feast registry, online store and source tables, text vectors."""
    return state_dir() / "features"


def training_sets_dir() -> Path:
    return state_dir() / "training_sets"


def validation_dir() -> Path:
    return state_dir() / "validation"


def mlflow_dir() -> Path:
    """The embedded MLflow: its SQLite database and artifact store."""
    return state_dir() / "mlflow"


def reports_dir() -> Path:
    return state_dir() / "reports"


def predictions_dir() -> Path:
    """The serving prediction log (parquet parts by date), read by the monitoring pipeline."""
    return state_dir() / "predictions"


def use_bentoml_home() -> Path:
    """Point BentoML's model and Bento store into the state folder (unless BENTOML_HOME is set).
    Call before bentoml is imported: it reads the variable once."""
    os.environ.setdefault("BENTOML_HOME", str(state_dir() / "bentoml"))
    return Path(os.environ["BENTOML_HOME"])
