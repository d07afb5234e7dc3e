"""A pipeline run killed part way leaves no half-filled run folder behind: the next run removes
what a dead run left unmarked, and nothing else (finished runs, another live run's folder)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from grec.data.simulate import SimulationConfig, simulate_to
from grec.pipeline.run import RUN_MARKER, sweep_killed_runs
from grec.io import write_json


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_a_dead_runs_unmarked_folders_are_removed(tmp_path):
    root = tmp_path / "pipelines"
    (root / "finished").mkdir(parents=True)
    write_json(root / "finished" / RUN_MARKER, {"status": "succeeded"})
    (root / "from-an-older-version").mkdir()  # unmarked, but older than any claim: kept
    old = time.time() - 3600
    os.utime(root / "from-an-older-version", (old, old))
    write_json(root / ".active" / "1.json", {"pid": _dead_pid(), "started": time.time() - 5})
    (root / "killed" / "validate-data").mkdir(parents=True)
    live = write_json(root / ".active" / f"{os.getpid()}.json", {"pid": os.getpid(), "started": time.time()})
    assert sweep_killed_runs(root) == [] and (root / "killed").exists()  # a live run may own it
    live.unlink()
    assert sweep_killed_runs(root) == [root / "killed"]
    assert sorted(p.name for p in root.iterdir()) == [".active", "finished", "from-an-older-version"]
    assert not list((root / ".active").iterdir())


def test_a_killed_pipeline_run_is_swept_by_the_next(tmp_path, fresh_state):
    data = tmp_path / "data"
    simulate_to(data, SimulationConfig(n_impressions=5_000, train_weeks=2, seed=1))
    root = fresh_state / "pipelines"
    run = subprocess.Popen([str(Path(sys.executable).with_name("grec")), "pipeline", "run", "training", "--local",
                            "--param", f"data={data}"], env=os.environ.copy(), start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any(p.is_dir() and not p.name.startswith(".") for p in root.glob("*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)  # the run and its steps, mid-way
    run.wait()
    killed = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(killed) == 1 and not (killed[0] / RUN_MARKER).exists()
    assert sweep_killed_runs(root) == killed and not killed[0].exists()


def test_two_runs_started_at_once_on_one_state_folder_go_one_after_the_other(tmp_path, fresh_state):
    """Two schedules firing together on a new state folder: the second waits for the first, saying
    so, then runs; each marks only its own run folder. (A table the validation refuses keeps the
    runs short; test_local runs a whole pipeline.)"""
    import pandas as pd

    data = tmp_path / "data"
    simulate_to(data, SimulationConfig(n_impressions=3_000, train_weeks=2, seed=1))
    impressions = pd.read_parquet(data / "impressions.parquet")
    impressions.loc[impressions.index[:25], "purchase"] = 1  # purchases without a click: refused
    impressions.to_parquet(data / "impressions.parquet", index=False)
    cli = [str(Path(sys.executable).with_name("grec")), "pipeline", "run", "training", "--local", "--param", f"data={data}"]
    runs = [subprocess.Popen(cli, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=600) for run in runs]
    said = [out + err for out, err in outputs]
    assert all(run.returncode != 0 for run in runs)  # each ran its validation, which refused the table
    assert all("validate-data" in text and "Traceback" not in text for text in said), said
    waited = [text for text in said if "waiting for the training run of process" in text]
    assert len(waited) == 1, said
    other = runs[0].pid if waited[0] is said[1] else runs[1].pid
    assert f"process {other}" in waited[0] and "go one at a time" in waited[0] and "the training pipeline starts now" in waited[0]
    folders = [p for p in (fresh_state / "pipelines").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(folders) == 2 and all((p / RUN_MARKER).exists() for p in folders)
    assert not list((fresh_state / "pipelines" / ".active").iterdir())
