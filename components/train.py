from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def train_model(training_set: Input[Dataset], arch: str, epochs: int, seed: int, pipeline_job: str, pipeline_run_id: str,
                model: Output[Model], metrics: Output[Metrics]):
    """Train GRec (or a baseline), tracked in MLflow (tagged with the pipeline run); the model
    folder is the output artifact, the run and logged model URIs are its metadata."""
    from pathlib import Path

    from grec.pipeline import steps

    run = steps.train(Path(training_set.path), Path(model.path), arch, epochs, seed,
                      tags={"kfp.pipeline_job": pipeline_job, "kfp.run_id": pipeline_run_id,
                            "kfp.training_set": training_set.uri})
    model.metadata.update({"arch": arch, "mlflow_run_id": run.run_id, "model_uri": run.model_uri,
                           "best_epoch": run.summary["best_epoch"]})
    for key, value in steps.headline_metrics(run.report).items():
        metrics.log_metric(key, value)
