from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def train_model(training_set: Input[Dataset], arch: str, epochs: int, seed: int, pipeline_job: str, pipeline_run_id: str,
                train_on: str, nodes: int, procs_per_node: int, cpu: str, memory: str, gpus: int, image: str,
                model: Output[Model], metrics: Output[Metrics]):
    """Train GRec (or a baseline), tracked in MLflow (tagged with the pipeline run): in this step's
    process, under torchrun, or as a Kubeflow Trainer TrainJob of `nodes` pods (train_on); the
    model folder is the output artifact, the run and logged model URIs are its metadata."""
    from pathlib import Path

    from grec.pipeline import steps
    from grec.pipeline.launch import Launch

    launch = Launch(on=train_on, nodes=nodes, procs_per_node=procs_per_node, cpu=cpu, memory=memory, gpus=gpus,
                    image=image)
    run = steps.train(Path(training_set.path), Path(model.path), arch, epochs, seed,
                      tags={"kfp.pipeline_job": pipeline_job, "kfp.run_id": pipeline_run_id,
                            "kfp.training_set": training_set.uri}, launch=launch)
    model.metadata.update({"arch": arch, "mlflow_run_id": run.run_id, "model_uri": run.model_uri,
                           "best_epoch": run.summary["best_epoch"], "time_spent": steps.time_spent(run.summary)})
    for key, value in steps.headline_metrics(run.report).items():
        metrics.log_metric(key, value)
