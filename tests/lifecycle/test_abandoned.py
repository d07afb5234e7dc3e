"""A training killed mid-run leaves its MLflow run RUNNING; the next training on the machine ends
it as KILLED, and leaves alone a live process's run and another machine's."""

import os
import subprocess
import sys
import textwrap

import mlflow

from grec.lifecycle.abandoned import HOST_TAG, PID_TAG, end_abandoned_runs, run_tags
from grec.lifecycle.store import configure, experiment_id

KILLED_MID_RUN = textwrap.dedent("""
    import os, signal, mlflow
    from grec.lifecycle.abandoned import run_tags
    from grec.lifecycle.store import configure, experiment_id
    configure()
    run = mlflow.start_run(experiment_id=experiment_id(), run_name="killed")
    mlflow.set_tags(run_tags())
    print(run.info.run_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer or a preempted node would
""")


def test_a_run_left_running_by_a_dead_process_is_ended_as_killed(fresh_state):
    out = subprocess.run([sys.executable, "-c", KILLED_MID_RUN], capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == -9, out.stderr[-2000:]
    dead_run = out.stdout.split()[0]
    configure()
    experiment = experiment_id()
    client = mlflow.MlflowClient()
    assert client.get_run(dead_run).info.status == "RUNNING"
    with mlflow.start_run(experiment_id=experiment, run_name="alive") as alive:  # this process: alive
        mlflow.set_tags(run_tags())
        elsewhere = client.create_run(experiment, tags={HOST_TAG: "another-machine", PID_TAG: "1"})
        assert end_abandoned_runs(experiment) == [dead_run]
        assert client.get_run(alive.info.run_id).info.status == "RUNNING"
    dead = client.get_run(dead_run)
    assert dead.info.status == "KILLED" and "had ended without ending the run" in dead.data.tags["grec.ended_by"]
    assert client.get_run(elsewhere.info.run_id).info.status == "RUNNING"
    assert end_abandoned_runs(experiment) == []  # once
