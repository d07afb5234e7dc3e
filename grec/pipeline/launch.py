"""Where a pipeline's training step trains.

- `process` (the local runner's default): in the step's own process, as it always did.
- `torchrun`: `grec train` under torchrun on the step's machine, `procs_per_node` processes.
- `trainjob` (the compiled pipeline's default): a Kubeflow Trainer v2 TrainJob on the cluster,
  `nodes` pods of the project image each running torchrun (grec.pipeline.trainjob); the step waits
  for it and collects the model folder rank 0 wrote.

The last two run the same command, `grec train` on the training set with the step's arguments
and tags, not registering (the gate comes first); rank 0 logs the one MLflow run and writes the
model folder with its train.json and eval-test.json, which `read_trained` turns back into the
record an in-process run returns. The per-task LightGBM incumbents have no data-parallel form
(trees refuse torchrun): their step trains in its own process whatever the launcher.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from grec.errors import UserError

LAUNCHERS = ("process", "torchrun", "trainjob")


class LaunchError(UserError):
    """A training launch that is misconfigured or whose job failed."""


@dataclass(frozen=True)
class Launch:
    on: str = "process"
    nodes: int = 1  # trainjob: pods, one torchrun each
    procs_per_node: int = 1  # torchrun workers per pod (per GPU on GPU nodes)
    cpu: str = "2"  # trainjob: requested and limited per pod
    memory: str = "8Gi"
    gpus: int = 0
    image: str = ""  # trainjob: the project image the pods run
    timeout_s: int = 2 * 24 * 3600  # trainjob: how long the step waits before deleting the job
    poll_s: int = 10

    def __post_init__(self):
        if self.on not in LAUNCHERS:
            raise LaunchError(f"train_on {self.on!r}: expected one of {', '.join(LAUNCHERS)}")
        if self.nodes < 1 or self.procs_per_node < 1:
            raise LaunchError(f"train_nodes {self.nodes} and train_procs_per_node {self.procs_per_node} must be at least 1")
        if self.on != "trainjob" and self.nodes > 1:
            raise LaunchError(f"train_nodes {self.nodes}: more than one node needs train_on=trainjob (a cluster)")
        if self.on == "trainjob" and not self.image:
            raise LaunchError("train_on=trainjob needs the image its pods run (train_image)")
        self.threads_per_worker  # a CPU quantity it can read

    @property
    def threads_per_worker(self) -> int:
        """The pod's CPUs (a Kubernetes quantity: '4', '3500m') shared by its workers, at least 1."""
        try:
            cpus = float(self.cpu[:-1]) / 1000 if self.cpu.endswith("m") else float(self.cpu)
        except ValueError:
            raise LaunchError(f"train_cpu {self.cpu!r} is not a CPU quantity (e.g. '4' or '3500m')") from None
        return max(1, int(cpus // self.procs_per_node))

    @property
    def resources(self) -> dict:
        """Per pod, in the Trainer SDK's form (`gpu` is nvidia.com/gpu)."""
        return {"cpu": self.cpu, "memory": self.memory, **({"gpu": self.gpus} if self.gpus else {})}


def train_arguments(training_set: Path, out_dir: Path, arch: str, epochs: int, seed: int,
                    tags: dict[str, str] | None = None) -> list[str]:
    """`grec train` arguments of a pipeline's training step."""
    args = ["train", "--training-set", str(training_set), "--model", arch, "--epochs", str(epochs),
            "--seed", str(seed), "--out", str(out_dir), "--no-register"]
    for key, value in (tags or {}).items():
        args += ["--tag", f"{key}={value}"]
    return args


def torchrun_command(args: list[str], procs_per_node: int, launcher: tuple[str, ...] = ("torchrun",)) -> list[str]:
    """torchrun of `grec train`. Without --standalone the rendezvous comes from the PET_*
    variables (PET_NNODES, PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT) the Trainer's torch
    plugin sets on each pod; --nproc-per-node is given so a CPU pod runs the workers asked for
    rather than one per core."""
    return [*launcher, f"--nproc-per-node={procs_per_node}", "-m", "grec.cli", *args]


def run_torchrun(args: list[str], procs_per_node: int) -> None:
    """`grec train` under torchrun on this machine; a failed job raises LaunchError with the end
    of its output (torchrun's own summary names the failed rank and its exit code or signal)."""
    command = torchrun_command(args, procs_per_node, (sys.executable, "-m", "torch.distributed.run", "--standalone"))
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sys.stdout.write(done.stdout)
    if done.returncode != 0:
        raise LaunchError(f"torchrun of grec train ({procs_per_node} processes) failed with exit code "
                          f"{done.returncode}:\n{done.stdout[-3000:]}")


def read_trained(out_dir: Path):
    """The TrainedRun of a model folder `grec train` wrote (run id, logged model, summary, test
    report), as the in-process path returns it."""
    from grec.lifecycle.tracking import TrainedRun

    out_dir = Path(out_dir)
    try:
        summary = json.loads((out_dir / "train.json").read_text())
        report = json.loads((out_dir / "eval-test.json").read_text())
    except FileNotFoundError as e:
        raise LaunchError(f"the training job ended without writing its model folder: {e.filename} is missing") from None
    return TrainedRun(run_id=summary["run_id"], model_dir=out_dir, report=report, summary=summary,
                      model_uri=summary["model_uri"], version=None)
