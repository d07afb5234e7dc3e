"""Local runs with every task in its own container of the project image: kfp's DockerRunner, given
what a cluster gives a pod and nothing more (pipelines/cluster.py):

- the state folder, mounted at its own path as the `grec-state` volume is on a cluster (the
  feature registry and stores, training sets, Bentos, and the embedded MLflow store live there;
  paths MLflow records stay valid on the host); the pipeline root inside it (kfp mounts it too);
- the user's inputs the run's parameters name (`data`, `gate_policy`, `drift_policy`), read-only
  at their own paths (a cluster mounts the team's data the same way or reads it from the state volume);
- the settings a cluster passes as its Secret and ConfigMap: GREC_HOME, MLFLOW_TRACKING_URI (a
  server on loopback is reached: containers share the host's network), and the online store's
  (FEAST_FS_YAML_FILE_PATH read from the image's own feature_repo/, GREC_REDIS);
- the caller's uid and gid, so what a step writes on the volume belongs to the user who ran it.

The engine is whatever DOCKER_HOST names (python deploy/local/containers.py start prints one).
"""

from __future__ import annotations

import os
from pathlib import Path

from grec import settings
from grec.errors import UserError

IMAGE_REPO = "/opt/grec"  # where deploy/Dockerfile puts the project
# Passed through from the caller's environment when set (what a cluster's Secret and ConfigMap hold).
# A pod's thread counts are its CPU share (the caller's, here: a test worker's).
PASSED = ("MLFLOW_TRACKING_URI", "GREC_REDIS", "GREC_MEMORY_BUDGET", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
          "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
BUILD_COMMAND = "python deploy/local/containers.py build"
# Parameters naming the user's inputs on the host (a folder of tables, policy files): read-only at
# their own paths, as a cluster's pods find them on a volume.
INPUT_PATHS = ("data", "gate_policy", "drift_policy")


class ContainerRunError(UserError):
    """No engine to run the tasks in, or no image to run them on."""


def engine_client():
    """docker-py's client of the engine DOCKER_HOST names; a clear error when none answers."""
    import docker

    where = os.environ.get("DOCKER_HOST", "the default socket")
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as e:
        raise ContainerRunError(f"no container engine answers at {where} ({type(e).__name__}): start one with "
                                "`python deploy/local/containers.py start` and export the DOCKER_HOST it prints") from None
    return client


def check_image(image: str) -> None:
    """The component image must be in the engine: a missing one is this error, not a pull."""
    import docker

    client = engine_client()
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise ContainerRunError(f"the component image {image} is not in the container engine at "
                                f"{os.environ.get('DOCKER_HOST', 'the default socket')}: build it with "
                                f"`{BUILD_COMMAND}` (or set GREC_IMAGE to one it has)") from None
    finally:
        client.close()


def environment(state: Path) -> dict[str, str]:
    env = {"GREC_HOME": str(state), "HOME": "/tmp", "PYTHONUNBUFFERED": "1"}
    env.update({k: os.environ[k] for k in PASSED if os.environ.get(k)})
    feast = os.environ.get("FEAST_FS_YAML_FILE_PATH")
    if feast:  # the repository's store configs are in the image: the same file under its own path
        repo = Path(__file__).resolve().parents[2]
        path = Path(feast).resolve()
        env["FEAST_FS_YAML_FILE_PATH"] = str(Path(IMAGE_REPO) / path.relative_to(repo)) if path.is_relative_to(repo) else feast
    return env


def mounts(state: Path, params: dict) -> list:
    """The state folder read-write, and each input path a parameter names outside it read-only,
    every one at its own path."""
    from docker.types import Mount

    out = [Mount(target=str(state), source=str(state), type="bind")]
    for name in INPUT_PATHS:
        if not params.get(name):
            continue
        path = Path(params[name]).resolve()
        if not path.exists():
            raise ContainerRunError(f"{name}={params[name]}: no such {'folder' if name == 'data' else 'file'}")
        if not path.is_relative_to(state):
            out.append(Mount(target=str(path), source=str(path), type="bind", read_only=True))
    return out


def docker_runner(image: str, params: dict):
    """kfp's DockerRunner for a local run of a pipeline with `params` on `image`."""
    from kfp import local

    check_image(image)
    state = settings.state_dir().resolve()
    state.mkdir(parents=True, exist_ok=True)
    return local.DockerRunner(mounts=mounts(state, params), environment=environment(state), network_mode="host",
                              user=f"{os.getuid()}:{os.getgid()}", working_dir=IMAGE_REPO)
