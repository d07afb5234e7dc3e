"""The monitoring pipeline: the champion's training reference against the newest window (its
impressions through the feature store, and the ranking service's prediction log), an Evidently
report and a drift decision; then the champion's ranking quality per task on the window's rows whose
labels have arrived by `as_of` (default: now) and on what the service served, beside its gate's
figures. Drift or a fall in quality marks the champion for retraining and, with `kfp_host` set,
starts the training pipeline on the window that now includes the new data.
"""

from kfp import dsl

from components.drift import drift_report, quality_report, start_training
from pipelines.cluster import on_cluster


@dsl.pipeline(name="grec-monitoring", description="Drift and quality of the newest window against the champion's reference and gate.")
def monitoring(data: str = "", start: str = "2026-09-07", end: str = "2026-09-14", model_name: str = "grec",
               drift_policy: str = "", quality_policy: str = "", as_of: str = "", kfp_host: str = "",
               retrain_start: str = "2026-06-08"):
    """[start, end): the window watched; as_of: when its labels are read (''/now: each use case's
    label delay leaves the youngest rows to drift only). On drift or a fall in quality with kfp_host
    set, training reruns on [retrain_start, end)."""
    drift = on_cluster(drift_report(data=data, start=start, end=end, model_name=model_name, policy=drift_policy))
    quality = on_cluster(quality_report(data=data, start=start, end=end, model_name=model_name, as_of=as_of,
                                        policy=quality_policy, drifted=drift.outputs["Output"]))
    with dsl.If(quality.outputs["Output"] == True, name="retrain"):  # noqa: E712 (a pipeline condition, not a bool)
        with dsl.If(kfp_host != "", name="retrain-configured"):
            on_cluster(start_training(kfp_host=kfp_host, data=data, start=retrain_start, end=end))
