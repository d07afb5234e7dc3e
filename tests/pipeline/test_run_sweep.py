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
