"""The training pipeline: validate -> features -> train GRec (and beside it the baseline network and
the incumbents, one LightGBM per task) -> evaluate and gate -> register -> promote and package (only
when the gate passes).

A failed validation fails the run before anything is trained. A refused gate still registers the
challenger (with the refusal recorded on it) and leaves the champion alone. The MLflow runs carry
the pipeline job name and run id (`kfp.pipeline_job`, `kfp.run_id`) and the training set's
artifact URI.
"""

from kfp import dsl

from components import BASE_IMAGE
from components.features import build_features
from components.gate import evaluate_and_gate
from components.package import package_service
from components.register import promote_model, register_model
from components.train import train_model
from components.validate import validate_data
from pipelines.cluster import on_cluster


@dsl.pipeline(name="grec-training",
              description="Validate, build features, train GRec, MMoE and per-task LightGBM, gate, register, promote, package.")
def training(data: str = "", start: str = "", end: str = "", epochs: int = 8, seed: int = 0,
             baseline: str = "mmoe", incumbents: str = "lightgbm", model_name: str = "grec", gate_policy: str = "",
             min_task_positives: int = 3, max_lost_share: float = 0.001, train_on: str = "trainjob", train_nodes: int = 1,
             train_procs_per_node: int = 1,
             train_cpu: str = "4", train_memory: str = "16Gi", train_gpus: int = 0, train_image: str = BASE_IMAGE):
    """data: folder of raw tables with their contract ("" = the state folder's default data);
    [start, end): the window trained on ("": unbounded), its last week held out for the gate, or
    the rows the contract's split column says are test. train_on: trainjob (a Kubeflow Trainer
    TrainJob of train_nodes pods of train_image, each with train_cpu, train_memory and train_gpus),
    torchrun (train_procs_per_node processes in the step's pod) or process (in the step; what
    `grec pipeline run --local` uses unless told otherwise). max_lost_share: impressions with no
    feature value within a view's TTL are left out of the training set (and named) up to this share;
    past it the features step fails (grec.features.training_set.MAX_LOST_SHARE)."""
    job, run_id = dsl.PIPELINE_JOB_NAME_PLACEHOLDER, dsl.PIPELINE_JOB_ID_PLACEHOLDER
    validate = on_cluster(validate_data(data=data, start=start, end=end, min_task_positives=min_task_positives))
    features = on_cluster(build_features(tables=validate.outputs["tables"], end=end, max_lost_share=max_lost_share))
    training_set = features.outputs["training_set"]

    def train(arch, display_name: str):
        task = on_cluster(train_model(training_set=training_set, arch=arch, epochs=epochs, seed=seed, pipeline_job=job,
                                      pipeline_run_id=run_id, train_on=train_on, nodes=train_nodes,
                                      procs_per_node=train_procs_per_node, cpu=train_cpu, memory=train_memory,
                                      gpus=train_gpus, image=train_image))
        return task.set_display_name(display_name)

    grec, base, trees = train("grec", "train GRec"), train(baseline, "train baseline"), train(incumbents, "train incumbents")
    gate = on_cluster(evaluate_and_gate(training_set=training_set, challenger=grec.outputs["model"],
                                        baseline=base.outputs["model"], incumbents=trees.outputs["model"],
                                        model_name=model_name, policy=gate_policy))
    register = on_cluster(register_model(challenger=grec.outputs["model"], gate=gate.outputs["gate"],
                                         model_name=model_name, pipeline_job=job))
    with dsl.If(gate.outputs["Output"] == "promote", name="gate-passed"):
        promote = on_cluster(promote_model(version=register.output, gate=gate.outputs["gate"], model_name=model_name))
        on_cluster(package_service(champion=promote.output, model_name=model_name))
