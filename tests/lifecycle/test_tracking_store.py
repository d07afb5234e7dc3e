"""The embedded MLflow store (grec.lifecycle.store) created once when several processes open a
new state folder together (two scheduled pipelines firing at the same minute)."""

import os
import subprocess
import sys

OPEN_AND_LOG = """
import mlflow
from grec.lifecycle.store import configure, experiment_id
configure()
with mlflow.start_run(experiment_id=experiment_id()):
    mlflow.log_metric("auc", 0.5)
print("logged")
"""


def test_processes_opening_a_new_state_folder_at_once_all_succeed(tmp_path):
    """Four processes configure the same new embedded store at once and log a run each: every one
    succeeds (without the lock, MLflow's table creation raced: `table _alembic_tmp_latest_metrics
    already exists`), the tables made once."""
    env = os.environ | {"GREC_HOME": str(tmp_path / "home")}
    env.pop("MLFLOW_TRACKING_URI", None)
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AND_LOG], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outputs]
    assert all(out.strip().endswith("logged") for out, _ in outputs)
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'home' / 'mlflow' / 'mlflow.db'}")
    assert len(client.search_runs([client.get_experiment_by_name("grec").experiment_id])) == 4
    assert (tmp_path / "home" / "mlflow" / "mlflow.db.created").exists()
