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


MEMORY_ENV = "GREC_MEMORY_BUDGET"  # bytes, or with a unit: "512M", "8G"
_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def memory_budget() -> int:
    """Bytes a data set may take in memory before training streams it from parquet instead:
    `$GREC_MEMORY_BUDGET`, else half of this machine's memory (or of its container's limit)."""
    value = os.environ.get(MEMORY_ENV, "").strip().upper()
    if value:
        try:
            return int(float(value[:-1]) * _UNITS[value[-1]]) if value[-1] in _UNITS else int(value)
        except ValueError:
            raise ValueError(f"{MEMORY_ENV}={os.environ[MEMORY_ENV]!r}: expected bytes, or a number with K, M, G or T") from None
    limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cgroup = Path("/sys/fs/cgroup/memory.max")
    if cgroup.exists() and cgroup.read_text().strip().isdigit():
        limit = min(limit, int(cgroup.read_text()))
    return limit // 2
