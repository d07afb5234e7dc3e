"""From the MLflow registry to a Bento: import the champion into BentoML's model store (under
$GREC_HOME/bentoml), build the Bento described by deploy/bentofile.yaml, serve it locally
(`local_service`: what the tests and the serving benchmark start)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, suppress
from pathlib import Path

from grec import settings

REPO = Path(__file__).resolve().parents[2]
BENTOFILE = REPO / "deploy" / "bentofile.yaml"


def import_champion(name: str = "grec", alias: str = "champion", tracking_uri: str | None = None):
    """The registry's `name@alias` as a BentoML model tagged `name:<version>-<alias>`; returns it."""
    settings.use_bentoml_home()
    import bentoml
    import bentoml.mlflow

    from grec.lifecycle.registry import Registry

    registry = Registry(name, tracking_uri)
    version = registry.aliases().get(alias)
    if version is None:
        from grec.lifecycle.registry import RegistryError

        raise RegistryError(f"model '{name}' has no '{alias}' alias to package; promote a version first")
    tag = f"{name}:v{version}"
    try:
        return bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        return bentoml.mlflow.import_model(
            tag, f"models:/{name}/{version}",
            labels={"registered_model": name, "version": str(version), "alias": alias},
            metadata={"tracking_uri": registry.tracking_uri, "run_id": registry.version(version).run_id})


def build(model_tag: str) -> str:
    """`bentoml build` of deploy/bentofile.yaml with `model_tag` as the packaged model; the Bento tag."""
    settings.use_bentoml_home()
    import bentoml

    os.environ["GREC_BENTO_MODEL"] = model_tag
    return str(bentoml.bentos.build_bentofile(str(BENTOFILE), build_ctx=str(REPO)).tag)


@contextmanager
def local_service(state: Path, port: int | None = None, timeout: float = 180.0, env: dict | None = None):
    """`grec serve` for the state folder `state` on a free loopback port, in its own process group
    (`env`: more environment variables); yields the base URL once /readyz answers 200, stops the
    whole group on exit."""
    port = port or _free_port()
    env = os.environ | (env or {}) | {"GREC_HOME": str(state)}
    env.pop("MLFLOW_TRACKING_URI", None)  # the state folder's own registry
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a busy server's access log would fill a pipe and block
    proc = subprocess.Popen([str(Path(sys.executable).with_name("grec")), "serve", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(url, proc, timeout)
        except RuntimeError as e:
            with suppress(ProcessLookupError):  # a server that exited has no group left to stop
                os.killpg(proc.pid, signal.SIGKILL)
            log.seek(0)
            raise RuntimeError(f"{e}: {log.read()[-3000:]}") from None
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        log.close()


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180.0, path: str = "/readyz") -> None:
    """Return once `url``path` answers 200; RuntimeError if `proc` ends or `timeout` passes first."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url}{path} did not answer 200 (the server ended or {timeout:.0f} s passed)")
        time.sleep(0.5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
