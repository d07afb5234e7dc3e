"""How every task runs: never from kfp's cache (steps register models, move aliases and build
Bentos, and the data behind a path changes), and, on a cluster, how it reaches the platform's
services: kfp-kubernetes settings added at compile time (the local runner ignores them).

- Secret `grec-mlflow` (key `tracking_uri`) -> MLFLOW_TRACKING_URI: the shared MLflow server.
- ConfigMap `grec-config` (key `GREC_HOME`) -> env: the state folder on the shared volume (the
  feature repository's registry and stores live under it, see feature_repo/feature_store.yaml).
- PVC `grec-state` mounted at /var/lib/grec: the state folder (feature registry and offline
  sources, training sets, Bentos) shared by the steps of a run.
"""

from kfp import kubernetes

MLFLOW_SECRET = "grec-mlflow"
CONFIG_MAP = "grec-config"
STATE_PVC = "grec-state"
STATE_MOUNT = "/var/lib/grec"


def on_cluster(task):
    task.set_caching_options(False)
    kubernetes.use_secret_as_env(task, secret_name=MLFLOW_SECRET, secret_key_to_env={"tracking_uri": "MLFLOW_TRACKING_URI"})
    kubernetes.use_config_map_as_env(task, config_map_name=CONFIG_MAP,
                                     config_map_key_to_env={"GREC_HOME": "GREC_HOME"})
    kubernetes.mount_pvc(task, pvc_name=STATE_PVC, mount_path=STATE_MOUNT)
    return task
