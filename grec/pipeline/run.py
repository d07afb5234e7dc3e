"""Run, compile, submit and schedule the pipelines in pipelines/.

Locally the pipelines run with kfp's SubprocessRunner in the current environment (use_venv=False:
each task is a subprocess of this interpreter, where grec is installed), or with its DockerRunner,
each task in a container of the component image (grec.pipeline.containers); artifacts under
`$GREC_HOME/pipelines/<pipeline>-<timestamp>/<task>/<output>`. On a cluster the compiled YAML runs
unchanged on the components' image, talking to MLflow and Feast through the secrets and config maps
of pipelines/cluster.py.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path

from grec import settings
from grec.errors import UserError
from grec.pipeline.progress import ANSI, quiet_run

REPO = Path(__file__).resolve().parents[2]
PIPELINES = ("training", "monitoring")


class PipelineError(UserError):
    """A pipeline that cannot be found, compiled or reached."""


def pipeline(name: str):
    """The pipeline function `name` from pipelines/<name>.py."""
    if name not in PIPELINES:
        raise PipelineError(f"unknown pipeline {name!r}; known: {', '.join(PIPELINES)}")
    if str(REPO) not in sys.path:  # components/ and pipelines/ live beside grec/, not inside it
        sys.path.insert(0, str(REPO))
    return getattr(importlib.import_module(f"pipelines.{name}"), name)


RUNNERS = ("subprocess", "docker")


def run_local(name: str, params: dict | None = None, pipeline_root: Path | None = None,
              runner: str = "subprocess", log: Path | None = None) -> Path:
    """Run the pipeline locally, task by task; raises PipelineError naming the failed task.
    Returns the run's folder of outputs. runner: "subprocess" (each task a process of this
    environment) or "docker" (each task a container of the component image, with what a pod gets:
    grec.pipeline.containers). With `log`, what kfp prints (every task's streams) goes to that file
    and the terminal gets one line per step (grec.pipeline.progress); without, all of it is printed."""
    from kfp import local

    if runner not in RUNNERS:
        raise PipelineError(f"unknown runner {runner!r}; known: {', '.join(RUNNERS)}")
    params = dict(params or {})
    from grec.pipeline.containers import INPUT_PATHS

    for key in INPUT_PATHS:  # a task may run elsewhere (a container): the user's inputs by their full paths
        if params.get(key):
            params[key] = str(Path(params[key]).resolve())
    fn = pipeline(name)
    if runner == "docker":
        from components import BASE_IMAGE
        from grec.pipeline.containers import docker_runner

        task_runner = docker_runner(BASE_IMAGE, params)
    else:
        task_runner = local.SubprocessRunner(use_venv=False)
    root = Path(pipeline_root or settings.state_dir() / "pipelines").resolve()
    root.mkdir(parents=True, exist_ok=True)
    with one_run_at_a_time(root, name):
        return _run(name, fn, params, root, task_runner, log)


def _run(name: str, fn, params: dict, root: Path, task_runner, log: Path | None) -> Path:
    from kfp import local

    for folder in sweep_killed_runs(root):
        warnings.warn(f"removed {folder}: the partial outputs of a pipeline run whose process was killed", stacklevel=2)
    claim = _claim(root)
    before = set(root.iterdir())
    local.init(runner=task_runner, pipeline_root=str(root), raise_on_error=True)
    if "train_on" in (fn.component_spec.inputs or {}):  # no cluster here: train in the step unless told
        params = {"train_on": "process", **params}
    try:
        with warnings.catch_warnings(), (quiet_run(log) if log else nullcontext()):
            # Known and harmless here: the project image is not pulled locally (the current
            # environment is that image's), and display names are for the cluster UI.
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
            fn(**params)
    except RuntimeError as e:  # kfp reports a failed task as RuntimeError("Task '...' finished with status FAILURE")
        _finish(root, before, claim, "failed")
        failed = ANSI.sub("", str(e))
        raise PipelineError(f"pipeline {name} failed: {failed}" + (f"; its full log: {log}" if log else "")) from None
    return _finish(root, before, claim, "succeeded") or root


@contextmanager
def one_run_at_a_time(root: Path, name: str):
    """Hold the pipeline root for one run: a run started while another holds it (two schedules
    firing together, a user's run beside a scheduled one) waits for it, saying so on stderr, then
    runs. Runs on one state folder share its registry, feature store and run folders: in turns,
    each run sees what the last one left (a champion, a materialized store) and marks only its own
    outputs. An exclusive lock on a file in the root, which names its holder; a holder that dies
    releases it."""
    import fcntl
    import json
    import os
    import time

    with open(root / ".run.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            started = time.monotonic()
            print(f"waiting for {_holder(lock)} to end: pipeline runs in {root} go one at a time",
                  file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
            print(f"waited {time.monotonic() - started:.0f} s; the {name} pipeline starts now", file=sys.stderr, flush=True)
        lock.truncate(0)
        lock.write(json.dumps({"pipeline": name, "pid": os.getpid(), "started": time.time()}))
        lock.flush()
        yield


def _holder(lock) -> str:
    """The run holding the lock, as it wrote itself there (it writes just after taking it)."""
    import json
    import time

    for _ in range(20):
        lock.seek(0)
        try:
            held = json.loads(lock.read())
        except ValueError:
            time.sleep(0.05)
            continue
        return (f"the {held['pipeline']} run of process {held['pid']} (started "
                f"{time.strftime('%H:%M:%S', time.localtime(held['started']))})")
    return "another pipeline run"


# A run killed part way (SIGKILL, a lost machine) leaves a run folder kfp half filled. Every run
# claims the pipeline root while it runs (.active/<pid>.json) and marks its folder when it ends
# (RUN_MARKER, succeeded or failed, kept for inspection); the next run removes the unmarked folders
# a dead claimant left, unless another run is live (an unmarked folder may then be its own).
RUN_MARKER = ".grec-run.json"


def _claim(root: Path) -> Path:
    import os
    import time

    from grec.io import write_json

    return write_json(root / ".active" / f"{os.getpid()}.json", {"pid": os.getpid(), "started": time.time()})


def _finish(root: Path, before: set, claim: Path, status: str) -> Path | None:
    import time

    from grec.io import write_json

    new = sorted((p for p in set(root.iterdir()) - before if p.is_dir() and not p.name.startswith(".")),
                 key=lambda p: p.stat().st_mtime)
    for folder in new:
        write_json(folder / RUN_MARKER, {"status": status, "ended": time.time()})
    claim.unlink(missing_ok=True)
    return new[-1] if new else None


def sweep_killed_runs(root: Path) -> list[Path]:
    """Remove the run folders left unmarked by runs whose process is gone; returns them."""
    import json
    import shutil

    import psutil

    claims = []
    for path in sorted((root / ".active").glob("*.json")):
        claim = json.loads(path.read_text())
        try:
            alive = psutil.Process(claim["pid"]).create_time() <= claim["started"] + 1
        except psutil.Error:
            alive = False
        claims.append((path, claim, alive))
    if any(alive for *_, alive in claims):
        return []
    removed = []
    if claims:
        since = min(claim["started"] for _, claim, _ in claims) - 1
        for folder in root.iterdir():
            if folder.is_dir() and not folder.name.startswith(".") and not (folder / RUN_MARKER).exists() \
                    and folder.stat().st_mtime >= since:
                shutil.rmtree(folder)
                removed.append(folder)
    for path, *_ in claims:
        path.unlink(missing_ok=True)
    return removed


def compile_pipeline(name: str, out: Path) -> Path:
    """The pipeline's IR YAML (what a KFP API server runs)."""
    from kfp import compiler

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline(name), package_path=str(out))
    return out


def _client(host: str):
    import kfp

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="This client only works with Kubeflow Pipeline v2")
            client = kfp.Client(host=host)
        client.get_kfp_healthz()
    except Exception as e:  # connection refused, DNS, auth: all mean "no usable KFP API here"
        raise PipelineError(f"cannot reach a KFP API server at {host}: {type(e).__name__}: {e}") from None
    return client


def _experiment_id(client, experiment: str) -> str:
    try:
        return client.get_experiment(experiment_name=experiment).experiment_id
    except Exception:
        return client.create_experiment(experiment).experiment_id


def submit(name: str, host: str, params: dict | None = None, experiment: str = "grec") -> str:
    """Start one run of the pipeline on the KFP API server at `host`; returns the run id."""
    client = _client(host)
    with tempfile.TemporaryDirectory() as tmp:
        package = compile_pipeline(name, Path(tmp) / f"{name}.yaml")
        run = client.create_run_from_pipeline_package(str(package), arguments=params or {}, experiment_name=experiment)
    return run.run_id


def schedule(name: str, host: str, cron: str, params: dict | None = None, experiment: str = "grec") -> str:
    """A recurring run of the pipeline (six-field cron, seconds first), one run at a time so two
    promotions never race on the registry. Returns the recurring run id."""
    if len(cron.split()) != 6:
        raise PipelineError(f"--cron {cron!r}: KFP takes six fields, seconds first (e.g. '0 0 3 * * 1' = Mondays 03:00)")
    client = _client(host)
    with tempfile.TemporaryDirectory() as tmp:
        package = compile_pipeline(name, Path(tmp) / f"{name}.yaml")
        job = client.create_recurring_run(experiment_id=_experiment_id(client, experiment), job_name=f"grec-{name}",
                                          cron_expression=cron, pipeline_package_path=str(package), params=params or {},
                                          max_concurrency=1, enabled=True)
    return job.recurring_run_id


def task_outputs(run_dir: Path) -> dict[str, dict]:
    """{task: {"parameters": {...}, "artifacts": {name: {"path", "metadata"}}}} of a local run,
    read from each task's executor output."""
    import json

    out = {}
    for executor in sorted(Path(run_dir).glob("*/executor_output.json")):
        raw = json.loads(executor.read_text())
        artifacts = {name: {"path": a["artifacts"][0]["uri"], "metadata": a["artifacts"][0].get("metadata", {})}
                     for name, a in raw.get("artifacts", {}).items()}
        out[executor.parent.name] = {"parameters": raw.get("parameterValues", {}), "artifacts": artifacts}
    return out


def parse_params(name: str, pairs: list[str]) -> dict:
    """['epochs=2', 'end=2026-09-07'] -> {'epochs': 2, 'end': '2026-09-07'}, typed and checked
    against the pipeline's parameters."""
    inputs = pipeline(name).component_spec.inputs or {}
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in inputs:
            raise PipelineError(f"--param {pair!r}: expected NAME=VALUE with NAME one of {', '.join(inputs)}")
        kind = inputs[key].type
        try:
            params[key] = int(value) if kind == "Integer" else float(value) if kind == "Float" else value
        except ValueError:
            raise PipelineError(f"--param {pair!r}: {key} takes a {kind.lower()}") from None
    return params
