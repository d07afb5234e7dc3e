from kfp import dsl
from kfp.dsl import HTML, Artifact, Markdown, Metrics, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def drift_report(data: str, start: str, end: str, model_name: str, policy: str, report: Output[HTML],
                 summary: Output[Markdown], result: Output[Artifact], metrics: Output[Metrics]) -> bool:
    """Evidently drift of the window (impressions and the prediction log) against the champion's
    training reference; records the decision on the champion (drift: retraining requested).
    Returns whether the window drifted."""
    import shutil
    import tempfile
    from pathlib import Path

    from grec import settings
    from grec.pipeline import steps

    drift, paths = steps.monitor(Path(data or settings.data_dir()), start, end, Path(tempfile.mkdtemp()),
                                 model_name, policy=Path(policy) if policy else None)
    shutil.copy(paths["html"], report.path)
    shutil.copy(paths["markdown"], summary.path)
    shutil.copy(paths["json"], result.path)
    result.metadata.update({"decision": "drift" if drift.drifted else "no drift", "reasons": drift.reasons})
    metrics.log_metric("drifted_feature_share", drift.feature_share)
    metrics.log_metric("drifted_tasks", sum(t.drifted for t in drift.tasks))
    return drift.drifted


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def quality_report(data: str, start: str, end: str, model_name: str, as_of: str, policy: str, drifted: bool,
                   report: Output[HTML], summary: Output[Markdown], result: Output[Artifact],
                   metrics: Output[Metrics]) -> bool:
    """The champion's ranking quality per task on the window's labelled rows and on what the
    service served (grec.monitoring.quality), beside its gate's figures; kept on the version.
    Returns whether to retrain: the window drifted (`drifted`) or quality fell beyond the noise."""
    import shutil
    import tempfile
    from pathlib import Path

    from grec import settings
    from grec.pipeline import steps

    quality, paths = steps.quality(Path(data or settings.data_dir()), start, end, Path(tempfile.mkdtemp()),
                                   model_name, as_of=as_of, policy=Path(policy) if policy else None)
    shutil.copy(paths["html"], report.path)
    shutil.copy(paths["markdown"], summary.path)
    shutil.copy(paths["json"], result.path)
    result.metadata.update({"decision": "quality fell" if quality.fell else "quality held", "reasons": quality.reasons})
    metrics.log_metric("judged_tasks", sum(t.judged for t in quality.tasks))
    metrics.log_metric("fallen_tasks", sum(t.fell for t in quality.tasks))
    return drifted or quality.fell


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def start_training(kfp_host: str, data: str, start: str, end: str) -> str:
    """Submit a training pipeline run on [start, end) to the KFP API server. Returns its run id."""
    from grec.pipeline.run import submit

    return submit("training", kfp_host, {"data": data, "start": start, "end": end})
