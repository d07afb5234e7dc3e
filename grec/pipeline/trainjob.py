"""A pipeline's training step as a Kubeflow Trainer v2 TrainJob (`trainer.kubeflow.org/v1alpha1`),
through the `kubeflow` SDK's TrainerClient.

The job runs the cluster's `torch-distributed` ClusterTrainingRuntime with the project image in
place of the runtime's: `nodes` pods, each `torchrun ... -m grec.cli train ...` (the torch plugin
sets PET_NNODES, PET_NODE_RANK, PET_MASTER_ADDR and PET_MASTER_PORT, which torchrun reads). Runtime
patches give the trainer container what every pipeline step has (pipelines/cluster.py): the MLflow
tracking URI from Secret `grec-mlflow`, GREC_HOME from ConfigMap `grec-config`, and the
`grec-state` volume.

The pods see the state volume, not the step's artifacts, so the step stages the training set under
`$GREC_HOME/trainjobs/<job>/` (in place when it is already there), the job writes its model folder
beside it, and the step copies that folder into its output artifact. The staging folder is removed
whether the job completes or fails; a completed job is deleted, a failed one is left for its logs.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import uuid
from pathlib import Path

from grec import settings
from grec.pipeline.launch import Launch, LaunchError, read_trained, torchrun_command

RUNTIME = "torch-distributed"  # the ClusterTrainingRuntime the Trainer installs
CONTAINER = "node"  # the trainer container (and replicated job) of the torch runtimes
MLFLOW_SECRET, MLFLOW_KEY = "grec-mlflow", "tracking_uri"
CONFIG_MAP = "grec-config"
STATE_PVC, STATE_MOUNT = "grec-state", "/var/lib/grec"


def job_name(arch: str) -> str:
    """A DNS-1035 label short enough for the JobSet's pod names: 'mmoe-1a2b3c4d'."""
    return f"{arch.replace('_', '-')}-{uuid.uuid4().hex[:8]}"


def trainer(launch: Launch):
    """The trainer part of the TrainJob: image, nodes, resources per node (the command is an
    option, `options`). Torch in a container sizes its thread pool by the node's cores, not the
    pod's CPU limit, so the workers get OMP_NUM_THREADS = the pod's CPUs / workers: more threads
    than CPUs made a 2-node job on 2 cores 8x slower here (2,891 rows/s against 23,032)."""
    from kubeflow.trainer import CustomTrainerContainer

    return CustomTrainerContainer(image=launch.image, num_nodes=launch.nodes, resources_per_node=launch.resources,
                                  env={"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(launch.threads_per_worker)})


def options(name: str, args: list[str], launch: Launch, labels: dict[str, str] | None = None) -> list:
    """TrainJob options: its name and labels, the torchrun command, and the runtime patch that
    wires the trainer pods to the platform's secret, config map and state volume."""
    from kubeflow.trainer.options.common import Name
    from kubeflow.trainer.options.kubernetes import (ContainerPatch, JobSetSpecPatch, JobSetTemplatePatch, JobSpecPatch,
                                                     JobTemplatePatch, Labels, PodSpecPatch, PodTemplatePatch,
                                                     ReplicatedJobPatch, RuntimePatch, TrainerCommand,
                                                     TrainingRuntimeSpecPatch)

    env = [{"name": "MLFLOW_TRACKING_URI", "valueFrom": {"secretKeyRef": {"name": MLFLOW_SECRET, "key": MLFLOW_KEY}}},
           {"name": "GREC_HOME", "valueFrom": {"configMapKeyRef": {"name": CONFIG_MAP, "key": "GREC_HOME"}}}]
    pod = PodSpecPatch(volumes=[{"name": STATE_PVC, "persistentVolumeClaim": {"claimName": STATE_PVC}}],
                       containers=[ContainerPatch(name=CONTAINER, env=env,
                                                  volume_mounts=[{"name": STATE_PVC, "mountPath": STATE_MOUNT}])])
    node = ReplicatedJobPatch(name=CONTAINER, template=JobTemplatePatch(
        spec=JobSpecPatch(template=PodTemplatePatch(spec=pod))))
    patch = RuntimePatch(training_runtime_spec=TrainingRuntimeSpecPatch(
        template=JobSetTemplatePatch(spec=JobSetSpecPatch(replicated_jobs=[node]))))
    return [Name(name), Labels({"app.kubernetes.io/part-of": "grec", **(labels or {})}),
            TrainerCommand(torchrun_command(args, launch.procs_per_node)), patch]


def client(backend=None):
    """A TrainerClient: in-cluster credentials in a pipeline pod, else the kube-config; `backend`
    (a KubernetesBackendConfig) to name another API server."""
    from kubeflow.trainer import KubernetesBackendConfig, TrainerClient

    try:
        return TrainerClient(backend_config=backend or KubernetesBackendConfig())
    except Exception as e:  # no in-cluster service account and no kube-config
        raise LaunchError(f"train_on=trainjob needs a Kubernetes cluster with the Kubeflow Trainer: {type(e).__name__}: {e} "
                          "(locally, run the pipeline with train_on=process or torchrun)") from None


def train(training_set: Path, out_dir: Path, args_for, arch: str, launch: Launch, backend=None):
    """Train as a TrainJob and wait for it; returns the TrainedRun of the model folder it wrote.

    args_for(training_set, out_dir) -> the `grec train` arguments, given the staged paths."""
    api = client(backend)
    try:
        runtime = api.get_runtime(RUNTIME)
    except Exception as e:
        raise LaunchError(f"the cluster has no Kubeflow Trainer runtime {RUNTIME!r} ({e}); install the Trainer "
                          "(docs/deploy.md) or run with train_on=process") from None
    name = job_name(arch)
    stage = settings.state_dir() / "trainjobs" / name
    try:
        staged_set = _stage(Path(training_set), stage / "training_set")
        args = args_for(staged_set, stage / "model")
        api.train(runtime=runtime, trainer=trainer(launch),
                  options=options(name, args, launch, {"app.kubernetes.io/component": name.rsplit("-", 1)[0]}))
        _wait(api, name, launch)
        record = read_trained(stage / "model")
        _copy_whole(stage / "model", Path(out_dir))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    try:
        api.delete_job(name)  # its pods are done; the run and the model folder hold what it made
    except Exception as e:
        logging.getLogger(__name__).warning("TrainJob %s completed but was not deleted: %s", name, e)
    return dataclasses.replace(record, model_dir=Path(out_dir))


def _copy_whole(source: Path, out_dir: Path) -> None:
    """The model folder into the step's artifact, never half: copied beside it, then renamed (an
    empty artifact folder the runner made is replaced)."""
    partial = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
    partial.rename(out_dir)


def _stage(training_set: Path, target: Path) -> Path:
    """The training set where the job's pods can read it: on the state volume."""
    if training_set.resolve().is_relative_to(settings.state_dir().resolve()):
        return training_set
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(training_set, target)
    return target


def _wait(api, name: str, launch: Launch) -> None:
    namespace = api.backend.namespace
    logs = f"kubectl -n {namespace} logs -l jobset.sigs.k8s.io/jobset-name={name} -c {CONTAINER} --prefix"
    try:
        api.wait_for_job_status(name, status={"Complete"}, timeout=launch.timeout_s, polling_interval=launch.poll_s)
    except TimeoutError:
        api.delete_job(name)
        raise LaunchError(f"TrainJob {namespace}/{name} did not complete in {launch.timeout_s} s and was deleted") from None
    except RuntimeError as e:  # the SDK's "TrainJob ... is Failed", or an API error while polling
        raise LaunchError(f"TrainJob {namespace}/{name} failed ({e}); its pods' logs: {logs}") from None
